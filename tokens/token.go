package tokens

import (
	"strings"
	"time"
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
func (k *Keyring) Authenticate(s string) (*Token, error) {
	m, err := Decode(s)
	if err != nil {
		return nil, err
	}
	if len(m.Caveats()) > MaxCaveats {
		// Refused before the signature chain, whose cost grows with
		// every caveat.
		return nil, malformed("too many caveats")
	}
	// The identifier and the caveats become strings in one allocation:
	// the parsed identifier and caveats are substrings of it.
	rawID := m.Id()
	cavs := m.Caveats()
	n := len(rawID)
	for _, mc := range cavs {
		n += len(mc.Id)
	}
	var text strings.Builder
	text.Grow(n)
	text.Write(rawID)
	for _, mc := range cavs {
		text.Write(mc.Id)
	}
	all := text.String()
	id, err := ParseIdentifier(all[:len(rawID)])
	if err != nil {
		return nil, err
	}
	key, err := k.keyFor(&id)
	if err != nil {
		return nil, err
	}
	if !chainValid(rawID, cavs, m.Signature(), key) {
		return nil, ErrSignature
	}
	t := &Token{Location: m.Location(), ID: id}
	if len(cavs) > 0 {
		t.Caveats = make([]Caveat, len(cavs))
	}
	off := len(rawID)
	for i, mc := range cavs {
		c, err := ParseCaveat(all[off : off+len(mc.Id)])
		off += len(mc.Id)
		if err != nil {
			return nil, err
		}
		if c.Kind == CaveatTime {
			if exp := time.Unix(c.Expires, 0); t.Expires.IsZero() || exp.Before(t.Expires) {
				t.Expires = exp
			}
		}
		t.Caveats[i] = c
	}
	return t, nil
}

// CheckInvite checks t as a user-join-group invite presented by
// env.UserID. Every caveat must hold; consumer caveats are checked last and
// fail with KindConsumer, because they need an otherwise valid invite.
func (t *Token) CheckInvite(env *Env) error {
	if !t.ID.IsGroupInvite() {
		return &Error{Kind: KindWrongType, Detail: "not a group invite"}
	}
	consumers := false
	for i := range t.Caveats {
		c := &t.Caveats[i]
		if c.Kind == CaveatConsumer {
			consumers = true
			continue
		}
		if err := c.Check(PurposeInvite, env); err != nil {
			return err
		}
	}
	if consumers {
		for i := range t.Caveats {
			if c := &t.Caveats[i]; c.Kind == CaveatConsumer {
				if err := c.Check(PurposeInvite, env); err != nil {
					return err
				}
			}
		}
	}
	return nil
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
