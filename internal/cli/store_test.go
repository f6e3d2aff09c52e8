package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	// The group_join handler and its admin API (admin.api.group_join).
	_ "github.com/caddy-groupjoin/caddy-groupjoin"
	"github.com/caddy-groupjoin/caddy-groupjoin/internal/cli"
	"github.com/caddy-groupjoin/caddy-groupjoin/internal/testcaddy"
	"github.com/caddy-groupjoin/caddy-groupjoin/store"
	"github.com/caddy-groupjoin/caddy-groupjoin/store/redistest"
)

const storeTestKey = "cli-store-test-KEY-51d0a7"

type cliResult struct {
	code           int
	stdout, stderr string
}

func runCLI(t *testing.T, args ...string) cliResult {
	t.Helper()
	var out, errb bytes.Buffer
	r := &cli.Runner{
		Stdin:  strings.NewReader(""),
		Stdout: &out,
		Stderr: &errb,
		Getenv: func(k string) string {
			if k == cli.DefaultKeyEnv {
				return storeTestKey
			}
			return ""
		},
	}
	res := cliResult{r.Run(args), out.String(), errb.String()}
	if strings.Contains(res.stdout+res.stderr, storeTestKey) {
		t.Fatalf("%q printed the key", args)
	}
	return res
}

func mustCLI(t *testing.T, code int, args ...string) cliResult {
	t.Helper()
	res := runCLI(t, args...)
	if res.code != code {
		t.Fatalf("%q: exit %d, want %d\nstdout: %s\nstderr: %s", args, res.code, code, res.stdout, res.stderr)
	}
	return res
}

type mintedJSON struct {
	Token   string `json:"token"`
	TokenID string `json:"token_id"`
	Expires string `json:"expires"`
}

func mintJSON(t *testing.T, args ...string) mintedJSON {
	t.Helper()
	res := mustCLI(t, 0, append([]string{"mint", "invite", "--group", "g1", "--inviter", "bob", "--json"}, args...)...)
	var m mintedJSON
	if err := json.Unmarshal([]byte(res.stdout), &m); err != nil || m.TokenID == "" {
		t.Fatalf("mint --json printed %q: %v", res.stdout, err)
	}
	return m
}

var httpc = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

func adminState(t *testing.T, admin, id string) (int, map[string]any) {
	t.Helper()
	resp, err := httpc.Get("http://" + admin + "/group-join/invites/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&st)
	return resp.StatusCode, st
}

func join(t *testing.T, url, inviteTok, accessTok string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url+"/user/groups/join", strings.NewReader(`{"token":"`+inviteTok+`"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Auth-Token", accessTok)
	resp, err := httpc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// The admin path against an in-process Caddy running group_join with a
// memory store: what the CLI registers and revokes is what the edge
// enforces.
func TestRegisterAndRevokeThroughAdminAPI(t *testing.T) {
	var joins atomic.Int64
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		joins.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer backend.Close()
	port, adminPort := testcaddy.FreePort(t), testcaddy.FreePort(t)
	admin := fmt.Sprintf("127.0.0.1:%d", adminPort)
	testcaddy.LoadCaddyfile(t, fmt.Sprintf(`{
	admin %[2]s
	auto_https off
	persist_config off
	http_port %[1]d
	log {
		output discard
	}
}
:%[1]d {
	log {
		output discard
	}
	group_join /user/groups/join {
		key %[4]s
		store memory
	}
	reverse_proxy /user/groups/join %[3]s
}
`, port, admin, strings.TrimPrefix(backend.URL, "http://"), storeTestKey))
	site := fmt.Sprintf("http://127.0.0.1:%d", port)
	user := strings.TrimSpace(mustCLI(t, 0, "mint", "access", "--user", "alice").stdout)

	// Single use by default; registered until the token's time caveat.
	m := mintJSON(t, "--persistence", "nmd", "--ttl", "2h", "--register", "--admin", admin)
	status, st := adminState(t, admin, m.TokenID)
	if status != 200 || st["limit"] != float64(1) || st["used"] != float64(0) {
		t.Fatalf("state after --register: %d %v", status, st)
	}
	if exp, _ := time.Parse(time.RFC3339, fmt.Sprint(st["expires"])); exp.IsZero() || time.Until(exp) > 2*time.Hour+5*time.Second || time.Until(exp) < 2*time.Hour-time.Minute {
		t.Fatalf("record expires %v, token at %s", st["expires"], m.Expires)
	}
	if got := join(t, site, m.Token, user); got != 201 {
		t.Fatalf("first join: %d", got)
	}
	if got := join(t, site, m.Token, user); got != 400 {
		t.Fatalf("second join of a single-use invite: %d", got)
	}

	// --uses N; the same token id again is refused, and then the token is
	// not printed.
	m5 := mintJSON(t, "--persistence", "nmd", "--register", "--uses", "5", "--admin", "http://"+admin)
	if _, st := adminState(t, admin, m5.TokenID); st["limit"] != float64(5) {
		t.Fatalf("limit %v", st["limit"])
	}
	res := mustCLI(t, cli.ExitStore, "mint", "invite", "--group", "g1", "--inviter", "bob", "--persistence", "nmd",
		"--token-id", m5.TokenID, "--register", "--admin", admin)
	if res.stdout != "" || !strings.Contains(res.stderr, "already registered") || !strings.Contains(res.stderr, "not printed") {
		t.Fatalf("duplicate registration: stdout %q stderr %q", res.stdout, res.stderr)
	}
	mu := mintJSON(t, "--persistence", "nmd", "--register", "--uses", "unlimited", "--ttl", "0", "--admin", admin)
	if _, st := adminState(t, admin, mu.TokenID); st["limit"] != "unlimited" || st["expires"] != nil {
		t.Fatalf("unlimited without expiry: %v", st)
	}

	// Revoke by token (never echoed) and by id; idempotent.
	res = mustCLI(t, 0, "revoke", m5.Token, "--admin", admin)
	if res.stdout != "revoked "+m5.TokenID+"\n" {
		t.Fatalf("revoke printed %q", res.stdout)
	}
	if _, st := adminState(t, admin, m5.TokenID); st["revoked"] != true {
		t.Fatalf("not revoked: %v", st)
	}
	if got := join(t, site, m5.Token, user); got != 400 {
		t.Fatalf("join with a revoked invite: %d", got)
	}
	mustCLI(t, 0, "revoke", "--admin", admin, m5.TokenID)
	if n := joins.Load(); n != 1 {
		t.Fatalf("backend saw %d joins, want 1", n)
	}

	// Refusals.
	for _, c := range []struct {
		code int
		args []string
		msg  string
	}{
		{2, []string{"mint", "invite", "--group", "g1", "--inviter", "bob", "--register", "--admin", admin}, "--persistence nmd"},
		{2, []string{"mint", "invite", "--group", "g1", "--inviter", "bob", "--persistence", "nmd", "--uses", "3"}, "need --register"},
		{2, []string{"mint", "invite", "--group", "g1", "--inviter", "bob", "--persistence", "nmd", "--register", "--uses", "0"}, "--uses"},
		{2, []string{"mint", "invite", "--group", "g1", "--inviter", "bob", "--persistence", "nmd", "--register", "--admin", admin, "--redis", "redis://127.0.0.1:1/0"}, "exclude"},
		{2, []string{"mint", "invite", "--group", "g1", "--inviter", "bob", "--persistence", "nmd", "--register", "--redis-prefix", "x:"}, "needs --redis"},
		{2, []string{"revoke"}, "exactly one"},
		{2, []string{"revoke", "not an id!"}, "neither a token id"},
		{2, []string{"revoke", strings.TrimSpace(mustCLI(t, 0, "mint", "invite", "--group", "g1", "--inviter", "bob").stdout)}, "temporary"},
		{3, []string{"revoke", "abc", "--admin", fmt.Sprintf("127.0.0.1:%d", testcaddy.FreePort(t))}, "revoking token id abc"},
		{3, []string{"mint", "invite", "--group", "g1", "--inviter", "bob", "--persistence", "nmd", "--register", "--admin", fmt.Sprintf("127.0.0.1:%d", testcaddy.FreePort(t))}, "not printed"},
	} {
		res := mustCLI(t, c.code, c.args...)
		if !strings.Contains(res.stderr, c.msg) || res.stdout != "" {
			t.Errorf("%q: stdout %q, stderr %q, want %q", c.args, res.stdout, res.stderr, c.msg)
		}
	}
}

// The Redis path: the CLI writes the documented keys itself.
func TestRegisterAndRevokeInRedis(t *testing.T) {
	srv := redistest.StartServer(t)
	ctx := context.Background()
	prefixed, err := store.NewRedis(store.RedisOptions{URL: srv.URL(), KeyPrefix: "cli:"})
	if err != nil {
		t.Fatal(err)
	}
	defer prefixed.Close()
	plain, err := store.NewRedis(store.RedisOptions{URL: srv.URL()})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()

	m := mintJSON(t, "--persistence", "nmd", "--ttl", "3h", "--register", "--uses", "unlimited", "--redis", srv.URL(), "--redis-prefix", "cli:")
	inv, err := prefixed.Get(ctx, m.TokenID)
	if err != nil || inv.Limit != store.Unlimited || inv.Revoked {
		t.Fatalf("registered: %+v, %v", inv, err)
	}
	if d := time.Until(inv.Expires); d > 3*time.Hour+5*time.Second || d < 3*time.Hour-time.Minute {
		t.Fatalf("record expires in %v, want the token's 3h", d)
	}
	if _, err := plain.Get(ctx, m.TokenID); !errors.Is(err, store.ErrUnknown) {
		t.Fatalf("default prefix has it: %v", err)
	}

	m2 := mintJSON(t, "--persistence", "nmd", "--register", "--uses", "2", "--redis", srv.URL())
	if inv, err := plain.Get(ctx, m2.TokenID); err != nil || inv.Limit != 2 {
		t.Fatalf("registered: %+v, %v", inv, err)
	}
	if res := mustCLI(t, 0, "revoke", m2.TokenID, "--redis", srv.URL()); res.stdout != "revoked "+m2.TokenID+"\n" {
		t.Fatalf("revoke printed %q", res.stdout)
	}
	if inv, err := plain.Get(ctx, m2.TokenID); err != nil || !inv.Revoked {
		t.Fatalf("after revoke: %+v, %v", inv, err)
	}
	mustCLI(t, 0, "revoke", m.Token, "--redis", srv.URL(), "--redis-prefix", "cli:")
	if inv, err := prefixed.Get(ctx, m.TokenID); err != nil || !inv.Revoked {
		t.Fatalf("after revoke: %+v, %v", inv, err)
	}

	// Redis away: exit 3, no token printed, the URL not echoed.
	srv.Kill()
	res := mustCLI(t, cli.ExitStore, "mint", "invite", "--group", "g1", "--inviter", "bob", "--persistence", "nmd", "--register",
		"--redis", "redis://:s3cret-pass@"+srv.Addr()+"/0")
	if res.stdout != "" || !strings.Contains(res.stderr, "unavailable") || strings.Contains(res.stderr, "s3cret-pass") {
		t.Fatalf("Redis down: stdout %q stderr %q", res.stdout, res.stderr)
	}
	res = mustCLI(t, cli.ExitStore, "revoke", "abc", "--redis", srv.URL())
	if !strings.Contains(res.stderr, "unavailable") {
		t.Fatalf("revoke with Redis down: %q", res.stderr)
	}
}
