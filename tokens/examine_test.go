package tokens

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"gopkg.in/macaroon.v2"
)

// vectorToken returns the serialized token of the named Onedata vector.
func vectorToken(t *testing.T, prefix string) string {
	t.Helper()
	raw, err := os.ReadFile("testdata/onedata-token-vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Vectors []struct{ Name, Token string }
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	for _, v := range f.Vectors {
		if strings.HasPrefix(v.Name, prefix) {
			return v.Token
		}
	}
	t.Fatalf("no vector %q", prefix)
	return ""
}

func examineJSON(t *testing.T, tok string) string {
	t.Helper()
	e, err := Examine(tok)
	if err != nil {
		t.Fatalf("Examine: %v", err)
	}
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Onedata's own tokens come out in Onezone's shapes: every caveat kind
// of ctool's compatibility vectors, an access token bound to a session.
func TestExamineOnedataVectors(t *testing.T) {
	got := examineJSON(t, vectorToken(t, "access token, temporary generation 7"))
	want := `{"onezoneDomain":"domain.example.com","id":"1234567890example-id1234567890a","persistence":"temporary",` +
		`"subject":{"type":"user","id":"uid"},"type":{"accessToken":{"sessionId":"sessId"}},"caveats":[` +
		`{"type":"time","validUntil":8374891234},` +
		`{"type":"ip","whitelist":["172.98.11.23/32"]},` +
		`{"type":"asn","whitelist":[322]},` +
		`{"type":"geo.country","filter":"whitelist","list":["PL","FR"]},` +
		`{"type":"geo.region","filter":"whitelist","list":["Asia","EU"]},` +
		`{"scope":"identityToken"},` +
		`{"type":"service","whitelist":["ozw-onezone"]},` +
		`{"type":"consumer","whitelist":["usr-user-id","grp-group-id"]},` +
		`{"type":"interface","interface":"graphsync"},` +
		`{"type":"api","whitelist":["all/all/*.*.*:*"]},` +
		`{"type":"data.readonly"},` +
		`{"type":"data.path","whitelist":["L3NwYWNlMS9maWxlMS50eHQ=","L3NwYWNlMi9kaXIvZmlsZTIudHh0"]},` +
		`{"type":"data.objectid","whitelist":["00000000000CDBDA677569642331323323616263"]}]}`
	if got != want {
		t.Errorf("examine:\n got %s\nwant %s", got, want)
	}

	got = examineJSON(t, vectorToken(t, "invite token, group join group"))
	want = `{"onezoneDomain":"domain.example.com","id":"1234567890example-id1234567890e","persistence":"named",` +
		`"subject":{"type":"user","id":"invitation-sender"},` +
		`"type":{"inviteToken":{"groupId":"GroupId","inviteType":"groupJoinGroup","parameters":{}}},"caveats":[]}`
	if got != want {
		t.Errorf("examine:\n got %s\nwant %s", got, want)
	}
}

func TestExamineShapes(t *testing.T) {
	secret := []byte("examine-secret")
	cases := []struct {
		name string
		id   Identifier
		cavs []string
		want []string // substrings of the JSON
	}{
		{"user join group invite", InviteID(Persistence{Generation: 3}, "bob", "g1", "t1"),
			[]string{"geo.country != DE", "geo.region != EU", "ip = 10.0.0.0/8|2001:db8::1"},
			[]string{`"persistence":"temporary"`, `"id":"t1"`,
				`"type":{"inviteToken":{"groupId":"g1","inviteType":"userJoinGroup","parameters":{}}}`,
				`{"type":"geo.country","filter":"blacklist","list":["DE"]}`,
				`{"type":"geo.region","filter":"blacklist","list":["EU"]}`,
				`{"type":"ip","whitelist":["10.0.0.0/8","2001:db8::1/128"]}`}},
		{"identity token", Identifier{Persistence: Persistence{Named: true}, Subject: Subject{Kind: "prv", ID: "p1"},
			Type: TokenType{Kind: TypeIdentity}, TokenID: "t2"}, nil,
			[]string{`"subject":{"type":"oneprovider","id":"p1"}`, `"type":{"identityToken":{}}`, `"caveats":[]`}},
		{"nobody, plain access token", Identifier{Persistence: Persistence{Named: true}, Subject: Subject{Kind: "nobody"},
			Type: TokenType{Kind: TypeAccess}, TokenID: "t3"}, nil,
			[]string{`"subject":{"type":"nobody","id":null}`, `"type":{"accessToken":{}}`}},
		{"space invite target key", Identifier{Persistence: Persistence{Named: true}, Subject: Subject{Kind: "usr", ID: "u"},
			Type: TokenType{Kind: TypeInvite, Code: "ssp", TargetID: "s1", Params: "ge"}, TokenID: "t4"}, nil,
			[]string{`"type":{"inviteToken":{"inviteType":"supportSpace","parameters":{},"spaceId":"s1"}}`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tok, err := Mint(secret, "zone.example.org", c.id, c.cavs...)
			if err != nil {
				t.Fatal(err)
			}
			got := examineJSON(t, tok)
			if !strings.Contains(got, `"onezoneDomain":"zone.example.org"`) {
				t.Errorf("no location in %s", got)
			}
			for _, w := range c.want {
				if !strings.Contains(got, w) {
					t.Errorf("%s\nmissing %s", got, w)
				}
			}
		})
	}
}

// Caveats the package does not understand are listed with their text,
// never dropped, and in their place in the list.
func TestExamineListsUnknownCaveats(t *testing.T) {
	id := InviteID(Persistence{Named: true}, "bob", "g1", "t1")
	m, err := macaroon.New([]byte("k"), []byte(id.String()), "oz", macaroon.V1)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"time < 100", "color = blue", "ip = not-an-ip", "data.future = x", "asn = 7"} {
		if err := m.AddFirstPartyCaveat([]byte(c)); err != nil {
			t.Fatal(err)
		}
	}
	tok, err := Encode(m, FormatOnedata)
	if err != nil {
		t.Fatal(err)
	}
	got := examineJSON(t, tok)
	want := `"caveats":[{"type":"time","validUntil":100},{"type":"unknown","caveat":"color = blue"},` +
		`{"type":"unknown","caveat":"ip = not-an-ip"},{"type":"unknown","caveat":"data.future = x"},{"type":"asn","whitelist":[7]}]`
	if !strings.Contains(got, want) {
		t.Errorf("got %s\nwant %s", got, want)
	}
}

func TestExamineRefuses(t *testing.T) {
	good, err := Mint([]byte("k"), "", InviteID(Persistence{Named: true}, "bob", "g1", "t1"))
	if err != nil {
		t.Fatal(err)
	}
	unknownCode, err := Mint([]byte("k"), "", Identifier{Persistence: Persistence{Named: true}, Subject: Subject{Kind: "usr", ID: "u"},
		Type: TokenType{Kind: TypeInvite, Code: "zzz", TargetID: "x"}, TokenID: "t"})
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		tok  string
		kind Kind
	}{
		"empty":             {"", KindMalformed},
		"not a macaroon":    {"hello", KindMalformed},
		"trailing bytes":    {good + "MDAx", KindMalformed},
		"too large":         {strings.Repeat("A", MaxTokenSize+1), KindTooLarge},
		"legacy identifier": {vectorToken(t, "the same example token"), KindMalformed},
		"unknown invite":    {unknownCode, KindMalformed},
		"corrupted":         {vectorToken(t, "example token of the join-group"), KindMalformed},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			e, err := Examine(c.tok)
			if err == nil {
				t.Fatalf("examined: %+v", e)
			}
			var te *Error
			if !errors.As(err, &te) || te.Kind != c.kind {
				t.Errorf("error %v, want kind %v", err, c.kind)
			}
		})
	}
}

func TestInviteTypeName(t *testing.T) {
	if n, ok := InviteTypeName("ujg"); !ok || n != "userJoinGroup" {
		t.Errorf("ujg: %q %v", n, ok)
	}
	if _, ok := InviteTypeName("zzz"); ok {
		t.Error("zzz has a name")
	}
}
