package groupjoin

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-groupjoin/caddy-groupjoin/internal/testcaddy"
	"github.com/caddy-groupjoin/caddy-groupjoin/tokens"
)

const testSecret = "integration-test-secret-0123456789"

// seen is one request as the backend received it.
type seen struct {
	method, path string
	header       http.Header
	body         []byte
}

// backend is a real HTTP server on 127.0.0.1 that records what reaches it
// and answers as told.
type backend struct {
	srv    *httptest.Server
	mu     sync.Mutex
	reqs   []seen
	answer func(w http.ResponseWriter, r *http.Request)
}

func newBackend(t *testing.T) *backend {
	b := &backend{answer: func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		b.mu.Lock()
		b.reqs = append(b.reqs, seen{r.Method, r.URL.Path, r.Header.Clone(), body})
		answer := b.answer
		b.mu.Unlock()
		answer(w, r)
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *backend) addr() string { return strings.TrimPrefix(b.srv.URL, "http://") }

func (b *backend) requests() []seen {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]seen(nil), b.reqs...)
}

func (b *backend) reset() {
	b.mu.Lock()
	b.reqs = nil
	b.mu.Unlock()
}

func (b *backend) respond(f func(w http.ResponseWriter, r *http.Request)) {
	b.mu.Lock()
	b.answer = f
	b.mu.Unlock()
}

// site is a running in-process Caddy with group_join in front of a backend.
type site struct {
	t       *testing.T
	url     string
	port    int
	backend *backend
	client  *http.Client
}

// startSite runs a Caddyfile built from the group_join block options and
// extra site directives; %[1]d is the HTTP port and %[2]s the backend.
func startSite(t *testing.T, options string, extra ...string) *site {
	t.Helper()
	b := newBackend(t)
	port := testcaddy.FreePort(t)
	cfg := testGlobals(port, "off", `	servers {
		trusted_proxies static 10.9.0.0/16
	}
`) + fmt.Sprintf(`:%[1]d {
	log {
		output discard
	}
	group_join /user/groups/join {
%[3]s
	}
	%[4]s
	reverse_proxy /user/groups/join %[2]s
}
`, port, b.addr(), options, strings.Join(extra, "\n\t"))
	testcaddy.LoadCaddyfile(t, cfg)
	return &site{t: t, url: fmt.Sprintf("http://127.0.0.1:%d", port), port: port, backend: b,
		client: testcaddy.Client(10 * time.Second)}
}

// join posts body with headers (pairs of name, value) to the join path.
func (s *site) join(body string, headers ...string) *http.Response {
	s.t.Helper()
	return s.do(http.MethodPost, "/user/groups/join", body, append([]string{"Content-Type", "application/json"}, headers...)...)
}

func (s *site) do(method, path, body string, headers ...string) *http.Response {
	s.t.Helper()
	req, err := http.NewRequest(method, s.url+path, strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	resp, err := s.client.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return resp
}

func bodyOf(resp *http.Response) string {
	b, _ := io.ReadAll(resp.Body)
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return string(b)
}

// mint helpers with the test secret.
func mintT(t testing.TB, secret string, id tokens.Identifier, cavs ...string) string {
	t.Helper()
	s, err := tokens.Mint([]byte(secret), "", id, cavs...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func invite(t testing.TB, group string, cavs ...string) string {
	return mintT(t, testSecret, tokens.InviteID(tokens.Persistence{Named: true}, "bob", group, tokens.NewTokenID()), cavs...)
}

func access(t testing.TB, user string, cavs ...string) string {
	return mintT(t, testSecret, tokens.AccessID(tokens.Persistence{Named: true}, user, "", tokens.NewTokenID()), cavs...)
}

func joinBody(tok string) string { return `{"token":"` + tok + `"}` }

// expectError checks an edge-made or normalised error answer.
func expectError(t *testing.T, resp *http.Response, status int, code string) {
	t.Helper()
	body := bodyOf(resp)
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d; body %s", resp.StatusCode, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	want := `"error":"` + code + `"`
	if !strings.Contains(body, want) || !strings.Contains(body, `"error_description":"`) {
		t.Errorf("body %s, want error %q", body, code)
	}
}

func itoa(n int) string { return fmt.Sprint(n) }

func loadCaddyfileT(t *testing.T, cfg string) { testcaddy.LoadCaddyfile(t, cfg) }

// testGlobals is the global options block of the tests' Caddyfiles: admin
// (an address, or "off"), no automatic HTTPS, nothing persisted, HTTP on
// port, logs discarded; extra goes inside the block as it is.
func testGlobals(port int, admin string, extra ...string) string {
	return fmt.Sprintf("{\n\tadmin %s\n\tauto_https off\n\tpersist_config off\n\thttp_port %d\n\tlog {\n\t\toutput discard\n\t}\n%s}\n",
		admin, port, strings.Join(extra, ""))
}
