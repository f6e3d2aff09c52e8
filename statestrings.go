package groupjoin

import (
	"unsafe"

	"github.com/caddy-groupjoin/caddy-groupjoin/tokens"
)

// Strings of a forwarded join written into the request's state instead of
// new strings: one allocation less each on every forwarded join, cached
// invite or not. The state belongs to one request and is never reused, so
// such a string stays valid for as long as anything holds it; one too
// long for its room is written to a new array by append.

// issuerOf is s.String(), the value of X-Invite-Issuer and of
// {http.group_join.issuer}.
func (st *requestState) issuerOf(s tokens.Subject) string {
	if s.Kind == "nobody" {
		return s.String()
	}
	b := append(st.issuer[:0], s.Kind...)
	b = append(b, '-')
	b = append(b, s.ID...)
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// locationOf is prefix + group, the Location of a 201.
func (st *requestState) locationOf(prefix, group string) string {
	b := append(st.location[:0], prefix...)
	b = append(b, group...)
	return unsafe.String(unsafe.SliceData(b), len(b))
}
