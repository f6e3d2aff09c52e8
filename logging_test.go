package groupjoin

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddy-groupjoin/caddy-groupjoin/internal/testcaddy"
	"github.com/caddy-groupjoin/caddy-groupjoin/tokens"
)

// readJSONLines waits until path holds at least n JSON lines matching keep
// (bounded wait: log lines may be written just after the answer is sent)
// and returns them.
func readJSONLines(t *testing.T, path string, n int, keep func(map[string]any) bool) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var lines []map[string]any
		data, _ := os.ReadFile(path)
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Fatalf("%s: line is not JSON: %q", filepath.Base(path), sc.Text())
			}
			if keep(m) {
				lines = append(lines, m)
			}
		}
		if len(lines) >= n || time.Now().After(deadline) {
			if len(lines) != n {
				t.Fatalf("%s: %d matching lines, want %d:\n%s", filepath.Base(path), len(lines), n, data)
			}
			return lines
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// leakForms returns a token and the encodings of its signature that a
// careless log line might contain.
func leakForms(t *testing.T, tok string) []string {
	t.Helper()
	m, err := tokens.Decode(tok)
	if err != nil {
		t.Fatal(err)
	}
	sig := m.Signature()
	return []string{tok, tok[len(tok)-24:],
		base64.StdEncoding.EncodeToString(sig), base64.RawURLEncoding.EncodeToString(sig), hex.EncodeToString(sig)}
}

func TestLogging(t *testing.T) {
	dir := t.TempDir()
	handlerLog := filepath.Join(dir, "group_join.log")
	accessLog := filepath.Join(dir, "access.log")
	b := newBackend(t)
	port := testcaddy.FreePort(t)
	testcaddy.LoadCaddyfile(t, testGlobals(port, "off", `	log groupjoin {
		output file `+handlerLog+`
		format json
		level DEBUG
		include http.handlers.group_join
	}
`)+fmt.Sprintf(`:%[1]d {
	log {
		output file %[5]s
		format filter {
			wrap json
			request>headers>X-Auth-Token delete
			request>headers>Macaroon delete
		}
	}
	group_join /user/groups/join {
		key %[3]s
		identity access_token
		identity placeholder {http.request.header.X-Remote-User}
	}
	reverse_proxy /user/groups/join %[2]s
}
`, port, b.addr(), testSecret, handlerLog, accessLog))
	s := &site{t: t, url: fmt.Sprintf("http://127.0.0.1:%d", port), port: port, backend: b,
		client: testcaddy.Client(10 * time.Second)}

	alice := access(t, "alice")
	dave := access(t, "dave")
	erin := access(t, "erin")
	expired := access(t, "alice", tokens.TimeCaveat(time.Now().Add(-time.Minute)))
	inv := mintT(t, testSecret, tokens.InviteID(tokens.Persistence{Named: true}, "bob", "g-log", "tok-log-1"))
	otherKey := mintT(t, "some other secret", tokens.InviteID(tokens.Persistence{Named: true}, "bob", "g-log", "tok-log-2"))
	bound := mintT(t, testSecret, tokens.InviteID(tokens.Persistence{Named: true}, "bob", "g-log", "tok-log-3"), "consumer = usr-carol")

	garbageInvite := "Z2FyYmFnZS1pbnZpdGUtdGhhdC1tdXN0LW5vdC1iZS1sb2dnZWQ"
	garbageAccess := "garbage-access-token-that-must-not-be-logged"

	type request struct {
		method, body string
		headers      []string
		status       int
		outcome      string
		user         string // user_id in the decision line and (for access tokens) the access log
		token        string // token_id in the decision line
	}
	requests := []request{
		{"POST", joinBody(inv), []string{"X-Auth-Token", alice}, 201, "joined", "alice", "tok-log-1"},
		{"POST", joinBody(inv), []string{"Macaroon", dave}, 201, "joined", "dave", "tok-log-1"},
		{"POST", joinBody(inv), []string{"Authorization", "Bearer " + erin}, 201, "joined", "erin", "tok-log-1"},
		{"POST", joinBody(inv), []string{"X-Remote-User", "carol"}, 201, "joined", "carol", "tok-log-1"},
		{"POST", joinBody(inv), nil, 401, "unauthorized", "", ""},
		{"POST", joinBody(inv), []string{"X-Auth-Token", expired}, 401, "invalid_credentials", "", ""},
		{"POST", joinBody(otherKey), []string{"X-Auth-Token", alice}, 400, "invalid_token", "alice", ""},
		{"POST", joinBody(bound), []string{"Macaroon", alice}, 403, "forbidden", "alice", "tok-log-3"},
		{"POST", `{"token":` + `"` + inv + `","token":"x"}`, []string{"X-Auth-Token", alice}, 400, "invalid_request", "alice", ""},
		{"GET", "", []string{"X-Auth-Token", alice}, 405, "method_not_allowed", "", ""},
		{"POST", joinBody(garbageInvite), []string{"X-Auth-Token", alice}, 400, "invalid_token", "alice", ""},
		{"POST", joinBody(inv), []string{"X-Auth-Token", garbageAccess}, 401, "invalid_credentials", "", ""},
	}
	for i, r := range requests {
		resp := s.do(r.method, "/user/groups/join", r.body, append([]string{"Content-Type", "application/json", "X-Test-Seq", itoa(i)}, r.headers...)...)
		if resp.StatusCode != r.status {
			t.Fatalf("request %d: status %d, want %d: %s", i, resp.StatusCode, r.status, bodyOf(resp))
		}
	}

	decisions := readJSONLines(t, handlerLog, len(requests), func(m map[string]any) bool { return m["msg"] == "group join" })
	for i, d := range decisions {
		for _, k := range []string{"outcome", "status", "user_id", "group_id", "token_id", "client_ip"} {
			if _, ok := d[k]; !ok {
				t.Errorf("decision %d has no %s: %v", i, k, d)
			}
		}
		r := requests[i]
		if d["logger"] != "http.handlers.group_join" {
			t.Errorf("decision %d logger %v", i, d["logger"])
		}
		if d["outcome"] != r.outcome || d["status"] != float64(r.status) || d["user_id"] != r.user || d["token_id"] != r.token || d["client_ip"] != "127.0.0.1" {
			t.Errorf("decision %d = %v, want outcome %s status %d user %q token %q from 127.0.0.1", i, d, r.outcome, r.status, r.user, r.token)
		}
		if r.token != "" && d["group_id"] != "g-log" {
			t.Errorf("decision %d group_id %v", i, d["group_id"])
		}
	}

	// Caddy's access log: the user of an access token is user_id.
	entries := readJSONLines(t, accessLog, len(requests), func(m map[string]any) bool { return m["msg"] == "handled request" })
	for _, e := range entries {
		req, _ := e["request"].(map[string]any)
		headers, _ := req["headers"].(map[string]any)
		seq, _ := headers["X-Test-Seq"].([]any)
		i := -1
		if len(seq) == 1 {
			fmt.Sscan(fmt.Sprint(seq[0]), &i)
		}
		if i < 0 || i >= len(requests) {
			t.Errorf("access log line without X-Test-Seq: %v", e)
			continue
		}
		r := requests[i]
		if status, _ := e["status"].(float64); int(status) != r.status {
			t.Errorf("access log %d: status %v, want %d", i, e["status"], r.status)
		}
		// Set from access tokens only; the placeholder source reads an
		// identity some other module already established.
		if r.status == 201 && r.user != "carol" && e["user_id"] != r.user {
			t.Errorf("access log %d: user_id %v, want %q", i, e["user_id"], r.user)
		}
		for _, h := range []string{"X-Auth-Token", "Macaroon"} {
			if _, ok := headers[h]; ok {
				t.Errorf("access log %d keeps %s", i, h)
			}
		}
	}

	// Neither file holds a token, a signature or the key.
	never := []string{testSecret, garbageInvite, garbageAccess}
	for _, tok := range []string{alice, dave, erin, expired, inv, otherKey, bound} {
		never = append(never, leakForms(t, tok)...)
	}
	for _, path := range []string{handlerLog, accessLog} {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range never {
			if strings.Contains(string(data), s) {
				t.Errorf("%s contains a secret (%.12s…)", filepath.Base(path), s)
			}
		}
	}
}
