package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddy-groupjoin/caddy-groupjoin/internal/mmdbtest"
	"github.com/caddy-groupjoin/caddy-groupjoin/tokens"
)

const testKey = "cli-test-KEY-9f3e1c77d2"

// fixed clock for reproducible caveats.
var testNow = time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)

type result struct {
	code           int
	stdout, stderr string
}

type harness struct {
	t     *testing.T
	env   map[string]string
	now   time.Time
	stdin string
	// secrets that must never be printed
	secrets []string
}

func newHarness(t *testing.T) *harness {
	return &harness{t: t, env: map[string]string{}, now: testNow, secrets: []string{testKey}}
}

func (h *harness) run(args ...string) result {
	h.t.Helper()
	var out, errb bytes.Buffer
	r := &Runner{
		Stdin:  strings.NewReader(h.stdin),
		Stdout: &out,
		Stderr: &errb,
		Getenv: func(k string) string { return h.env[k] },
		Now:    func() time.Time { return h.now },
	}
	code := r.Run(args)
	res := result{code, out.String(), errb.String()}
	for _, s := range h.secrets {
		if strings.Contains(res.stdout, s) || strings.Contains(res.stderr, s) {
			h.t.Fatalf("%q printed a secret:\nstdout: %s\nstderr: %s", args, res.stdout, res.stderr)
		}
	}
	return res
}

// must runs and expects exit code want.
func (h *harness) must(want int, args ...string) result {
	h.t.Helper()
	res := h.run(args...)
	if res.code != want {
		h.t.Fatalf("%q: exit %d, want %d\nstdout: %s\nstderr: %s", args, res.code, want, res.stdout, res.stderr)
	}
	return res
}

// mint mints and returns the token (one line on stdout).
func (h *harness) mint(args ...string) string {
	h.t.Helper()
	res := h.must(0, append([]string{"mint"}, args...)...)
	tok := strings.TrimSuffix(res.stdout, "\n")
	if tok == "" || strings.ContainsAny(tok, "\n ") {
		h.t.Fatalf("mint printed %q, want one line", res.stdout)
	}
	return tok
}

func (h *harness) inspectJSON(want int, args ...string) *Report {
	h.t.Helper()
	res := h.must(want, append([]string{"inspect", "--json"}, args...)...)
	var rep Report
	if err := json.Unmarshal([]byte(res.stdout), &rep); err != nil {
		h.t.Fatalf("inspect --json: %v\n%s", err, res.stdout)
	}
	return &rep
}

func caveatsOf(t *testing.T, tok string) (tokens.Identifier, []string) {
	t.Helper()
	m, err := tokens.Decode(tok)
	if err != nil {
		t.Fatalf("decode minted token: %v", err)
	}
	id, err := tokens.ParseIdentifier(string(m.Id()))
	if err != nil {
		t.Fatal(err)
	}
	var cavs []string
	for _, c := range m.Caveats() {
		cavs = append(cavs, string(c.Id))
	}
	return id, cavs
}

func TestMintInspectInviteRoundTrip(t *testing.T) {
	h := newHarness(t)
	tok := h.mint("invite", "--group", "grp-42", "--inviter", "bob", "--consumer", "alice", "--key", testKey)

	// Onedata's form: what tokens.Decode reads first, and V1.
	if got := detectFormat(tok); got != "onedata" {
		t.Errorf("minted format %q", got)
	}
	id, cavs := caveatsOf(t, tok)
	if !id.IsGroupInvite() || id.Type.TargetID != "grp-42" || id.Subject.String() != "usr-bob" || id.Persistence.String() != "tmp-0" {
		t.Errorf("identifier %s", id)
	}
	wantExp := testNow.Add(DefaultInviteTTL).Unix()
	if want := []string{"time < " + strconv.FormatInt(wantExp, 10), "consumer = usr-alice"}; strings.Join(cavs, ";") != strings.Join(want, ";") {
		t.Errorf("caveats %q, want %q", cavs, want)
	}

	// Text report, verified.
	res := h.must(0, "inspect", "--key", testKey, "--user", "alice", tok)
	for _, want := range []string{
		"onedata", "location:       onezone", id.String(), "grp-42", "usr-bob", "ujg", id.TokenID,
		"[time] time < ", "2030-05-07T07:08:09Z (not passed", "[consumer] consumer = usr-alice",
		"signature:      valid (default key)", "checked as:     invite", "result:         OK",
	} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, res.stdout)
		}
	}
	if strings.Contains(res.stdout, tok) || strings.Contains(res.stderr, tok) {
		t.Error("inspect printed the whole token")
	}

	// JSON report.
	rep := h.inspectJSON(0, "--key", testKey, "--user", "usr-alice", tok)
	if !rep.Decoded || rep.Valid == nil || !*rep.Valid || rep.Signature != "valid" || rep.CheckedAs != "invite" {
		t.Errorf("report %+v", rep)
	}
	ir := rep.Identifier
	if ir.Version != 2 || ir.Persistence != "tmp-0" || ir.Generation == nil || *ir.Generation != 0 ||
		ir.Subject != "usr-bob" || ir.Kind != "invite" || ir.InviteCode != "ujg" || ir.InviteTarget != "grp-42" || ir.TokenID != id.TokenID {
		t.Errorf("identifier report %+v", ir)
	}
	if len(rep.Caveats) != 2 || rep.Caveats[0].Kind != "time" || rep.Caveats[0].Expires != "2030-05-07T07:08:09Z" ||
		rep.Caveats[0].Expired == nil || *rep.Caveats[0].Expired || rep.Caveats[1].Kind != "consumer" || rep.Caveats[1].Check != "ok" {
		t.Errorf("caveats %+v", rep.Caveats)
	}

	// Without a key: decoded, not verified, exit 0.
	rep = h.inspectJSON(0, tok)
	if rep.Valid != nil || rep.Signature != "not checked" || rep.Identifier.InviteTarget != "grp-42" {
		t.Errorf("keyless report %+v", rep)
	}
	res = h.must(0, "inspect", tok)
	if !strings.Contains(res.stdout, "not verified") {
		t.Errorf("keyless inspect:\n%s", res.stdout)
	}

	// Another user: the consumer caveat fails.
	rep = h.inspectJSON(1, "--key", testKey, "--user", "mallory", tok)
	if rep.FailedKind != "consumer" || rep.FailedCaveat != 2 || rep.Caveats[1].Check != "fails" || !strings.Contains(rep.Error, "not meant for this user") {
		t.Errorf("consumer report %+v", rep)
	}
}

func TestMintInspectAccessRoundTrip(t *testing.T) {
	h := newHarness(t)
	h.env[DefaultKeyEnv] = testKey
	tok := h.mint("access", "--user", "alice", "--session", "s1", "--ip", "192.0.2.0/24")
	id, cavs := caveatsOf(t, tok)
	if id.String() != "2/tmp-0/usr-alice/act:s1/"+id.TokenID {
		t.Errorf("identifier %s", id)
	}
	if want := "time < " + strconv.FormatInt(testNow.Add(time.Hour).Unix(), 10); len(cavs) != 2 || cavs[0] != want || cavs[1] != "ip = 192.0.2.0/24" {
		t.Errorf("caveats %q", cavs)
	}

	rep := h.inspectJSON(0, "--ip", "192.0.2.7", tok)
	if rep.Valid == nil || !*rep.Valid || rep.CheckedAs != "access" || rep.Identifier.SessionID != "s1" || rep.Identifier.Kind != "access" {
		t.Errorf("report %+v %+v", rep, rep.Identifier)
	}
	// From another address the ip caveat fails.
	rep = h.inspectJSON(1, "--ip", "198.51.100.1", tok)
	if rep.FailedKind != "ip" || rep.FailedCaveat != 2 {
		t.Errorf("report %+v", rep)
	}
	res := h.must(1, "inspect", "--ip", "198.51.100.1", tok)
	if !strings.Contains(res.stdout, "FAILS") || !strings.Contains(res.stdout, "(ip)") {
		t.Errorf("text report:\n%s", res.stdout)
	}
	// Named access token with no time caveat.
	tok = h.mint("access", "--user", "alice", "--persistence", "nmd", "--ttl", "0", "--token-id", "tok-1")
	id, cavs = caveatsOf(t, tok)
	if id.String() != "2/nmd/usr-alice/act/tok-1" || len(cavs) != 0 {
		t.Errorf("identifier %s caveats %q", id, cavs)
	}
	rep = h.inspectJSON(0, tok)
	if rep.Expires != "" || rep.Expired || rep.Identifier.Persistence != "nmd" || !rep.Identifier.Named {
		t.Errorf("report %+v", rep)
	}
}

func TestWrongKey(t *testing.T) {
	h := newHarness(t)
	h.secrets = append(h.secrets, "other-key-5521")
	tok := h.mint("invite", "--group", "g1", "--inviter", "bob", "--key", testKey)
	res := h.must(1, "inspect", "--key", "other-key-5521", tok)
	if !strings.Contains(res.stdout, "signature:      invalid") || !strings.Contains(res.stdout, "INVALID") {
		t.Errorf("output:\n%s", res.stdout)
	}
	rep := h.inspectJSON(1, "--key", "other-key-5521", tok)
	if rep.Signature != "invalid" || rep.Valid == nil || *rep.Valid || rep.Identifier.InviteTarget != "g1" {
		t.Errorf("report %+v", rep)
	}
}

func TestExpired(t *testing.T) {
	h := newHarness(t)
	h.now = testNow.Add(-2 * time.Hour)
	tok := h.mint("invite", "--group", "g1", "--inviter", "bob", "--ttl", "1h", "--key", testKey)
	h.now = testNow
	res := h.must(1, "inspect", "--key", testKey, tok)
	for _, want := range []string{"[time]", "2030-05-06T06:08:09Z (passed, 1h0m0s ago)", "token has expired (time)", "caveat 1"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, res.stdout)
		}
	}
	rep := h.inspectJSON(1, "--key", testKey, tok)
	if !rep.Expired || rep.FailedKind != "time" || rep.FailedCaveat != 1 || rep.Caveats[0].Expired == nil || !*rep.Caveats[0].Expired {
		t.Errorf("report %+v", rep)
	}
	// Without a key it only decodes, but still says the expiry has passed.
	rep = h.inspectJSON(0, tok)
	if !rep.Expired || rep.Valid != nil {
		t.Errorf("keyless report %+v", rep)
	}
	// A raw time caveat in the past behaves the same.
	tok = h.mint("access", "--user", "u1", "--ttl", "0", "--caveat", "time < 1000", "--key", testKey)
	rep = h.inspectJSON(1, "--key", testKey, tok)
	if rep.FailedKind != "time" || rep.Expires != "1970-01-01T00:16:40Z" {
		t.Errorf("report %+v", rep)
	}
}

func TestGenerations(t *testing.T) {
	h := newHarness(t)
	h.secrets = append(h.secrets, "gen3-secret-aaa", "gen5-secret-bbb")
	tok := h.mint("invite", "--group", "g1", "--inviter", "bob", "--generation", "3", "--key", "gen3-secret-aaa")
	id, _ := caveatsOf(t, tok)
	if id.Persistence.String() != "tmp-3" {
		t.Fatalf("persistence %s", id.Persistence)
	}
	if tok2 := h.mint("invite", "--group", "g1", "--inviter", "bob", "--persistence", "tmp-3", "--key", "gen3-secret-aaa"); tok2 == "" {
		t.Fatal("tmp-3")
	}

	rep := h.inspectJSON(0, "--generation-key", "3=gen3-secret-aaa", "--generation-key", "5=gen5-secret-bbb", tok)
	if rep.Valid == nil || !*rep.Valid || rep.Key != "key of generation 3" {
		t.Errorf("report %+v", rep)
	}
	// Without generation keys the default key verifies everything.
	rep = h.inspectJSON(0, "--key", "gen3-secret-aaa", tok)
	if rep.Valid == nil || !*rep.Valid || rep.Key != "default key" {
		t.Errorf("report %+v", rep)
	}
	// Generation 3 below the lowest configured one: revoked.
	rep = h.inspectJSON(1, "--key", "gen3-secret-aaa", "--generation-key", "5=gen5-secret-bbb", tok)
	if rep.Signature != "not checked" || !strings.Contains(rep.Error, "revoked") {
		t.Errorf("report %+v", rep)
	}
	// A generation with no key.
	rep = h.inspectJSON(1, "--generation-key", "2=gen5-secret-bbb", tok)
	if !strings.Contains(rep.Error, "no key") {
		t.Errorf("report %+v", rep)
	}
	// The wrong secret for generation 3.
	rep = h.inspectJSON(1, "--generation-key", "3=gen5-secret-bbb", tok)
	if rep.Signature != "invalid" {
		t.Errorf("report %+v", rep)
	}
}

func TestCaveatFlags(t *testing.T) {
	exp := func(d time.Duration) string { return "time < " + strconv.FormatInt(testNow.Add(d).Unix(), 10) }
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"invite default ttl", []string{"invite"}, []string{exp(24 * time.Hour)}},
		{"access default ttl", []string{"access"}, []string{exp(time.Hour)}},
		{"no ttl", []string{"invite", "--ttl", "0"}, nil},
		{"ttl days", []string{"invite", "--ttl", "7d"}, []string{exp(7 * 24 * time.Hour)}},
		{"ttl days and hours", []string{"invite", "--ttl", "1d12h"}, []string{exp(36 * time.Hour)}},
		{"ttl minutes", []string{"access", "--ttl=90m"}, []string{exp(90 * time.Minute)}},
		{"consumer", []string{"invite", "--ttl", "0", "--consumer", "alice"}, []string{"consumer = usr-alice"}},
		{"consumers", []string{"invite", "--ttl", "0", "--consumer", "alice,bob", "--consumer", "grp-admins", "--consumer", "*"},
			[]string{"consumer = usr-alice|usr-bob|grp-admins|usr-*"}},
		{"ip", []string{"invite", "--ttl", "0", "--ip", "10.0.0.0/8, 192.168.1.1", "--ip", "2001:db8::/32"},
			[]string{"ip = 10.0.0.0/8|192.168.1.1|2001:db8::/32"}},
		{"country", []string{"invite", "--ttl", "0", "--country", "pl,FR"}, []string{"geo.country = PL|FR"}},
		{"not country", []string{"invite", "--ttl", "0", "--not-country", "RU"}, []string{"geo.country != RU"}},
		{"region", []string{"invite", "--ttl", "0", "--region", "eu,europe,NorthAmerica"}, []string{"geo.region = EU|Europe|NorthAmerica"}},
		{"not region", []string{"access", "--ttl", "0", "--not-region", "Asia"}, []string{"geo.region != Asia"}},
		{"asn", []string{"access", "--ttl", "0", "--asn", "123,64512"}, []string{"asn = 123|64512"}},
		{"raw caveats", []string{"access", "--ttl", "0", "--caveat", "interface = rest", "--caveat", "api = ozw/create/group.*.join:*"},
			[]string{"interface = rest", "api = ozw/create/group.*.join:*"}},
		{"everything, in order", []string{"invite", "--ttl", "1h", "--caveat", "ip = 127.0.0.1", "--region", "EU", "--country", "PL",
			"--asn", "1", "--ip", "10.0.0.0/8", "--consumer", "alice"},
			[]string{exp(time.Hour), "consumer = usr-alice", "ip = 10.0.0.0/8", "asn = 1", "geo.country = PL", "geo.region = EU", "ip = 127.0.0.1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			args := tc.args
			if args[0] == "invite" {
				args = append(args, "--group", "g1", "--inviter", "bob")
			} else {
				args = append(args, "--user", "alice")
			}
			tok := h.mint(append(args, "--key", testKey)...)
			_, cavs := caveatsOf(t, tok)
			if strings.Join(cavs, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("caveats %q, want %q", cavs, tc.want)
			}
			// Every minted caveat is one inspect understands.
			rep := h.inspectJSON(0, tok)
			for _, c := range rep.Caveats {
				if c.Error != "" || c.Kind == "unknown" {
					t.Errorf("caveat %+v", c)
				}
			}
		})
	}
}

func TestMintJSONAndOptions(t *testing.T) {
	h := newHarness(t)
	res := h.must(0, "mint", "invite", "--group", "g1", "--inviter", "bob", "--key", testKey, "--json",
		"--token-id", "my-token.1", "--location", "zone.example.org", "--persistence", "nmd", "--ttl", "2h")
	var out struct {
		Token, Identifier, TokenID, Expires string
		Caveats                             []string
	}
	if err := json.Unmarshal([]byte(res.stdout), &out); err != nil {
		t.Fatal(err)
	}
	if out.Identifier != "2/nmd/usr-bob/ujg:g1:/my-token.1" || out.Expires != "2030-05-06T09:08:09Z" || len(out.Caveats) != 1 {
		t.Errorf("json %+v", out)
	}
	m, err := tokens.Decode(out.Token)
	if err != nil || m.Location() != "zone.example.org" {
		t.Fatalf("token: %v", err)
	}
	// The field is token_id in JSON.
	if !strings.Contains(res.stdout, `"token_id": "my-token.1"`) {
		t.Errorf("json:\n%s", res.stdout)
	}
}

func TestKeySources(t *testing.T) {
	h := newHarness(t)
	keys := []string{"flag-key-111", "env-key-222", "file-key-333", "default-key-444"}
	h.secrets = append(h.secrets, keys...)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key")
	if err := os.WriteFile(keyFile, []byte("file-key-333\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h.env["MY_KEY"] = "env-key-222"
	h.env[DefaultKeyEnv] = "default-key-444"
	base := []string{"invite", "--group", "g1", "--inviter", "bob"}
	for _, tc := range []struct {
		args []string
		key  string
	}{
		{[]string{"--key", "flag-key-111", "--key-env", "MY_KEY", "--key-file", keyFile}, "flag-key-111"},
		{[]string{"--key-env", "MY_KEY", "--key-file", keyFile}, "env-key-222"},
		{[]string{"--key-file", keyFile}, "file-key-333"},
		{nil, "default-key-444"},
	} {
		tok := h.mint(append(base, tc.args...)...)
		for _, k := range keys {
			want := 1
			if k == tc.key {
				want = 0
			}
			h.must(want, "inspect", "--key", k, tok)
		}
	}
	// A key flag given empty (say --key "$UNSET") never falls back to
	// $GROUP_JOIN_KEY.
	h.must(2, append(base, "--key", "")...)
	h.must(2, append(base, "--key-env", "UNSET_VAR")...)
	// inspect reads keys the same way.
	tok := h.mint(append(base, "--key-file", keyFile)...)
	h.must(0, "inspect", "--key-file", keyFile, tok)
	h.must(1, "inspect", tok) // $GROUP_JOIN_KEY is another key
	// Only one trailing newline is trimmed: "\n\n" leaves a different key.
	if err := os.WriteFile(keyFile, []byte("file-key-333\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h.must(1, "inspect", "--key-file", keyFile, tok)
}

func TestStdin(t *testing.T) {
	h := newHarness(t)
	tok := h.mint("invite", "--group", "g-stdin", "--inviter", "bob", "--key", testKey)
	h.stdin = tok + "\n"
	for _, args := range [][]string{{"inspect", "--key", testKey}, {"inspect", "--key", testKey, "-"}, {"inspect", "-", "--key", testKey}} {
		res := h.must(0, args...)
		if !strings.Contains(res.stdout, "g-stdin") {
			t.Errorf("%q:\n%s", args, res.stdout)
		}
	}
	// A request body.
	h.stdin = `{"token": "` + tok + `"}`
	rep := h.inspectJSON(0, "--key", testKey)
	if rep.Source != "request body" || rep.Identifier.InviteTarget != "g-stdin" {
		t.Errorf("report %+v", rep)
	}
	// Empty stdin is a usage error.
	h.stdin = " \n"
	res := h.must(2, "inspect")
	if !strings.Contains(res.stderr, "no token") {
		t.Errorf("stderr: %s", res.stderr)
	}
}

func TestOtherForms(t *testing.T) {
	h := newHarness(t)
	tok := h.mint("invite", "--group", "g1", "--inviter", "bob", "--key", testKey)
	m, err := tokens.Decode(tok)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		f      tokens.Format
		format string
		vers   int
	}{
		{tokens.FormatBase64V2, "base64", 2},
		{tokens.FormatJSONV1, "json", 1},
		{tokens.FormatJSONV2, "json", 2},
	} {
		s, err := tokens.Encode(m, tc.f)
		if err != nil {
			t.Fatal(err)
		}
		rep := h.inspectJSON(0, "--key", testKey, s)
		if rep.Format != tc.format || rep.MacaroonVersion != tc.vers || rep.Valid == nil || !*rep.Valid {
			t.Errorf("%s: report %+v", tc.format, rep)
		}
	}
}

func TestGeo(t *testing.T) {
	dir := t.TempDir()
	country, err := mmdbtest.WriteCountryDB(dir, map[string]string{"192.0.2.0/24": "PL", "198.51.100.0/24": "US"})
	if err != nil {
		t.Fatal(err)
	}
	asn, err := mmdbtest.WriteASNDB(dir, map[string]uint32{"192.0.2.0/24": 64512})
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t)
	tok := h.mint("invite", "--group", "g1", "--inviter", "bob", "--region", "EU", "--asn", "64512", "--key", testKey)
	geo := []string{"--geoip-db", country, "--asn-db", asn, "--key", testKey}
	h.inspectJSON(0, append(geo, "--ip", "192.0.2.9", tok)...)
	rep := h.inspectJSON(1, append(geo, "--ip", "198.51.100.9", tok)...)
	if rep.FailedKind != "asn" {
		t.Errorf("report %+v", rep)
	}
	// Without databases, asn and geo caveats fail and say so.
	rep = h.inspectJSON(1, "--key", testKey, "--ip", "192.0.2.9", tok)
	if !strings.Contains(rep.Error, "no ASN database") {
		t.Errorf("report %+v", rep)
	}
	res := h.must(2, "inspect", "--geoip-db", filepath.Join(dir, "missing.mmdb"), tok)
	if !strings.Contains(res.stderr, "missing.mmdb") {
		t.Errorf("stderr: %s", res.stderr)
	}
}

// The vectors are Onedata's own compatibility tokens.
func TestOnedataVectors(t *testing.T) {
	b, err := os.ReadFile("../../tokens/testdata/onedata-token-vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Vectors []struct {
			Name, Secret, Token, Location, Identifier string
			Caveats                                   []string
			Valid                                     *bool `json:"signature_valid"`
			Decodable                                 *bool
		}
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Vectors) < 6 {
		t.Fatalf("%d vectors", len(doc.Vectors))
	}
	for _, v := range doc.Vectors {
		t.Run(v.Name, func(t *testing.T) {
			h := newHarness(t)
			if v.Decodable != nil && !*v.Decodable {
				res := h.must(1, "inspect", v.Token)
				if !strings.Contains(res.stderr, "malformed") || strings.Contains(res.stderr, v.Token) {
					t.Errorf("stderr: %s", res.stderr)
				}
				rep := h.inspectJSON(1, v.Token)
				if rep.Decoded || rep.Error == "" {
					t.Errorf("report %+v", rep)
				}
				return
			}
			res := h.must(0, "inspect", v.Token)
			if !strings.Contains(res.stdout, "identifier:     "+v.Identifier+"\n") || !strings.Contains(res.stdout, v.Location) {
				t.Errorf("output:\n%s", res.stdout)
			}
			rep := h.inspectJSON(0, v.Token)
			if rep.Identifier.Raw != v.Identifier || rep.Location != v.Location || len(rep.Caveats) != len(v.Caveats) {
				t.Fatalf("report %+v", rep)
			}
			for i, c := range rep.Caveats {
				if c.Text != v.Caveats[i] || c.Kind == "unknown" || c.Error != "" {
					t.Errorf("caveat %+v, want %q", c, v.Caveats[i])
				}
			}
			wantFormat := "onedata"
			if !strings.Contains(v.Identifier, "/") {
				wantFormat = "base64" // the repaired API-page example
				if !rep.Identifier.Legacy || !rep.Expired {
					t.Errorf("legacy report %+v %+v", rep, rep.Identifier)
				}
			}
			if rep.Format != wantFormat {
				t.Errorf("format %q, want %q", rep.Format, wantFormat)
			}
			if v.Secret == "" {
				return
			}
			// With the key: the signature verifies. The invites without
			// caveats are valid as their own type's join (gjg, ujs); the
			// others carry caveats that fail here (an ip, a data caveat),
			// so the check fails (exit 1), and says why.
			h.secrets = append(h.secrets, v.Secret)
			if len(v.Caveats) == 0 && strings.Contains(v.Identifier, "/") {
				rep = h.inspectJSON(0, "--key", v.Secret, v.Token)
				if rep.Signature != "valid" || rep.Valid == nil || !*rep.Valid || rep.CheckedAs != "invite" {
					t.Errorf("verified report %+v", rep)
				}
			} else {
				rep = h.inspectJSON(1, "--key", v.Secret, v.Token)
				if rep.Signature != "valid" || rep.Valid == nil || *rep.Valid || rep.Error == "" {
					t.Errorf("verified report %+v", rep)
				}
			}
			rep = h.inspectJSON(1, "--key", "not-"+v.Secret, v.Token)
			if rep.Signature != "invalid" {
				t.Errorf("wrong-key report %+v", rep)
			}
		})
	}
}

// Every join's invite type is minted with its target flag, and inspect
// verifies it as that type's invite.
func TestMintInviteTypes(t *testing.T) {
	h := newHarness(t)
	for _, typ := range tokens.InviteTypes() {
		if !typ.Join {
			continue
		}
		flag := "--" + strings.ReplaceAll(typ.Target.String(), "_", "-")
		tok := h.mint("invite", "--type", typ.Name, flag, "x1", "--inviter", "bob", "--key", testKey)
		rep := h.inspectJSON(0, "--key", testKey, tok)
		if rep.Identifier.InviteCode != typ.Code || rep.Identifier.InviteTarget != "x1" || rep.Valid == nil || !*rep.Valid {
			t.Errorf("%s: %+v %+v", typ.Name, rep, rep.Identifier)
		}
		out := h.must(0, "inspect", tok).stdout
		if !strings.Contains(out, "invite, "+typ.Name) || !strings.Contains(out, "x1 ("+typ.Target.String()+")") {
			t.Errorf("%s: inspect says\n%s", typ.Name, out)
		}
	}
}

func TestBadInput(t *testing.T) {
	h := newHarness(t)
	tok := h.mint("invite", "--group", "g1", "--inviter", "bob", "--key", testKey)
	invite := []string{"mint", "invite", "--group", "g1", "--inviter", "bob"}
	with := func(extra ...string) []string { return append(append([]string(nil), invite...), extra...) }
	cases := []struct {
		name  string
		args  []string
		code  int
		inErr string
	}{
		{"no key", invite, 2, "no key"},
		{"unknown type", with("--type", "userJoinEverything", "--key", testKey), 2, `--type: "userJoinEverything" is not an invite a join consumes`},
		{"type no join consumes", with("--type", "supportSpace", "--key", testKey), 2, "groupJoinAtmInventory"},
		{"target of another type", with("--type", "userJoinSpace", "--key", testKey), 2, "--group: a userJoinSpace invite names its target with --space"},
		{"no target", []string{"mint", "invite", "--type", "groupJoinCluster", "--inviter", "bob", "--key", testKey}, 2, "--cluster is required (the cluster to join)"},
		{"bad target", []string{"mint", "invite", "--type", "userJoinAtmInventory", "--atm-inventory", "a/b", "--inviter", "bob", "--key", testKey}, 2, `--atm-inventory: "a/b" is not a valid id`},
		{"key-env unset", with("--key-env", "NOPE"), 2, "NOPE is unset or empty"},
		{"key-file missing", with("--key-file", "/nonexistent/key"), 2, "--key-file"},
		{"empty key", with("--key", ""), 2, "--key is empty"},
		{"empty key-env", with("--key-env", ""), 2, "--key-env needs"},
		{"empty key-file", with("--key-file", ""), 2, "--key-file needs"},
		{"empty key with default set", with("--key=", "--key-env", "MY"), 2, "--key is empty"},
		{"bad ttl", with("--key", testKey, "--ttl", "5x"), 2, "--ttl"},
		{"negative ttl", with("--key", testKey, "--ttl", "-1h"), 2, "negative"},
		{"empty ttl", with("--key", testKey, "--ttl", ""), 2, "--ttl"},
		{"unknown flag", with("--key", testKey, "--bogus"), 2, "flag provided but not defined: -bogus"},
		{"bad ip", with("--key", testKey, "--ip", "10.0.0.0/8,300.1.1.1"), 2, `--ip: "300.1.1.1"`},
		{"empty ip item", with("--key", testKey, "--ip", "10.0.0.0/8,"), 2, "empty list item"},
		{"bad country", with("--key", testKey, "--country", "Poland"), 2, "--country"},
		{"bad region", with("--key", testKey, "--region", "Mars"), 2, "--region"},
		{"bad asn", with("--key", testKey, "--asn", "AS123"), 2, "--asn"},
		{"bad consumer", with("--key", testKey, "--consumer", "a b"), 2, "--consumer"},
		{"bad caveat", with("--key", testKey, "--caveat", "color = blue"), 2, `--caveat #1 "color = blue"`},
		{"bad caveat syntax", with("--key", testKey, "--caveat", "time<5"), 2, "--caveat"},
		{"missing group", []string{"mint", "invite", "--inviter", "bob", "--key", testKey}, 2, "--group is required"},
		{"missing inviter", []string{"mint", "invite", "--group", "g", "--key", testKey}, 2, "--inviter is required"},
		{"bad group", []string{"mint", "invite", "--group", "g/1", "--inviter", "bob", "--key", testKey}, 2, "--group"},
		{"missing user", []string{"mint", "access", "--key", testKey}, 2, "--user is required"},
		{"nmd with generation", with("--key", testKey, "--persistence", "nmd", "--generation", "2"), 2, "--generation"},
		{"bad persistence", with("--key", testKey, "--persistence", "forever"), 2, "--persistence"},
		{"bad generation", with("--key", testKey, "--generation", "-1"), 2, "-generation"},
		{"positional to mint", with("--key", testKey, "extra"), 2, "unexpected argument"},
		{"no subcommand", []string{"mint"}, 2, "Usage: caddy group-join mint"},
		{"unknown mint kind", []string{"mint", "space"}, 2, `unknown command "space"`},
		{"unknown command", []string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{"no command", nil, 2, "Usage: caddy group-join"},
		{"garbage token", []string{"inspect", "garbage!!"}, 1, "token is malformed"},
		{"garbage token with key", []string{"inspect", "--key", testKey, "MDAxZ"}, 1, "token is malformed"},
		{"inspect bad ip", []string{"inspect", "--key", testKey, "--ip", "10.0.0.0/8", tok}, 2, "--ip"},
		{"inspect two tokens", []string{"inspect", tok, tok}, 2, "too many arguments"},
		{"inspect unknown flag", []string{"inspect", "--frobnicate", tok}, 2, "-frobnicate"},
		{"inspect bad generation key", []string{"inspect", "--generation-key", "three=" + testKey, tok}, 2, "--generation-key #1"},
		{"inspect generation key no secret", []string{"inspect", "--generation-key", "3=", tok}, 2, "empty"},
		{"inspect generation key twice", []string{"inspect", "--generation-key", "3=a", "--generation-key", "3=b", tok}, 2, "twice"},
		{"inspect key-env unset", []string{"inspect", "--key-env", "NOPE", tok}, 2, "NOPE"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := h.must(tc.code, tc.args...)
			if !strings.Contains(res.stderr, tc.inErr) {
				t.Errorf("stderr lacks %q:\n%s", tc.inErr, res.stderr)
			}
			if strings.Contains(res.stderr, tok) || strings.Contains(res.stdout, tok) {
				t.Error("the whole token was printed")
			}
			if tc.code == 2 && res.stdout != "" {
				t.Errorf("stdout on a usage error: %s", res.stdout)
			}
		})
	}
}

// The key must never be printed, on any path: success, failure, JSON,
// usage errors, and secrets in --generation-key values that do not parse.
func TestKeyNeverPrinted(t *testing.T) {
	h := newHarness(t) // run() fails the test if testKey shows up anywhere
	h.secrets = append(h.secrets, "Zsecret-in-env-77")
	h.env["K"] = "Zsecret-in-env-77"
	keyFile := filepath.Join(t.TempDir(), "k")
	if err := os.WriteFile(keyFile, []byte(testKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tok := h.mint("invite", "--group", "g1", "--inviter", "bob", "--key", testKey)
	tokEnv := h.mint("access", "--user", "u", "--key-env", "K")
	for _, args := range [][]string{
		{"inspect", "--key", testKey, tok},
		{"inspect", "--json", "--key", testKey, tok},
		{"inspect", "--key-file", keyFile, "--json", tok},
		{"inspect", "--key-env", "K", tok},
		{"inspect", "--key-env", "K", "--json", tokEnv},
		{"inspect", "--key", testKey, "--user", "x", "--ip", "1.2.3.4", tok},
		{"inspect", "--generation-key", testKey, tok},
		{"inspect", "--generation-key", "x=" + testKey, tok},
		{"inspect", "--generation-key", "0=" + testKey, tok},
		{"inspect", "--key", testKey, "--bogus", tok},
		{"inspect", "--key", testKey, "--ip", "bad", tok},
		{"inspect", "--key", testKey, "--json", "garbage"},
		{"mint", "invite", "--key", testKey},
		{"mint", "invite", "--key", testKey, "--group", "g", "--inviter", "b", "--ttl", "x"},
		{"mint", "invite", "--key", testKey, "--group", "g", "--inviter", "b", "--caveat", "nope"},
		{"mint", "invite", "--key", testKey, "--group", "g", "--inviter", "b", "--ip", "nope"},
		{"mint", "access", "--key", testKey, "--user", "u", "--caveat", "consumer = usr-x"},
		{"mint", "invite", "--key", testKey, "--group", "g", "--inviter", "b", "--help"},
		{"mint", "invite", "--key", testKey, "--group", "g", "--inviter", "b", "extra-arg"},
	} {
		h.run(args...)
	}
}

func TestMintWarnings(t *testing.T) {
	h := newHarness(t)
	res := h.must(0, "mint", "access", "--user", "u", "--key", testKey, "--caveat", "consumer = usr-x", "--caveat", "interface = rest")
	if !strings.Contains(res.stderr, `warning: caveat 2 "consumer = usr-x"`) || strings.Contains(res.stderr, "interface") {
		t.Errorf("stderr: %s", res.stderr)
	}
	res = h.must(0, "mint", "invite", "--group", "g", "--inviter", "b", "--key", testKey, "--caveat", "service = ozw-onezone", "--consumer", "a")
	if !strings.Contains(res.stderr, `warning: caveat 3 "service = ozw-onezone"`) || strings.Contains(res.stderr, "consumer") {
		t.Errorf("stderr: %s", res.stderr)
	}
	res = h.must(0, "mint", "invite", "--group", "g", "--inviter", "b", "--key", testKey, "--ip", "10.0.0.0/8")
	if res.stderr != "" {
		t.Errorf("stderr: %s", res.stderr)
	}
}

func TestHelp(t *testing.T) {
	h := newHarness(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--help"}, "mint invite"},
		{[]string{"help"}, "Commands:"},
		{[]string{"help", "mint", "invite"}, "--consumer"},
		{[]string{"mint", "--help"}, "mint access"},
		{[]string{"mint", "invite", "--help"}, "--inviter"},
		{[]string{"mint", "access", "-h"}, "--session"},
		{[]string{"inspect", "--help"}, "--generation-key"},
	} {
		res := h.must(0, tc.args...)
		if !strings.Contains(res.stdout, tc.want) {
			t.Errorf("%q: lacks %q:\n%s", tc.args, tc.want, res.stdout)
		}
	}
}

func TestTree(t *testing.T) {
	var walk func(path string, c Command)
	walk = func(path string, c Command) {
		if c.Short == "" || c.Long == "" || c.Name == "" {
			t.Errorf("%q: incomplete %+v", path, c)
		}
		if _, ok := usages[path]; !ok {
			t.Errorf("no usage for %q", path)
		}
		if len(c.Subcommands) == 0 {
			if _, ok := leaves[path]; !ok {
				t.Errorf("no command for %q", path)
			}
		}
		for _, s := range c.Subcommands {
			walk(strings.TrimSpace(path+" "+s.Name), s)
		}
	}
	root := Tree()
	if root.Name != "group-join" {
		t.Fatal(root.Name)
	}
	walk("", root)
}

func TestParseTTL(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"0": 0, "90s": 90 * time.Second, "24h": 24 * time.Hour, "7d": 168 * time.Hour, "1d12h": 36 * time.Hour, "0d30m": 30 * time.Minute,
	} {
		if got, err := ParseTTL(in); err != nil || got != want {
			t.Errorf("ParseTTL(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "x", "-1h", "1d-1h", "-1d", "1.5d", "d", "5", "999999d", "3000000h"} {
		if got, err := ParseTTL(in); err == nil {
			t.Errorf("ParseTTL(%q) = %v, want an error", in, got)
		}
	}
}
