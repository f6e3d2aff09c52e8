package groupjoin

import (
	"unsafe"

	"github.com/caddy-groupjoin/caddy-groupjoin/tokens"
)

// issuerOf is s.String(), the value of X-Invite-Issuer and of
// {http.group_join.issuer}, written into the request's state instead of a
// new string: one allocation less on every forwarded join, cached invite
// or not. The state belongs to this request only and is never reused, so
// the string stays valid for as long as anything holds it; an id too long
// for the room is written to a new array by append.
func (st *requestState) issuerOf(s tokens.Subject) string {
	if s.Kind == "nobody" {
		return s.String()
	}
	b := append(st.issuer[:0], s.Kind...)
	b = append(b, '-')
	b = append(b, s.ID...)
	return unsafe.String(unsafe.SliceData(b), len(b))
}
