package groupjoin

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddy-groupjoin/caddy-groupjoin/internal/testcaddy"
	"github.com/caddy-groupjoin/caddy-groupjoin/tokens"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func TestEdgeSuccess(t *testing.T) {
	s := startSite(t, "key "+testSecret)
	user := access(t, "alice", tokens.TimeCaveat(time.Now().Add(time.Hour)), "interface = rest", "service = ozw-onezone", "api = ozw/create/group.*.join:*")
	inv := mintT(t, testSecret, tokens.InviteID(tokens.Persistence{Named: true}, "bob", "grp-42", "tok-7"),
		tokens.TimeCaveat(time.Now().Add(time.Hour)), "ip = 127.0.0.0/8|::1", "consumer = usr-alice")
	body := "{\n  \"extra\": [1, {\"token\": \"nested is ignored\"}],\n  \"token\": \"" + inv + "\"\n}"
	s.backend.respond(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("ETag", `"abc"`)
		w.Header().Set("X-Backend", "kept")
		w.Header().Set("Location", "/internal/thing")
		w.WriteHeader(http.StatusOK)
		w.Write([]byte("backend body that must not reach the client"))
	})
	resp := s.join(body, "X-Auth-Token", user,
		"X-User-Id", "mallory", "X-Group-Id", "admins", "X-Invite-Token-Id", "forged", "X-Invite-Issuer", "usr-root",
		"Accept-Encoding", "br, zstd")
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("status %d: %s", resp.StatusCode, bodyOf(resp))
	}
	if loc := resp.Header.Get("Location"); loc != "/user/groups/grp-42" {
		t.Errorf("Location %q", loc)
	}
	if b := bodyOf(resp); b != "" {
		t.Errorf("body %q", b)
	}
	for _, h := range []string{"Content-Type", "ETag"} {
		if v := resp.Header.Get(h); v != "" {
			t.Errorf("backend %s leaked: %q", h, v)
		}
	}
	if resp.Header.Get("X-Backend") != "kept" {
		t.Errorf("other backend headers should pass")
	}
	reqs := s.backend.requests()
	if len(reqs) != 1 {
		t.Fatalf("backend saw %d requests", len(reqs))
	}
	got := reqs[0]
	if string(got.body) != body {
		t.Errorf("body not forwarded byte for byte:\n%q\n%q", got.body, body)
	}
	want := map[string]string{"X-User-Id": "alice", "X-Group-Id": "grp-42", "X-Invite-Token-Id": "tok-7", "X-Invite-Issuer": "usr-bob", "X-Auth-Token": user}
	for k, v := range want {
		if vals := got.header.Values(k); len(vals) != 1 || vals[0] != v {
			t.Errorf("backend %s = %q, want %q", k, vals, v)
		}
	}
	// The proxy's transport may ask for gzip itself (and decompresses
	// transparently); the client's codings must not reach the backend.
	if ae := got.header.Get("Accept-Encoding"); strings.Contains(ae, "br") || strings.Contains(ae, "zstd") {
		t.Errorf("client Accept-Encoding forwarded: %q", ae)
	}
}

func TestKeyGenerations(t *testing.T) {
	s := startSite(t, "key default-secret-xyz\n\t\tkey 5 gen-five-secret\n\t\tkey 7 gen-seven-secret")
	user := mintT(t, "gen-seven-secret", tokens.AccessID(tokens.Persistence{Generation: 7}, "alice", "", "a1"))
	inv := func(secret string, p tokens.Persistence) string {
		return joinBody(mintT(t, secret, tokens.InviteID(p, "bob", "g1", tokens.NewTokenID())))
	}
	cases := []struct {
		name   string
		body   string
		status int
		desc   string
	}{
		{"named with default key", inv("default-secret-xyz", tokens.Persistence{Named: true}), 201, ""},
		{"tmp-5 with its key", inv("gen-five-secret", tokens.Persistence{Generation: 5}), 201, ""},
		{"tmp-7 with its key", inv("gen-seven-secret", tokens.Persistence{Generation: 7}), 201, ""},
		{"tmp-7 with default key", inv("default-secret-xyz", tokens.Persistence{Generation: 7}), 400, "could not be validated"},
		{"tmp-3 revoked", inv("default-secret-xyz", tokens.Persistence{Generation: 3}), 400, "revoked"},
		{"tmp-6 unknown", inv("gen-five-secret", tokens.Persistence{Generation: 6}), 400, "could not be validated"},
		{"tmp-9 unknown", inv("default-secret-xyz", tokens.Persistence{Generation: 9}), 400, "could not be validated"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp := s.join(c.body, "X-Auth-Token", user)
			if resp.StatusCode != c.status || !strings.Contains(bodyOf(resp), c.desc) {
				t.Fatalf("status %d body %s", resp.StatusCode, bodyOf(resp))
			}
		})
	}
	revokedUser := mintT(t, "default-secret-xyz", tokens.AccessID(tokens.Persistence{Generation: 1}, "alice", "", "a2"))
	expectError(t, s.join(inv("gen-five-secret", tokens.Persistence{Generation: 5}), "X-Auth-Token", revokedUser), 401, "invalid_token")
}

// TestBackendAnswers runs each backend answer through ServeHTTP with the
// backend as the next handler, then (without -short) through a real Caddy
// and reverse_proxy; one check judges both.
func TestBackendAnswers(t *testing.T) {
	user := access(t, "alice")
	auth := []string{"X-Auth-Token", user}
	plain := func(status int, body string) func(http.ResponseWriter, *http.Request) {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(status)
			w.Write([]byte(body))
		}
	}
	type row struct {
		name    string
		answer  func(http.ResponseWriter, *http.Request)
		status  int
		code    string
		exactly string // pass-through body
	}
	cases := []row{
		{"204", plain(204, ""), 201, "", ""},
		{"200 with body", plain(200, "<html>ok</html>"), 201, "", ""},
		{"202", plain(202, "queued"), 201, "", ""},
		{"404 html", plain(404, "<h1>Not Found: /var/www/secret</h1>"), 404, "not_found", ""},
		{"409 html", plain(409, "dup key value violates constraint memberships_pkey"), 409, "already_member", ""},
		{"400", plain(400, "bad"), 400, "invalid_request", ""},
		{"401", plain(401, "who"), 401, "unauthorized", ""},
		{"403", plain(403, "no"), 403, "forbidden", ""},
		{"418", plain(418, "teapot"), 418, "invalid_request", ""},
		{"429", plain(429, "slow down"), 429, "too_many_requests", ""},
		{"500 stack trace", plain(500, "panic: runtime error at main.go:42"), 500, "internal_error", ""},
		{"502", plain(502, "x"), 502, "bad_gateway", ""},
		{"503", plain(503, "x"), 503, "service_unavailable", ""},
		{"504", plain(504, "x"), 504, "gateway_timeout", ""},
		{"507", plain(507, "x"), 507, "internal_error", ""},
		{"302 redirect", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/elsewhere", http.StatusFound) }, 502, "bad_gateway", ""},
		{"409 JSON error passes through", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			w.WriteHeader(409)
			w.Write([]byte(`{"error":"already_member","error_description":"Alice is already in g1.","extra":1}`))
		}, 409, "already_member", `{"error":"already_member","error_description":"Alice is already in g1.","extra":1}`},
		{"JSON without error string is normalised", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(404)
			w.Write([]byte(`{"error":{"code":7},"trace":"db at 10.0.0.5"}`))
		}, 404, "not_found", ""},
		{"JSON error on 2xx is still a success", plain(200, `{"error":"x"}`), 201, "", ""},
	}
	check := func(t *testing.T, c row, resp *http.Response) {
		t.Helper()
		if c.status == 201 {
			if resp.StatusCode != 201 || bodyOf(resp) != "" || resp.Header.Get("Location") != "/user/groups/g1" {
				t.Fatalf("status %d body %q location %q", resp.StatusCode, bodyOf(resp), resp.Header.Get("Location"))
			}
			return
		}
		if c.exactly == "" {
			expectError(t, resp, c.status, c.code)
		} else if resp.StatusCode != c.status || resp.Header.Get("Content-Type") != "application/json" || bodyOf(resp) != c.exactly {
			// A backend's own error document passes through as it is.
			t.Errorf("pass-through: status %d, Content-Type %q, body %q; want %d, application/json, %q",
				resp.StatusCode, resp.Header.Get("Content-Type"), bodyOf(resp), c.status, c.exactly)
		}
		for _, leak := range []string{"/var/www", "constraint", "panic", "10.0.0.5", "html"} {
			if strings.Contains(bodyOf(resp), leak) {
				t.Errorf("backend internals leaked: %s", bodyOf(resp))
			}
		}
	}

	h := provisionHandler(t, &Handler{Shared: Shared{Keys: []Key{{Secret: testSecret}}}})
	for _, c := range cases {
		t.Run("ServeHTTP/"+c.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
				c.answer(w, r)
				return nil
			})
			if err := h.ServeHTTP(w, handlerRequest("127.0.0.1", user, joinBody(invite(t, "g1"))), next); err != nil {
				t.Fatal(err)
			}
			check(t, c, w.Result())
		})
	}

	s := startSite(t, "key "+testSecret)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s.backend.respond(c.answer)
			check(t, c, s.join(joinBody(invite(t, "g1")), auth...))
		})
	}
}

func TestUpstreamUnreachableAndNoBackend(t *testing.T) {
	s := startSite(t, "key "+testSecret)
	auth := []string{"X-Auth-Token", access(t, "alice")}
	s.backend.srv.Close() // reverse_proxy now fails to dial
	expectError(t, s.join(joinBody(invite(t, "g1")), auth...), 502, "bad_gateway")

	// group_join with nothing after it: no answer is never a success. The
	// config replaces s2's on its port, so wait for the old listener to go
	// (a request the kernel queued on it would be reset).
	s2 := startSite(t, "key "+testSecret)
	port := s2.port
	cfg := strings.NewReplacer("PORT", itoa(port)).Replace(`{
	admin off
	auto_https off
	persist_config off
	http_port PORT
}
:PORT {
	group_join {
		key ` + testSecret + `
	}
}`)
	s2.reload(t, testcaddy.Adapt(t, cfg))
	expectError(t, s2.join(joinBody(invite(t, "g1")), auth...), 500, "internal_error")
}

func TestUpstreamHeadersOff(t *testing.T) {
	s := startSite(t, "key "+testSecret+"\n\t\tupstream_headers off\n\t\tlocation_prefix https://api.example.com/groups/",
		"request_header /user/groups/join X-Joined-Group {http.group_join.group_id}")
	resp := s.join(joinBody(invite(t, "g9")), "X-Auth-Token", access(t, "alice"), "X-User-Id", "mallory", "X-Group-Id", "evil")
	if resp.StatusCode != 201 || resp.Header.Get("Location") != "https://api.example.com/groups/g9" {
		t.Fatalf("status %d location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	h := s.backend.requests()[0].header
	for _, k := range upstreamHeaders {
		if v := h.Values(k); len(v) != 0 {
			t.Errorf("%s = %q reached the backend", k, v)
		}
	}
	_ = json.Valid
}

func TestTrustedProxiesClientIP(t *testing.T) {
	s := startSite(t, "key "+testSecret)
	auth := []string{"X-Auth-Token", access(t, "alice")}
	// The test client connects from 127.0.0.1, which is not a trusted
	// proxy: X-Forwarded-For is ignored.
	resp := s.join(joinBody(invite(t, "g1", "ip = 203.0.113.0/24")), append(auth, "X-Forwarded-For", "203.0.113.9")...)
	expectError(t, resp, 400, "invalid_token")
	resp = s.join(joinBody(invite(t, "g1", "ip = 127.0.0.1")), append(auth, "X-Forwarded-For", "203.0.113.9")...)
	if resp.StatusCode != 201 {
		t.Fatalf("status %d %s", resp.StatusCode, bodyOf(resp))
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
