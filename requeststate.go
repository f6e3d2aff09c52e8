package groupjoin

import (
	"net/netip"
	"time"
	"unsafe"

	"github.com/caddy-groupjoin/caddy-groupjoin/tokens"
)

// requestEnv is what the caveats of one request are checked against. Its
// Geo remembers the lookups of the client's address, so that a request
// whose tokens carry both geo.country and geo.region caveats (or geo
// caveats on both the access token and the invite) looks the country up
// once. It lives as long as the request and is used by its goroutine only.
type requestEnv struct {
	tokens.Env
	memo geoMemo
}

// requestState is what one request needs beyond its body, in one
// allocation rather than one per piece: its Env, the reader that forwards
// the body, and the backing arrays of the headers the handler sets.
type requestState struct {
	requestEnv
	body     bodyReader
	upstream [5]string // X-User-Id, X-Group-Id, X-Invite-Token-Id, X-Invite-Issuer, Content-Type
	created  [2]string // Location, Content-Length of the 201
	issuer   [64]byte  // room for X-Invite-Issuer's value (issuerOf)
	location [64]byte  // room for the Location of the 201 (locationOf)
}

// newRequest returns the state of a request at now from ip; its Env is
// what Verifier.Env returns (TestRequestEnv holds them equal), the caller
// is set once known.
func (h *Handler) newRequest(now time.Time, ip string) *requestState {
	st := &requestState{requestEnv: requestEnv{Env: tokens.Env{Now: now, Service: h.verifier.Service, Geo: h.verifier.Geo}}}
	e := &st.requestEnv
	if e.Service == "" {
		e.Service = tokens.DefaultService
	}
	if a, err := netip.ParseAddr(ip); err == nil {
		e.ClientIP = a
	}
	if e.Geo != nil {
		e.memo.geo, e.Geo = e.Geo, &e.memo
	}
	return st
}

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
