package groupjoin

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/netip"
	"os"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-groupjoin/caddy-groupjoin/tokens"
)

type geoHandle struct{ *tokens.GeoDB }

func (g geoHandle) Destruct() error { return g.Close() }

func loadGeo(countryPath, asnPath string) (tokens.Geo, string, error) {
	key := countryPath + "\x00" + asnPath + "\x00" + fileVersion(countryPath) + "\x00" + fileVersion(asnPath)
	v, _, err := geoPool.LoadOrNew(key, func() (caddy.Destructor, error) {
		db, err := tokens.OpenGeoDB(countryPath, asnPath)
		if err != nil {
			return nil, err
		}
		return geoHandle{db}, nil
	})
	if err != nil {
		return nil, "", err
	}
	return v.(geoHandle).GeoDB, key, nil
}

// fileVersion names the content of a file by its SHA-256. Size, mtime or
// even inode and ctime do not: a file rewritten in place within one clock
// tick, or replaced by one of the same size, keeps them, and the stale
// database would stay in use. Reading the file once per provision costs
// little next to opening it. A file that cannot be read gets no version:
// opening it reports why.
func fileVersion(path string) string {
	if path == "" {
		return ""
	}
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sum := sha256.New()
	if _, err := io.Copy(sum, f); err != nil {
		return ""
	}
	return hex.EncodeToString(sum.Sum(nil))
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
