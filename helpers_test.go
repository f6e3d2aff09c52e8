package groupjoin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-groupjoin/caddy-groupjoin/internal/testcaddy"
	"github.com/caddy-groupjoin/caddy-groupjoin/store"
	"github.com/caddy-groupjoin/caddy-groupjoin/tokens"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
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
	testcaddy.SkipShort(t)
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

// startRoutesSite runs a Caddyfile with shared as the global group_join
// option's body and routes (lines of the site) in front of a backend that
// every request not answered before reaches; %[1]d is the HTTP port.
func startRoutesSite(t *testing.T, shared string, routes ...string) *site {
	t.Helper()
	testcaddy.SkipShort(t)
	b := newBackend(t)
	port := testcaddy.FreePort(t)
	cfg := testGlobals(port, "off", "\tgroup_join {\n"+shared+"\n\t}\n") + fmt.Sprintf(`:%[1]d {
	log {
		output discard
	}
	%[3]s
	reverse_proxy %[2]s
}
`, port, b.addr(), strings.Join(routes, "\n\t"))
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

// reload replaces the running config with the adapted JSON cfg, the way
// `caddy reload` does, then waits until the old server's listener on the
// site's port is gone (see testcaddy.WaitOneListener).
func (s *site) reload(t *testing.T, cfg []byte) {
	t.Helper()
	if err := testcaddy.Reload(t, cfg); err != nil {
		t.Fatalf("reload: %v", err)
	}
	testcaddy.WaitOneListener(t, s.port)
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

// expectError checks a response from site.do with checkDocumented.
func expectError(t *testing.T, resp *http.Response, status int, code string) {
	t.Helper()
	checkDocumented(t, resp, []byte(bodyOf(resp)), status, code, "")
}

func itoa(n int) string { return fmt.Sprint(n) }

// testGlobals is the global options block of the tests' Caddyfiles: admin
// (an address, or "off"), no automatic HTTPS, nothing persisted, HTTP on
// port, logs discarded; extra goes inside the block as it is.
func testGlobals(port int, admin string, extra ...string) string {
	return fmt.Sprintf("{\n\tadmin %s\n\tauto_https off\n\tpersist_config off\n\thttp_port %d\n\tlog {\n\t\toutput discard\n\t}\n%s}\n",
		admin, port, strings.Join(extra, ""))
}

// edgeOpts shapes the Caddyfile of an edge under test.
type edgeOpts struct {
	options  string // body of the group_join block
	servers  string // extra lines of the global servers block
	proxy    string // body of the reverse_proxy block
	upstream string // reverse_proxy upstream; default: the backend
	nolog    bool   // no access log (the default log still goes to the file)
}

// edge is an in-process Caddy logging everything at DEBUG to one file, with
// the documented secret-redacting filters on both the default log and the
// access log.
type edge struct {
	*site
	logPath string
}

func edgeCaddyfile(port int, logPath, upstream string, o edgeOpts) string {
	if o.upstream != "" {
		upstream = o.upstream
	}
	access := fmt.Sprintf(`log {
		output file %s
		format filter {
			request>headers>X-Auth-Token delete
			request>headers>Macaroon delete
		}
	}`, logPath)
	if o.nolog {
		access = ""
	}
	return fmt.Sprintf(`{
	admin off
	auto_https off
	persist_config off
	http_port %[1]d
	log {
		output file %[2]s
		level DEBUG
		format filter {
			request>headers>X-Auth-Token delete
			request>headers>Macaroon delete
		}
	}
	servers {
		trusted_proxies static 10.9.0.0/16
		%[4]s
	}
}
:%[1]d {
	%[7]s
	group_join /user/groups/join {
		%[5]s
	}
	reverse_proxy /user/groups/join %[3]s {
		%[6]s
	}
}
`, port, logPath, upstream, o.servers, o.options, o.proxy, access)
}

// startEdge loads an edge in front of a new counting backend.
func startEdge(t *testing.T, o edgeOpts) *edge {
	t.Helper()
	testcaddy.SkipShort(t)
	b := newBackend(t)
	port := testcaddy.FreePort(t)
	logPath := filepath.Join(t.TempDir(), "caddy.log")
	testcaddy.LoadCaddyfile(t, edgeCaddyfile(port, logPath, b.addr(), o))
	e := &edge{logPath: logPath, site: &site{t: t, url: fmt.Sprintf("http://127.0.0.1:%d", port), port: port, backend: b,
		client: testcaddy.Client(20 * time.Second)}}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("caddy log (tail):\n%s", tail(e.logText(), 6000))
		}
	})
	return e
}

// config is the edge's Caddyfile with o, on the same port, backend and
// log file.
func (e *edge) config(o edgeOpts) string {
	return edgeCaddyfile(e.port, e.logPath, e.backend.addr(), o)
}

func (e *edge) addr() string { return strings.TrimPrefix(e.url, "http://") }

func (e *edge) logText() string {
	b, _ := os.ReadFile(e.logPath)
	return string(b)
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// checkNoPanic fails when Caddy logged a recovered panic (net/http logs
// "http: panic serving …" through Caddy's logger).
func (e *edge) checkNoPanic(t *testing.T) {
	t.Helper()
	for _, line := range strings.Split(e.logText(), "\n") {
		if strings.Contains(strings.ToLower(line), "panic") {
			t.Errorf("panic in Caddy's log: %s", tail(line, 2000))
		}
	}
}

// checkDocumented is the one check of an error answer, edge-made or
// normalised: the status, Content-Type application/json, and exactly
// {"error": code, "error_description": "<non-empty text containing desc>"}.
func checkDocumented(t *testing.T, resp *http.Response, body []byte, status int, code, desc string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d; body %.300q", resp.StatusCode, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	var doc map[string]any
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("body is not JSON: %.300q", body)
	}
	got, _ := doc["error"].(string)
	d, isString := doc["error_description"].(string)
	if len(doc) != 2 || got != code || !isString || d == "" {
		t.Errorf("body %s, want error %q with a description", body, code)
	}
	if desc != "" && !strings.Contains(d, desc) {
		t.Errorf("description %q, want it to contain %q", d, desc)
	}
}

// memoryStore finds the memory store the loaded config uses (shared
// through storePool, keyed by its configuration).
func memoryStore(t *testing.T, ttl time.Duration) store.Store {
	t.Helper()
	key := (&StoreConfig{Type: "memory", ReservationTTL: caddy.Duration(ttl)}).key()
	var found store.Store
	storePool.Range(func(k, v any) bool {
		if k == key {
			found = v.(storeHandle).Store
			return false
		}
		return true
	})
	if found == nil {
		t.Fatalf("no memory store with key %q in the pool", key)
	}
	return found
}

// waitReserved waits (bounded) until id holds no reservation.
func waitReserved(t *testing.T, st store.Store, id string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		inv, err := st.Get(context.Background(), id)
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		if inv.Reserved == 0 {
			if inv.Used != 0 {
				t.Errorf("%s: a use was kept for a client that left: %+v", id, inv)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: reservation still held after the client left: %+v", id, inv)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// provisionHandler provisions h the way Caddy does, outside of a running
// Caddy, and releases it when the test ends.
func provisionHandler(tb testing.TB, h *Handler) *Handler {
	tb.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	tb.Cleanup(cancel)
	// Without a Caddy config, ctx.Logger() is a development logger on
	// stderr: keep its provision line out of test and benchmark output.
	stderr := os.Stderr
	os.Stderr, _ = os.Open(os.DevNull)
	err := h.Provision(ctx)
	os.Stderr.Close()
	os.Stderr = stderr
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = h.Cleanup() })
	if err := h.Validate(); err != nil {
		tb.Fatal(err)
	}
	h.logger = zap.NewNop()
	return h
}

// edgeHeaders are the headers the edge sets for the backend on a join of
// type inviteType by caller user, joiner the joining entity's id (the
// user's on the user routes), target the joined entity's.
func edgeHeaders(user, inviteType, joiner, target, tokenID, issuer string) http.Header {
	t, _ := tokens.InviteTypeByName(inviteType)
	h := http.Header{
		"X-User-Id":          {user},
		"X-Invite-Token-Id":  {tokenID},
		"X-Invite-Issuer":    {issuer},
		"X-Invite-Type":      {inviteType},
		"X-Join-Entity-Type": {t.Joiner.String()},
		"X-Join-Entity-Id":   {joiner},
		"X-Join-Target-Type": {t.Target.String()},
		"X-Join-Target-Id":   {target},
	}
	if t.Target == tokens.EntityGroup {
		h["X-Group-Id"] = []string{target}
	}
	return h
}

// sibling returns a handler serving serve from h's shared state, as a
// handler of the same config does through the group_join app.
func sibling(tb testing.TB, h *Handler, serve string) *Handler {
	tb.Helper()
	s := &Handler{Serve: serve, logger: h.logger, clock: h.clock}
	if err := s.provisionRoute(); err != nil {
		tb.Fatal(err)
	}
	s.attach(h.sharedState, false)
	return s
}

// handlerRequest builds a join request as Caddy's server hands it to
// handlers: a replacer and the vars map (with the client IP) in its
// context.
func handlerRequest(ip, accessToken, body string) *http.Request {
	repl := caddy.NewReplacer()
	// Caddy's server adds its http.* provider to every request's replacer.
	repl.Map(func(string) (any, bool) { return nil, false })
	vars := map[string]any{caddyhttp.ClientIPVarKey: ip}
	ctx := context.WithValue(context.Background(), caddy.ReplacerCtxKey, repl)
	ctx = context.WithValue(ctx, caddyhttp.VarsCtxKey, vars)
	r := httptest.NewRequestWithContext(ctx, http.MethodPost, "http://127.0.0.1/user/groups/join", strings.NewReader(body))
	r.RemoteAddr = ip + ":40000"
	r.Header.Set("Content-Type", "application/json")
	if accessToken != "" {
		r.Header.Set("X-Auth-Token", accessToken)
	}
	return r
}

// clock is a settable test clock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// startCaddyFleet starts n Caddy processes (the built binary), each on
// its own HTTP and admin port, whose group_join uses storeBlock (a store
// directive) in front of reverse_proxy to backend, and waits until each
// answers HTTP.
func startCaddyFleet(t *testing.T, n int, backend string, storeBlock string) []fleetInstance {
	t.Helper()
	return startFleetProcesses(t, n, func(port, adminPort int) string {
		return fmt.Sprintf(`{
	admin 127.0.0.1:%[2]d
	auto_https off
	persist_config off
	http_port %[1]d
}
:%[1]d {
	group_join /user/groups/join {
		key %[4]s
		%[5]s
	}
	reverse_proxy /user/groups/join %[3]s
}
`, port, adminPort, backend, testSecret, storeBlock)
	})
}

// startFleetProcesses starts n Caddy processes, each with the Caddyfile
// config(port, adminPort) on ports of its own.
func startFleetProcesses(t *testing.T, n int, config func(port, adminPort int) string) []fleetInstance {
	t.Helper()
	var out []fleetInstance
	for range n {
		port, adminPort := testcaddy.FreePort(t), testcaddy.FreePort(t)
		p := testcaddy.StartProcess(t, config(port, adminPort), adminPort)
		in := fleetInstance{proc: p, url: fmt.Sprintf("http://127.0.0.1:%d", port), admin: p.AdminAddr}
		waitHTTP(t, in.url)
		out = append(out, in)
	}
	return out
}

// leakCheck counts goroutines now; the returned function waits (bounded)
// for the count to settle back to at most slack above it.
func leakCheck(t *testing.T, slack int) func() {
	t.Helper()
	runtime.GC()
	before := runtime.NumGoroutine()
	return func() {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		n := runtime.NumGoroutine()
		for n > before+slack && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
			n = runtime.NumGoroutine()
		}
		t.Logf("goroutines: %d before, %d after", before, n)
		if n > before+slack {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Errorf("goroutine leak: %d before, %d after settling\n%s", before, n, tail(string(buf), 20000))
		}
	}
}
