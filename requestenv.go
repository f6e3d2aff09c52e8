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

// env returns the Env of a request at now from ip (the caller is set once
// known): what Verifier.Env returns (TestRequestEnv holds them equal), in
// one allocation with the memo.
func (h *Handler) env(now time.Time, ip string) *tokens.Env {
	e := &requestEnv{Env: tokens.Env{Now: now, Service: h.verifier.Service, Geo: h.verifier.Geo}}
	if e.Service == "" {
		e.Service = tokens.DefaultService
	}
	if a, err := netip.ParseAddr(ip); err == nil {
		e.ClientIP = a
	}
	if e.Geo != nil {
		e.memo.geo, e.Geo = e.Geo, &e.memo
	}
	return &e.Env
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
