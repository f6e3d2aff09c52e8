package tokens

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/oschwald/maxminddb-golang/v2"
	"github.com/oschwald/maxminddb-golang/v2/mmdbdata"
)

// Geo answers the lookups that asn and geo.* caveats need. Implementations must be safe for concurrent use.
type Geo interface {
	// Country returns the ISO 3166-1 alpha-2 code (upper case) of ip's country.
	Country(ip netip.Addr) (string, error)
	// ASN returns the autonomous system number announcing ip.
	ASN(ip netip.Addr) (uint32, error)
}

// ErrNoGeoDatabase is wrapped by lookups that need a database that was not
// configured.
var ErrNoGeoDatabase = errors.New("geo database not configured")

// Errors of GeoDB lookups. They are static so that failing lookups on the
// request path do not allocate; the caller knows the address it asked about.
var (
	errNoCountryDB     = fmt.Errorf("%w: no country database (GeoIP2/GeoLite2 Country or City mmdb)", ErrNoGeoDatabase)
	errNoASNDB         = fmt.Errorf("%w: no ASN database (GeoLite2-ASN mmdb)", ErrNoGeoDatabase)
	errCountryNotFound = errors.New("address not found in country database")
	errASNNotFound     = errors.New("address not found in ASN database")
	errBadCountryCode  = errors.New("country database has no valid ISO country code for this address")
	errBadASN          = errors.New("ASN database has an invalid AS number for this address")
	errInvalidAddr     = errors.New("invalid IP address")
	errCountryClosed   = errors.New("country database is closed")
	errASNClosed       = errors.New("ASN database is closed")
)

// GeoDB implements Geo with MaxMind mmdb files (GeoLite2/GeoIP2 Country or
// City for countries, GeoLite2-ASN for ASNs). Either path may be empty; a
// lookup that needs the missing database returns an error wrapping
// ErrNoGeoDatabase whose text says which database is not configured.
//
// A GeoDB is safe for concurrent use, including Close concurrently with
// lookups: Close detaches the databases at once (later lookups fail) and the
// memory-mapped files are released by the Go runtime once no lookup that
// started before Close still uses them. A nil *GeoDB answers every lookup
// with ErrNoGeoDatabase.
type GeoDB struct {
	country atomic.Pointer[maxminddb.Reader]
	asn     atomic.Pointer[maxminddb.Reader]
	// countryConfigured/asnConfigured tell "closed" apart from "never
	// configured" in error messages. Set once in OpenGeoDB.
	countryConfigured, asnConfigured bool
}

var _ Geo = (*GeoDB)(nil)

// OpenGeoDB opens the country database at countryPath and the ASN database
// at asnPath; either may be empty. An error names the database and path that
// failed and why: the file is missing or unreadable, is not an mmdb, or is of
// the wrong type (its metadata database_type must contain "Country", "City"
// or "Enterprise" for countries, "ASN" or "ISP" for ASNs).
func OpenGeoDB(countryPath, asnPath string) (*GeoDB, error) {
	g := &GeoDB{}
	if countryPath != "" {
		r, err := openMMDB("country", countryPath, "a GeoIP2/GeoLite2 Country or City database", "Country", "City", "Enterprise")
		if err != nil {
			return nil, err
		}
		g.country.Store(r)
		g.countryConfigured = true
	}
	if asnPath != "" {
		r, err := openMMDB("ASN", asnPath, "a GeoLite2-ASN database", "ASN", "ISP")
		if err != nil {
			if c := g.country.Load(); c != nil {
				c.Close() // nobody else has seen it yet
			}
			return nil, err
		}
		g.asn.Store(r)
		g.asnConfigured = true
	}
	return g, nil
}

func openMMDB(what, path, want string, types ...string) (*maxminddb.Reader, error) {
	r, err := maxminddb.Open(path)
	if err != nil {
		var pe *fs.PathError
		switch {
		case errors.As(err, &pe):
			// "open /x: no such file or directory" → drop the repeated path.
			return nil, fmt.Errorf("%s database %q: %w", what, path, pe.Err)
		case errors.Is(err, fs.ErrNotExist), errors.Is(err, fs.ErrPermission):
			return nil, fmt.Errorf("%s database %q: %w", what, path, err)
		default:
			return nil, fmt.Errorf("%s database %q: not a valid MaxMind DB (mmdb) file: %w", what, path, err)
		}
	}
	dbType := r.Metadata.DatabaseType
	lower := strings.ToLower(dbType)
	for _, t := range types {
		if strings.Contains(lower, strings.ToLower(t)) {
			return r, nil
		}
	}
	r.Close()
	return nil, fmt.Errorf("%s database %q: database type %q is not %s", what, path, dbType, want)
}

// Close detaches the databases; later lookups fail. It is idempotent and
// safe to call concurrently with lookups (see GeoDB).
func (g *GeoDB) Close() error {
	if g == nil {
		return nil
	}
	// Do not call Reader.Close: it unmaps the file at once, which would
	// crash lookups still running on other goroutines (e.g. requests that
	// outlive a config reload's grace period). The reader's runtime cleanup
	// unmaps the file once it is unreachable.
	g.country.Store(nil)
	g.asn.Store(nil)
	return nil
}

// countryRecord receives the only fields Country needs from a GeoIP2
// Country/City record: country.iso_code and registered_country.iso_code.
// Its hand-written decoder skips everything else without materializing it,
// which is several times cheaper than reflection on City records.
type countryRecord struct {
	country, registered string
}

// asnRecord receives autonomous_system_number.
type asnRecord struct {
	asn uint64
}

// Decode targets are pooled: passing one to Result.Decode (an any) would
// otherwise heap-allocate it on every lookup.
var (
	countryRecords = sync.Pool{New: func() any { return new(countryRecord) }}
	asnRecords     = sync.Pool{New: func() any { return new(asnRecord) }}
)

// UnmarshalMaxMindDBCursor implements mmdbdata.CursorUnmarshaler.
func (rec *countryRecord) UnmarshalMaxMindDBCursor(c mmdbdata.Cursor) (mmdbdata.Cursor, error) {
	m, err := c.Map()
	if err != nil {
		return mmdbdata.Cursor{}, mmdbdata.NormalizeUnmarshalError[countryRecord](err)
	}
	var next mmdbdata.Cursor
	for {
		key, value, ok := m.Next(next)
		if !ok {
			break
		}
		switch string(key) { // no allocation
		case "country":
			rec.country, next, err = readISOCode(value)
		case "registered_country":
			rec.registered, next, err = readISOCode(value)
		default:
			next, err = value.Skip()
		}
		if err != nil {
			return mmdbdata.Cursor{}, err
		}
	}
	return m.End()
}

// readISOCode reads iso_code from a GeoIP2 country map.
func readISOCode(c mmdbdata.Cursor) (code string, next mmdbdata.Cursor, err error) {
	m, err := c.Map()
	if err != nil {
		return "", mmdbdata.Cursor{}, mmdbdata.NormalizeUnmarshalError[countryRecord](err)
	}
	for {
		key, value, ok := m.Next(next)
		if !ok {
			break
		}
		if string(key) == "iso_code" {
			// Short strings come from the reader's string cache: no
			// allocation once warm.
			code, next, err = value.ReadStringMaxSize(8)
		} else {
			next, err = value.Skip()
		}
		if err != nil {
			return "", mmdbdata.Cursor{}, mmdbdata.NormalizeUnmarshalError[string](err)
		}
	}
	next, err = m.End()
	return code, next, err
}

// UnmarshalMaxMindDBCursor implements mmdbdata.CursorUnmarshaler.
func (rec *asnRecord) UnmarshalMaxMindDBCursor(c mmdbdata.Cursor) (mmdbdata.Cursor, error) {
	m, err := c.Map()
	if err != nil {
		return mmdbdata.Cursor{}, mmdbdata.NormalizeUnmarshalError[asnRecord](err)
	}
	var next mmdbdata.Cursor
	for {
		key, value, ok := m.Next(next)
		if !ok {
			break
		}
		if string(key) == "autonomous_system_number" {
			rec.asn, next, err = value.ReadUint()
			if err != nil {
				err = mmdbdata.NormalizeUnmarshalError[uint32](err)
			}
		} else {
			next, err = value.Skip()
		}
		if err != nil {
			return mmdbdata.Cursor{}, err
		}
	}
	return m.End()
}

// Country returns the ISO 3166-1 alpha-2 code of ip's country: the record's
// country, or its registered_country when the database has no country for
// ip (e.g. some anycast and satellite networks).
func (g *GeoDB) Country(ip netip.Addr) (string, error) {
	if g == nil {
		return "", errNoCountryDB
	}
	r := g.country.Load()
	if r == nil {
		if g.countryConfigured {
			return "", errCountryClosed
		}
		return "", errNoCountryDB
	}
	if !ip.IsValid() {
		return "", errInvalidAddr
	}
	res := r.Lookup(ip.Unmap())
	if err := res.Err(); err != nil {
		return "", fmt.Errorf("country lookup: %w", err)
	}
	if !res.Found() {
		return "", errCountryNotFound
	}
	rec := countryRecords.Get().(*countryRecord)
	*rec = countryRecord{}
	err := res.Decode(rec)
	code := rec.country
	if code == "" {
		code = rec.registered
	}
	*rec = countryRecord{}
	countryRecords.Put(rec)
	if err != nil {
		return "", fmt.Errorf("country lookup: %w", err)
	}
	if code == "" {
		return "", errCountryNotFound
	}
	return normalizeCountry(code)
}

// ASN returns the autonomous system number of the network announcing ip.
func (g *GeoDB) ASN(ip netip.Addr) (uint32, error) {
	if g == nil {
		return 0, errNoASNDB
	}
	r := g.asn.Load()
	if r == nil {
		if g.asnConfigured {
			return 0, errASNClosed
		}
		return 0, errNoASNDB
	}
	if !ip.IsValid() {
		return 0, errInvalidAddr
	}
	res := r.Lookup(ip.Unmap())
	if err := res.Err(); err != nil {
		return 0, fmt.Errorf("ASN lookup: %w", err)
	}
	if !res.Found() {
		return 0, errASNNotFound
	}
	rec := asnRecords.Get().(*asnRecord)
	rec.asn = 0
	err := res.Decode(rec)
	asn := rec.asn
	asnRecords.Put(rec)
	if err != nil {
		return 0, fmt.Errorf("ASN lookup: %w", err)
	}
	if asn == 0 {
		return 0, errASNNotFound
	}
	if asn > math.MaxUint32 {
		return 0, errBadASN
	}
	return uint32(asn), nil
}

// normalizeCountry checks that code is two ASCII letters and returns it in
// upper case (without allocating when it already is).
func normalizeCountry(code string) (string, error) {
	if len(code) != 2 {
		return "", errBadCountryCode
	}
	a, b := code[0], code[1]
	if 'A' <= a && a <= 'Z' && 'A' <= b && b <= 'Z' {
		return code, nil
	}
	a, b = upperASCII(a), upperASCII(b)
	if 'A' <= a && a <= 'Z' && 'A' <= b && b <= 'Z' {
		return string([]byte{a, b}), nil
	}
	return "", errBadCountryCode
}

func upperASCII(c byte) byte {
	if 'a' <= c && c <= 'z' {
		return c - 'a' + 'A'
	}
	return c
}

// geoPlace packs a country's continent (low 3 bits) and EU membership.
type geoPlace uint8

const (
	contAF geoPlace = iota + 1 // Africa
	contAN                     // Antarctica
	contAS                     // Asia
	contEU                     // Europe
	contNA                     // NorthAmerica
	contOC                     // Oceania
	contSA                     // SouthAmerica

	continentMask geoPlace = 0x7
	memberEU      geoPlace = 0x8 // one of the 27 EU member states
)

// continentNames are Onedata's geo.region names of the continents.
var continentNames = [...]string{
	contAF: "Africa", contAN: "Antarctica", contAS: "Asia", contEU: "Europe",
	contNA: "NorthAmerica", contOC: "Oceania", contSA: "SouthAmerica",
}

// countryPlaces maps every ISO 3166-1 alpha-2 code (plus XK, Kosovo, which
// MaxMind uses) to its continent, as MaxMind (GeoNames) assigns continents
// in its databases' continent.code — Onedata derives geo.region from that
// field — and flags the 27 EU member states (as of 2020, after Brexit).
// Notable choices that follow MaxMind: CY → Europe; TR, GE, AM, AZ, KZ →
// Asia; RU → Europe; EG → Africa; TL → Oceania; Central America and the
// Caribbean → NorthAmerica; AQ, BV, GS, HM, TF → Antarctica. Overseas
// parts of EU states with their own codes (GF, GP, MQ, RE, YT, MF, AX, …)
// are not flagged EU.
var countryPlaces = map[string]geoPlace{
	"AD": contEU, "AE": contAS, "AF": contAS, "AG": contNA, "AI": contNA, "AL": contEU,
	"AM": contAS, "AO": contAF, "AQ": contAN, "AR": contSA, "AS": contOC, "AT": contEU | memberEU,
	"AU": contOC, "AW": contNA, "AX": contEU, "AZ": contAS,
	"BA": contEU, "BB": contNA, "BD": contAS, "BE": contEU | memberEU, "BF": contAF, "BG": contEU | memberEU,
	"BH": contAS, "BI": contAF, "BJ": contAF, "BL": contNA, "BM": contNA, "BN": contAS,
	"BO": contSA, "BQ": contNA, "BR": contSA, "BS": contNA, "BT": contAS, "BV": contAN,
	"BW": contAF, "BY": contEU, "BZ": contNA,
	"CA": contNA, "CC": contAS, "CD": contAF, "CF": contAF, "CG": contAF, "CH": contEU,
	"CI": contAF, "CK": contOC, "CL": contSA, "CM": contAF, "CN": contAS, "CO": contSA,
	"CR": contNA, "CU": contNA, "CV": contAF, "CW": contNA, "CX": contAS, "CY": contEU | memberEU,
	"CZ": contEU | memberEU,
	"DE": contEU | memberEU, "DJ": contAF, "DK": contEU | memberEU, "DM": contNA, "DO": contNA, "DZ": contAF,
	"EC": contSA, "EE": contEU | memberEU, "EG": contAF, "EH": contAF, "ER": contAF, "ES": contEU | memberEU,
	"ET": contAF,
	"FI": contEU | memberEU, "FJ": contOC, "FK": contSA, "FM": contOC, "FO": contEU, "FR": contEU | memberEU,
	"GA": contAF, "GB": contEU, "GD": contNA, "GE": contAS, "GF": contSA, "GG": contEU,
	"GH": contAF, "GI": contEU, "GL": contNA, "GM": contAF, "GN": contAF, "GP": contNA,
	"GQ": contAF, "GR": contEU | memberEU, "GS": contAN, "GT": contNA, "GU": contOC, "GW": contAF,
	"GY": contSA,
	"HK": contAS, "HM": contAN, "HN": contNA, "HR": contEU | memberEU, "HT": contNA, "HU": contEU | memberEU,
	"ID": contAS, "IE": contEU | memberEU, "IL": contAS, "IM": contEU, "IN": contAS, "IO": contAS,
	"IQ": contAS, "IR": contAS, "IS": contEU, "IT": contEU | memberEU,
	"JE": contEU, "JM": contNA, "JO": contAS, "JP": contAS,
	"KE": contAF, "KG": contAS, "KH": contAS, "KI": contOC, "KM": contAF, "KN": contNA,
	"KP": contAS, "KR": contAS, "KW": contAS, "KY": contNA, "KZ": contAS,
	"LA": contAS, "LB": contAS, "LC": contNA, "LI": contEU, "LK": contAS, "LR": contAF,
	"LS": contAF, "LT": contEU | memberEU, "LU": contEU | memberEU, "LV": contEU | memberEU, "LY": contAF,
	"MA": contAF, "MC": contEU, "MD": contEU, "ME": contEU, "MF": contNA, "MG": contAF,
	"MH": contOC, "MK": contEU, "ML": contAF, "MM": contAS, "MN": contAS, "MO": contAS,
	"MP": contOC, "MQ": contNA, "MR": contAF, "MS": contNA, "MT": contEU | memberEU, "MU": contAF,
	"MV": contAS, "MW": contAF, "MX": contNA, "MY": contAS, "MZ": contAF,
	"NA": contAF, "NC": contOC, "NE": contAF, "NF": contOC, "NG": contAF, "NI": contNA,
	"NL": contEU | memberEU, "NO": contEU, "NP": contAS, "NR": contOC, "NU": contOC, "NZ": contOC,
	"OM": contAS,
	"PA": contNA, "PE": contSA, "PF": contOC, "PG": contOC, "PH": contAS, "PK": contAS,
	"PL": contEU | memberEU, "PM": contNA, "PN": contOC, "PR": contNA, "PS": contAS, "PT": contEU | memberEU,
	"PW": contOC, "PY": contSA,
	"QA": contAS,
	"RE": contAF, "RO": contEU | memberEU, "RS": contEU, "RU": contEU, "RW": contAF,
	"SA": contAS, "SB": contOC, "SC": contAF, "SD": contAF, "SE": contEU | memberEU, "SG": contAS,
	"SH": contAF, "SI": contEU | memberEU, "SJ": contEU, "SK": contEU | memberEU, "SL": contAF, "SM": contEU,
	"SN": contAF, "SO": contAF, "SR": contSA, "SS": contAF, "ST": contAF, "SV": contNA,
	"SX": contNA, "SY": contAS, "SZ": contAF,
	"TC": contNA, "TD": contAF, "TF": contAN, "TG": contAF, "TH": contAS, "TJ": contAS,
	"TK": contOC, "TL": contOC, "TM": contAS, "TN": contAF, "TO": contOC, "TR": contAS,
	"TT": contNA, "TV": contOC, "TW": contAS, "TZ": contAF,
	"UA": contEU, "UG": contAF, "UM": contOC, "US": contNA, "UY": contSA, "UZ": contAS,
	"VA": contEU, "VC": contNA, "VE": contSA, "VG": contNA, "VI": contNA, "VN": contAS,
	"VU": contOC,
	"WF": contOC, "WS": contOC,
	"XK": contEU,
	"YE": contAS, "YT": contAF,
	"ZA": contAF, "ZM": contAF, "ZW": contAF,
}

// regionLists holds the answers of Regions, indexed by geoPlace.
var regionLists = func() (l [16][]string) {
	for c := contAF; c <= contSA; c++ {
		l[c] = []string{continentNames[c]}
		l[c|memberEU] = []string{continentNames[c], "EU"}
	}
	return l
}()

// lookupPlace accepts country codes in either case without allocating.
func lookupPlace(country string) (geoPlace, bool) {
	if len(country) != 2 {
		return 0, false
	}
	if p, ok := countryPlaces[country]; ok {
		return p, true
	}
	a, b := upperASCII(country[0]), upperASCII(country[1])
	if a == country[0] && b == country[1] {
		return 0, false
	}
	var buf [2]byte
	buf[0], buf[1] = a, b
	p, ok := countryPlaces[string(buf[:])] // no allocation for map lookups
	return p, ok
}

// Regions reports the Onedata geo.region names a country belongs to: its continent (Onedata names: Africa, Antarctica, Asia, Europe, NorthAmerica, Oceania, SouthAmerica) plus "EU" for the 27 EU member states. Unknown country → nil.
//
// The country code may be in either case. The returned slice is the
// caller's to keep.
func Regions(country string) []string {
	p, ok := lookupPlace(country)
	if !ok {
		return nil
	}
	l := regionLists[p]
	return append([]string(nil), l...)
}

// InRegion reports whether country belongs to the Onedata region name (exact, case-sensitive as Onedata writes them).
//
// The country code may be in either case; an unknown country or region name
// is in no region.
func InRegion(country, region string) bool {
	p, ok := lookupPlace(country)
	if !ok {
		return false
	}
	if region == "EU" {
		return p&memberEU != 0
	}
	return continentNames[p&continentMask] == region
}
