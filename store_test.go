package groupjoin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-groupjoin/caddy-groupjoin/internal/testcaddy"
	"github.com/caddy-groupjoin/caddy-groupjoin/store"
	"github.com/caddy-groupjoin/caddy-groupjoin/store/redistest"
	"github.com/caddy-groupjoin/caddy-groupjoin/tokens"
)

// Invite store (usage limits and revocation of named invites) on one instance: the memory store through the
// in-process Caddy, with the admin API on a loopback port. fleet_test.go
// does the same with three Caddy processes sharing a real Redis.

// Answers of the edge for named invites the store refuses.
const (
	descUnknown = "Invite token is not registered."
	descUsedUp  = "Invite token usage limit has been reached."
	descRevoked = "Invite token has been revoked."
)

// storeHTTP is the client of the store tests: bounded, and a fresh
// connection per request (configs are reloaded on the same ports).
var storeHTTP = testcaddy.Client(10 * time.Second)

// postJoin posts a join; safe to call from any goroutine.
func postJoin(baseURL, inviteTok, accessTok string) joinResult {
	return postJoinTo(baseURL, "/user/groups/join", inviteTok, accessTok)
}

// postJoinTo is postJoin on the join route at path.
func postJoinTo(baseURL, path, inviteTok, accessTok string) joinResult {
	req, err := http.NewRequest(http.MethodPost, baseURL+path, strings.NewReader(joinBody(inviteTok)))
	if err != nil {
		return joinResult{err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Auth-Token", accessTok)
	resp, err := storeHTTP.Do(req)
	if err != nil {
		return joinResult{err: err}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return joinResult{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// raceJoins sends n joins at once, request i to baseURLs[i % len], and
// returns the results in order.
func raceJoins(baseURLs []string, n int, inviteTok, accessTok string) []joinResult {
	return raceJoinsTo(baseURLs, "/user/groups/join", n, inviteTok, accessTok)
}

// raceJoinsTo is raceJoins on the join route at path.
func raceJoinsTo(baseURLs []string, path string, n int, inviteTok, accessTok string) []joinResult {
	out := make([]joinResult, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			out[i] = postJoinTo(baseURLs[i%len(baseURLs)], path, inviteTok, accessTok)
		}()
	}
	close(start)
	wg.Wait()
	return out
}

// checkRace asserts exactly `admitted` 201s; every other answer must be the
// documented 400 invalid_token with description desc.
func checkRace(t *testing.T, results []joinResult, admitted int, desc string) {
	t.Helper()
	got := 0
	for i, r := range results {
		switch {
		case r.err != nil:
			t.Errorf("request %d: %v", i, r.err)
		case r.status == http.StatusCreated:
			got++
		case r.status != http.StatusBadRequest || !strings.Contains(r.body, `"error":"invalid_token"`) || !strings.Contains(r.body, desc):
			t.Errorf("request %d: %d %s, want 201 or 400 invalid_token %q", i, r.status, r.body, desc)
		}
	}
	if got != admitted {
		t.Fatalf("%d of %d requests admitted, want exactly %d", got, len(results), admitted)
	}
}

// expectJoin checks one join's answer: 201, or an error with code and a
// description containing desc.
func expectJoin(t *testing.T, r joinResult, status int, code, desc string) {
	t.Helper()
	if r.err != nil {
		t.Fatal(r.err)
	}
	if code == "" {
		if r.status != status {
			t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
		}
		return
	}
	checkDocumented(t, &http.Response{StatusCode: r.status, Header: r.header}, []byte(r.body), status, code, desc)
}

// namedInvite mints a named invite to group and returns it with its id.
func namedInvite(t testing.TB, group string) (tok, id string) {
	id = tokens.NewTokenID()
	return mintT(t, testSecret, tokens.InviteID(tokens.Persistence{Named: true}, "bob", group, id), tokens.TimeCaveat(time.Now().Add(time.Hour))), id
}

// storeEdgeConfig is a Caddyfile with the admin endpoint on adminPort and
// group_join (with the given options) in front of backend.
func storeEdgeConfig(httpPort, adminPort int, backend, options string) string {
	return testGlobals(httpPort, fmt.Sprint("127.0.0.1:", adminPort)) + fmt.Sprintf(`:%[1]d {
	log {
		output discard
	}
	group_join /user/groups/join {
		key %[4]s
%[5]s
	}
	reverse_proxy /user/groups/join %[3]s
}
`, httpPort, adminPort, backend, testSecret, options)
}

// storeEdge is the in-process Caddy with its admin endpoint.
type storeEdge struct {
	*site
	adminPort int
	admin     string
}

func startStoreEdge(t *testing.T, options string) *storeEdge {
	t.Helper()
	testcaddy.SkipShort(t)
	b := newBackend(t)
	port, adminPort := testcaddy.FreePort(t), testcaddy.FreePort(t)
	testcaddy.LoadCaddyfile(t, storeEdgeConfig(port, adminPort, b.addr(), options))
	return &storeEdge{
		site:      &site{t: t, url: fmt.Sprintf("http://127.0.0.1:%d", port), port: port, backend: b, client: storeHTTP},
		adminPort: adminPort,
		admin:     fmt.Sprintf("127.0.0.1:%d", adminPort),
	}
}

// config is the edge's Caddyfile with options, on the same ports and
// backend.
func (e *storeEdge) config(options string) string {
	return storeEdgeConfig(e.port, e.adminPort, e.backend.addr(), options)
}

// expectBackend asserts how many requests reached the backend so far: the
// edge forwards only what it admits.
func expectBackend(t *testing.T, b *backend, want int) {
	t.Helper()
	if n := len(b.requests()); n != want {
		t.Fatalf("backend saw %d requests, want %d", n, want)
	}
}

func TestStoreMemory(t *testing.T) {
	e := startStoreEdge(t, "\t\tstore memory")
	user := access(t, "alice")
	forwarded := 0

	t.Run("unregistered named invite", func(t *testing.T) {
		tok, _ := namedInvite(t, "g1")
		expectJoin(t, postJoin(e.url, tok, user), 400, "invalid_token", descUnknown)
		expectBackend(t, e.backend, forwarded)
	})

	t.Run("temporary invites bypass the store", func(t *testing.T) {
		tmp := mintT(t, testSecret, tokens.InviteID(tokens.Persistence{Generation: 0}, "bob", "g1", tokens.NewTokenID()))
		expectJoin(t, postJoin(e.url, tmp, user), 201, "", "")
		forwarded++
		expectJoin(t, postJoin(e.url, tmp, user), 201, "", "")
		forwarded++
		expectBackend(t, e.backend, forwarded)
	})

	t.Run("single use", func(t *testing.T) {
		tok, id := namedInvite(t, "g2")
		st := registerInvite(t, e.admin, id, "1")
		if st.Limit != float64(1) || st.Used != 0 || st.Revoked || st.Store != "memory" || st.Expires == nil {
			t.Fatalf("registered state %+v", st)
		}
		if status, body := adminCall(t, e.admin, http.MethodPost, "/group-join/invites", `{"id":"`+id+`","uses":3}`); status != http.StatusConflict || !strings.Contains(body, "already registered") {
			t.Fatalf("second registration: %d %s", status, body)
		}
		expectJoin(t, postJoin(e.url, tok, user), 201, "", "")
		forwarded++
		expectJoin(t, postJoin(e.url, tok, user), 400, "invalid_token", descUsedUp)
		expectBackend(t, e.backend, forwarded)
		st = getInviteState(t, e.admin, id)
		if st.Used != 1 || st.Reserved != 0 || st.Remaining != float64(0) {
			t.Fatalf("state after use %+v", st)
		}
	})

	t.Run("limit N under concurrency", func(t *testing.T) {
		tok, id := namedInvite(t, "g3")
		registerInvite(t, e.admin, id, "5")
		checkRace(t, raceJoins([]string{e.url}, 32, tok, user), 5, descUsedUp)
		forwarded += 5
		expectBackend(t, e.backend, forwarded)
		if st := getInviteState(t, e.admin, id); st.Used != 5 || st.Reserved != 0 {
			t.Fatalf("state %+v", st)
		}
	})

	t.Run("backend failure gives the use back", func(t *testing.T) {
		tok, id := namedInvite(t, "g4")
		registerInvite(t, e.admin, id, `"1"`)
		e.backend.respond(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusInternalServerError) })
		expectJoin(t, postJoin(e.url, tok, user), 500, "internal_error", "")
		e.backend.respond(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusConflict)
			w.Write([]byte(`{"error":"already_member","error_description":"The user is already a member of this group."}`))
		})
		expectJoin(t, postJoin(e.url, tok, user), 409, "already_member", "")
		forwarded += 2
		if st := getInviteState(t, e.admin, id); st.Used != 0 || st.Reserved != 0 || st.Remaining != float64(1) {
			t.Fatalf("state after failures %+v", st)
		}
		e.backend.respond(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
		expectJoin(t, postJoin(e.url, tok, user), 201, "", "")
		forwarded++
		expectJoin(t, postJoin(e.url, tok, user), 400, "invalid_token", descUsedUp)
		expectBackend(t, e.backend, forwarded)
	})

	t.Run("revocation", func(t *testing.T) {
		tok, id := namedInvite(t, "g5")
		st := registerInvite(t, e.admin, id, `"unlimited"`)
		if st.Limit != "unlimited" || st.Remaining != "unlimited" {
			t.Fatalf("registered state %+v", st)
		}
		expectJoin(t, postJoin(e.url, tok, user), 201, "", "")
		forwarded++
		status, body := adminCall(t, e.admin, http.MethodPost, "/group-join/invites/"+id+"/revoke", "")
		if status != http.StatusOK || !decodeState(t, body).Revoked {
			t.Fatalf("revoke: %d %s", status, body)
		}
		expectJoin(t, postJoin(e.url, tok, user), 400, "invalid_token", descRevoked)
		// Idempotent, in both forms; a revoked invite cannot be registered again.
		for _, m := range []string{http.MethodPost + " /revoke", http.MethodDelete + " "} {
			method, suffix, _ := strings.Cut(m, " ")
			if status, body := adminCall(t, e.admin, method, "/group-join/invites/"+id+suffix, ""); status != http.StatusOK {
				t.Fatalf("%s again: %d %s", m, status, body)
			}
		}
		if status, _ := adminCall(t, e.admin, http.MethodPost, "/group-join/invites", `{"id":"`+id+`"}`); status != http.StatusConflict {
			t.Fatalf("re-registering a revoked invite: %d", status)
		}
		// Revoking an id before registration blocks it.
		tok2, id2 := namedInvite(t, "g5")
		if status, body := adminCall(t, e.admin, http.MethodDelete, "/group-join/invites/"+id2, ""); status != http.StatusOK {
			t.Fatalf("revoke unknown: %d %s", status, body)
		}
		if status, _ := adminCall(t, e.admin, http.MethodPost, "/group-join/invites", `{"id":"`+id2+`"}`); status != http.StatusConflict {
			t.Fatalf("registering a revoked id: %d", status)
		}
		expectJoin(t, postJoin(e.url, tok2, user), 400, "invalid_token", descRevoked)
		expectBackend(t, e.backend, forwarded)
	})

	t.Run("admin API errors", func(t *testing.T) {
		cases := []struct {
			method, path, body string
			status             int
			msg                string
		}{
			{"GET", "/group-join/invites/" + tokens.NewTokenID(), "", 404, "not registered"},
			{"GET", "/group-join/invites/bad%20id", "", 400, "invalid token id"},
			{"POST", "/group-join/invites", `{"id":"x1","uses":0}`, 400, "uses must be"},
			{"POST", "/group-join/invites", `{"id":"x1","uses":"many"}`, 400, "uses must be"},
			{"POST", "/group-join/invites", `{"id":"x1","ttl":"soon"}`, 400, "ttl must be"},
			{"POST", "/group-join/invites", `{"id":"x1","limit":2}`, 400, "unknown field"},
			{"POST", "/group-join/invites", `{"id":"x/1"}`, 400, "invalid token id"},
			{"POST", "/group-join/invites", `not json`, 400, "JSON object"},
			{"PUT", "/group-join/invites", `{}`, 405, "not allowed"},
			{"POST", "/group-join/invites/x1", ``, 405, "not allowed"},
			{"GET", "/group-join/nothing", ``, 404, "no such group_join admin route"},
		}
		for _, c := range cases {
			status, body := adminCall(t, e.admin, c.method, c.path, c.body)
			var ae struct{ Error string }
			if status != c.status || json.Unmarshal([]byte(body), &ae) != nil || !strings.Contains(ae.Error, c.msg) {
				t.Errorf("%s %s %s: %d %s, want %d %q", c.method, c.path, c.body, status, body, c.status, c.msg)
			}
		}
		status, body := adminCall(t, e.admin, http.MethodGet, "/group-join/stores", "")
		if status != 200 || strings.TrimSpace(body) != `{"stores":[{"name":"memory","type":"memory"}]}` {
			t.Fatalf("stores: %d %s", status, body)
		}
	})

	t.Run("state survives a config reload", func(t *testing.T) {
		tok, id := namedInvite(t, "g6")
		registerInvite(t, e.admin, id, "2")
		expectJoin(t, postJoin(e.url, tok, user), 201, "", "")
		forwarded++
		revTok, revID := namedInvite(t, "g6")
		registerInvite(t, e.admin, revID, `"unlimited"`)
		if status, _ := adminCall(t, e.admin, http.MethodDelete, "/group-join/invites/"+revID, ""); status != 200 {
			t.Fatal("revoke failed")
		}

		e.reload(t, testcaddy.Adapt(t, e.config("\t\tstore memory\n\t\tlocation_prefix /groups/")))
		if st := getInviteState(t, e.admin, id); st.Used != 1 {
			t.Fatalf("state after reload %+v", st)
		}
		r := postJoin(e.url, tok, user)
		expectJoin(t, r, 201, "", "")
		forwarded++
		expectJoin(t, postJoin(e.url, tok, user), 400, "invalid_token", descUsedUp)
		expectJoin(t, postJoin(e.url, revTok, user), 400, "invalid_token", descRevoked)
		expectBackend(t, e.backend, forwarded)
		// The new config is the one answering.
		req, _ := http.NewRequest(http.MethodPost, e.url+"/user/groups/join", strings.NewReader(joinBody(mintT(t, testSecret,
			tokens.InviteID(tokens.Persistence{}, "bob", "g7", tokens.NewTokenID())))))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Auth-Token", user)
		resp, err := storeHTTP.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		forwarded++
		if loc := resp.Header.Get("Location"); resp.StatusCode != 201 || loc != "/groups/g7" {
			t.Fatalf("after reload: %d Location %q", resp.StatusCode, loc)
		}

		// A different store configuration is a different (empty) store.
		e.reload(t, testcaddy.Adapt(t, e.config("\t\tstore memory {\n\t\t\treservation_ttl 30s\n\t\t}")))
		expectJoin(t, postJoin(e.url, tok, user), 400, "invalid_token", descUnknown)
		status, body := adminCall(t, e.admin, http.MethodGet, "/group-join/stores", "")
		if status != 200 || strings.TrimSpace(body) != `{"stores":[{"name":"memory,reservation_ttl=30s","type":"memory"}]}` {
			t.Fatalf("stores after reload: %d %s", status, body)
		}
		expectBackend(t, e.backend, forwarded)
	})
}

// BenchmarkJoinStore measures what the store adds to one admitted join of
// a named invite (Reserve + Commit) over the same join without a store:
// (*Handler).ServeHTTP with a next handler answering 204, no HTTP.
//
//	go test -run='^$' -bench=JoinStore -benchmem -count=5 .
func BenchmarkJoinStore(b *testing.B) {
	b.Run("none", func(b *testing.B) { benchJoinStore(b, nil) })
	b.Run("memory", func(b *testing.B) { benchJoinStore(b, &StoreConfig{Type: "memory"}) })
	b.Run("redis", func(b *testing.B) {
		srv := redistest.StartServer(b)
		benchJoinStore(b, &StoreConfig{Type: "redis", URL: srv.URL()})
	})
}

func benchJoinStore(b *testing.B, sc *StoreConfig) {
	h, id, serve := newJoinBench(b, sc)
	serve()
	joins := int64(1)
	b.ReportAllocs()
	for b.Loop() {
		serve()
		joins++
	}
	if h.store != nil {
		inv, err := h.store.Get(context.Background(), id)
		if err != nil || inv.Used != joins || inv.Reserved != 0 {
			b.Fatalf("store state %+v, %v after %d joins", inv, err, joins)
		}
	}
}

// newJoinBench provisions a handler with store sc, registers a named
// invite (unlimited) in that store, and returns serve, which runs one
// admitted join of that invite through (*Handler).ServeHTTP with a next
// handler answering 204, no HTTP, and fails b unless it answers 201.
func newJoinBench(b *testing.B, sc *StoreConfig) (h *Handler, id string, serve func()) {
	b.Helper()
	h = provisionHandler(b, &Handler{Shared: Shared{Keys: []Key{{Secret: testSecret}}, Store: sc}})
	tok, id := namedInvite(b, "g1")
	if h.store != nil {
		if err := h.store.Register(context.Background(), id, store.Unlimited, time.Hour); err != nil {
			b.Fatal(err)
		}
	}
	user := access(b, "alice")
	body := joinBody(tok)
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
	w := &storeBenchWriter{h: make(http.Header)}
	serve = func() {
		repl := caddy.NewReplacer()
		rctx := context.WithValue(context.Background(), caddy.ReplacerCtxKey, repl)
		rctx = context.WithValue(rctx, caddyhttp.VarsCtxKey, map[string]any{caddyhttp.ClientIPVarKey: "192.0.2.1"})
		r, _ := http.NewRequestWithContext(rctx, http.MethodPost, "http://127.0.0.1/user/groups/join", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("X-Auth-Token", user)
		clear(w.h)
		w.status = 0
		if err := h.ServeHTTP(w, r, next); err != nil || w.status != http.StatusCreated {
			b.Fatalf("status %d, err %v", w.status, err)
		}
	}
	return h, id, serve
}

type storeBenchWriter struct {
	h      http.Header
	status int
}

func (w *storeBenchWriter) Header() http.Header         { return w.h }
func (w *storeBenchWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *storeBenchWriter) WriteHeader(s int)           { w.status = s }
