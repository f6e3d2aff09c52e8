package tokens

import (
	"encoding/base64"
	"strings"
	"time"
	"unsafe"
)

// Token is an authenticated token: decoded, identifier parsed, signature
// verified with the key its identifier selects, caveats parsed. Caveats are
// not yet checked: that depends on the request (see CheckInvite and
// CheckAccess), which lets a caller cache Tokens and still check ip, geo and
// time per request.
type Token struct {
	Location string
	ID       Identifier
	Caveats  []Caveat
	// Expires is the earliest time caveat; zero when there is none.
	Expires time.Time
}

// MaxCaveats bounds the caveats of a token. Onedata's own tokens carry a
// handful; thousands of tiny caveats would only make a forged token
// expensive to refuse.
const MaxCaveats = 256

// Authenticate decodes s, selects the key from the identifier and verifies
// the signature, then parses the caveats. Errors are *Error values.
//
// It accepts what Decode accepts and refuses in the same order (size,
// empty, not a macaroon, third party, too many caveats, identifier, key,
// signature, caveats). The base64 forms, the ones met on every request,
// are read by parseMacaroon (binary.go) straight from a pooled buffer
// rather than through go-macaroon, which copied the token, identifier and
// location and built a Macaroon only for them to be copied again here.
func (k *Keyring) Authenticate(s string) (*Token, error) {
	var t Token
	if err := k.AuthenticateTo(&t, s); err != nil {
		return nil, err
	}
	// On the heap only now: a refused token costs no allocation.
	out := t
	return &out, nil
}

// AuthenticateTo is the allocation-free form of Authenticate, for a
// caller that verifies tokens at a high rate and pools Tokens (the
// group_join handler does); Authenticate is what a backend needs. It
// writes the Token into t, which it overwrites whole. The caveats go into
// t.Caveats' backing array when it has room for them (a new one
// otherwise), so a caller that keeps a Token and a caveat array for reuse
// authenticates without allocating for either: only the Token's strings
// are new. After an error t holds no meaningful Token.
func (k *Keyring) AuthenticateTo(t *Token, s string) error {
	if len(s) > MaxTokenSize {
		return ErrTooLarge
	}
	if s == "" {
		return malformed("empty token")
	}
	if s[0] == '{' {
		return k.authenticateJSON(t, s)
	}
	var inline [inlineCaveats]caveatView
	bp := textBufs.Get().(*[]byte)
	m, ok := decodeTextView(s, bp, inline[:0])
	var err error
	switch {
	case !ok:
		err = malformed("not a macaroon")
	case m.thirdParty:
		err = ErrThirdParty
	case m.count > MaxCaveats:
		// Refused before the signature chain, whose cost grows with
		// every caveat.
		err = malformed("too many caveats")
	default:
		err = k.authenticateView(t, &m)
	}
	// m points into the buffer; t does not (authenticateView copies), so
	// the buffer can be reused from here on.
	if cap(*bp) <= maxPooledBuf {
		textBufs.Put(bp)
	}
	return err
}

// inlineCaveats is how many caveat views Authenticate keeps on its stack;
// a token with more (up to MaxCaveats) grows them on the heap. Onedata's
// tokens carry a handful.
const inlineCaveats = 16

// decodeTextView is decodeText (decode.go) with parseMacaroon in place of
// go-macaroon: Onedata's escaped form first, then plain base64 of s
// itself, decoded into *bp, which the view then points into. Its caveats
// are appended to cavs[:0]; those past MaxCaveats are counted, not kept.
func decodeTextView(s string, bp *[]byte, cavs []caveatView) (macaroonView, bool) {
	if need := len(s) + base64.RawStdEncoding.DecodedLen(len(s)); cap(*bp) < need {
		*bp = make([]byte, 0, need)
	}
	buf := *bp
	text, std, unescaped := unescapeOnedata(buf[:0], s)
	if unescaped {
		m, ok := parseMacaroon(decodeBase64As(buf[len(text):cap(buf)], text, std), cavs, MaxCaveats)
		// Without any escape ('0'), the unescaped text is s itself:
		// trying it again as plain base64 would only repeat the same work.
		if ok || len(text) == len(s) {
			return m, ok
		}
	}
	text = append(buf[:0], s...)
	return parseMacaroon(base64DecodeInto(buf[len(text):cap(buf)], text), cavs, MaxCaveats)
}

// authenticateJSON is Authenticate for the JSON forms, through Decode.
func (k *Keyring) authenticateJSON(t *Token, s string) error {
	mac, err := Decode(s)
	if err != nil {
		return err
	}
	mc := mac.Caveats()
	if len(mc) > MaxCaveats {
		return malformed("too many caveats")
	}
	var inline [inlineCaveats]caveatView
	m := macaroonView{
		location: []byte(mac.Location()),
		id:       mac.Id(),
		sig:      mac.Signature(),
		caveats:  inline[:0],
		count:    len(mc),
	}
	for i := range mc {
		m.caveats = append(m.caveats, caveatView{id: mc[i].Id})
	}
	return k.authenticateView(t, &m)
}

// authenticateView is the rest of AuthenticateTo on a decoded token whose
// caveats are all in m.caveats. The identifier is parsed where it lies, to
// pick the key; nothing is copied until the signature holds, so a forged
// token is refused without allocating. Then the identifier, the caveats
// and the location become strings in one allocation: the Token's strings
// are substrings of it, and nothing written to t points into m's bytes.
func (k *Keyring) authenticateView(t *Token, m *macaroonView) error {
	if len(m.caveats) != m.count {
		// Callers refuse more than MaxCaveats first; a caveat left out of
		// the signature chain must never go unnoticed all the same.
		return malformed("too many caveats")
	}
	// A view of bytes that go back to a pool: id must not outlive this
	// call unless rebased below, and the errors of ParseIdentifier and
	// keyFor never quote what they parse.
	view := unsafe.String(unsafe.SliceData(m.id), len(m.id))
	id, err := ParseIdentifier(view)
	if err != nil {
		return err
	}
	key, err := k.keyFor(&id)
	if err != nil {
		return err
	}
	if !chainValid(m.id, m.caveats, m.sig, key) {
		return ErrSignature
	}
	n := len(m.id) + len(m.location)
	for i := range m.caveats {
		n += len(m.caveats[i].id)
	}
	var text strings.Builder
	text.Grow(n)
	text.Write(m.id)
	for i := range m.caveats {
		text.Write(m.caveats[i].id)
	}
	text.Write(m.location)
	all := text.String()
	// A variable of its own: escape analysis does not tell one value of
	// a variable from another, and id's must stay on the stack.
	owned := id.rebased(view, all[:len(m.id)])
	cavs := t.Caveats[:0]
	switch n := len(m.caveats); {
	case n > cap(cavs):
		cavs = make([]Caveat, n)
	case n > 0:
		cavs = cavs[:n]
	}
	*t = Token{Location: all[len(all)-len(m.location):], ID: owned, Caveats: cavs}
	off := len(m.id)
	for i := range m.caveats {
		size := len(m.caveats[i].id)
		c, err := ParseCaveat(all[off : off+size])
		off += size
		if err != nil {
			return err
		}
		if c.Kind == CaveatTime {
			if exp := time.Unix(c.Expires, 0); t.Expires.IsZero() || exp.Before(t.Expires) {
				t.Expires = exp
			}
		}
		t.Caveats[i] = c
	}
	return nil
}

// CheckInvite checks t as a userJoinGroup invite presented by env.UserID
// for the user to join: CheckJoin with UserJoinGroup, joiner the user.
func (t *Token) CheckInvite(env *Env) error {
	return t.CheckJoin(UserJoinGroup, Entity{Type: EntityUser, ID: env.UserID}, env)
}

// CheckAccess checks t as an access token of a user (subject usr-<id>,
// type act or act:<session>) for the group-join operation.
func (t *Token) CheckAccess(env *Env) error {
	switch {
	case t.ID.Legacy:
		return &Error{Kind: KindWrongType, Detail: "legacy tokens are not supported"}
	case t.ID.Type.Kind != TypeAccess:
		return &Error{Kind: KindWrongType, Detail: "not an access token"}
	case t.ID.Subject.Kind != "usr":
		return &Error{Kind: KindWrongType, Detail: "access token does not belong to a user"}
	}
	for i := range t.Caveats {
		if err := t.Caveats[i].Check(PurposeAccess, env); err != nil {
			return err
		}
	}
	return nil
}

// Verifier bundles what a service needs to verify tokens: the keys, an
// optional geo database and its own service id.
type Verifier struct {
	Keys    *Keyring
	Geo     Geo
	Service string // default "ozw-onezone"
}

// DefaultService is the service id access tokens are checked against.
const DefaultService = "ozw-onezone"

// Env returns an Env for a request at now from ip by user.
func (v *Verifier) Env(now time.Time, ip string, user string) *Env {
	e := &Env{Now: now, UserID: user, Service: v.Service, Geo: v.Geo}
	if e.Service == "" {
		e.Service = DefaultService
	}
	if a, err := parseAddr(ip); err == nil {
		e.ClientIP = a
	}
	return e
}

// VerifyInvite authenticates s and checks it as a group invite.
func (v *Verifier) VerifyInvite(s string, env *Env) (*Token, error) {
	t, err := v.Keys.Authenticate(s)
	if err != nil {
		return nil, err
	}
	return t, t.CheckInvite(env)
}

// VerifyAccess authenticates s and checks it as a user's access token.
func (v *Verifier) VerifyAccess(s string, env *Env) (*Token, error) {
	t, err := v.Keys.Authenticate(s)
	if err != nil {
		return nil, err
	}
	return t, t.CheckAccess(env)
}
