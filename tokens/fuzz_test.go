package tokens

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"gopkg.in/macaroon.v2"
)

// Native fuzz targets of the token library. Seeds come from three places:
// Onedata's published vectors (testdata/onedata-token-vectors.json), tokens
// minted here in every serialized form, and the committed corpus under
// testdata/fuzz/<FuzzName>/ (tricky hand-made inputs and former crashers).
//
//	go test -run='^$' -fuzz=FuzzDecode -fuzztime=3m ./tokens/
//	go test -run='^$' -fuzz=FuzzParseCaveat -fuzztime=3m ./tokens/
//	go test -run='^$' -fuzz=FuzzParseIdentifier -fuzztime=3m ./tokens/

// mapGeo is a tiny in-memory Geo: exact addresses to a country and an ASN.
// Unknown addresses fail like a lookup that finds nothing.
type mapGeo map[netip.Addr]struct {
	country string
	asn     uint32
}

var errMapGeoNotFound = errors.New("address not found")

func (g mapGeo) Country(ip netip.Addr) (string, error) {
	if r, ok := g[ip]; ok {
		return r.country, nil
	}
	return "", errMapGeoNotFound
}

func (g mapGeo) ASN(ip netip.Addr) (uint32, error) {
	if r, ok := g[ip]; ok {
		return r.asn, nil
	}
	return 0, errMapGeoNotFound
}

var fuzzGeo = mapGeo{
	netip.MustParseAddr("192.0.2.1"):   {"PL", 64500},
	netip.MustParseAddr("2001:db8::1"): {"JP", 4200000000},
	netip.MustParseAddr("10.1.2.3"):    {"US", 322},
}

// fuzzSecret signs the named tokens minted as seeds; the generation keys are
// those of Onedata's vectors, so every seed reaches the caveat parser.
var fuzzSecret = []byte("fuzz default secret")

func fuzzKeyring(t testing.TB) *Keyring {
	t.Helper()
	k, err := NewKeyring(fuzzSecret, map[uint64][]byte{
		7:  []byte("verySecretSecret1"),
		49: []byte("verySecretSecret4"),
	})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// fuzzEnvs are the request environments caveats are checked against: with
// and without a Geo, with a known, an unknown-to-Geo, an IPv4-mapped and an
// invalid client address, before and after every sane expiry.
func fuzzEnvs() []*Env {
	now := time.Unix(1_800_000_000, 0)
	ips := []netip.Addr{
		{}, // invalid: unknown client address
		netip.MustParseAddr("192.0.2.1"),
		netip.MustParseAddr("::ffff:192.0.2.1"),
		netip.MustParseAddr("2001:db8::1"),
		netip.MustParseAddr("203.0.113.9"), // not in fuzzGeo
	}
	var envs []*Env
	for _, geo := range []Geo{nil, fuzzGeo} {
		for _, ip := range ips {
			envs = append(envs, &Env{Now: now, ClientIP: ip, UserID: "alice", Service: DefaultService, Geo: geo})
		}
	}
	envs = append(envs,
		&Env{Now: time.Unix(0, 0), ClientIP: ips[1], Geo: fuzzGeo},                                       // no user, no service
		&Env{Now: time.Unix(1<<62, 0), ClientIP: ips[3], UserID: "bob", Service: "opw-p1", Geo: fuzzGeo}, // far future
	)
	return envs
}

// fuzzVectors reads Onedata's vectors without failing the fuzz target when
// the file is unreadable (the committed corpus still seeds it).
func fuzzVectors(f *testing.F) []vector {
	b, err := os.ReadFile("testdata/onedata-token-vectors.json")
	if err != nil {
		f.Logf("no vectors: %v", err)
		return nil
	}
	var doc struct{ Vectors []vector }
	if err := json.Unmarshal(b, &doc); err != nil {
		f.Fatalf("vectors: %v", err)
	}
	return doc.Vectors
}

// fuzzSeedMacaroons mints tokens of every shape the edge meets.
func fuzzSeedMacaroons(f *testing.F) []*macaroon.Macaroon {
	type spec struct {
		secret []byte
		id     Identifier
		cavs   []string
	}
	specs := []spec{
		{fuzzSecret, InviteID(Persistence{Named: true}, "bob", "grp1", "tok1"), nil},
		{fuzzSecret, InviteID(Persistence{Named: true}, "bob", "grp1", "tok2"), []string{
			"time < 8374891234", "ip = 192.0.2.0/24|2001:db8::/32", "asn = 64500|322",
			"geo.country = PL|FR", "geo.region = Europe|EU", "consumer = usr-alice|grp-g|prv-*",
		}},
		{[]byte("verySecretSecret1"), InviteID(Persistence{Generation: 7}, "bob", "g.0_~@-", "t"), []string{
			"geo.country != US", "geo.region != NorthAmerica", "time < 0",
		}},
		{fuzzSecret, AccessID(Persistence{Named: true}, "alice", "", "acc1"), []string{
			"time < 8374891234", "interface = rest", "service = ozw-onezone|opw-*", "api = ozw/all/user.*.*:auto|all/create/group.*.join:*",
		}},
		{[]byte("verySecretSecret4"), AccessID(Persistence{Generation: 49}, "alice", "sess1", "acc2"), []string{
			"data.readonly", "authorization = none",
		}},
		{fuzzSecret, Identifier{Persistence: Persistence{Named: true}, Subject: Subject{Kind: "nobody"}, Type: TokenType{Kind: TypeIdentity}, TokenID: "idn1"}, nil},
	}
	var out []*macaroon.Macaroon
	for _, s := range specs {
		m, err := MintMacaroon(s.secret, "", s.id, s.cavs...)
		if err != nil {
			f.Fatalf("mint %v: %v", s.id, err)
		}
		out = append(out, m)
	}
	return out
}

func FuzzDecode(f *testing.F) {
	for _, v := range fuzzVectors(f) {
		f.Add(v.Token)
	}
	for _, m := range fuzzSeedMacaroons(f) {
		for _, form := range []Format{FormatOnedata, FormatBase64V1, FormatBase64V2, FormatJSONV1, FormatJSONV2} {
			s, err := Encode(m, form)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(s)
		}
		b, _ := m.MarshalBinary()
		f.Add(base64.StdEncoding.EncodeToString(b))
		f.Add(base64.URLEncoding.EncodeToString(b))
	}
	keys := fuzzKeyring(f)
	envs := fuzzEnvs()

	// A Token reused across inputs, as the edge reuses one for invites it
	// sees once: AuthenticateTo must write exactly what Authenticate
	// returns, whatever the previous input left in it.
	reused := &Token{Caveats: make([]Caveat, 0, 8)}

	f.Fuzz(func(t *testing.T, s string) {
		m, err := Decode(s)
		tok, aerr := keys.Authenticate(s)
		switch rerr := keys.AuthenticateTo(reused, s); {
		case (rerr == nil) != (aerr == nil):
			t.Fatalf("AuthenticateTo = %v, Authenticate = %v", rerr, aerr)
		case rerr != nil && (rerr.Error() != aerr.Error() || KindOf(rerr) != KindOf(aerr)):
			t.Fatalf("AuthenticateTo = %v, Authenticate = %v", rerr, aerr)
		case rerr == nil:
			sameToken(t, tok, reused)
		}
		if err != nil {
			if m != nil {
				t.Fatalf("Decode returned a macaroon and %v", err)
			}
			if KindOf(err) == 0 {
				t.Fatalf("Decode error %v (%T) is not an *Error", err, err)
			}
			if aerr == nil || KindOf(aerr) != KindOf(err) {
				t.Fatalf("Decode failed with %v but Authenticate returned %v", err, aerr)
			}
			return
		}
		if m == nil {
			t.Fatal("Decode returned neither a macaroon nor an error")
		}
		if aerr != nil && KindOf(aerr) == 0 {
			t.Fatalf("Authenticate error %v (%T) is not an *Error", aerr, aerr)
		}
		if tok != nil {
			if aerr != nil {
				t.Fatalf("Authenticate returned a token and %v", aerr)
			}
			for _, env := range envs {
				tok.CheckInvite(env)
				tok.CheckAccess(env)
			}
		}
		for _, c := range m.Caveats() {
			if len(c.VerificationId) > 0 {
				t.Fatalf("decoded a third-party caveat %q", c.Id)
			}
		}

		// Re-encoding in any form and decoding again keeps the location,
		// the identifier, the caveats and the signature byte for byte.
		// JSON holds the location as a plain string (and V1 JSON every
		// field), so those forms are only required for UTF-8 text.
		forms := []Format{FormatOnedata, FormatBase64V1, FormatBase64V2}
		if utf8.ValidString(m.Location()) {
			forms = append(forms, FormatJSONV2)
			if utf8.Valid(m.Id()) && caveatsUTF8(m) {
				forms = append(forms, FormatJSONV1)
			}
		}
		for _, form := range forms {
			enc, err := Encode(m, form)
			if err != nil {
				if (form == FormatOnedata || form == FormatBase64V1) && tooLongForV1(m) {
					continue // V1 packets hold at most 0xffff bytes
				}
				t.Fatalf("Encode(%d): %v", form, err)
			}
			m2, err := Decode(enc)
			if err != nil {
				t.Fatalf("Decode(Encode(%d)) = %v; encoded %q", form, err, enc)
			}
			sameMacaroon(t, form, m, m2)
		}
	})
}

func caveatsUTF8(m *macaroon.Macaroon) bool {
	for _, c := range m.Caveats() {
		if !utf8.Valid(c.Id) {
			return false
		}
	}
	return true
}

func tooLongForV1(m *macaroon.Macaroon) bool {
	const max = 0xffff - len("0000identifier \n")
	if len(m.Id()) > max || len(m.Location()) > max {
		return true
	}
	for _, c := range m.Caveats() {
		if len(c.Id) > max {
			return true
		}
	}
	return false
}

func sameMacaroon(t *testing.T, form Format, a, b *macaroon.Macaroon) {
	t.Helper()
	if !bytes.Equal(a.Id(), b.Id()) {
		t.Fatalf("form %d: identifier %q became %q", form, a.Id(), b.Id())
	}
	if a.Location() != b.Location() {
		t.Fatalf("form %d: location %q became %q", form, a.Location(), b.Location())
	}
	if !bytes.Equal(a.Signature(), b.Signature()) {
		t.Fatalf("form %d: signature changed", form)
	}
	ac, bc := a.Caveats(), b.Caveats()
	if len(ac) != len(bc) {
		t.Fatalf("form %d: %d caveats became %d", form, len(ac), len(bc))
	}
	for i := range ac {
		if !bytes.Equal(ac[i].Id, bc[i].Id) || len(bc[i].VerificationId) > 0 {
			t.Fatalf("form %d: caveat %d %q became %q (vid %q)", form, i, ac[i].Id, bc[i].Id, bc[i].VerificationId)
		}
	}
}

func FuzzParseCaveat(f *testing.F) {
	for _, v := range fuzzVectors(f) {
		for _, c := range v.Caveats {
			f.Add(c)
		}
	}
	for _, s := range []string{
		"time < 0", "time < 8374891234", "time < 4611686018427387904", "ip = 10.0.0.0/8", "ip = 1.2.3.4|::1/128|2001:db8::/32",
		"ip = ::ffff:192.0.2.0/120", "asn = 1|4294967295", "geo.country = PL|FR", "geo.country != PL", "geo.region = Europe|EU",
		"geo.region != NorthAmerica", "consumer = usr-alice|grp-g|prv-*", "consumer = usr-*", "interface = rest",
		"interface = oneclient", "service = ozw-onezone|opw-*", "api = ozw/all/user.*.*:auto", "api = all/create/group.*.join:*",
		"api = all/all/*.*.*:*|opw/get/file.x.content:private", "data.readonly", "data.path = abc|def",
		"authorization = none", TimeCaveat(time.Unix(1_900_000_000, 0)),
	} {
		f.Add(s)
	}
	envs := fuzzEnvs()

	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCaveat(s)
		if err != nil {
			if KindOf(err) != KindCaveat {
				t.Fatalf("ParseCaveat error %v is not a caveat *Error", err)
			}
			return
		}
		if c.String() != s {
			t.Fatalf("String() = %q, want %q", c.String(), s)
		}
		if c.Kind.String() == "unknown" {
			t.Fatalf("parsed %q into an unknown kind %d", s, c.Kind)
		}
		mustFail := c.Kind == CaveatData || c.Kind == CaveatAuthorization
		for _, env := range envs {
			for _, p := range []Purpose{PurposeInvite, PurposeAccess} {
				err := c.Check(p, env)
				if err == nil && mustFail {
					t.Fatalf("%s caveat %q accepted for purpose %d", c.Kind, s, p)
				}
				if err != nil && KindOf(err) == 0 {
					t.Fatalf("Check error %v is not an *Error", err)
				}
				if err == nil && !env.ClientIP.IsValid() && (c.Kind == CaveatIP || c.Kind == CaveatASN || c.Kind == CaveatGeoCountry || c.Kind == CaveatGeoRegion) {
					t.Fatalf("%q accepted without a client address", s)
				}
				if err == nil && env.Geo == nil && (c.Kind == CaveatASN || c.Kind == CaveatGeoCountry || c.Kind == CaveatGeoRegion) {
					t.Fatalf("%q accepted without a geo database", s)
				}
			}
		}
	})
}

func FuzzParseIdentifier(f *testing.F) {
	for _, v := range fuzzVectors(f) {
		if v.Identifier != "" {
			f.Add(v.Identifier)
		}
	}
	for _, m := range fuzzSeedMacaroons(f) {
		f.Add(string(m.Id()))
	}
	for _, s := range []string{
		InviteID(Persistence{Generation: 18446744073709551615}, "u", "g", "t").String(),
		"2/nmd/usr-alice/ujg:grp1:some%20params:x/tok", "2/nmd/nobody/idn/t", "2/tmp-0/prv-p1/act/t",
		"legacy-token-id",
	} {
		f.Add(s)
	}

	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseIdentifier(s)
		if err != nil {
			if KindOf(err) != KindMalformed {
				t.Fatalf("ParseIdentifier error %v is not a malformed *Error", err)
			}
			return
		}
		if got := id.String(); got != s {
			t.Fatalf("String() = %q, want %q", got, s)
		}
		if id.Raw != s {
			t.Fatalf("Raw = %q, want %q", id.Raw, s)
		}
		if id.Legacy {
			if strings.Contains(s, "/") || id.Type.Kind != 0 || id.TokenID != "" {
				t.Fatalf("legacy identifier %q parsed as %+v", s, id)
			}
			if id.IsGroupInvite() {
				t.Fatalf("legacy identifier %q is a group invite", s)
			}
			return
		}
		if !ValidID(id.TokenID) {
			t.Fatalf("token id %q of %q is not a valid id", id.TokenID, s)
		}
		switch id.Subject.Kind {
		case "nobody":
			if id.Subject.ID != "" {
				t.Fatalf("nobody with id %q", id.Subject.ID)
			}
		case "usr", "prv":
			if !ValidID(id.Subject.ID) {
				t.Fatalf("subject id %q of %q is not a valid id", id.Subject.ID, s)
			}
		default:
			t.Fatalf("subject kind %q of %q", id.Subject.Kind, s)
		}
		switch id.Type.Kind {
		case TypeAccess:
			if id.Type.SessionID != "" && !ValidID(id.Type.SessionID) {
				t.Fatalf("session id %q of %q is not a valid id", id.Type.SessionID, s)
			}
		case TypeIdentity:
		case TypeInvite:
			if !ValidID(id.Type.TargetID) {
				t.Fatalf("target id %q of %q is not a valid id", id.Type.TargetID, s)
			}
			if strings.Contains(id.Type.Params, "/") {
				t.Fatalf("invite params %q contain '/'", id.Type.Params)
			}
		default:
			t.Fatalf("type kind %d of %q", id.Type.Kind, s)
		}
		if id.IsGroupInvite() != (id.Type.Kind == TypeInvite && id.Type.Code == InviteUserJoinGroup) {
			t.Fatalf("IsGroupInvite of %q", s)
		}
	})
}
