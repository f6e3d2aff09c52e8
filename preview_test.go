package groupjoin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-groupjoin/caddy-groupjoin/internal/testcaddy"
	"github.com/caddy-groupjoin/caddy-groupjoin/tokens"
)

// previewFixture is a provisioned handler with preview on, a memory
// store, a next handler that must never run for a preview, and the
// handler's log lines.
type previewFixture struct {
	h, examine, verify *Handler // the join and the two preview handlers, sharing one state
	logs               *observer.ObservedLogs
	nextRuns           int
}

func newPreviewFixture(t *testing.T) *previewFixture {
	t.Helper()
	h := provisionHandler(t, &Handler{Shared: Shared{Keys: []Key{{Secret: testSecret}}, Identity: []IdentitySource{{Source: SourceAccessToken}}, Store: &StoreConfig{Type: "memory"}}})
	core, logs := observer.New(zap.DebugLevel)
	h.logger = zap.New(core)
	return &previewFixture{h: h, examine: sibling(t, h, ServeExamine), verify: sibling(t, h, ServeVerify), logs: logs}
}

// do sends a request as Caddy's server hands it to handlers: a replacer
// and the client IP in its context.
func (f *previewFixture) do(t *testing.T, method, path, ip, body string, headers ...string) *httptest.ResponseRecorder {
	t.Helper()
	repl := caddy.NewReplacer()
	ctx := context.WithValue(context.Background(), caddy.ReplacerCtxKey, repl)
	ctx = context.WithValue(ctx, caddyhttp.VarsCtxKey, map[string]any{caddyhttp.ClientIPVarKey: ip})
	r := httptest.NewRequestWithContext(ctx, method, "http://edge.test"+path, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		r.Header.Set(headers[i], headers[i+1])
	}
	w := httptest.NewRecorder()
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		f.nextRuns++
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
	// What a Caddyfile's matchers do: one route per endpoint.
	h := f.h
	switch path {
	case DefaultExaminePath:
		h = f.examine
	case DefaultVerifyPath:
		h = f.verify
	}
	if err := h.ServeHTTP(w, r, next); err != nil {
		t.Fatalf("ServeHTTP: %v", err)
	}
	return w
}

func (f *previewFixture) register(t *testing.T, id string, limit int64) {
	t.Helper()
	if err := f.h.store.Register(context.Background(), id, limit, 0); err != nil {
		t.Fatal(err)
	}
}

// previewInvite mints a named invite into g1 from bob with its id.
func previewInvite(t *testing.T, cavs ...string) (tok, id string) {
	id = tokens.NewTokenID()
	return mintT(t, testSecret, tokens.InviteID(tokens.Persistence{Named: true}, "bob", "g1", id), cavs...), id
}

// counterValue reads the requests counter of one outcome on h's route.
func counterValue(t *testing.T, h *Handler, outcome string) float64 {
	t.Helper()
	var m dto.Metric
	if err := h.metrics.requests.WithLabelValues(outcome, h.counts.route).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func inHour() string { return tokens.TimeCaveat(time.Now().Add(time.Hour)) }

func wantAnswer(t *testing.T, w *httptest.ResponseRecorder, status int, code, descPart string) {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status %d, want %d; body %s", w.Code, status, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	if code == "" {
		return
	}
	var m map[string]string
	if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
		t.Fatalf("body %s: %v", w.Body, err)
	}
	if m["error"] != code || !strings.Contains(m["error_description"], descPart) {
		t.Errorf("answer %s, want %s containing %q", w.Body, code, descPart)
	}
}

func TestPreviewExamine(t *testing.T) {
	f := newPreviewFixture(t)
	before := counterValue(t, f.examine, outcomeExamined)

	// Any token, signed with any key: examine does not verify.
	foreign, err := tokens.Mint([]byte("someone else's key"), "zone.example.org",
		tokens.InviteID(tokens.Persistence{Generation: 4}, "carol", "g9", "tid1"),
		"time < 2000000000", "ip = 10.0.0.0/8", "consumer = usr-alice")
	if err != nil {
		t.Fatal(err)
	}
	w := f.do(t, http.MethodPost, "/tokens/examine", "192.0.2.1", joinBody(foreign))
	wantAnswer(t, w, http.StatusOK, "", "")
	want := `{"onezoneDomain":"zone.example.org","id":"tid1","persistence":"temporary","subject":{"type":"user","id":"carol"},` +
		`"type":{"inviteToken":{"groupId":"g9","inviteType":"userJoinGroup","parameters":{}}},` +
		`"caveats":[{"type":"time","validUntil":2000000000},{"type":"ip","whitelist":["10.0.0.0/8"]},{"type":"consumer","whitelist":["usr-alice"]}]}`
	if w.Body.String() != want {
		t.Errorf("body\n got %s\nwant %s", w.Body, want)
	}
	if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q", cc)
	}
	if got := counterValue(t, f.examine, outcomeExamined); got != before+1 {
		t.Errorf("examined counter %v, want %v", got, before+1)
	}

	// An access token is examined as well.
	w = f.do(t, http.MethodPost, "/tokens/examine", "192.0.2.1", joinBody(access(t, "alice")))
	wantAnswer(t, w, http.StatusOK, "", "")
	if !strings.Contains(w.Body.String(), `"type":{"accessToken":{}}`) {
		t.Errorf("access token examined as %s", w.Body)
	}

	rows := []struct {
		name, method, body, ct string
		status                 int
		code, desc             string
	}{
		{"undecodable", "POST", joinBody("bm90IGEgdG9rZW4"), "application/json", 400, "invalid_token", "could not be decoded"},
		{"not json", "POST", `{"token":`, "application/json", 400, "invalid_request", "valid JSON"},
		{"token twice", "POST", `{"token":"a","token":"b"}`, "application/json", 400, "invalid_request", "more than once"},
		{"wrong content type", "POST", joinBody(foreign), "text/plain", 400, "invalid_request", "Content-Type"},
		{"too large", "POST", joinBody(strings.Repeat("A", DefaultMaxBody)), "application/json", 400, "invalid_request", "too large"},
		{"GET", "GET", "", "application/json", 405, "method_not_allowed", "POST"},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			w := f.do(t, row.method, "/tokens/examine", "192.0.2.1", row.body, "Content-Type", row.ct)
			wantAnswer(t, w, row.status, row.code, row.desc)
		})
	}
	if f.nextRuns != 0 {
		t.Errorf("next handler ran %d times for examine", f.nextRuns)
	}
	for _, e := range f.logs.All() {
		line := fmt.Sprint(e.Message, e.ContextMap())
		if strings.Contains(line, foreign[:40]) {
			t.Errorf("log line carries the token: %s", line)
		}
		if oc, _ := e.ContextMap()["outcome"].(string); oc != outcomeExamined && !strings.HasPrefix(oc, prefixExamine) {
			t.Errorf("examine logged outcome %q", oc)
		}
	}
}

func TestPreviewVerify(t *testing.T) {
	f := newPreviewFixture(t)
	post := func(t *testing.T, body string, headers ...string) *httptest.ResponseRecorder {
		t.Helper()
		return f.do(t, http.MethodPost, "/tokens/verify_invite_token", "192.0.2.1", body, headers...)
	}

	t.Run("valid named invite, nothing consumed", func(t *testing.T) {
		tok, id := previewInvite(t, inHour())
		f.register(t, id, 1)
		for range 3 {
			w := post(t, joinBody(tok))
			wantAnswer(t, w, http.StatusOK, "", "")
			var got struct {
				Subject struct{ Type, ID string }
				TTL     *int64
			}
			if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			if got.Subject.Type != "user" || got.Subject.ID != "bob" || got.TTL == nil || *got.TTL < 3590 || *got.TTL > 3600 {
				t.Errorf("answer %s", w.Body)
			}
		}
		inv, err := f.h.store.Get(context.Background(), id)
		if err != nil || inv.Used != 0 || inv.Reserved != 0 {
			t.Errorf("store after verify: %+v %v", inv, err)
		}
		// The single use is still there for the join.
		w := f.do(t, http.MethodPost, "/user/groups/join", "192.0.2.1", joinBody(tok), "X-Auth-Token", access(t, "alice"))
		if w.Code != http.StatusCreated {
			t.Fatalf("join after verify: %d %s", w.Code, w.Body)
		}
		wantAnswer(t, post(t, joinBody(tok)), 400, "invalid_token", "usage limit")
	})

	t.Run("temporary invite without expiry", func(t *testing.T) {
		tok := mintT(t, testSecret, tokens.InviteID(tokens.Persistence{Generation: 0}, "bob", "g1", tokens.NewTokenID()))
		w := post(t, joinBody(tok))
		wantAnswer(t, w, http.StatusOK, "", "")
		if w.Body.String() != `{"subject":{"type":"user","id":"bob"},"ttl":null}` {
			t.Errorf("body %s", w.Body)
		}
	})

	unregistered, _ := previewInvite(t, inHour())
	revoked, revokedID := previewInvite(t)
	f.register(t, revokedID, 5)
	if err := f.h.store.Revoke(context.Background(), revokedID); err != nil {
		t.Fatal(err)
	}
	inFlight, inFlightID := previewInvite(t)
	f.register(t, inFlightID, 1)
	if _, err := f.h.store.Reserve(context.Background(), inFlightID); err != nil {
		t.Fatal(err)
	}
	reg := func(cavs ...string) string {
		tok, id := previewInvite(t, cavs...)
		f.register(t, id, -1)
		return tok
	}
	expired := reg("time < 1000")
	ipBound := reg("ip = 10.0.0.0/8")
	forAlice := reg("consumer = usr-alice")
	gjg := mintT(t, testSecret, tokens.Identifier{Persistence: tokens.Persistence{Generation: 0},
		Subject: tokens.Subject{Kind: "usr", ID: "bob"}, Type: tokens.TokenType{Kind: tokens.TypeInvite, Code: "gjg", TargetID: "g1"}, TokenID: "x1"})
	otherKey, err := tokens.Mint([]byte("another key"), "", tokens.InviteID(tokens.Persistence{Named: true}, "bob", "g1", "x2"))
	if err != nil {
		t.Fatal(err)
	}
	alice, bobAcc := access(t, "alice"), access(t, "bob")
	good := reg()

	rows := []struct {
		name    string
		body    string
		headers []string
		status  int
		code    string
		desc    string
	}{
		{"unregistered", joinBody(unregistered), nil, 400, "invalid_token", "not registered"},
		{"revoked", joinBody(revoked), nil, 400, "invalid_token", "revoked"},
		{"use in flight counts", joinBody(inFlight), nil, 400, "invalid_token", "usage limit"},
		{"expired", joinBody(expired), nil, 400, "invalid_token", "expired"},
		{"ip caveat, other address", joinBody(ipBound), nil, 400, "invalid_token", "could not be validated"},
		{"bad signature", joinBody(otherKey), nil, 400, "invalid_token", "could not be validated"},
		{"not a group invite", joinBody(gjg), nil, 400, "invalid_token", "not a group invite"},
		{"consumer, nobody signed in", joinBody(forAlice), nil, 401, "unauthorized", "sign in"},
		{"consumer, right user", joinBody(forAlice), []string{"X-Auth-Token", alice}, 200, "", ""},
		{"consumer, wrong user", joinBody(forAlice), []string{"X-Auth-Token", bobAcc}, 403, "forbidden", ""},
		{"consumer by consumerToken", `{"token":"` + forAlice + `","consumerToken":"` + alice + `"}`, nil, 200, "", ""},
		{"consumerToken wins over header", `{"token":"` + forAlice + `","consumerToken":"` + alice + `"}`, []string{"X-Auth-Token", bobAcc}, 200, "", ""},
		{"consumerToken null is nobody", `{"token":"` + forAlice + `","consumerToken":null}`, []string{"X-Auth-Token", alice}, 401, "unauthorized", "sign in"},
		{"consumerToken invalid", `{"token":"` + good + `","consumerToken":"junk"}`, nil, 401, "invalid_token", ""},
		{"consumerToken not a string", `{"token":"` + good + `","consumerToken":5}`, nil, 400, "invalid_request", "consumerToken"},
		{"bad credentials header", joinBody(good), []string{"X-Auth-Token", "junk"}, 401, "invalid_token", ""},
		{"expectedInviteType userJoinGroup", `{"token":"` + good + `","expectedInviteType":"userJoinGroup"}`, nil, 200, "", ""},
		{"expectedInviteType other", `{"token":"` + good + `","expectedInviteType":"userJoinSpace"}`, nil, 400, "invalid_request", "userJoinGroup"},
		{"expectedInviteType twice", `{"token":"` + good + `","expectedInviteType":"userJoinGroup","expectedInviteType":"x"}`, nil, 400, "invalid_request", "more than once"},
		{"peerIp refused", `{"token":"` + ipBound + `","peerIp":"10.0.0.1"}`, nil, 400, "invalid_request", "peerIp"},
		{"interface refused", `{"token":"` + good + `","interface":"rest"}`, nil, 400, "invalid_request", "interface"},
		{"serviceToken refused", `{"token":"` + good + `","serviceToken":"x"}`, nil, 400, "invalid_request", "serviceToken"},
		{"allowDataAccessCaveats true", `{"token":"` + good + `","allowDataAccessCaveats":true}`, nil, 400, "invalid_request", "allowDataAccessCaveats"},
		{"allowDataAccessCaveats false", `{"token":"` + good + `","allowDataAccessCaveats":false}`, nil, 200, "", ""},
		{"null optional fields", `{"token":"` + good + `","peerIp":null,"interface":null}`, nil, 200, "", ""},
		{"token missing", `{"expectedInviteType":"userJoinGroup"}`, nil, 400, "invalid_request", "missing"},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			wantAnswer(t, post(t, row.body, row.headers...), row.status, row.code, row.desc)
		})
	}

	t.Run("ip caveat from the client address", func(t *testing.T) {
		w := f.do(t, http.MethodPost, "/tokens/verify_invite_token", "10.1.2.3", joinBody(ipBound))
		wantAnswer(t, w, http.StatusOK, "", "")
	})
	t.Run("GET", func(t *testing.T) {
		wantAnswer(t, f.do(t, http.MethodGet, "/tokens/verify_invite_token", "192.0.2.1", ""), 405, "method_not_allowed", "")
	})

	if f.nextRuns != 1 { // the one join above
		t.Errorf("next handler ran %d times, want 1 (the join)", f.nextRuns)
	}
	for _, e := range f.logs.All() {
		line := fmt.Sprint(e.Message, e.ContextMap())
		for _, secret := range []string{good[:40], alice[:40], forAlice[:40]} {
			if strings.Contains(line, secret) {
				t.Errorf("log line carries a token: %s", line)
			}
		}
	}
}

// A handler serves what its serve option says, whatever the path: Caddy's
// matchers route, the handler does not look at the path.
func TestServeIgnoresPath(t *testing.T) {
	f := newPreviewFixture(t)
	tok, id := previewInvite(t)
	f.register(t, id, 1)
	w := httptest.NewRecorder()
	r := handlerRequest("192.0.2.1", "", joinBody(tok))
	r.URL.Path = "/user/groups/join"
	if err := f.examine.ServeHTTP(w, r, nil); err != nil || w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"onezoneDomain"`) {
		t.Errorf("examine handler on the join path: %d %s", w.Code, w.Body)
	}
	w = f.do(t, http.MethodPost, "/tokens/examine/", "192.0.2.1", joinBody(tok), "X-Auth-Token", access(t, "alice"))
	if w.Code != http.StatusBadRequest || f.nextRuns != 0 {
		t.Errorf("the join handler on another path: %d, next ran %d", w.Code, f.nextRuns)
	}
}

// The preview option of a join handler is gone; a config that has it
// fails with what to write instead.
func TestPreviewOptionMoved(t *testing.T) {
	h := &Handler{Preview: []byte(`{}`), Shared: Shared{Keys: []Key{{Secret: testSecret}}}}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	err := h.Provision(ctx)
	if err == nil || !strings.Contains(err.Error(), `"serve": "verify"`) || !strings.Contains(err.Error(), "group_join /tokens/examine examine") {
		t.Fatalf("preview accepted or unexplained: %v", err)
	}
}

// A real Caddy serves the join and both preview endpoints from one
// global group_join option and a route each; the backend sees the join
// only.
func TestPreviewInCaddy(t *testing.T) {
	s := startRoutesSite(t, "\t\tkey "+testSecret+"\n\t\tstore memory",
		"group_join /user/groups/join", "group_join /tokens/examine examine", "group_join /tokens/verify_invite_token verify",
		"respond /tokens/confine 404")
	tok := mintT(t, testSecret, tokens.InviteID(tokens.Persistence{Generation: 0}, "bob", "g7", tokens.NewTokenID()), inHour(), "consumer = usr-alice")
	alice := access(t, "alice")

	resp := s.do(http.MethodPost, "/tokens/examine", joinBody(tok), "Content-Type", "application/json")
	if body := bodyOf(resp); resp.StatusCode != 200 || !strings.Contains(body, `"groupId":"g7"`) || !strings.Contains(body, `{"type":"consumer","whitelist":["usr-alice"]}`) {
		t.Errorf("examine: %d %s", resp.StatusCode, body)
	}
	resp = s.do(http.MethodPost, "/tokens/verify_invite_token", joinBody(tok), "Content-Type", "application/json", "X-Auth-Token", alice)
	if body := bodyOf(resp); resp.StatusCode != 200 || !strings.HasPrefix(body, `{"subject":{"type":"user","id":"bob"},"ttl":`) {
		t.Errorf("verify: %d %s", resp.StatusCode, body)
	}
	expectError(t, s.do(http.MethodPost, "/tokens/verify_invite_token", joinBody(tok), "Content-Type", "application/json",
		"X-Auth-Token", access(t, "mallory")), 403, "forbidden")
	if n := len(s.backend.requests()); n != 0 {
		t.Fatalf("backend saw %d preview requests", n)
	}
	resp = s.join(joinBody(tok), "X-Auth-Token", alice)
	if resp.StatusCode != http.StatusCreated || len(s.backend.requests()) != 1 {
		t.Errorf("join: %d, backend saw %d", resp.StatusCode, len(s.backend.requests()))
	}
	// A path that is neither is not routed to group_join at all (the
	// site's own answer, no group_join document).
	resp = s.do(http.MethodPost, "/tokens/confine", joinBody(tok), "Content-Type", "application/json")
	if body := bodyOf(resp); body != "" || len(s.backend.requests()) != 1 {
		t.Errorf("/tokens/confine answered %d %q", resp.StatusCode, body)
	}
}

// JSON config: the group_join app holds the keys, and a route per
// endpoint, the preview ones on paths of the operator's choosing; the join
// path is answered by the handler after group_join.
func TestPreviewJSONConfig(t *testing.T) {
	port := testcaddy.FreePort(t)
	cfg := fmt.Sprintf(`{
	"admin": {"disabled": true, "config": {"persist": false}},
	"logging": {"logs": {"default": {"writer": {"output": "discard"}}}},
	"apps": {"http": {"servers": {"gj": {
		"listen": [":%d"],
		"automatic_https": {"disable": true},
		"routes": [
			{"match": [{"path": ["/user/groups/join"]}], "handle": [{"handler": "group_join"}, {"handler": "static_response", "status_code": 204}]},
			{"match": [{"path": ["/api/examine"]}], "handle": [{"handler": "group_join", "serve": "examine"}]},
			{"match": [{"path": ["/api/verify"]}], "handle": [{"handler": "group_join", "serve": "verify"}]}
		]
	}}},
	"group_join": {"keys": [{"secret": %q}]}}
}`, port, testSecret)
	testcaddy.Load(t, []byte(cfg))
	client := testcaddy.Client(10 * time.Second)
	tok := mintT(t, testSecret, tokens.InviteID(tokens.Persistence{Generation: 0}, "bob", "g3", tokens.NewTokenID()))
	post := func(path string, headers ...string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, fmt.Sprintf("http://127.0.0.1:%d%s", port, path), strings.NewReader(joinBody(tok)))
		req.Header.Set("Content-Type", "application/json")
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, bodyOf(resp)
	}
	if code, body := post("/api/examine"); code != 200 || !strings.Contains(body, `"groupId":"g3"`) {
		t.Errorf("examine: %d %s", code, body)
	}
	if code, body := post("/api/verify"); code != 200 || body != `{"subject":{"type":"user","id":"bob"},"ttl":null}` {
		t.Errorf("verify: %d %s", code, body)
	}
	if code, body := post("/user/groups/join", "X-Auth-Token", access(t, "alice")); code != http.StatusCreated {
		t.Errorf("join: %d %s", code, body)
	}
}

// verify_invite_token serves every type the joins on its configuration
// serve: with expectedInviteType naming one of them, or without it (the
// invite's own type, when served); a type no join serves is refused.
func TestPreviewVerifyServedTypes(t *testing.T) {
	f := newPreviewFixture(t)
	_ = sibling(t, f.h, "userJoinSpace")
	_ = sibling(t, f.h, "groupJoinGroup")
	alice := access(t, "alice")
	mint := func(name, target string) string {
		typ, _ := tokens.InviteTypeByName(name)
		return mintT(t, testSecret, tokens.InviteIDOf(tokens.Persistence{Generation: 0}, typ, "bob", target, tokens.NewTokenID()))
	}
	space, parent, cluster := mint("userJoinSpace", "s1"), mint("groupJoinGroup", "p1"), mint("userJoinCluster", "c1")
	verify := func(body string) *httptest.ResponseRecorder {
		return f.do(t, http.MethodPost, DefaultVerifyPath, "192.0.2.1", body, "X-Auth-Token", alice)
	}
	for _, c := range []struct {
		name, body string
		status     int
		code, desc string
	}{
		{"space, expected", `{"token":"` + space + `","expectedInviteType":"userJoinSpace"}`, 200, "", ""},
		{"space, not expected", `{"token":"` + space + `"}`, 200, "", ""},
		{"parent, expected", `{"token":"` + parent + `","expectedInviteType":"groupJoinGroup"}`, 200, "", ""},
		{"space, group expected", `{"token":"` + space + `","expectedInviteType":"userJoinGroup"}`, 400, "invalid_token", "not a group invite"},
		{"parent, space expected", `{"token":"` + parent + `","expectedInviteType":"userJoinSpace"}`, 400, "invalid_token", "not a userJoinSpace invite"},
		{"a type not served", `{"token":"` + cluster + `"}`, 400, "invalid_token", "not an invite of a type served here"},
		{"expecting a type not served", `{"token":"` + cluster + `","expectedInviteType":"userJoinCluster"}`, 400, "invalid_request",
			`"userJoinGroup", "userJoinSpace", "groupJoinGroup"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := verify(c.body)
			if c.status == 200 {
				if w.Code != 200 || !strings.HasPrefix(w.Body.String(), `{"subject":{"type":"user","id":"bob"}`) {
					t.Fatalf("%d %s", w.Code, w.Body)
				}
				return
			}
			wantAnswer(t, w, c.status, c.code, c.desc)
		})
	}
	// A caller whose access token allows space joins only: checked
	// against the expected type's join.
	spaceOnly := access(t, "alice", "api = ozw/create/space.*.join:*")
	w := f.do(t, http.MethodPost, DefaultVerifyPath, "192.0.2.1", `{"token":"`+space+`","expectedInviteType":"userJoinSpace"}`, "X-Auth-Token", spaceOnly)
	if w.Code != 200 {
		t.Errorf("space-only caller, space expected: %d %s", w.Code, w.Body)
	}
	w = f.do(t, http.MethodPost, DefaultVerifyPath, "192.0.2.1", `{"token":"`+space+`","expectedInviteType":"groupJoinGroup"}`, "X-Auth-Token", spaceOnly)
	wantAnswer(t, w, 401, "invalid_token", "")
	if f.nextRuns != 0 {
		t.Errorf("a preview reached the next handler")
	}
}
