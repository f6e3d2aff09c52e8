package tokens

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"gopkg.in/macaroon.v2"
)

var testSecret = []byte("a test secret of reasonable length")

func mintInvite(t testing.TB, secret []byte, p Persistence, group string, cavs ...string) string {
	t.Helper()
	s, err := Mint(secret, "", InviteID(p, "bob", group, NewTokenID()), cavs...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestDecodeAllForms(t *testing.T) {
	id := InviteID(Persistence{Named: true}, "bob", "grp1", "tok1")
	m, err := MintMacaroon(testSecret, "here", id, "time < 9999999999", "ip = 10.0.0.0/8")
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := NewKeyring(testSecret, nil)
	for _, f := range []Format{FormatOnedata, FormatBase64V1, FormatBase64V2, FormatJSONV1, FormatJSONV2} {
		s, err := Encode(m, f)
		if err != nil {
			t.Fatalf("format %d: %v", f, err)
		}
		forms := []string{s}
		if f == FormatBase64V1 || f == FormatBase64V2 {
			b, _ := base64.RawURLEncoding.DecodeString(s)
			forms = append(forms, base64.StdEncoding.EncodeToString(b), base64.URLEncoding.EncodeToString(b), base64.RawStdEncoding.EncodeToString(b))
		}
		for _, s := range forms {
			tok, err := keys.Authenticate(s)
			if err != nil {
				t.Fatalf("format %d %q: %v", f, s, err)
			}
			if tok.ID.TokenID != "tok1" || len(tok.Caveats) != 2 || tok.Location != "here" {
				t.Fatalf("format %d: decoded %+v", f, tok)
			}
			if tok.Expires.Unix() != 9999999999 {
				t.Fatalf("expires %v", tok.Expires)
			}
		}
	}
}

func TestOnedataEscapeRoundTrip(t *testing.T) {
	for _, s := range []string{"", "abc", "0", "_-/+=0", "a0b_c-d", strings.Repeat("0_", 100)} {
		e := onedataEscape(s)
		got, ok := onedataUnescape(e)
		if !ok || got != s {
			t.Errorf("%q → %q → %q,%v", s, e, got, ok)
		}
	}
	for _, bad := range []string{"0", "06", "0a", "a_b", "ab-", "x0"} {
		if _, ok := onedataUnescape(bad); ok {
			t.Errorf("unescape(%q) accepted", bad)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	m, _ := MintMacaroon(testSecret, "", InviteID(Persistence{Named: true}, "bob", "g", "t"))
	bin, _ := m.MarshalBinary()
	m2, _ := MintMacaroon(testSecret, "", InviteID(Persistence{Named: true}, "bob", "g", "t2"))
	bin2, _ := m2.MarshalBinary()
	tp, _ := macaroon.New(testSecret, []byte(InviteID(Persistence{Named: true}, "bob", "g", "t3").String()), "", macaroon.V2)
	if err := tp.AddThirdPartyCaveat([]byte("tp key"), []byte("tp caveat"), "https://elsewhere"); err != nil {
		t.Fatal(err)
	}
	tpBin, _ := tp.MarshalBinary()
	js, _ := json.Marshal(m)
	b64 := base64.RawURLEncoding.EncodeToString
	cases := []struct {
		name string
		in   string
		kind Kind
	}{
		{"empty", "", KindMalformed},
		{"too large", strings.Repeat("A", MaxTokenSize+1), KindTooLarge},
		{"garbage", "not a token at all!", KindMalformed},
		{"trailing bytes", b64(append(append([]byte{}, bin...), "xyz"...)), KindMalformed},
		{"trailing newline", b64(append(append([]byte{}, bin...), '\n')), KindMalformed},
		{"two macaroons", b64(append(append([]byte{}, bin...), bin2...)), KindMalformed},
		{"truncated", b64(bin[:len(bin)-5]), KindMalformed},
		{"third party", b64(tpBin), KindThirdParty},
		{"json array", "[" + string(js) + "]", KindMalformed},
		{"json trailing", string(js) + "{}", KindMalformed},
		{"json v1+v2 mixed", `{"identifier":"x","i":"x","signature":"00","s64":"AA"}`, KindMalformed},
		{"json empty object", "{}", KindMalformed},
		{"bad base64", "%%%%", KindMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Decode(c.in)
			if KindOf(err) != c.kind {
				t.Fatalf("got %v, want kind %v", err, c.kind)
			}
		})
	}
}

func TestIdentifiers(t *testing.T) {
	good := []string{
		"2/nmd/usr-bob/ujg:grp1:/tok",
		"2/tmp-0/usr-bob/ujg:grp1:/tok",
		"2/tmp-18446744073709551615/prv-p1/act/tok",
		"2/nmd/nobody/idn/tok",
		"2/nmd/usr-u/act:sess-1/tok",
		"2/nmd/usr-u/ujs:space:priv,x/tok",
		"legacyIdentifierABC",
	}
	for _, s := range good {
		id, err := ParseIdentifier(s)
		if err != nil {
			t.Errorf("%q: %v", s, err)
			continue
		}
		if id.String() != s {
			t.Errorf("%q round trips to %q", s, id.String())
		}
	}
	id, _ := ParseIdentifier("2/tmp-7/usr-alice/ujg:g-1:/t1")
	if !id.IsGroupInvite() || id.Persistence.Generation != 7 || id.Subject.ID != "alice" || id.Type.TargetID != "g-1" || id.TokenID != "t1" {
		t.Errorf("fields: %+v", id)
	}
	bad := []string{
		"", "3/nmd/usr-bob/ujg:g:/t", "2/nmd/usr-bob/ujg:g:/t/extra", "2/nmd/usr-bob/ujg:g:", "2//usr-bob/ujg:g:/t",
		"2/tmp-/usr-bob/ujg:g:/t", "2/tmp-01/usr-bob/ujg:g:/t", "2/tmp--1/usr-bob/ujg:g:/t",
		"2/tmp-18446744073709551616/usr-bob/ujg:g:/t", "2/xyz/usr-bob/ujg:g:/t", "2/nmd/usr-/ujg:g:/t",
		"2/nmd/grp-x/ujg:g:/t", "2/nmd/usr-bob/ujg::/t", "2/nmd/usr-bob/ujg:g/t", "2/nmd/usr-bob/act:/t",
		"2/nmd/usr-bob/ujg:g:/", "2/nmd/usr-bob/ujg:g\r\n:/t", "2/nmd/usr-b b/act/t", "2/nmd/usr-bob/UJG:g:/t",
		"2/nmd/usr-bob/ujg:g:x y/t", "legacy with space", "2/nmd/usr-bob/xx:g:/t",
	}
	for _, s := range bad {
		if _, err := ParseIdentifier(s); KindOf(err) != KindMalformed {
			t.Errorf("%q: want malformed, got %v", s, err)
		}
	}
}

func TestKeyring(t *testing.T) {
	def, g5, g7 := []byte("default"), []byte("gen five"), []byte("gen seven")
	named := InviteID(Persistence{Named: true}, "bob", "g", "t")
	tmp := func(n uint64) Identifier { return InviteID(Persistence{Generation: n}, "bob", "g", "t") }
	mint := func(secret []byte, id Identifier) string {
		s, err := Mint(secret, "", id)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	onlyDefault, _ := NewKeyring(def, nil)
	withGens, _ := NewKeyring(def, map[uint64][]byte{5: g5, 7: g7})
	gensOnly, _ := NewKeyring(nil, map[uint64][]byte{5: g5})
	cases := []struct {
		name string
		k    *Keyring
		tok  string
		want error
	}{
		{"default verifies named", onlyDefault, mint(def, named), nil},
		{"default verifies any generation without generation keys", onlyDefault, mint(def, tmp(42)), nil},
		{"generation key", withGens, mint(g7, tmp(7)), nil},
		{"generation token signed with default refused", withGens, mint(def, tmp(7)), ErrSignature},
		{"other generation's key refused", withGens, mint(g5, tmp(7)), ErrSignature},
		{"below lowest generation is revoked", withGens, mint(def, tmp(4)), ErrRevoked},
		{"generation 0 revoked", withGens, mint(def, tmp(0)), ErrRevoked},
		{"gap generation has no key", withGens, mint(def, tmp(6)), ErrNoKey},
		{"above highest has no key", withGens, mint(def, tmp(8)), ErrNoKey},
		{"named uses default with generations", withGens, mint(def, named), nil},
		{"named without default has no key", gensOnly, mint(g5, named), ErrNoKey},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := c.k.Authenticate(c.tok)
			if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
	if _, err := NewKeyring(nil, nil); err == nil {
		t.Error("empty keyring accepted")
	}
	if _, err := NewKeyring([]byte{}, nil); err == nil {
		t.Error("empty default key accepted")
	}
	if _, err := NewKeyring(def, map[uint64][]byte{1: nil}); err == nil {
		t.Error("empty generation key accepted")
	}
}

// fakeGeo maps addresses to countries and ASNs.
type fakeGeo struct {
	country map[netip.Addr]string
	asn     map[netip.Addr]uint32
}

func (g fakeGeo) Country(ip netip.Addr) (string, error) {
	if c, ok := g.country[ip]; ok {
		return c, nil
	}
	return "", errors.New("not found")
}

func (g fakeGeo) ASN(ip netip.Addr) (uint32, error) {
	if n, ok := g.asn[ip]; ok {
		return n, nil
	}
	return 0, errors.New("not found")
}

func TestCaveatParse(t *testing.T) {
	good := []string{
		"time < 0", "time < 8374891234", "ip = 10.0.0.0/8", "ip = 1.2.3.4|::1/128|2001:db8::/32",
		"asn = 1|4294967295", "geo.country = PL|FR", "geo.country != PL", "geo.region = Europe|EU",
		"geo.region != NorthAmerica", "consumer = usr-alice|grp-g|prv-*", "consumer = usr-*", "interface = rest",
		"interface = oneclient", "service = ozw-onezone|opw-*", "api = ozw/all/user.*.*:auto",
		"api = all/all/*.*.*:*|opw/get/file.x.content:private", "data.readonly", "data.path = abc|def",
		"authorization = none",
	}
	for _, s := range good {
		c, err := ParseCaveat(s)
		if err != nil {
			t.Errorf("%q: %v", s, err)
		} else if c.String() != s {
			t.Errorf("%q: raw %q", s, c.String())
		}
	}
	bad := []string{
		"", "time", "time < ", "time <  5", "time <5", "time > 5", "time < -1", "time < 05", "time < 1e9",
		"time < 99999999999999999999999", "time < 18446744073709551615", "ip = ", "ip = 10.0.0.0/33", "ip = 10.0.0.0/8|",
		"ip = |10.0.0.1", "ip = fe80::1%eth0", "ip = hello", "ip != 10.0.0.1", "asn = 4294967296", "asn = -1",
		"asn = 1||2", "geo.country = pl", "geo.country = POL", "geo.country < PL", "geo.region = Mars",
		"geo.region = europe", "consumer = alice", "consumer = usr-", "consumer = usr-a b", "consumer = org-x",
		"interface = REST", "interface = rest|oneclient", "service = ozw", "service = xyz-1", "api = ozw/all",
		"api = ozw/patch/group.*.join:*", "api = nope/all/*.*.*:*", "api = ozw/all/group.*.join", "authorization = all",
		"something = else", "data.", "TIME < 5", " time < 5", "time < 5 ",
	}
	for _, s := range bad {
		if _, err := ParseCaveat(s); KindOf(err) != KindCaveat {
			t.Errorf("%q: want caveat error, got %v", s, err)
		}
	}
}

func TestCaveatChecks(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	pl, us := netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("198.51.100.7")
	geo := fakeGeo{
		country: map[netip.Addr]string{pl: "PL", us: "US"},
		asn:     map[netip.Addr]uint32{pl: 5617, us: 7018},
	}
	env := func(ip netip.Addr) *Env {
		return &Env{Now: now, ClientIP: ip, UserID: "alice", Service: DefaultService, Geo: geo}
	}
	cases := []struct {
		caveat string
		p      Purpose
		env    *Env
		want   error
	}{
		{"time < 1800000001", PurposeInvite, env(pl), nil},
		{"time < 1800000000", PurposeInvite, env(pl), ErrExpired},
		{"time < 1", PurposeAccess, env(pl), ErrExpired},
		{"ip = 192.0.2.0/24", PurposeInvite, env(pl), nil},
		{"ip = 192.0.2.10", PurposeInvite, env(pl), nil},
		{"ip = 10.0.0.0/8|192.0.2.10/32", PurposeAccess, env(pl), nil},
		{"ip = 192.0.2.0/24", PurposeInvite, env(us), ErrCaveat},
		{"ip = 192.0.2.0/24", PurposeInvite, env(netip.MustParseAddr("::ffff:192.0.2.10")), nil},
		{"ip = 192.0.2.0/24", PurposeInvite, env(netip.Addr{}), ErrCaveat},
		{"asn = 5617", PurposeInvite, env(pl), nil},
		{"asn = 1|2", PurposeInvite, env(pl), ErrCaveat},
		{"asn = 5617", PurposeInvite, &Env{Now: now, ClientIP: pl}, ErrCaveat},
		{"asn = 5617", PurposeInvite, env(netip.MustParseAddr("203.0.113.1")), ErrCaveat},
		{"geo.country = PL|FR", PurposeInvite, env(pl), nil},
		{"geo.country = PL|FR", PurposeInvite, env(us), ErrCaveat},
		{"geo.country != PL", PurposeInvite, env(us), nil},
		{"geo.country != PL", PurposeInvite, env(pl), ErrCaveat},
		{"geo.country != PL", PurposeInvite, env(netip.MustParseAddr("203.0.113.1")), ErrCaveat},
		{"geo.country = PL", PurposeInvite, &Env{Now: now, ClientIP: pl}, ErrCaveat},
		{"geo.region = EU", PurposeInvite, env(pl), nil},
		{"geo.region = Europe", PurposeAccess, env(pl), nil},
		{"geo.region = Asia|EU", PurposeInvite, env(us), ErrCaveat},
		{"geo.region != EU", PurposeInvite, env(us), nil},
		{"geo.region = NorthAmerica", PurposeInvite, env(us), nil},
		{"consumer = usr-alice", PurposeInvite, env(pl), nil},
		{"consumer = usr-*", PurposeInvite, env(pl), nil},
		{"consumer = grp-g|usr-bob", PurposeInvite, env(pl), ErrConsumer},
		{"consumer = grp-*|prv-*", PurposeInvite, env(pl), ErrConsumer},
		{"consumer = usr-alice", PurposeAccess, env(pl), ErrCaveat},
		{"interface = rest", PurposeAccess, env(pl), nil},
		{"interface = oneclient", PurposeAccess, env(pl), ErrCaveat},
		{"interface = rest", PurposeInvite, env(pl), ErrCaveat},
		{"service = ozw-onezone", PurposeAccess, env(pl), nil},
		{"service = ozw-*", PurposeAccess, env(pl), nil},
		{"service = opw-*|ozw-other", PurposeAccess, env(pl), ErrCaveat},
		{"service = ozw-onezone", PurposeInvite, env(pl), ErrCaveat},
		{"api = ozw/all/user.*.*:auto", PurposeAccess, env(pl), ErrCaveat},
		{"api = ozw/create/group.*.join:*", PurposeAccess, env(pl), nil},
		{"api = all/all/*.*.*:*", PurposeAccess, env(pl), nil},
		{"api = opw/all/*.*.*:*|ozw/get/*.*.*:*", PurposeAccess, env(pl), ErrCaveat},
		{"api = ozw/all/group.abc.*:private", PurposeAccess, env(pl), nil},
		{"api = all/all/*.*.*:*", PurposeInvite, env(pl), ErrCaveat},
		{"data.readonly", PurposeAccess, env(pl), ErrCaveat},
		{"data.path = abc", PurposeInvite, env(pl), ErrCaveat},
		{"authorization = none", PurposeAccess, env(pl), ErrCaveat},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s/%d", c.caveat, c.p), func(t *testing.T) {
			cav, err := ParseCaveat(c.caveat)
			if err != nil {
				t.Fatal(err)
			}
			err = cav.Check(c.p, c.env)
			if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			if err != nil && strings.Contains(err.Error(), c.caveat) && strings.Contains(c.caveat, "|") {
				t.Errorf("error text repeats the caveat: %v", err)
			}
		})
	}
}

func TestCheckInviteAndAccess(t *testing.T) {
	now := time.Now()
	future := TimeCaveat(now.Add(time.Hour))
	keys, _ := NewKeyring(testSecret, nil)
	v := &Verifier{Keys: keys}
	env := v.Env(now, "127.0.0.1", "alice")
	check := func(tok string, p Purpose) error {
		if p == PurposeInvite {
			_, err := v.VerifyInvite(tok, env)
			return err
		}
		_, err := v.VerifyAccess(tok, env)
		return err
	}
	mint := func(id Identifier, cavs ...string) string {
		s, err := Mint(testSecret, "", id, cavs...)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	named := Persistence{Named: true}
	invite := func(cavs ...string) string { return mint(InviteID(named, "bob", "g1", NewTokenID()), cavs...) }
	cases := []struct {
		name string
		tok  string
		p    Purpose
		want error
	}{
		{"plain invite", invite(), PurposeInvite, nil},
		{"invite with caveats", invite(future, "ip = 127.0.0.0/8", "consumer = usr-alice"), PurposeInvite, nil},
		{"expired invite", invite(TimeCaveat(now.Add(-time.Second))), PurposeInvite, ErrExpired},
		{"consumer other user", invite(future, "consumer = usr-carol"), PurposeInvite, ErrConsumer},
		{"consumer checked after the rest", invite("consumer = usr-carol", "ip = 10.0.0.0/8"), PurposeInvite, ErrCaveat},
		{"two consumer caveats both must hold", invite("consumer = usr-alice", "consumer = usr-carol"), PurposeInvite, ErrConsumer},
		{"space invite", mint(Identifier{Persistence: named, Subject: Subject{Kind: "usr", ID: "bob"}, Type: TokenType{Kind: TypeInvite, Code: "ujs", TargetID: "s1"}, TokenID: "t"}), PurposeInvite, ErrWrongType},
		{"access token as invite", mint(AccessID(named, "alice", "", "t")), PurposeInvite, ErrWrongType},
		{"access token", mint(AccessID(named, "alice", "", "t"), future, "interface = rest", "service = ozw-onezone", "api = ozw/create/group.*.join:*"), PurposeAccess, nil},
		{"session access token", mint(AccessID(Persistence{Generation: 3}, "alice", "s1", "t")), PurposeAccess, nil},
		{"invite as access token", invite(), PurposeAccess, ErrWrongType},
		{"provider access token", mint(Identifier{Persistence: named, Subject: Subject{Kind: "prv", ID: "p"}, Type: TokenType{Kind: TypeAccess}, TokenID: "t"}), PurposeAccess, ErrWrongType},
		{"identity token", mint(Identifier{Persistence: named, Subject: Subject{Kind: "usr", ID: "a"}, Type: TokenType{Kind: TypeIdentity}, TokenID: "t"}), PurposeAccess, ErrWrongType},
		{"expired access token", mint(AccessID(named, "alice", "", "t"), TimeCaveat(now.Add(-time.Minute))), PurposeAccess, ErrExpired},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := check(c.tok, c.p)
			if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
}

// Changing any caveat without the key must break the signature.
func TestTamperedCaveatRefused(t *testing.T) {
	keys, _ := NewKeyring(testSecret, nil)
	m, _ := MintMacaroon(testSecret, "", InviteID(Persistence{Named: true}, "bob", "g", "t"), "time < 1000", "ip = 10.0.0.0/8")
	doc := map[string]any{
		"i":   string(m.Id()),
		"c":   []map[string]string{{"i": "time < 9999999999"}, {"i": "ip = 10.0.0.0/8"}},
		"s64": base64.RawURLEncoding.EncodeToString(m.Signature()),
	}
	b, _ := json.Marshal(doc)
	if _, err := keys.Authenticate(string(b)); !errors.Is(err, ErrSignature) {
		t.Fatalf("tampered caveat: %v", err)
	}
	doc["c"] = []map[string]string{{"i": "time < 1000"}}
	b, _ = json.Marshal(doc)
	if _, err := keys.Authenticate(string(b)); !errors.Is(err, ErrSignature) {
		t.Fatalf("dropped caveat: %v", err)
	}
}

// Error texts never carry the token, its signature or the key.
func TestErrorsDoNotLeak(t *testing.T) {
	secret := []byte("super-secret-key-material")
	tok := mintInvite(t, secret, Persistence{Named: true}, "g", "time < 1")
	other, _ := NewKeyring([]byte("other"), nil)
	right, _ := NewKeyring(secret, nil)
	v := &Verifier{Keys: right}
	_, e1 := other.Authenticate(tok)
	_, e2 := v.VerifyInvite(tok, v.Env(time.Now(), "", "alice"))
	_, e3 := right.Authenticate(tok[:len(tok)-3])
	m, _ := Decode(tok)
	for _, err := range []error{e1, e2, e3} {
		if err == nil {
			t.Fatal("expected an error")
		}
		msg := err.Error()
		for _, secretText := range []string{tok, string(secret), base64.RawURLEncoding.EncodeToString(m.Signature()), fmt.Sprintf("%x", m.Signature())} {
			if strings.Contains(msg, secretText) {
				t.Fatalf("error %q leaks secret material", msg)
			}
		}
	}
}

func TestTooManyCaveats(t *testing.T) {
	keys, _ := NewKeyring(testSecret, nil)
	id := InviteID(Persistence{Named: true}, "bob", "g", "t")
	cavs := make([]string, MaxCaveats)
	for i := range cavs {
		cavs[i] = "ip = 10.0.0.0/8"
	}
	ok, err := Mint(testSecret, "", id, cavs...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Authenticate(ok); err != nil {
		t.Fatalf("%d caveats refused: %v", MaxCaveats, err)
	}
	tooMany, err := Mint(testSecret, "", id, append(cavs, "ip = 10.0.0.0/8")...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Authenticate(tooMany); KindOf(err) != KindMalformed {
		t.Fatalf("%d caveats: got %v, want malformed", MaxCaveats+1, err)
	}
}

// sameToken fails unless got is the Token want is, caveat for caveat (a
// nil and an empty caveat list are the same list).
func sameToken(t *testing.T, want, got *Token) {
	t.Helper()
	if got.Location != want.Location || got.ID != want.ID || !got.Expires.Equal(want.Expires) {
		t.Fatalf("token differs:\n got %+v\nwant %+v", *got, *want)
	}
	if len(got.Caveats) != len(want.Caveats) {
		t.Fatalf("%d caveats, want %d", len(got.Caveats), len(want.Caveats))
	}
	for i := range want.Caveats {
		if got.Caveats[i] != want.Caveats[i] {
			t.Fatalf("caveat %d: got %+v, want %+v", i, got.Caveats[i], want.Caveats[i])
		}
	}
}

// dirtyToken is a Token left over from another token, with room for
// room caveats: what a caller reusing Tokens hands AuthenticateTo.
func dirtyToken(t *testing.T, keys *Keyring, room int) *Token {
	t.Helper()
	cavs := make([]string, room)
	for i := range cavs {
		cavs[i] = fmt.Sprintf("ip = 10.%d.0.0/16", i)
	}
	old, err := keys.Authenticate(mintInvite(t, testSecret, Persistence{Generation: 3}, "old-group", cavs...))
	if err != nil {
		t.Fatal(err)
	}
	return old
}

func TestAuthenticateToReusesCaveats(t *testing.T) {
	keys, _ := NewKeyring(testSecret, nil)
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	six := []string{TimeCaveat(exp), "ip = 10.0.0.0/8", "asn = 64500", "geo.country = PL", "geo.region = EU", "consumer = usr-alice"}
	for _, tc := range []struct {
		name string
		cavs []string
		room int
	}{
		{"no caveats", nil, 8},
		{"fewer than the room", six, 8},
		{"exactly the room", six, 6},
		{"more than the room", six, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := mintInvite(t, testSecret, Persistence{Named: true}, "grp", tc.cavs...)
			want, err := keys.Authenticate(s)
			if err != nil {
				t.Fatal(err)
			}
			got := dirtyToken(t, keys, tc.room)
			array := &got.Caveats[:1][0]
			if err := keys.AuthenticateTo(got, s); err != nil {
				t.Fatal(err)
			}
			sameToken(t, want, got)
			reused := cap(got.Caveats) > 0 && &got.Caveats[:1][0] == array
			if fits := len(tc.cavs) <= tc.room; reused != fits {
				t.Fatalf("caveat array reused: %v, want %v", reused, fits)
			}
			// Only the Token's strings are new when the caveats fit.
			if len(tc.cavs) <= tc.room {
				allocs := testing.AllocsPerRun(50, func() {
					if err := keys.AuthenticateTo(got, s); err != nil {
						t.Fatal(err)
					}
				})
				if allocs != 1 {
					t.Fatalf("AuthenticateTo allocated %v times, want 1 (the strings)", allocs)
				}
			}
		})
	}
	// Errors are Authenticate's, whatever t held.
	forged := mintInvite(t, []byte("another secret entirely"), Persistence{Named: true}, "grp", six...)
	for _, s := range []string{"", "not a token", forged, strings.Repeat("A", MaxTokenSize+1)} {
		_, want := keys.Authenticate(s)
		got := keys.AuthenticateTo(dirtyToken(t, keys, 8), s)
		if want == nil || got == nil || got.Error() != want.Error() || KindOf(got) != KindOf(want) {
			t.Fatalf("AuthenticateTo(%.20q) = %v, Authenticate: %v", s, got, want)
		}
	}
}
