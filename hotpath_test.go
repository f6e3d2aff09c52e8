package groupjoin

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-groupjoin/caddy-groupjoin/internal/testcaddy"
	"github.com/caddy-groupjoin/caddy-groupjoin/tokens"
)

// The allocation-saving paths of the hot path (issue 6) keep the
// behaviour they replaced: the body read in one exact allocation, the
// content type without parsing, the token of a plain body without a JSON
// parser, the upstream headers and error answers stored without
// Header.Set, the placeholders from one provider, the geo lookups once per
// request.

func TestReadBodySizesAndErrors(t *testing.T) {
	const max = 10_000
	body := func(n int) string { return `{"token":"` + strings.Repeat("x", n-12) + `"}` }
	cases := []struct {
		name      string
		body      string
		length    int64 // -1: unknown (chunked)
		reader    func(io.Reader) io.Reader
		wantErr   string
		wantBytes int
	}{
		{"small, known length", body(450), 450, nil, "", 450},
		{"small, unknown length", body(450), -1, nil, "", 450},
		{"one byte at a time", body(450), 450, iotest.OneByteReader, "", 450},
		{"larger than the first buffer, unknown length", body(9000), -1, nil, "", 9000},
		{"larger than the first buffer, known length", body(9000), 9000, iotest.HalfReader, "", 9000},
		{"exactly max", body(max), max, nil, "", max},
		{"exactly max, unknown length", body(max), -1, iotest.OneByteReader, "", max},
		{"max + 1 announced", body(max + 1), max + 1, nil, "too large", 0},
		{"max + 1, unknown length", body(max + 1), -1, nil, "too large", 0},
		{"much more, unknown length", body(5 * max), -1, nil, "too large", 0},
		{"data with EOF", body(300), 300, iotest.DataErrReader, "", 300},
		{"read error", body(300), 300, func(r io.Reader) io.Reader {
			return io.MultiReader(io.LimitReader(r, 100), iotest.ErrReader(errors.New("connection reset")))
		}, "could not be read", 0},
		{"empty", "", 0, nil, "", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var rd io.Reader = strings.NewReader(c.body)
			if c.reader != nil {
				rd = c.reader(rd)
			}
			r := httptest.NewRequest(http.MethodPost, "/", nil)
			r.Body = io.NopCloser(rd)
			r.ContentLength = c.length
			r.Header.Set("Content-Type", "application/json")
			got, a := readBody(r, max)
			if c.wantErr != "" {
				if a == nil || a.status != http.StatusBadRequest || !strings.Contains(a.desc, c.wantErr) {
					t.Fatalf("answer %+v, want 400 %q", a, c.wantErr)
				}
				return
			}
			if a != nil {
				t.Fatalf("answer %+v", a)
			}
			if len(got) != c.wantBytes || string(got) != c.body[:c.wantBytes] {
				t.Fatalf("read %d bytes, want %d, the same bytes", len(got), c.wantBytes)
			}
		})
	}
}

func TestReadBodyOneExactAllocation(t *testing.T) {
	const n = 450
	src := []byte(`{"token":"` + strings.Repeat("x", n-12) + `"}`)
	r := httptest.NewRequest(http.MethodPost, "/", nil)
	r.Header.Set("Content-Type", "application/json")
	rd := bytes.NewReader(src)
	var got []byte
	allocs := testing.AllocsPerRun(100, func() {
		rd.Reset(src)
		r.Body, r.ContentLength = io.NopCloser(rd), n
		got, _ = readBody(r, DefaultMaxBody)
	})
	if !bytes.Equal(got, src) {
		t.Fatal("body changed")
	}
	// io.NopCloser's value is the one other allocation.
	if allocs > 2 {
		t.Fatalf("%.0f allocations to read a %d-byte body of known length", allocs, n)
	}
	if cap(got) > n+1 {
		t.Fatalf("buffer of %d bytes for a %d-byte body", cap(got), n)
	}
}

func TestIsJSONContentType(t *testing.T) {
	for ct, want := range map[string]bool{
		"application/json":                 true,
		"application/json; charset=utf-8":  true,
		"Application/JSON":                 true,
		"application/json ; charset=UTF-8": true,
		"application/jsonx":                false,
		"application/json; charset":        false, // malformed parameter
		"text/json":                        false,
		"application/problem+json":         false,
		"":                                 false,
		" application/json":                true, // as mime.ParseMediaType trims
	} {
		if got := isJSON(ct); got != want {
			t.Errorf("isJSON(%q) = %v, want %v", ct, got, want)
		}
	}
}

func TestForwardBodyAndUpstreamHeaders(t *testing.T) {
	f := newCacheFixture(t)
	user := access(t, "alice")
	body := joinBody(invite(t, "g1"))
	var seen [][]byte
	var hdr http.Header
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		b, _ := io.ReadAll(r.Body)
		seen = append(seen, b)
		if r.ContentLength != int64(len(body)) {
			t.Errorf("ContentLength %d, want %d", r.ContentLength, len(body))
		}
		for range 2 { // GetBody hands out fresh readers of the same bytes
			rc, err := r.GetBody()
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(rc)
			seen = append(seen, b)
			if err := rc.Close(); err != nil {
				t.Fatal(err)
			}
		}
		// A later handler appending to one header must not touch the
		// others that share its allocation.
		r.Header.Add("X-User-Id", "appended")
		hdr = r.Header.Clone()
		w.WriteHeader(http.StatusNoContent)
		return r.Body.Close()
	})
	r := handlerRequest("192.0.2.1", user, body)
	r.Header.Set("X-User-Id", "mallory")
	r.Header.Add("X-Group-Id", "g-forged")
	w := httptest.NewRecorder()
	if err := f.h.ServeHTTP(w, r, next); err != nil || w.Code != http.StatusCreated {
		t.Fatalf("status %d, err %v", w.Code, err)
	}
	for i, b := range seen {
		if string(b) != body {
			t.Fatalf("read %d: body %q, want the bytes received", i, b)
		}
	}
	want := map[string][]string{
		"X-User-Id":         {"alice", "appended"},
		"X-Group-Id":        {"g1"},
		"X-Invite-Token-Id": {hdr.Get("X-Invite-Token-Id")},
		"X-Invite-Issuer":   {"usr-bob"},
	}
	for k, v := range want {
		if got := hdr[k]; strings.Join(got, ",") != strings.Join(v, ",") || got[0] == "" {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
}

// plainTokenBody is a shortcut: whenever it answers, the general path
// (json.Valid, then the member scan) must give the same token.
func checkPlainTokenBody(t *testing.T, body []byte) {
	t.Helper()
	tok, ok := plainTokenBody(body)
	if !ok {
		return
	}
	f, valid := topField(body, "token")
	general, isString := f.str()
	if !valid || !f.object || f.count != 1 || f.folded != 0 || !isString || general == "" || general != tok {
		t.Fatalf("plainTokenBody(%q) = %q, general path: valid %v object %v count %d folded %d token %q",
			body, tok, valid, f.object, f.count, f.folded, general)
	}
}

func TestPlainTokenBodyAgreesWithGeneralPath(t *testing.T) {
	accepted := 0
	for _, b := range plainTokenSeeds {
		checkPlainTokenBody(t, []byte(b))
		if _, ok := plainTokenBody([]byte(b)); ok {
			accepted++
		}
	}
	if accepted < 3 {
		t.Fatalf("only %d seeds take the shortcut", accepted)
	}
	// Random bodies assembled from JSON fragments, bounded in number.
	frags := []string{"{", "}", `"token"`, `"Token"`, `"tok\u0065n"`, ":", ",", `"`, "\\", `\"`, " ", "\t", "\n",
		"abc", "0", "x y", "\x00", "\x1f", "\x7f", "é", "\xff", `"a"`, "[", "]", "null", `"token":"v"`}
	rng := rand.New(rand.NewPCG(6, 6))
	for range 200_000 {
		var b []byte
		if rng.IntN(2) == 0 {
			b = append(b, `{"token":"`...)
		}
		for n := rng.IntN(8); n > 0; n-- {
			b = append(b, frags[rng.IntN(len(frags))]...)
		}
		if rng.IntN(2) == 0 {
			b = append(b, `"}`...)
		}
		checkPlainTokenBody(t, b)
	}
}

var plainTokenSeeds = []string{
	`{"token":"abc"}`,
	` { "token" : "abc" } `,
	"{\n\t\"token\":\t\"a b~c\"\r\n}\n",
	`{"token":"ab\"c"}`,
	`{"token":"a\\bc"}`,
	`{"token":""}`,
	`{"token":"abc","token":"def"}`,
	`{"token":"abc","TOKEN":"def"}`,
	`{"token":"abc"}x`,
	`{"token":"abc"}}`,
	`{"token":"abc"`,
	`{"token":abc}`,
	`{"token": "é"}`,
	"{\"token\": \"a\x00b\"}",
	`{"tok\u0065n":"abc"}`,
	`{"Token":"abc"}`,
	`["token","abc"]`,
	`{"token":"abc" , }`,
	`{"pad":1,"token":"abc"}`,
	"\xef\xbb\xbf{\"token\":\"abc\"}",
}

func FuzzPlainTokenBody(f *testing.F) {
	for _, s := range plainTokenSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) { checkPlainTokenBody(t, body) })
}

// The {http.group_join.*} placeholders (one replacer provider) and
// {http.auth.user.id} (Set) reach the handlers after group_join.
func TestPlaceholdersReachLaterHandlers(t *testing.T) {
	b := newBackend(t)
	port := testcaddy.FreePort(t)
	testcaddy.LoadCaddyfile(t, testGlobals(port, "off")+fmt.Sprintf(`:%[1]d {
	group_join /user/groups/join {
		key %[3]s
		upstream_headers off
	}
	reverse_proxy /user/groups/join %[2]s {
		header_up X-Echo-User {http.group_join.user_id}
		header_up X-Echo-Group {http.group_join.group_id}
		header_up X-Echo-Token {http.group_join.token_id}
		header_up X-Echo-Issuer {http.group_join.issuer}
		header_up X-Echo-Auth {http.auth.user.id}
		header_up X-Echo-Other "[{http.group_join.other}]"
	}
}
`, port, b.addr(), testSecret))
	s := &site{t: t, url: fmt.Sprintf("http://127.0.0.1:%d", port), port: port, backend: b,
		client: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}}
	inv := mintT(t, testSecret, tokens.InviteID(tokens.Persistence{Named: true}, "bob", "g7", "tok7"))
	resp := s.join(joinBody(inv), "X-Auth-Token", access(t, "alice"))
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("status %d body %s", resp.StatusCode, bodyOf(resp))
	}
	reqs := b.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests at the backend", len(reqs))
	}
	for k, want := range map[string]string{
		"X-Echo-User": "alice", "X-Echo-Group": "g7", "X-Echo-Token": "tok7", "X-Echo-Issuer": "usr-bob",
		"X-Echo-Auth": "alice", "X-User-Id": "",
		// Not a placeholder of ours: left as written (header_up replaces
		// known placeholders only).
		"X-Echo-Other": "[{http.group_join.other}]",
	} {
		if got := reqs[0].header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
}

// writeWithSet is answer.write as it was, with Header.Set: the reference
// the one-allocation version must match.
func writeWithSet(a answer, w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	switch a.status {
	case http.StatusMethodNotAllowed:
		h.Set("Allow", "POST")
	case http.StatusUnauthorized:
		if a.code == "invalid_token" {
			h.Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		} else {
			h.Set("WWW-Authenticate", "Bearer")
		}
	}
	body := `{"error":` + strconv.Quote(a.code) + `,"error_description":` + strconv.Quote(a.desc) + `}`
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(a.status)
	_, _ = io.WriteString(w, body)
}

func TestAnswerWriteMatchesHeaderSet(t *testing.T) {
	all := []answer{ansMethod, ansNoUser, ansBadUser, ansUserExpired, ansInvalid, ansForbidden, ansInternal,
		ansUnavailable, ansNoBackend, ansBadGatewayNX, badRequest(`Field "token" is missing.`),
		inviteAnswer(tokens.ErrExpired), inviteAnswer(tokens.ErrRevoked)}
	for s := 100; s <= 599; s++ {
		all = append(all, backendAnswer(s))
	}
	for _, a := range all {
		got, want := httptest.NewRecorder(), httptest.NewRecorder()
		got.Header().Set("X-Before", "kept")
		want.Header().Set("X-Before", "kept")
		a.write(got)
		writeWithSet(a, want)
		if got.Code != want.Code || got.Body.String() != want.Body.String() || !reflect.DeepEqual(got.Header(), want.Header()) {
			t.Fatalf("%+v:\n got %d %v %s\nwant %d %v %s", a, got.Code, got.Header(), got.Body, want.Code, want.Header(), want.Body)
		}
		// The shared allocation: appending to one header leaves the others.
		got.Header().Add("Cache-Control", "private")
		if got.Header().Get("X-Content-Type-Options") != "nosniff" || got.Header().Get("Content-Type") != "application/json" {
			t.Fatalf("append to one header changed another: %v", got.Header())
		}
	}
}

// countingGeo counts lookups.
type countingGeo struct{ country, asn int }

func (g *countingGeo) Country(netip.Addr) (string, error) { g.country++; return "PL", nil }
func (g *countingGeo) ASN(netip.Addr) (uint32, error)     { g.asn++; return 64500, nil }

// The handler's Env is Verifier.Env's, with a Geo that looks each thing up
// once per request.
func TestRequestEnv(t *testing.T) {
	now := time.Unix(1_900_000_000, 0)
	for _, service := range []string{"", "ozw-elsewhere"} {
		for _, ip := range []string{"192.0.2.1", "2001:db8::1", "", "not an ip"} {
			for _, geo := range []tokens.Geo{nil, &countingGeo{}} {
				h := &Handler{verifier: tokens.Verifier{Service: service, Geo: geo}}
				got, want := h.newRequest(now, ip).Env, *h.verifier.Env(now, ip, "")
				if geo != nil {
					if m, ok := got.Geo.(*geoMemo); !ok || m.geo != geo {
						t.Fatalf("Geo %T, want the memo over the configured one", got.Geo)
					}
					got.Geo = geo
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("service %q ip %q: env %+v, want %+v", service, ip, got, want)
				}
			}
		}
	}

	g := &countingGeo{}
	h := &Handler{verifier: tokens.Verifier{Geo: g}}
	env := &h.newRequest(now, "192.0.2.1").Env
	invite := &tokens.Token{ID: tokens.InviteID(tokens.Persistence{Named: true}, "bob", "g1", "t1")}
	for _, c := range []string{"geo.country = PL", "geo.region = EU", "geo.country != FR", "asn = 64500", "asn = 64500|64501"} {
		cav, err := tokens.ParseCaveat(c)
		if err != nil {
			t.Fatal(err)
		}
		invite.Caveats = append(invite.Caveats, cav)
	}
	for range 2 {
		if err := invite.CheckInvite(env); err != nil {
			t.Fatal(err)
		}
	}
	if g.country != 1 || g.asn != 1 {
		t.Fatalf("%d country and %d ASN lookups for one request, want 1 and 1", g.country, g.asn)
	}
	// Another request looks up again.
	if err := invite.CheckInvite(&h.newRequest(now, "192.0.2.1").Env); err != nil || g.country != 2 || g.asn != 2 {
		t.Fatalf("second request: %v, %d country and %d ASN lookups", err, g.country, g.asn)
	}
	// A failed lookup is a failed caveat, every time it is asked.
	failing := &Handler{verifier: tokens.Verifier{Geo: &tokens.GeoDB{}}}
	env = &failing.newRequest(now, "192.0.2.1").Env
	for range 2 {
		if err := invite.CheckInvite(env); tokens.KindOf(err) != tokens.KindCaveat {
			t.Fatalf("lookup failure: %v", err)
		}
	}
}

// A capture from the pool starts clean whatever the previous request left
// in it, and one that held a large answer is not kept.
func TestCapturePoolStartsClean(t *testing.T) {
	for range 50 {
		c := newCapture()
		if c.status != 0 || len(c.header) != 0 || c.body.Len() != 0 || c.overflow {
			t.Fatalf("reused capture not clean: status %d, header %v, %d body bytes, overflow %v",
				c.status, c.header, c.body.Len(), c.overflow)
		}
		c.Header().Set("X-Backend", "v")
		c.WriteHeader(http.StatusTeapot)
		_, _ = c.Write(bytes.Repeat([]byte("x"), maxCapture+10))
		if !c.overflow {
			t.Fatal("no overflow")
		}
		c.release()
		small := newCapture()
		small.Header().Set("X-Other", "w")
		_, _ = small.Write([]byte(`{"error":"x"}`))
		small.release()
	}
}
