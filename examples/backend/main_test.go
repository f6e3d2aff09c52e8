package main

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// newTestBackend starts the backend on a real 127.0.0.1 listener with a real
// SQLite database (dsn) holding the groups "developers" and "operators".
func newTestBackend(t *testing.T, dsn string) (*httptest.Server, *sql.DB) {
	t.Helper()
	db, err := openDB(dsn)
	if err != nil {
		t.Fatalf("openDB(%q): %v", dsn, err)
	}
	t.Cleanup(func() { db.Close() })
	ctx := context.Background()
	if err := initSchema(ctx, db); err != nil {
		t.Fatal(err)
	}
	if err := ensureGroups(ctx, db, []string{"developers", "operators"}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(newServer(db, slog.New(slog.DiscardHandler)))
	t.Cleanup(srv.Close)
	return srv, db
}

// dsns are the database flavours every behavioural test runs against.
func dsns(t *testing.T) map[string]string {
	return map[string]string{
		"memory": ":memory:",
		"file":   filepath.Join(t.TempDir(), "members.db"),
		// A named shared-cache memory database, unique to this test.
		"shared-memory": "file:" + strings.NewReplacer("/", "_").Replace(t.Name()) + "?mode=memory&cache=shared",
	}
}

type answer struct {
	status int
	header http.Header
	body   string
}

func do(t *testing.T, method, url string, headers map[string]string, body string) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

func join(t *testing.T, base, user, group, token string) answer {
	t.Helper()
	h := map[string]string{"Content-Type": "application/json"}
	if user != "" {
		h[hdrUserID] = user
	}
	if group != "" {
		h[hdrGroupID] = group
	}
	if token != "" {
		h[hdrTokenID] = token
		h[hdrIssuer] = "usr-bob"
	}
	return do(t, http.MethodPost, base+"/user/groups/join", h, `{"token": "MDAxY2xvY2F0aW9uIG9uZXpvbmUKMDAz"}`)
}

// wantError checks a JSON error answer.
func wantError(t *testing.T, a answer, status int, code string) errorBody {
	t.Helper()
	if a.status != status {
		t.Fatalf("status = %d, want %d (body %q)", a.status, status, a.body)
	}
	if ct := a.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var e errorBody
	if err := json.Unmarshal([]byte(a.body), &e); err != nil {
		t.Fatalf("body %q is not a JSON error: %v", a.body, err)
	}
	if e.Error != code || e.Description == "" {
		t.Fatalf("error body = %+v, want error %q with a description", e, code)
	}
	return e
}

func members(t *testing.T, base, group string) []string {
	t.Helper()
	a := do(t, http.MethodGet, base+"/groups/"+group+"/members", nil, "")
	if a.status != http.StatusOK {
		t.Fatalf("list %s: status %d body %q", group, a.status, a.body)
	}
	var users []string
	if err := json.Unmarshal([]byte(a.body), &users); err != nil {
		t.Fatalf("list %s: body %q: %v", group, a.body, err)
	}
	return users
}

func TestJoin(t *testing.T) {
	for name, dsn := range dsns(t) {
		t.Run(name, func(t *testing.T) {
			srv, db := newTestBackend(t, dsn)

			a := join(t, srv.URL, "alice", "developers", "tok-1")
			if a.status != http.StatusNoContent || a.body != "" {
				t.Fatalf("first join: status %d body %q, want 204 and no body", a.status, a.body)
			}

			var tokenID sql.NullString
			var joinedAt string
			err := db.QueryRow(`SELECT token_id, joined_at FROM memberships WHERE group_id = ? AND user_id = ?`,
				"developers", "alice").Scan(&tokenID, &joinedAt)
			if err != nil {
				t.Fatal(err)
			}
			if !tokenID.Valid || tokenID.String != "tok-1" {
				t.Errorf("token_id = %+v, want tok-1", tokenID)
			}
			if ts, err := time.Parse(time.RFC3339Nano, joinedAt); err != nil || time.Since(ts) > time.Minute {
				t.Errorf("joined_at = %q (%v), want a recent RFC 3339 time", joinedAt, err)
			}

			// Rejoining the same group is a conflict, with or without a token id.
			wantError(t, join(t, srv.URL, "alice", "developers", "tok-2"), http.StatusConflict, "already_member")
			wantError(t, join(t, srv.URL, "alice", "developers", ""), http.StatusConflict, "already_member")

			// The same user may join another group; another user the same group.
			// Without X-Invite-Token-Id the token id is stored as NULL.
			if a := join(t, srv.URL, "alice", "operators", ""); a.status != http.StatusNoContent {
				t.Fatalf("join operators: %d %q", a.status, a.body)
			}
			if err := db.QueryRow(`SELECT token_id FROM memberships WHERE group_id = 'operators' AND user_id = 'alice'`).Scan(&tokenID); err != nil || tokenID.Valid {
				t.Errorf("token_id without header = %+v, %v; want NULL", tokenID, err)
			}
			if a := join(t, srv.URL, "carol", "developers", "tok-3"); a.status != http.StatusNoContent {
				t.Fatalf("join carol: %d %q", a.status, a.body)
			}
			if got, want := members(t, srv.URL, "developers"), []string{"alice", "carol"}; !reflect.DeepEqual(got, want) {
				t.Errorf("developers = %q, want %q", got, want)
			}
		})
	}
}

func TestJoinUnknownGroup(t *testing.T) {
	srv, db := newTestBackend(t, ":memory:")
	a := join(t, srv.URL, "alice", "nope", "tok-1")
	if a.status != http.StatusNotFound || a.body != `{"error":"not_found","error_description":"Group not found."}`+"\n" {
		t.Fatalf("unknown group: %d %q", a.status, a.body)
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM memberships`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("memberships after refused join: %d, %v", n, err)
	}
}

func TestJoinBadHeaders(t *testing.T) {
	srv, _ := newTestBackend(t, ":memory:")
	cases := []struct {
		name    string
		headers http.Header
	}{
		{"no headers", http.Header{}},
		{"no user", http.Header{hdrGroupID: {"developers"}}},
		{"no group", http.Header{hdrUserID: {"alice"}}},
		{"blank user", http.Header{hdrUserID: {"  "}, hdrGroupID: {"developers"}}},
		{"empty group", http.Header{hdrUserID: {"alice"}, hdrGroupID: {""}}},
		{"two users", http.Header{hdrUserID: {"alice", "mallory"}, hdrGroupID: {"developers"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/user/groups/join", strings.NewReader(`{"token":"x"}`))
			req.Header = tc.headers
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			wantError(t, answer{resp.StatusCode, resp.Header, string(b)}, http.StatusBadRequest, "invalid_request")
		})
	}
	if got := members(t, srv.URL, "developers"); len(got) != 0 {
		t.Fatalf("developers = %q after rejected joins, want none", got)
	}
}

// TestConcurrentJoin fires many joins of the same user at once: the primary
// key must let exactly one through and turn all others into 409.
func TestConcurrentJoin(t *testing.T) {
	const n = 32
	for name, dsn := range dsns(t) {
		t.Run(name, func(t *testing.T) {
			srv, _ := newTestBackend(t, dsn)
			for _, method := range []string{http.MethodPost, http.MethodPut} {
				group := map[string]string{http.MethodPost: "developers", http.MethodPut: "operators"}[method]
				var (
					wg       sync.WaitGroup
					mu       sync.Mutex
					statuses = map[int]int{}
					start    = make(chan struct{})
				)
				for i := range n {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						token := fmt.Sprintf("tok-%d", i)
						var req *http.Request
						if method == http.MethodPost {
							req, _ = http.NewRequest(method, srv.URL+"/user/groups/join", strings.NewReader(`{"token":"x"}`))
							req.Header.Set(hdrUserID, "alice")
							req.Header.Set(hdrGroupID, group)
						} else {
							req, _ = http.NewRequest(method, srv.URL+"/groups/"+group+"/members/alice", nil)
						}
						req.Header.Set(hdrTokenID, token)
						resp, err := http.DefaultClient.Do(req)
						if err != nil {
							t.Error(err)
							return
						}
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						mu.Lock()
						statuses[resp.StatusCode]++
						mu.Unlock()
					}()
				}
				close(start)
				wg.Wait()
				success := map[string]int{http.MethodPost: http.StatusNoContent, http.MethodPut: http.StatusCreated}[method]
				want := map[int]int{success: 1, http.StatusConflict: n - 1}
				if !reflect.DeepEqual(statuses, want) {
					t.Errorf("%s: statuses = %v, want %v", method, statuses, want)
				}
				if got := members(t, srv.URL, group); !reflect.DeepEqual(got, []string{"alice"}) {
					t.Errorf("%s: members = %q, want [alice]", method, got)
				}
			}
		})
	}
}

// TestConcurrentDistinctJoins checks that concurrent writers do not fail
// each other (no SQLITE_BUSY / SQLITE_LOCKED leaking out as 500).
func TestConcurrentDistinctJoins(t *testing.T) {
	const n = 32
	for name, dsn := range dsns(t) {
		t.Run(name, func(t *testing.T) {
			srv, _ := newTestBackend(t, dsn)
			var wg sync.WaitGroup
			errs := make(chan string, n)
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					a := join(t, srv.URL, fmt.Sprintf("user%02d", i), "developers", "tok")
					if a.status != http.StatusNoContent {
						errs <- fmt.Sprintf("user%02d: %d %s", i, a.status, a.body)
					}
				}()
			}
			wg.Wait()
			close(errs)
			for e := range errs {
				t.Error(e)
			}
			if got := members(t, srv.URL, "developers"); len(got) != n {
				t.Errorf("got %d members, want %d", len(got), n)
			}
		})
	}
}

func TestPutMember(t *testing.T) {
	srv, db := newTestBackend(t, ":memory:")
	put := func(path, token string) answer {
		h := map[string]string{}
		if token != "" {
			h[hdrTokenID] = token
		}
		return do(t, http.MethodPut, srv.URL+path, h, "")
	}

	a := put("/groups/operators/members/bob", "tok-9")
	if a.status != http.StatusCreated {
		t.Fatalf("PUT: %d %q, want 201", a.status, a.body)
	}
	if loc := a.header.Get("Location"); loc != "/groups/operators/members/bob" {
		t.Errorf("Location = %q", loc)
	}
	var tokenID string
	if err := db.QueryRow(`SELECT token_id FROM memberships WHERE group_id = 'operators' AND user_id = 'bob'`).Scan(&tokenID); err != nil || tokenID != "tok-9" {
		t.Errorf("token_id = %q, %v; want tok-9", tokenID, err)
	}

	wantError(t, put("/groups/operators/members/bob", "tok-10"), http.StatusConflict, "already_member")
	wantError(t, put("/groups/operators/members/carol", ""), http.StatusBadRequest, "invalid_request")
	e := wantError(t, put("/groups/nope/members/carol", "tok-11"), http.StatusNotFound, "not_found")
	if e.Description != "Group not found." {
		t.Errorf("description = %q", e.Description)
	}

	// Both APIs share the same memberships.
	wantError(t, join(t, srv.URL, "bob", "operators", "tok-12"), http.StatusConflict, "already_member")
	if a := join(t, srv.URL, "carol", "operators", "tok-13"); a.status != http.StatusNoContent {
		t.Fatalf("POST carol: %d %q", a.status, a.body)
	}
	wantError(t, put("/groups/operators/members/carol", "tok-14"), http.StatusConflict, "already_member")

	// Escaped path segments are decoded.
	if a := put("/groups/operators/members/d%C3%A9sir%C3%A9e", "tok-15"); a.status != http.StatusCreated {
		t.Fatalf("PUT escaped user: %d %q", a.status, a.body)
	}
	if got, want := members(t, srv.URL, "operators"), []string{"bob", "carol", "désirée"}; !reflect.DeepEqual(got, want) {
		t.Errorf("operators = %q, want %q", got, want)
	}
}

func TestListMembers(t *testing.T) {
	srv, _ := newTestBackend(t, ":memory:")
	a := do(t, http.MethodGet, srv.URL+"/groups/developers/members", nil, "")
	if a.status != http.StatusOK || a.body != "[]\n" || a.header.Get("Content-Type") != "application/json" {
		t.Fatalf("empty group: %d %q %q", a.status, a.body, a.header.Get("Content-Type"))
	}
	for _, u := range []string{"zoe", "alice", "mike"} {
		if a := join(t, srv.URL, u, "developers", "t"); a.status != http.StatusNoContent {
			t.Fatalf("join %s: %d", u, a.status)
		}
	}
	if got, want := members(t, srv.URL, "developers"), []string{"alice", "mike", "zoe"}; !reflect.DeepEqual(got, want) {
		t.Errorf("developers = %q, want %q", got, want)
	}
	if got := members(t, srv.URL, "operators"); len(got) != 0 {
		t.Errorf("operators = %q, want []", got)
	}
	wantError(t, do(t, http.MethodGet, srv.URL+"/groups/nope/members", nil, ""), http.StatusNotFound, "not_found")
}

func TestHealthz(t *testing.T) {
	srv, _ := newTestBackend(t, ":memory:")
	a := do(t, http.MethodGet, srv.URL+"/healthz", nil, "")
	if a.status != http.StatusOK || a.body != "ok" {
		t.Fatalf("healthz: %d %q", a.status, a.body)
	}
}

func TestRouting(t *testing.T) {
	srv, _ := newTestBackend(t, ":memory:")
	cases := []struct {
		method, path string
		status       int
		code, allow  string
	}{
		{http.MethodGet, "/", http.StatusNotFound, "not_found", ""},
		{http.MethodGet, "/nope", http.StatusNotFound, "not_found", ""},
		{http.MethodPost, "/user/groups/join/", http.StatusNotFound, "not_found", ""},
		{http.MethodPost, "/user/groups", http.StatusNotFound, "not_found", ""},
		{http.MethodGet, "/groups/developers/members/alice/x", http.StatusNotFound, "not_found", ""},
		{http.MethodGet, "/user/groups/join", http.StatusMethodNotAllowed, "method_not_allowed", "POST"},
		{http.MethodPut, "/user/groups/join", http.StatusMethodNotAllowed, "method_not_allowed", "POST"},
		{http.MethodGet, "/groups/developers/members/alice", http.StatusMethodNotAllowed, "method_not_allowed", "PUT"},
		{http.MethodDelete, "/groups/developers/members/alice", http.StatusMethodNotAllowed, "method_not_allowed", "PUT"},
		{http.MethodPost, "/groups/developers/members", http.StatusMethodNotAllowed, "method_not_allowed", "GET, HEAD"},
		{http.MethodPost, "/healthz", http.StatusMethodNotAllowed, "method_not_allowed", "GET, HEAD"},
	}
	for _, tc := range cases {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			a := do(t, tc.method, srv.URL+tc.path, map[string]string{hdrUserID: "alice", hdrGroupID: "developers"}, "")
			wantError(t, a, tc.status, tc.code)
			if got := a.header.Get("Allow"); got != tc.allow {
				t.Errorf("Allow = %q, want %q", got, tc.allow)
			}
		})
	}
	if got := members(t, srv.URL, "developers"); len(got) != 0 {
		t.Errorf("developers = %q after routing errors, want none", got)
	}
}

func TestParseConfig(t *testing.T) {
	env := func(m map[string]string) func(string) string {
		return func(k string) string { return m[k] }
	}
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want config
	}{
		{"defaults", nil, nil,
			config{listen: "127.0.0.1:8081", db: ":memory:", groups: []string{"developers", "operators"}, spaces: []string{"datasets"}, privileges: []grant{{"operators", "alice", "group_add_parent"}}}},
		{"env", nil, map[string]string{envListen: "127.0.0.1:9000", envDB: "/tmp/x.db", envGroups: "a, b,,a", envSpaces: "s1,s2", envPrivileges: "a:bob:group_add_parent"},
			config{listen: "127.0.0.1:9000", db: "/tmp/x.db", groups: []string{"a", "b"}, spaces: []string{"s1", "s2"}, privileges: []grant{{"a", "bob", "group_add_parent"}}}},
		{"blank env ignored", nil, map[string]string{envListen: " ", envDB: ""},
			config{listen: "127.0.0.1:8081", db: ":memory:", groups: []string{"developers", "operators"}, spaces: []string{"datasets"}, privileges: []grant{{"operators", "alice", "group_add_parent"}}}},
		{"flags win", []string{"-listen", "10.0.0.1:1", "-db=m.db", "-groups", "x", "-spaces", "y", "-privileges", "x:u:p"},
			map[string]string{envListen: "127.0.0.1:9000", envDB: "/tmp/x.db", envGroups: "a"},
			config{listen: "10.0.0.1:1", db: "m.db", groups: []string{"x"}, spaces: []string{"y"}, privileges: []grant{{"x", "u", "p"}}}},
		{"no groups", []string{"-groups", "", "-spaces", "", "-privileges", ""}, nil,
			config{listen: "127.0.0.1:8081", db: ":memory:", groups: nil}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseConfig(tc.args, env(tc.env), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
	for _, args := range [][]string{{"-nope"}, {"extra"}, {"-listen", ""}, {"-privileges", "a:b"}, {"-privileges", "a::p"}} {
		if _, err := parseConfig(args, env(nil), io.Discard); err == nil {
			t.Errorf("parseConfig(%q): no error", args)
		}
	}
	if _, err := parseConfig([]string{"-h"}, env(nil), io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v, want flag.ErrHelp", err)
	}
}

// startRun runs the whole program with args and returns its base URL and a
// stop function that cancels it (like SIGTERM) and returns run's error; stop
// may be called more than once and is also called at cleanup.
func startRun(t *testing.T, args ...string) (string, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, args, func(string) string { return "" }, pw, io.Discard)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		cancel()
		t.Fatalf("no startup line (%v); run: %v", err, <-done)
	}
	go io.Copy(io.Discard, pr)
	const prefix = "membership backend listening on "
	if !strings.HasPrefix(line, prefix+"http://127.0.0.1:") {
		t.Fatalf("startup line = %q", line)
	}
	stop := sync.OnceValue(func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(15 * time.Second):
			return errors.New("run did not return after cancel")
		}
	})
	t.Cleanup(func() { stop() })
	return strings.TrimSpace(strings.TrimPrefix(line, prefix)), stop
}

// TestRun exercises the program end to end: flags, startup line, a file
// database that survives a restart, groups created only if missing, and
// graceful shutdown.
func TestRun(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "members.db")

	base, stop := startRun(t, "-listen", "127.0.0.1:0", "-db", dbPath, "-groups", "developers, qa", "-privileges", "")
	if a := do(t, http.MethodGet, base+"/healthz", nil, ""); a.status != http.StatusOK {
		t.Fatalf("healthz: %d", a.status)
	}
	if a := join(t, base, "alice", "qa", "tok-1"); a.status != http.StatusNoContent {
		t.Fatalf("join: %d %q", a.status, a.body)
	}
	wantError(t, join(t, base, "alice", "operators", "tok-1"), http.StatusNotFound, "not_found")
	if err := stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Fatal("server still answering after shutdown")
	}

	base, stop = startRun(t, "-listen", "127.0.0.1:0", "-db", dbPath, "-groups", "qa,operators")
	if got := members(t, base, "qa"); !reflect.DeepEqual(got, []string{"alice"}) {
		t.Errorf("qa after restart = %q, want [alice]", got)
	}
	wantError(t, join(t, base, "alice", "qa", "tok-2"), http.StatusConflict, "already_member")
	if a := join(t, base, "alice", "operators", "tok-2"); a.status != http.StatusNoContent {
		t.Fatalf("join operators: %d %q", a.status, a.body)
	}
	if err := stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
}

// A privilege in a group that is not created fails the start, and says
// what to do.
func TestRunGrantUnknownGroup(t *testing.T) {
	err := run(context.Background(), []string{"-listen", "127.0.0.1:0", "-groups", "qa"}, func(string) string { return "" }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), `no group "operators" (list it in -groups`) {
		t.Fatalf("run: %v", err)
	}
}

func TestRunListenError(t *testing.T) {
	srv, _ := newTestBackend(t, ":memory:")
	addr := strings.TrimPrefix(srv.URL, "http://")
	err := run(context.Background(), []string{"-listen", addr}, func(string) string { return "" }, io.Discard, io.Discard)
	if err == nil {
		t.Fatal("run on a busy address: no error")
	}
}
