package groupjoin

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddy-groupjoin/caddy-groupjoin/internal/mmdbtest"
	"github.com/caddy-groupjoin/caddy-groupjoin/internal/testcaddy"
)

// startGeoSite runs group_join with country and ASN databases behind a
// trusted proxy range that includes the test client (127.0.0.1), so the
// client address the caveats see is the one in X-Forwarded-For.
func startGeoSite(t *testing.T) *site {
	t.Helper()
	testcaddy.SkipShort(t)
	dir := t.TempDir()
	country, err := mmdbtest.WriteCountryDB(dir, map[string]string{
		"127.0.0.1":       "PL",
		"203.0.113.0/24":  "FR",
		"198.51.100.0/24": "US",
		"192.0.2.0/24":    "CH", // Europe, not EU
		"2001:db8::/32":   "JP",
	})
	if err != nil {
		t.Fatal(err)
	}
	asn, err := mmdbtest.WriteASNDB(dir, map[string]uint32{
		"127.0.0.1":       64500,
		"203.0.113.0/24":  64501,
		"198.51.100.0/24": 64502,
		"192.0.2.0/24":    64503,
	})
	if err != nil {
		t.Fatal(err)
	}
	b := newBackend(t)
	port := testcaddy.FreePort(t)
	testcaddy.LoadCaddyfile(t, testGlobals(port, "off", `	servers {
		trusted_proxies static 127.0.0.0/8
	}
`)+fmt.Sprintf(`:%[1]d {
	group_join /user/groups/join {
		key %[3]s
		geoip_db %[4]s
		asn_db %[5]s
	}
	reverse_proxy /user/groups/join %[2]s
}
`, port, b.addr(), testSecret, country, asn))
	return &site{t: t, url: fmt.Sprintf("http://127.0.0.1:%d", port), port: port, backend: b,
		client: testcaddy.Client(10 * time.Second)}
}

// Client addresses, as the trusted proxy reports them.
const (
	fromFR       = "203.0.113.9"
	fromUS       = "198.51.100.7"
	fromCH       = "192.0.2.5"
	fromJP       = "2001:db8::7"
	fromNowhere  = "100.64.0.9" // in neither database
	fromLoopback = ""           // no X-Forwarded-For: 127.0.0.1 (PL, AS64500)
)

func TestGeoCaveats(t *testing.T) {
	s := startGeoSite(t)
	user := access(t, "alice")
	cases := []struct {
		name    string
		caveats []string
		from    string
		status  int
	}{
		{"country of the fromLoopback peer", []string{"geo.country = PL"}, fromLoopback, 201},
		{"country of the forwarded client", []string{"geo.country = FR"}, fromFR, 201},
		{"forwarded client, not the proxy, is checked", []string{"geo.country = PL"}, fromFR, 400},
		{"country not in the list", []string{"geo.country = FR|DE"}, fromUS, 400},
		{"country list", []string{"geo.country = DE|US"}, fromUS, 201},
		{"country != other", []string{"geo.country != FR"}, fromUS, 201},
		{"country != own", []string{"geo.country != FR|US"}, fromUS, 400},
		{"region EU", []string{"geo.region = EU"}, fromFR, 201},
		{"Switzerland is not EU", []string{"geo.region = EU"}, fromCH, 400},
		{"Switzerland is Europe", []string{"geo.region = Europe"}, fromCH, 201},
		{"region NorthAmerica", []string{"geo.region = NorthAmerica"}, fromUS, 201},
		{"France is not NorthAmerica", []string{"geo.region = NorthAmerica"}, fromFR, 400},
		{"region list", []string{"geo.region = Asia|NorthAmerica"}, fromJP, 201},
		{"region != EU outside the EU", []string{"geo.region != EU"}, fromUS, 201},
		{"region != Europe inside Europe", []string{"geo.region != Europe"}, fromCH, 400},
		{"asn", []string{"asn = 64501"}, fromFR, 201},
		{"asn list", []string{"asn = 64500|64502"}, fromUS, 201},
		{"asn of the fromLoopback peer", []string{"asn = 64500"}, fromLoopback, 201},
		{"asn not in the list", []string{"asn = 64500"}, fromFR, 400},
		{"all at once", []string{"geo.country = FR", "geo.region = EU", "asn = 64501", "ip = 203.0.113.0/24"}, fromFR, 201},
		{"one unmet among several", []string{"geo.country = FR", "asn = 64502"}, fromFR, 400},
		{"unknown address fails geo.country =", []string{"geo.country = FR"}, fromNowhere, 400},
		{"unknown address fails geo.country != (fail closed)", []string{"geo.country != FR"}, fromNowhere, 400},
		{"unknown address fails geo.region != (fail closed)", []string{"geo.region != EU"}, fromNowhere, 400},
		{"unknown address fails asn", []string{"asn = 64500"}, fromNowhere, 400},
		{"IPv6 client with no ASN entry fails asn", []string{"asn = 64500"}, fromJP, 400},
	}
	joined := 0
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			headers := []string{"X-Auth-Token", user}
			if c.from != fromLoopback {
				headers = append(headers, "X-Forwarded-For", c.from)
			}
			resp := s.join(joinBody(invite(t, "g1", c.caveats...)), headers...)
			if c.status == 201 {
				joined++
				if resp.StatusCode != 201 {
					t.Fatalf("status %d: %s", resp.StatusCode, bodyOf(resp))
				}
				return
			}
			expectError(t, resp, 400, "invalid_token")
			if !strings.Contains(bodyOf(resp), genericInviteDesc) {
				t.Errorf("description: %s", bodyOf(resp))
			}
		})
	}
	if n := len(s.backend.requests()); n != joined {
		t.Fatalf("backend saw %d requests, %d were admitted", n, joined)
	}
}

func TestGeoCaveatsOnAccessTokens(t *testing.T) {
	s := startGeoSite(t)
	inv := joinBody(invite(t, "g1"))
	cases := []struct {
		name    string
		caveats []string
		from    string
		status  int
	}{
		{"country met", []string{"geo.country = FR"}, fromFR, 201},
		{"country unmet", []string{"geo.country = FR"}, fromUS, 401},
		{"country != met", []string{"geo.country != FR"}, fromCH, 201},
		{"region EU met", []string{"geo.region = EU"}, fromFR, 201},
		{"region EU unmet", []string{"geo.region = EU"}, fromCH, 401},
		{"region NorthAmerica met", []string{"geo.region = NorthAmerica"}, fromUS, 201},
		{"asn met", []string{"asn = 64503"}, fromCH, 201},
		{"asn unmet", []string{"asn = 64503"}, fromUS, 401},
		{"unknown address fails closed", []string{"geo.country != FR"}, fromNowhere, 401},
		{"unknown address fails asn", []string{"asn = 64500"}, fromNowhere, 401},
	}
	joined := 0
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp := s.join(inv, "X-Auth-Token", access(t, "alice", c.caveats...), "X-Forwarded-For", c.from)
			if c.status == 201 {
				joined++
				if resp.StatusCode != 201 {
					t.Fatalf("status %d: %s", resp.StatusCode, bodyOf(resp))
				}
				return
			}
			expectError(t, resp, 401, "invalid_token")
			if got := resp.Header.Get("WWW-Authenticate"); got != `Bearer error="invalid_token"` {
				t.Errorf("WWW-Authenticate %q", got)
			}
		})
	}
	if n := len(s.backend.requests()); n != joined {
		t.Fatalf("backend saw %d requests, %d were admitted", n, joined)
	}
}

// replaceGeoDBs writes country and ASN databases mapping 127.0.0.1 to code
// and as, and renames them over country and asn, as geoipupdate does. When
// the files already exist, the new ones are given the old ones' size
// (checked) and modification time (forced), so that nothing but their
// content tells the versions apart.
func replaceGeoDBs(t *testing.T, dir, country, asn, code string, as uint32) {
	t.Helper()
	c, err := mmdbtest.WriteCountryDB(dir, map[string]string{"127.0.0.1": code})
	if err != nil {
		t.Fatal(err)
	}
	a, err := mmdbtest.WriteASNDB(dir, map[string]uint32{"127.0.0.1": as})
	if err != nil {
		t.Fatal(err)
	}
	for next, old := range map[string]string{c: country, a: asn} {
		if fi, err := os.Stat(old); err == nil {
			ni, err := os.Stat(next)
			if err != nil {
				t.Fatal(err)
			}
			if ni.Size() != fi.Size() {
				t.Fatalf("replacement of %s has size %d, want the old %d", old, ni.Size(), fi.Size())
			}
			if err := os.Chtimes(next, fi.ModTime(), fi.ModTime()); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Rename(next, old); err != nil {
			t.Fatal(err)
		}
	}
}

// TestFileVersionTellsContentApart rewrites a file in place with other
// bytes of the same size and the same modification time: its version must
// change, and come back with the old content.
func TestFileVersionTellsContentApart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db.mmdb")
	mtime := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	write := func(content string) string {
		t.Helper()
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		return fileVersion(path)
	}
	v1, v2, v1again := write("version-one"), write("version-two"), write("version-one")
	if v1 == "" || v2 == "" {
		t.Fatalf("no version for a readable file: %q %q", v1, v2)
	}
	if v1 == v2 {
		t.Errorf("same size and mtime, different content: both versions %q", v1)
	}
	if v1 != v1again {
		t.Errorf("same content: versions %q and %q", v1, v1again)
	}
	if v := fileVersion(filepath.Join(t.TempDir(), "missing.mmdb")); v != "" {
		t.Errorf("missing file: version %q, want none", v)
	}
	if v := fileVersion(""); v != "" {
		t.Errorf("no path: version %q, want none", v)
	}
}

// TestLoadGeoReopensReplacedDatabase loads the databases, replaces them
// with same-size, same-mtime files holding other data, and loads again:
// the second load must answer from the new data, while the first handle
// keeps answering from what it opened.
func TestLoadGeoReopensReplacedDatabase(t *testing.T) {
	dir := t.TempDir()
	country, asn := filepath.Join(dir, "country.mmdb"), filepath.Join(dir, "asn.mmdb")
	replaceGeoDBs(t, dir, country, asn, "PL", 64500)
	ip := netip.MustParseAddr("127.0.0.1")
	load := func(wantCountry string, wantASN uint32) string {
		t.Helper()
		geo, key, err := loadGeo(country, asn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _, _ = geoPool.Delete(key) })
		if c, err := geo.Country(ip); err != nil || c != wantCountry {
			t.Errorf("Country = %q, %v; want %q", c, err, wantCountry)
		}
		if a, err := geo.ASN(ip); err != nil || a != wantASN {
			t.Errorf("ASN = %d, %v; want %d", a, err, wantASN)
		}
		return key
	}
	k1 := load("PL", 64500)
	if k := load("PL", 64500); k != k1 {
		t.Errorf("unchanged files: pool key changed from %q to %q", k1, k)
	}
	replaceGeoDBs(t, dir, country, asn, "FR", 64501)
	if k := load("FR", 64501); k == k1 {
		t.Errorf("replaced files: pool key %q unchanged", k)
	}
}

// TestGeoDatabaseUpdatedOnReload replaces the mmdb files the way
// geoipupdate does (a new file renamed over the old one, here with the
// same size and modification time) and reloads the same config: the new
// data must be used.
func TestGeoDatabaseUpdatedOnReload(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Caddy; TestLoadGeoReopensReplacedDatabase covers the reload's part")
	}
	dir := t.TempDir()
	country := filepath.Join(dir, "country.mmdb")
	asn := filepath.Join(dir, "asn.mmdb")
	replaceGeoDBs(t, dir, country, asn, "PL", 64500)
	b := newBackend(t)
	port := testcaddy.FreePort(t)
	cfg := testcaddy.Adapt(t, testGlobals(port, "off")+fmt.Sprintf(`:%[1]d {
	group_join /user/groups/join {
		key %[3]s
		geoip_db %[4]s
		asn_db %[5]s
	}
	reverse_proxy /user/groups/join %[2]s
}
`, port, b.addr(), testSecret, country, asn))
	testcaddy.Load(t, cfg)
	s := &site{t: t, url: fmt.Sprintf("http://127.0.0.1:%d", port), port: port, backend: b,
		client: testcaddy.Client(10 * time.Second)}
	user := []string{"X-Auth-Token", access(t, "alice")}
	status := func(caveat string) int {
		return s.join(joinBody(invite(t, "g1", caveat)), user...).StatusCode
	}
	if st, st2 := status("geo.country = PL"), status("asn = 64500"); st != 201 || st2 != 201 {
		t.Fatalf("before the update: %d %d", st, st2)
	}

	replaceGeoDBs(t, dir, country, asn, "FR", 64501)
	s.reload(t, cfg)
	for caveat, want := range map[string]int{"geo.country = FR": 201, "geo.country = PL": 400, "asn = 64501": 201, "asn = 64500": 400} {
		if got := status(caveat); got != want {
			t.Errorf("after the update and a reload, %q: status %d, want %d", caveat, got, want)
		}
	}
}
