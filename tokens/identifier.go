package tokens

import (
	"strconv"
	"strings"
	"unsafe"
)

// Persistence says where a token's validity lives: named tokens are stored
// by the issuer (and revoked by id); temporary tokens are revoked by
// generation.
type Persistence struct {
	Named      bool
	Generation uint64 // meaningful only when !Named
}

func (p Persistence) String() string {
	if p.Named {
		return "nmd"
	}
	return "tmp-" + strconv.FormatUint(p.Generation, 10)
}

// Subject is who a token speaks for: for an invite, the inviter.
type Subject struct {
	Kind string // "usr", "prv" or "nobody"
	ID   string // empty for "nobody"
}

func (s Subject) String() string {
	if s.Kind == "nobody" {
		return "nobody"
	}
	return s.Kind + "-" + s.ID
}

// TypeKind is the broad kind of a token.
type TypeKind uint8

// Token kinds.
const (
	TypeAccess TypeKind = iota + 1
	TypeIdentity
	TypeInvite
)

// InviteUserJoinGroup is the code of userJoinGroup invites.
const InviteUserJoinGroup = "ujg"

// TokenType is the parsed type segment of an identifier.
type TokenType struct {
	Kind      TypeKind
	SessionID string // access tokens bound to a session ("act:<session>")
	Code      string // invite code, e.g. "ujg"
	TargetID  string // invite target, e.g. the group id
	Params    string // invite parameters, verbatim (often empty)
}

func (t TokenType) String() string {
	switch t.Kind {
	case TypeAccess:
		if t.SessionID != "" {
			return "act:" + t.SessionID
		}
		return "act"
	case TypeIdentity:
		return "idn"
	case TypeInvite:
		return t.Code + ":" + t.TargetID + ":" + t.Params
	}
	return ""
}

// Identifier is a parsed Onedata token identifier, version 2:
// 2/<persistence>/<subject>/<type>/<tokenId>. An identifier without '/' is
// a legacy access token and has only Raw set.
type Identifier struct {
	Legacy      bool
	Persistence Persistence
	Subject     Subject
	Type        TokenType
	TokenID     string
	Raw         string
}

// String serializes the identifier in Onedata's form.
func (id Identifier) String() string {
	if id.Legacy {
		return id.Raw
	}
	return "2/" + id.Persistence.String() + "/" + id.Subject.String() + "/" + id.Type.String() + "/" + id.TokenID
}

// IsGroupInvite reports whether the identifier is a userJoinGroup invite.
func (id Identifier) IsGroupInvite() bool {
	return !id.Legacy && id.Type.Kind == TypeInvite && id.Type.Code == InviteUserJoinGroup
}

// ParseIdentifier parses an identifier strictly: exactly five segments,
// known persistence, subject and type forms, and ids from a safe character
// set (they end up in headers and in the Location of the answer).
func ParseIdentifier(s string) (Identifier, error) {
	if !strings.Contains(s, "/") {
		if s == "" || !validLegacy(s) {
			return Identifier{}, malformed("bad legacy identifier")
		}
		return Identifier{Legacy: true, Raw: s}, nil
	}
	var seg [5]string
	rest := s
	for i := 0; i < 4; i++ {
		j := strings.IndexByte(rest, '/')
		if j < 0 {
			return Identifier{}, malformed("identifier has too few segments")
		}
		seg[i], rest = rest[:j], rest[j+1:]
	}
	seg[4] = rest
	if seg[0] != "2" {
		return Identifier{}, malformed("unsupported identifier version")
	}
	id := Identifier{Raw: s}
	var err *Error
	if id.Persistence, err = parsePersistence(seg[1]); err != nil {
		return Identifier{}, err
	}
	if id.Subject, err = parseSubject(seg[2]); err != nil {
		return Identifier{}, err
	}
	if id.Type, err = parseType(seg[3]); err != nil {
		return Identifier{}, err
	}
	if !ValidID(seg[4]) {
		return Identifier{}, malformed("bad token id")
	}
	id.TokenID = seg[4]
	return id, nil
}

// rebased returns id with each of its strings that lies within from
// replaced by the same bytes of to, a copy of from: an identifier parsed
// from a view of a reused buffer, made to point into a string of its own.
// A string that does not lie within from (the constant "nobody") is
// copied, never returned as is: nothing of id then flows to the result,
// so escape analysis lets a caller's view live on its stack.
func (id Identifier) rebased(from, to string) Identifier {
	base := uintptr(unsafe.Pointer(unsafe.StringData(from)))
	re := func(s string) string {
		if s == "" {
			return ""
		}
		// Unsigned: a string below from wraps around to a large offset.
		off := uintptr(unsafe.Pointer(unsafe.StringData(s))) - base
		if off > uintptr(len(from)) || uintptr(len(s)) > uintptr(len(from))-off {
			if s == "nobody" {
				return "nobody"
			}
			return strings.Clone(s)
		}
		return to[off : off+uintptr(len(s))]
	}
	// A new value field by field, not id modified: returning id would make
	// it, and the view it came from, flow to the result.
	return Identifier{
		Legacy:      id.Legacy,
		Persistence: id.Persistence,
		Subject:     Subject{Kind: re(id.Subject.Kind), ID: re(id.Subject.ID)},
		Type: TokenType{Kind: id.Type.Kind, SessionID: re(id.Type.SessionID), Code: re(id.Type.Code),
			TargetID: re(id.Type.TargetID), Params: re(id.Type.Params)},
		TokenID: re(id.TokenID),
		Raw:     re(id.Raw),
	}
}

func parsePersistence(s string) (Persistence, *Error) {
	if s == "nmd" {
		return Persistence{Named: true}, nil
	}
	g, ok := strings.CutPrefix(s, "tmp-")
	if !ok {
		return Persistence{}, malformed("bad persistence")
	}
	n, ok := parseUint(g)
	if !ok {
		return Persistence{}, malformed("bad generation")
	}
	return Persistence{Generation: n}, nil
}

func parseSubject(s string) (Subject, *Error) {
	if s == "nobody" {
		return Subject{Kind: "nobody"}, nil
	}
	kind, id, ok := strings.Cut(s, "-")
	if !ok || (kind != "usr" && kind != "prv") || !ValidID(id) {
		return Subject{}, malformed("bad subject")
	}
	return Subject{Kind: kind, ID: id}, nil
}

func parseType(s string) (TokenType, *Error) {
	switch {
	case s == "act":
		return TokenType{Kind: TypeAccess}, nil
	case s == "idn":
		return TokenType{Kind: TypeIdentity}, nil
	case strings.HasPrefix(s, "act:"):
		if !ValidID(s[4:]) {
			return TokenType{}, malformed("bad session id")
		}
		return TokenType{Kind: TypeAccess, SessionID: s[4:]}, nil
	}
	code, rest, ok := strings.Cut(s, ":")
	if !ok || len(code) != 3 || !isLower(code) {
		return TokenType{}, malformed("bad token type")
	}
	target, params, ok := strings.Cut(rest, ":")
	if !ok || !ValidID(target) || !validParams(params) {
		return TokenType{}, malformed("bad invite type")
	}
	return TokenType{Kind: TypeInvite, Code: code, TargetID: target, Params: params}, nil
}

// ValidID reports whether s is usable as an id: 1 to 256 bytes of
// [A-Za-z0-9._~@-]. Ids travel in upstream headers, placeholders and the
// Location header, so anything that could split or confuse them is refused.
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > 256 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '.', c == '_', c == '~', c == '@', c == '-':
		default:
			return false
		}
	}
	return true
}

// validParams accepts Onedata's invite parameters (often empty, otherwise
// a compact serialization) as long as they are printable ASCII without '/'.
func validParams(s string) bool {
	if len(s) > 1024 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f || s[i] == '/' {
			return false
		}
	}
	return true
}

func validLegacy(s string) bool {
	if len(s) > 1024 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

func isLower(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 'a' || s[i] > 'z' {
			return false
		}
	}
	return true
}

// parseUint accepts canonical decimal only: no sign, no leading zeros, no
// overflow.
func parseUint(s string) (uint64, bool) {
	if s == "" || len(s) > 20 || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}
