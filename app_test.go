package groupjoin

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddy-groupjoin/caddy-groupjoin/internal/testcaddy"
	"github.com/caddy-groupjoin/caddy-groupjoin/store"
	"github.com/caddy-groupjoin/caddy-groupjoin/tokens"
	"github.com/caddyserver/caddy/v2"
)

// Handlers on one app share its state: one keyring, one pair of token
// caches, one store, one set of pool references however many routes use
// it; and the verify handler knows which types the joins serve.
func TestAppSharedByHandlers(t *testing.T) {
	app := &App{Shared: Shared{Keys: []Key{{Secret: testSecret}}, Store: &StoreConfig{Type: "memory", ReservationTTL: caddy.Duration(4343)}}}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := app.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	refs, _ := storePool.References(app.state.storeKey)
	var hs []*Handler
	for _, serve := range []string{"", "groupJoinGroup", "userJoinSpace", ServeVerify} {
		h := &Handler{Serve: serve}
		if err := h.provisionRoute(); err != nil {
			t.Fatal(err)
		}
		h.attach(app.state, false)
		hs = append(hs, h)
	}
	for _, h := range hs[1:] {
		if h.sharedState != hs[0].sharedState || h.invites != hs[0].invites || h.store != hs[0].store {
			t.Fatal("handlers on one app do not share its state")
		}
	}
	if n, _ := storePool.References(app.state.storeKey); n != refs {
		t.Errorf("handlers took store references: %d, want %d", n, refs)
	}
	var names []string
	for _, typ := range hs[3].servedTypes() {
		names = append(names, typ.Name)
	}
	if got := strings.Join(names, " "); got != "userJoinGroup groupJoinGroup userJoinSpace" {
		t.Errorf("served types %q", got)
	}
	// A handler's Cleanup leaves the app's state alone; the app's gives it
	// back.
	for _, h := range hs {
		if err := h.Cleanup(); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := storePool.References(app.state.storeKey); n != refs {
		t.Errorf("handler cleanup released the app's store: %d references, want %d", n, refs)
	}
	key := app.state.storeKey
	if err := app.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if n, _ := storePool.References(key); n != refs-1 {
		t.Errorf("after the app's cleanup: %d references, want %d", n, refs-1)
	}
}

// A handler that carries keys of its own keeps them even when the app is
// configured; a handler with shared options but no keys is refused.
func TestHandlerOwnOrShared(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	h := &Handler{Shared: Shared{Store: &StoreConfig{Type: "memory"}}}
	if err := h.Provision(ctx); err == nil || !strings.Contains(err.Error(), "without keys") {
		t.Errorf("shared options without keys: %v", err)
	}
	h = &Handler{Serve: "userJoinGroup", Entity: "{x}", Shared: Shared{Keys: []Key{{Secret: testSecret}}}}
	if err := h.Provision(ctx); err == nil || !strings.Contains(err.Error(), "the caller joins") {
		t.Errorf("entity on a user route: %v", err)
	}
	h = &Handler{Serve: ServeExamine, LocationPrefix: "/x/", Shared: Shared{Keys: []Key{{Secret: testSecret}}}}
	if err := h.Provision(ctx); err == nil || !strings.Contains(err.Error(), "do not apply") {
		t.Errorf("location_prefix on examine: %v", err)
	}
	h = &Handler{Shared: Shared{Keys: []Key{{Secret: testSecret}}, ErrorModel: "json"}}
	if err := h.Provision(ctx); err == nil || !strings.Contains(err.Error(), `error_model "json": want documented or onezone`) {
		t.Errorf("unknown error model: %v", err)
	}
	app := &App{Shared: Shared{Keys: []Key{{Secret: testSecret}}, ErrorModel: "Onezone"}}
	if err := app.Provision(ctx); err == nil || !strings.Contains(err.Error(), "error_model") {
		t.Errorf("app, unknown error model: %v", err)
	}
	// A verify handler of its own verifies every join's invites.
	v := provisionHandler(t, &Handler{Serve: ServeVerify, Shared: Shared{Keys: []Key{{Secret: testSecret}}}})
	if n := len(v.servedTypes()); n != len(joinRoutes) {
		t.Errorf("own verify handler serves %d types, want %d", n, len(joinRoutes))
	}
}

// A real Caddy: the app's store outlives a reload of the same config, so
// a single-use invite used before the reload stays used after it, on
// another route of the same app.
func TestAppReload(t *testing.T) {
	testcaddy.SkipShort(t)
	b := newBackend(t)
	port := testcaddy.FreePort(t)
	cfg := testcaddy.Adapt(t, testGlobals(port, "off", "\tgroup_join {\n\t\tkey "+testSecret+"\n\t\tstore memory\n\t}\n")+fmt.Sprintf(`:%d {
	group_join /user/groups/join
	group_join /groups/*/parents/join groupJoinGroup
	reverse_proxy %s
}
`, port, b.addr()))
	testcaddy.Load(t, cfg)
	s := &site{t: t, url: fmt.Sprintf("http://127.0.0.1:%d", port), port: port, backend: b, client: testcaddy.Client(10 * time.Second)}

	// Register through the store of the running config.
	var st store.Store
	for _, v := range activeStores() {
		st = v
	}
	if st == nil {
		t.Fatal("no store loaded")
	}
	gjg, _ := tokens.InviteTypeByName("groupJoinGroup")
	id := tokens.NewTokenID()
	tok := mintT(t, testSecret, tokens.InviteIDOf(tokens.Persistence{Named: true}, gjg, "bob", "p1", id), inHour())
	if err := st.Register(t.Context(), id, 1, 0); err != nil {
		t.Fatal(err)
	}
	user := access(t, "alice")
	hdr := []string{"Content-Type", "application/json", "X-Auth-Token", user}
	if resp := s.do(http.MethodPost, "/groups/c1/parents/join", joinBody(tok), hdr...); resp.StatusCode != http.StatusCreated {
		t.Fatalf("join: %d %s", resp.StatusCode, bodyOf(resp))
	}
	s.reload(t, cfg)
	expectError(t, s.do(http.MethodPost, "/groups/c2/parents/join", joinBody(tok), hdr...), 400, "invalid_token")
	if n := len(b.requests()); n != 1 {
		t.Errorf("backend saw %d joins, want 1", n)
	}
}

// A handler on an app that fails to load reports the app's error, not a
// missing key.
func TestHandlerReportsAppError(t *testing.T) {
	testcaddy.SkipShort(t)
	port := testcaddy.FreePort(t)
	cfg := fmt.Sprintf(`{
	"admin": {"disabled": true, "config": {"persist": false}},
	"logging": {"logs": {"default": {"writer": {"output": "discard"}}}},
	"apps": {
		"group_join": {"keys": [{"secret": "{env.GROUPJOIN_TEST_UNSET_KEY}"}]},
		"http": {"servers": {"gj": {"listen": [":%d"], "automatic_https": {"disable": true},
			"routes": [{"handle": [{"handler": "group_join"}]}]}}}
	}
}`, port)
	err := caddy.Load([]byte(cfg), true)
	if err == nil {
		_ = caddy.Stop()
		t.Fatal("loaded")
	}
	if !strings.Contains(err.Error(), "key #1: secret is empty or its placeholder cannot be resolved ({env.GROUPJOIN_TEST_UNSET_KEY})") ||
		strings.Contains(err.Error(), "no keys") {
		t.Errorf("error %v", err)
	}
}
