package groupjoin

import (
	"bytes"
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
	upstream [5]string // X-User-Id, X-Group-Id, X-Invite-Token-Id, X-Invite-Issuer, Content-Type
	created  [2]string // Location, Content-Length of the 201
	issuer   [64]byte  // room for X-Invite-Issuer's value (statestrings.go)
	location [64]byte  // room for the Location of the 201 (statestrings.go)
}

// bodyReader forwards the body as read; closing it does nothing.
type bodyReader struct{ bytes.Reader }

func (*bodyReader) Close() error { return nil }

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

// geoMemo is a tokens.Geo that asks the real one at most once per address
// and kind of lookup; errors are remembered too (lookups are deterministic
// for a given database).
type geoMemo struct {
	geo tokens.Geo

	countryIP  netip.Addr
	country    string
	countryErr error

	asnIP  netip.Addr
	asn    uint32
	asnErr error
}

func (m *geoMemo) Country(ip netip.Addr) (string, error) {
	if !m.countryIP.IsValid() || m.countryIP != ip {
		m.country, m.countryErr = m.geo.Country(ip)
		m.countryIP = ip
	}
	return m.country, m.countryErr
}

func (m *geoMemo) ASN(ip netip.Addr) (uint32, error) {
	if !m.asnIP.IsValid() || m.asnIP != ip {
		m.asn, m.asnErr = m.geo.ASN(ip)
		m.asnIP = ip
	}
	return m.asn, m.asnErr
}
