package groupjoin

import (
	"net/netip"
	"time"

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
	upstream [9]string // Content-Type, then prepareUpstream's X-* headers
	created  [2]string // Location, Content-Length of the 201
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
