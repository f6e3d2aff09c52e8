package tokens

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/caddy-groupjoin/caddy-groupjoin/internal/mmdbtest"
)

func geoTestDBs(t testing.TB) (countryPath, asnPath string) {
	t.Helper()
	dir := t.TempDir()
	countryPath, err := mmdbtest.WriteCountryDB(dir, map[string]string{
		"192.0.2.0/24":    "PL",
		"198.51.100.0/24": "US",
		"198.51.100.7/32": "JP", // more specific wins
		"10.0.0.0/8":      "NO",
		"127.0.0.1":       "FR",
		"2001:db8::/32":   "DE",
		"2001:db8:1::/48": "BR",
	})
	if err != nil {
		t.Fatal(err)
	}
	asnPath, err = mmdbtest.WriteASNDB(dir, map[string]uint32{
		"192.0.2.0/24":   64500,
		"192.168.0.0/16": 4200000000, // 32-bit ASN
		"2001:db8::/32":  64501,
	})
	if err != nil {
		t.Fatal(err)
	}
	return countryPath, asnPath
}

func openTestGeo(t testing.TB) *GeoDB {
	t.Helper()
	c, a := geoTestDBs(t)
	g, err := OpenGeoDB(c, a)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

func TestGeoCountry(t *testing.T) {
	g := openTestGeo(t)
	for _, tc := range []struct{ ip, want string }{
		{"192.0.2.1", "PL"},
		{"192.0.2.255", "PL"},
		{"::ffff:192.0.2.9", "PL"}, // IPv4-mapped IPv6
		{"198.51.100.1", "US"},
		{"198.51.100.7", "JP"},
		{"10.20.30.40", "NO"},
		{"127.0.0.1", "FR"},
		{"2001:db8::1", "DE"},
		{"2001:db8:ffff::1", "DE"},
		{"2001:db8:1::42", "BR"},
		{"fe80::1%eth0", ""}, // zone ignored; not in db
	} {
		got, err := g.Country(netip.MustParseAddr(tc.ip))
		if tc.want == "" {
			if err == nil {
				t.Errorf("Country(%s) = %q, want error", tc.ip, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Country(%s) = %q, %v; want %q", tc.ip, got, err, tc.want)
		}
	}
}

func TestGeoCountryNotFound(t *testing.T) {
	g := openTestGeo(t)
	for _, ip := range []string{"203.0.113.1", "8.8.8.8", "2001:db9::1", "::1"} {
		got, err := g.Country(netip.MustParseAddr(ip))
		if err == nil || got != "" {
			t.Errorf("Country(%s) = %q, %v; want not-found error", ip, got, err)
		} else if errors.Is(err, ErrNoGeoDatabase) {
			t.Errorf("Country(%s): not found must not read as a missing database: %v", ip, err)
		} else if !strings.Contains(err.Error(), "not found") {
			t.Errorf("Country(%s) error = %q, want it to say not found", ip, err)
		}
	}
	if _, err := g.Country(netip.Addr{}); err == nil {
		t.Error("Country(invalid addr) succeeded")
	}
}

// A record with registered_country but no country (MaxMind does this for
// e.g. some anycast networks), a City-shaped database, and junk codes.
func TestGeoCountryRecordShapes(t *testing.T) {
	dir := t.TempDir()
	path, err := mmdbtest.WriteDB(dir, "GeoLite2-City", map[string]map[string]any{
		"192.0.2.0/25": {
			"registered_country": map[string]any{"iso_code": "SE", "names": map[string]any{"en": "Sweden"}},
		},
		"192.0.2.128/25": {
			"city":               map[string]any{"names": map[string]any{"en": "Kraków", "de": "Krakau"}},
			"continent":          map[string]any{"code": "EU"},
			"country":            map[string]any{"iso_code": "PL", "is_in_european_union": true},
			"registered_country": map[string]any{"iso_code": "DE"},
			"location":           map[string]any{"latitude": 50.06, "longitude": 19.94},
			"subdivisions":       []any{map[string]any{"iso_code": "12"}},
		},
		"198.51.100.0/26":  {"country": map[string]any{"iso_code": "ch"}}, // lower case in db
		"198.51.100.64/26": {"country": map[string]any{"iso_code": "XYZ"}},
		"198.51.100.128/26": {
			"continent": map[string]any{"code": "EU"}, // neither country nor registered_country
		},
		"198.51.100.192/26": {"country": map[string]any{"iso_code": 7}}, // wrong type
	})
	if err != nil {
		t.Fatal(err)
	}
	g, err := OpenGeoDB(path, "")
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	for _, tc := range []struct{ ip, want string }{
		{"192.0.2.1", "SE"},
		{"192.0.2.200", "PL"},
		{"198.51.100.1", "CH"},
		{"198.51.100.65", ""},
		{"198.51.100.129", ""},
		{"198.51.100.193", ""},
	} {
		got, err := g.Country(netip.MustParseAddr(tc.ip))
		if tc.want == "" {
			if err == nil {
				t.Errorf("Country(%s) = %q, want error", tc.ip, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Country(%s) = %q, %v; want %q", tc.ip, got, err, tc.want)
		}
	}
}

func TestGeoASN(t *testing.T) {
	g := openTestGeo(t)
	for _, tc := range []struct {
		ip   string
		want uint32
	}{
		{"192.0.2.77", 64500},
		{"::ffff:192.0.2.77", 64500},
		{"192.168.1.1", 4200000000},
		{"2001:db8:abcd::1", 64501},
		{"203.0.113.1", 0},
		{"2001:db9::1", 0},
	} {
		got, err := g.ASN(netip.MustParseAddr(tc.ip))
		if tc.want == 0 {
			if err == nil || errors.Is(err, ErrNoGeoDatabase) {
				t.Errorf("ASN(%s) = %d, %v; want not-found error", tc.ip, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ASN(%s) = %d, %v; want %d", tc.ip, got, err, tc.want)
		}
	}
}

func TestGeoMissingDatabase(t *testing.T) {
	c, a := geoTestDBs(t)
	ip := netip.MustParseAddr("192.0.2.1")

	onlyASN, err := OpenGeoDB("", a)
	if err != nil {
		t.Fatal(err)
	}
	defer onlyASN.Close()
	_, err = onlyASN.Country(ip)
	if !errors.Is(err, ErrNoGeoDatabase) || !strings.Contains(err.Error(), "country") {
		t.Errorf("Country without country db: %v", err)
	}
	if n, err := onlyASN.ASN(ip); err != nil || n != 64500 {
		t.Errorf("ASN with only ASN db = %d, %v", n, err)
	}

	onlyCountry, err := OpenGeoDB(c, "")
	if err != nil {
		t.Fatal(err)
	}
	defer onlyCountry.Close()
	_, err = onlyCountry.ASN(ip)
	if !errors.Is(err, ErrNoGeoDatabase) || !strings.Contains(err.Error(), "ASN") {
		t.Errorf("ASN without ASN db: %v", err)
	}
	if cc, err := onlyCountry.Country(ip); err != nil || cc != "PL" {
		t.Errorf("Country with only country db = %q, %v", cc, err)
	}

	none, err := OpenGeoDB("", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := none.Country(ip); !errors.Is(err, ErrNoGeoDatabase) {
		t.Errorf("Country on empty GeoDB: %v", err)
	}
	var nilDB *GeoDB
	var geo Geo = nilDB
	if _, err := geo.Country(ip); !errors.Is(err, ErrNoGeoDatabase) {
		t.Errorf("Country on nil *GeoDB: %v", err)
	}
	if _, err := geo.ASN(ip); !errors.Is(err, ErrNoGeoDatabase) {
		t.Errorf("ASN on nil *GeoDB: %v", err)
	}
	if err := nilDB.Close(); err != nil {
		t.Errorf("Close on nil *GeoDB: %v", err)
	}
	t.Logf("messages: %q / %q", errMsg(onlyASN.Country(ip)), errMsg2(onlyCountry.ASN(ip)))
}

func errMsg(_ string, err error) string  { return err.Error() }
func errMsg2(_ uint32, err error) string { return err.Error() }

func TestOpenGeoDBErrors(t *testing.T) {
	c, a := geoTestDBs(t)
	dir := t.TempDir()
	missing := filepath.Join(dir, "nope.mmdb")
	junk := filepath.Join(dir, "junk.mmdb")
	if err := os.WriteFile(junk, []byte(strings.Repeat("this is not an mmdb file\n", 100)), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.mmdb")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	other, err := mmdbtest.WriteDB(dir, "GeoIP2-Anonymous-IP", map[string]map[string]any{
		"192.0.2.0/24": {"is_anonymous": true},
	})
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, country, asn string
		want               []string // substrings of the error
	}{
		{"missing country", missing, "", []string{"country database", missing, "no such file"}},
		{"missing asn", "", missing, []string{"ASN database", missing, "no such file"}},
		{"junk country", junk, "", []string{"country database", junk, "not a valid MaxMind DB"}},
		{"empty asn", c, empty, []string{"ASN database", empty, "not a valid MaxMind DB", "empty"}},
		{"asn as country", a, "", []string{"country database", a, `"GeoLite2-ASN"`, "not a GeoIP2/GeoLite2 Country or City"}},
		{"country as asn", "", c, []string{"ASN database", c, `"GeoIP2-Country"`, "not a GeoLite2-ASN"}},
		{"swapped", a, c, []string{"country database", `"GeoLite2-ASN"`}},
		{"other type", other, "", []string{"country database", `"GeoIP2-Anonymous-IP"`}},
		{"directory", dir, "", []string{"country database", dir}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, err := OpenGeoDB(tc.country, tc.asn)
			if err == nil {
				g.Close()
				t.Fatal("OpenGeoDB succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if errors.Is(err, ErrNoGeoDatabase) {
				t.Errorf("open error %q must not read as 'not configured'", err)
			}
			t.Logf("%s", err)
		})
	}
	if err, want := errOf(OpenGeoDB(missing, "")), missing; strings.Count(err, want) != 1 {
		t.Errorf("path should appear once in %q", err)
	}
}

func errOf(_ *GeoDB, err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestGeoClose(t *testing.T) {
	g := openTestGeo(t)
	ip := netip.MustParseAddr("192.0.2.1")
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := g.Country(ip); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Country after Close: %v", err)
	}
	if _, err := g.ASN(ip); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("ASN after Close: %v", err)
	}
}

// Run with -race: lookups from many goroutines, then Close while lookups are
// still running.
func TestGeoConcurrent(t *testing.T) {
	g := openTestGeo(t)
	ips := []struct {
		ip      netip.Addr
		country string
		asn     uint32
	}{
		{netip.MustParseAddr("192.0.2.1"), "PL", 64500},
		{netip.MustParseAddr("2001:db8::5"), "DE", 64501},
		{netip.MustParseAddr("198.51.100.7"), "JP", 0},
		{netip.MustParseAddr("10.1.2.3"), "NO", 0},
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	closed := make(chan struct{})
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for i := 0; ; i++ {
				tc := ips[(i+w)%len(ips)]
				cc, cerr := g.Country(tc.ip)
				n, aerr := g.ASN(tc.ip)
				select {
				case <-closed:
					// Either answer is fine after Close; it must just not crash.
					if i > 2000 {
						return
					}
					continue
				default:
				}
				if cerr != nil || cc != tc.country {
					t.Errorf("Country(%s) = %q, %v", tc.ip, cc, cerr)
					return
				}
				if tc.asn != 0 && (aerr != nil || n != tc.asn) {
					t.Errorf("ASN(%s) = %d, %v", tc.ip, n, aerr)
					return
				}
				if tc.asn == 0 && aerr == nil {
					t.Errorf("ASN(%s) = %d, want not found", tc.ip, n)
					return
				}
			}
		}()
	}
	close(start)
	for range 2000 {
		_ = InRegion("PL", "EU")
		_ = Regions("DE")
	}
	close(closed)
	g.Close()
	wg.Wait()
}

func TestRegions(t *testing.T) {
	for _, tc := range []struct {
		country string
		want    []string
	}{
		{"PL", []string{"Europe", "EU"}},
		{"pl", []string{"Europe", "EU"}},
		{"NO", []string{"Europe"}},
		{"CH", []string{"Europe"}},
		{"GB", []string{"Europe"}},
		{"CY", []string{"Europe", "EU"}},
		{"RU", []string{"Europe"}},
		{"TR", []string{"Asia"}},
		{"US", []string{"NorthAmerica"}},
		{"MX", []string{"NorthAmerica"}},
		{"PA", []string{"NorthAmerica"}},
		{"BR", []string{"SouthAmerica"}},
		{"GF", []string{"SouthAmerica"}},
		{"JP", []string{"Asia"}},
		{"EG", []string{"Africa"}},
		{"ZA", []string{"Africa"}},
		{"AU", []string{"Oceania"}},
		{"AQ", []string{"Antarctica"}},
		{"XK", []string{"Europe"}},
		{"ZZ", nil},
		{"EU", nil},
		{"", nil},
		{"P", nil},
		{"POL", nil},
	} {
		got := Regions(tc.country)
		if !slices.Equal(got, tc.want) {
			t.Errorf("Regions(%q) = %q, want %q", tc.country, got, tc.want)
		}
	}
	// The result is the caller's: changing it changes nothing else.
	r := Regions("PL")
	r[0] = "Asia"
	if got := Regions("PL"); got[0] != "Europe" || !InRegion("PL", "Europe") {
		t.Errorf("Regions shares its result: %q", got)
	}
}

func TestRegionTable(t *testing.T) {
	names := []string{"Africa", "Antarctica", "Asia", "Europe", "NorthAmerica", "Oceania", "SouthAmerica"}
	if len(countryPlaces) != 250 { // 249 ISO 3166-1 codes + XK
		t.Errorf("table has %d countries, want 250", len(countryPlaces))
	}
	eu := []string{"AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE",
		"IT", "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE"}
	members := 0
	for code := range countryPlaces {
		if len(code) != 2 || strings.ToUpper(code) != code {
			t.Errorf("bad code %q", code)
		}
		r := Regions(code)
		if len(r) == 0 || !slices.Contains(names, r[0]) {
			t.Errorf("Regions(%s) = %q", code, r)
		}
		if InRegion(code, "EU") {
			members++
			if !slices.Contains(eu, code) {
				t.Errorf("%s flagged EU", code)
			}
			if r[0] != "Europe" {
				t.Errorf("EU member %s not in Europe", code)
			}
		}
		// Exactly one continent.
		n := 0
		for _, name := range names {
			if InRegion(code, name) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s is in %d continents", code, n)
		}
	}
	if members != 27 {
		t.Errorf("%d EU members, want 27", members)
	}
}

func TestInRegion(t *testing.T) {
	for _, tc := range []struct {
		country, region string
		want            bool
	}{
		{"PL", "Europe", true},
		{"PL", "EU", true},
		{"pl", "EU", true},
		{"NO", "Europe", true},
		{"NO", "EU", false},
		{"US", "NorthAmerica", true},
		{"US", "Europe", false},
		{"JP", "Asia", true},
		{"NZ", "Oceania", true},
		{"AR", "SouthAmerica", true},
		{"NG", "Africa", true},
		{"AQ", "Antarctica", true},
		// Region names are exact and case-sensitive, as Onedata writes them.
		{"PL", "europe", false},
		{"PL", "eu", false},
		{"US", "North America", false},
		{"US", "northamerica", false},
		{"PL", "", false},
		{"ZZ", "Europe", false},
		{"", "Europe", false},
	} {
		if got := InRegion(tc.country, tc.region); got != tc.want {
			t.Errorf("InRegion(%q, %q) = %v, want %v", tc.country, tc.region, got, tc.want)
		}
	}
}

func TestGeoLookupAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip()
	}
	g := openTestGeo(t)
	ip := netip.MustParseAddr("192.0.2.1")
	g.Country(ip) // warm the string cache
	// (Under -race, sync.Pool drops some items on purpose; AllocsPerRun's
	// integer average still rounds those rare allocations down to 0.)
	if n := testing.AllocsPerRun(200, func() { g.Country(ip) }); n != 0 {
		t.Errorf("Country allocates %v times per lookup", n)
	}
	if n := testing.AllocsPerRun(200, func() { g.ASN(ip) }); n != 0 {
		t.Errorf("ASN allocates %v times per lookup", n)
	}
	if n := testing.AllocsPerRun(200, func() { InRegion("pl", "EU") }); n != 0 {
		t.Errorf("InRegion allocates %v times", n)
	}
}

func BenchmarkGeoCountry(b *testing.B) {
	g := openTestGeo(b)
	ip := netip.MustParseAddr("192.0.2.1")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := g.Country(ip); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGeoCountryParallel(b *testing.B) {
	g := openTestGeo(b)
	ip := netip.MustParseAddr("2001:db8::1")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := g.Country(ip); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkGeoASN(b *testing.B) {
	g := openTestGeo(b)
	ip := netip.MustParseAddr("192.0.2.1")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := g.ASN(ip); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkInRegion(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if !InRegion("PL", "EU") {
			b.Fatal("PL not in EU")
		}
	}
}

// A record shaped like a real GeoLite2-City one (names in 8 languages,
// subdivisions, location, …): measures the cost of skipping what Country
// does not need.
func BenchmarkGeoCountryCityRecord(b *testing.B) {
	names := func(s string) map[string]any {
		m := map[string]any{}
		for _, l := range []string{"de", "en", "es", "fr", "ja", "pt-BR", "ru", "zh-CN"} {
			m[l] = s + " (" + l + ")"
		}
		return m
	}
	path, err := mmdbtest.WriteDB(b.TempDir(), "GeoLite2-City", map[string]map[string]any{
		"192.0.2.0/24": {
			"city":               map[string]any{"geoname_id": uint32(3094802), "names": names("Kraków")},
			"continent":          map[string]any{"code": "EU", "geoname_id": uint32(6255148), "names": names("Europe")},
			"country":            map[string]any{"geoname_id": uint32(798544), "is_in_european_union": true, "iso_code": "PL", "names": names("Poland")},
			"location":           map[string]any{"accuracy_radius": uint16(20), "latitude": 50.0614, "longitude": 19.9366, "time_zone": "Europe/Warsaw"},
			"postal":             map[string]any{"code": "31-001"},
			"registered_country": map[string]any{"geoname_id": uint32(798544), "is_in_european_union": true, "iso_code": "PL", "names": names("Poland")},
			"subdivisions":       []any{map[string]any{"geoname_id": uint32(858787), "iso_code": "12", "names": names("Lesser Poland")}},
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	g, err := OpenGeoDB(path, "")
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	ip := netip.MustParseAddr("192.0.2.1")
	b.ReportAllocs()
	for b.Loop() {
		if cc, err := g.Country(ip); err != nil || cc != "PL" {
			b.Fatal(cc, err)
		}
	}
}
