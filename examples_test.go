package groupjoin

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/caddy-groupjoin/caddy-groupjoin/internal/testcaddy"
	"github.com/caddy-groupjoin/caddy-groupjoin/tokens"
)

// TestExamples runs every file under examples/ as written against a real
// Caddy (in-process) and the real example backend (examples/backend,
// built once and started fresh for each example on a free port). Only the
// addresses change, through the {$GROUP_JOIN_*} variables the examples
// read; the test also turns off config autosave and sends the logs to
// files so it can check that no token reaches them.
func TestExamples(t *testing.T) {
	// The backend is its own module (it needs SQLite, the plugin does
	// not); -C builds it from its directory, with or without go.work.
	bin := filepath.Join(t.TempDir(), "backend")
	build := exec.Command("go", "build", "-C", "examples/backend", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build -C examples/backend: %v\n%s", err, out)
	}

	t.Run("Caddyfile", func(t *testing.T) { testExampleMinimal(t, bin) })
	t.Run("caddy.json", func(t *testing.T) { testExampleJSON(t, bin) })
	t.Run("rewrite.Caddyfile", func(t *testing.T) { testExampleRewrite(t, bin) })
	t.Run("basic-auth.Caddyfile", func(t *testing.T) { testExampleBasicAuth(t, bin) })
	t.Run("rotation.Caddyfile", func(t *testing.T) { testExampleRotation(t, bin) })
}

// exampleBackend is a running examples/backend process.
type exampleBackend struct {
	addr string
	mu   sync.Mutex
	log  bytes.Buffer
}

func (b *exampleBackend) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.log.Write(p)
}

func (b *exampleBackend) output() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.log.String()
}

// members lists a group's members, asking the backend directly.
func (b *exampleBackend) members(t *testing.T, group string) []string {
	t.Helper()
	resp, err := http.Get("http://" + b.addr + "/groups/" + group + "/members")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []string
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
		t.Fatalf("listing members of %s: status %d, %v", group, resp.StatusCode, err)
	}
	return out
}

// startExampleBackend runs the built backend on a free loopback port with
// the groups developers and operators and an in-memory database.
func startExampleBackend(t *testing.T, bin string) *exampleBackend {
	t.Helper()
	b := new(exampleBackend)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-listen", "127.0.0.1:0", "-groups", "developers,operators")
	cmd.Stderr = b
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("backend log:\n%s", b.output())
		}
	})
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case line := <-lines:
		const prefix = "membership backend listening on http://"
		if !strings.HasPrefix(line, prefix) {
			t.Fatalf("backend said %q; log:\n%s", line, b.output())
		}
		b.addr = strings.TrimPrefix(line, prefix)
	case <-time.After(20 * time.Second):
		t.Fatalf("backend did not start; log:\n%s", b.output())
	}
	return b
}

// exampleSite is an example config running in the in-process Caddy.
type exampleSite struct {
	url, admin string
	logDir     string
	client     *http.Client
}

// setExampleEnv points the examples' address variables at free ports and
// the backend.
func setExampleEnv(t *testing.T, b *exampleBackend) (port, admin int) {
	port, admin = testcaddy.FreePort(t), testcaddy.FreePort(t)
	t.Setenv("GROUP_JOIN_PORT", fmt.Sprint(port))
	t.Setenv("GROUP_JOIN_ADMIN", fmt.Sprintf("127.0.0.1:%d", admin))
	t.Setenv("GROUP_JOIN_BACKEND", b.addr)
	return port, admin
}

// readExample returns the text of a file under examples/.
func readExample(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("examples", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// testConfig changes what a test must not leave behind or print: config
// autosave is turned off and every log goes to a file in logDir, named
// after the log.
func testConfig(t *testing.T, cfgJSON []byte, logDir string) []byte {
	t.Helper()
	var cfg map[string]any
	if err := json.Unmarshal(cfgJSON, &cfg); err != nil {
		t.Fatal(err)
	}
	admin, _ := cfg["admin"].(map[string]any)
	if admin == nil {
		t.Fatal("example has no admin block")
	}
	admin["config"] = map[string]any{"persist": false}
	logging, _ := cfg["logging"].(map[string]any)
	logs, _ := logging["logs"].(map[string]any)
	if len(logs) == 0 {
		t.Fatal("example has no log")
	}
	if logs["default"] == nil {
		logs["default"] = map[string]any{}
	}
	for name, l := range logs {
		l.(map[string]any)["writer"] = map[string]any{"output": "file", "filename": filepath.Join(logDir, name+".log")}
	}
	out, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// loadExample runs a JSON config (an adapted example) with testConfig's
// changes.
func loadExample(t *testing.T, cfgJSON []byte, port, admin int) *exampleSite {
	t.Helper()
	s := &exampleSite{
		url:    fmt.Sprintf("http://127.0.0.1:%d", port),
		admin:  fmt.Sprintf("http://127.0.0.1:%d", admin),
		logDir: t.TempDir(),
		client: testcaddy.Client(10 * time.Second),
	}
	testcaddy.Load(t, testConfig(t, cfgJSON, s.logDir))
	return s
}

type exampleAnswer struct {
	status int
	header http.Header
	body   string
}

// join posts an invite to the join path with headers (name, value pairs).
func (s *exampleSite) join(t *testing.T, inviteToken string, headers ...string) exampleAnswer {
	t.Helper()
	return s.joinAt(t, "/user/groups/join", inviteToken, headers...)
}

// joinAt posts a join to the route at path.
func (s *exampleSite) joinAt(t *testing.T, path, inviteToken string, headers ...string) exampleAnswer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.url+path, strings.NewReader(joinBody(inviteToken)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return exampleAnswer{resp.StatusCode, resp.Header, string(body)}
}

// logs returns everything the site logged so far.
func (s *exampleSite) logs(t *testing.T) string {
	t.Helper()
	var all strings.Builder
	entries, err := os.ReadDir(s.logDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(s.logDir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		all.Write(b)
	}
	return all.String()
}

func expectJoined(t *testing.T, a exampleAnswer, group string) {
	t.Helper()
	if a.status != http.StatusCreated || a.header.Get("Location") != "/user/groups/"+group || a.body != "" {
		t.Fatalf("got %d Location %q body %q, want 201 Location /user/groups/%s and no body",
			a.status, a.header.Get("Location"), a.body, group)
	}
}

func expectAnswer(t *testing.T, a exampleAnswer, status int, body string) {
	t.Helper()
	if a.status != status || a.body != body {
		t.Fatalf("got %d %s, want %d %s", a.status, a.body, status, body)
	}
	if ct := a.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
}

func expectMembers(t *testing.T, b *exampleBackend, group string, want ...string) {
	t.Helper()
	if got := b.members(t, group); !reflect.DeepEqual(got, want) {
		t.Fatalf("members of %s: %q, want %q", group, got, want)
	}
}

// expectNoSecrets checks that no token reached the logs and that the
// credential headers were filtered out of the access log.
func expectNoSecrets(t *testing.T, s *exampleSite, secrets ...string) {
	t.Helper()
	logs := s.logs(t)
	if !strings.Contains(logs, `"uri":"/user/groups/join"`) {
		t.Fatalf("the access log has no join request:\n%s", logs)
	}
	for _, secret := range secrets {
		if strings.Contains(logs, secret) {
			t.Errorf("a token or secret reached the logs:\n%s", logs)
		}
	}
	for _, h := range []string{`"X-Auth-Token"`, `"Macaroon"`} {
		if strings.Contains(logs, h) {
			t.Errorf("header %s reached the access log:\n%s", h, logs)
		}
	}
}

const (
	exampleKey    = "example-default-key-7f3a"
	alreadyMember = `{"error":"already_member","error_description":"User is already a member of this group."}` + "\n"
	groupNotFound = `{"error":"not_found","error_description":"Group not found."}` + "\n"
)

// inviteWith mints a ujg invite from bob with the given persistence.
func inviteWith(t *testing.T, key string, p tokens.Persistence, group string, cavs ...string) (tok, id string) {
	t.Helper()
	id = tokens.NewTokenID()
	return mintT(t, key, tokens.InviteID(p, "bob", group, id), cavs...), id
}

func accessWith(t *testing.T, key string, p tokens.Persistence, user string) string {
	t.Helper()
	return mintT(t, key, tokens.AccessID(p, user, "", tokens.NewTokenID()), tokens.TimeCaveat(time.Now().Add(time.Hour)))
}

var named = tokens.Persistence{Named: true}

func tmp(gen uint64) tokens.Persistence { return tokens.Persistence{Generation: gen} }

// examples/Caddyfile: the minimal site of the quick start.
func testExampleMinimal(t *testing.T, bin string) {
	b := startExampleBackend(t, bin)
	port, admin := setExampleEnv(t, b)
	t.Setenv("GROUP_JOIN_KEY", exampleKey)
	s := loadExample(t, testcaddy.Adapt(t, readExample(t, "Caddyfile")), port, admin)

	// The admin endpoint of the example answers where it was put.
	resp, err := s.client.Get(s.admin + "/config/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("admin endpoint: %d", resp.StatusCode)
	}

	// What the quick start prints: a temporary invite and access token,
	// signed with the default key, with a time caveat.
	inv, _ := inviteWith(t, exampleKey, tmp(0), "developers", tokens.TimeCaveat(time.Now().Add(time.Hour)))
	alice := accessWith(t, exampleKey, tmp(0), "alice")
	expectJoined(t, s.join(t, inv, "X-Auth-Token", alice), "developers")
	expectMembers(t, b, "developers", "alice")
	// Second time: the backend's 409 passes through.
	expectAnswer(t, s.join(t, inv, "X-Auth-Token", alice), http.StatusConflict, alreadyMember)

	// The other credential headers work too.
	bob := accessWith(t, exampleKey, named, "bob")
	expectJoined(t, s.join(t, inv, "Macaroon", bob), "developers")
	carol := accessWith(t, exampleKey, named, "carol")
	opsInv, _ := inviteWith(t, exampleKey, named, "operators")
	expectJoined(t, s.join(t, opsInv, "Authorization", "Bearer "+carol), "operators")
	expectMembers(t, b, "developers", "alice", "bob")
	expectMembers(t, b, "operators", "carol")

	// A group the backend does not know: its 404 passes through.
	qa, _ := inviteWith(t, exampleKey, named, "qa")
	expectAnswer(t, s.join(t, qa, "X-Auth-Token", alice), http.StatusNotFound, groupNotFound)
	// Edge-made answers.
	a := s.join(t, inv)
	expectAnswer(t, a, http.StatusUnauthorized, `{"error":"unauthorized","error_description":"Authentication required."}`)
	other, _ := inviteWith(t, "not the example key", named, "developers")
	expectAnswer(t, s.join(t, other, "X-Auth-Token", alice), http.StatusBadRequest,
		`{"error":"invalid_token","error_description":"Provided token could not be validated."}`)

	// The other joins the example backend serves: a space, and a group
	// joining a parent group (alice holds group_add_parent in operators,
	// bob does not: the backend's check).
	ujs, _ := tokens.InviteTypeByName("userJoinSpace")
	gjg, _ := tokens.InviteTypeByName("groupJoinGroup")
	space := mintT(t, exampleKey, tokens.InviteIDOf(tmp(0), ujs, "bob", "datasets", tokens.NewTokenID()))
	if a := s.joinAt(t, "/user/spaces/join", space, "X-Auth-Token", alice); a.status != http.StatusCreated || a.header.Get("Location") != "/user/spaces/datasets" {
		t.Fatalf("space join: %d %q %s", a.status, a.header.Get("Location"), a.body)
	}
	expectAnswer(t, s.joinAt(t, "/user/spaces/join", inv, "X-Auth-Token", alice), http.StatusBadRequest,
		`{"error":"invalid_token","error_description":"Provided token is not a userJoinSpace invite."}`)
	parent := mintT(t, exampleKey, tokens.InviteIDOf(tmp(0), gjg, "carol", "developers", tokens.NewTokenID()))
	expectAnswer(t, s.joinAt(t, "/groups/operators/parents/join", parent, "X-Auth-Token", bob), http.StatusForbidden,
		`{"error":"forbidden","error_description":"You lack group_add_parent in the joining group."}`+"\n")
	if a := s.joinAt(t, "/groups/operators/parents/join", parent, "X-Auth-Token", alice); a.status != http.StatusCreated || a.header.Get("Location") != "/groups/operators/parents/developers" {
		t.Fatalf("parent join: %d %q %s", a.status, a.header.Get("Location"), a.body)
	}
	self := mintT(t, exampleKey, tokens.InviteIDOf(tmp(0), gjg, "carol", "operators", tokens.NewTokenID()))
	expectAnswer(t, s.joinAt(t, "/groups/operators/parents/join", self, "X-Auth-Token", alice), http.StatusBadRequest,
		`{"error":"invalid_request","error_description":"An entity cannot join itself: the invite's target is the joining entity."}`)
	// A route the backend does not serve: verified at the edge, its 404
	// passes through.
	ujc, _ := tokens.InviteTypeByName("userJoinCluster")
	cluster := mintT(t, exampleKey, tokens.InviteIDOf(tmp(0), ujc, "bob", "c1", tokens.NewTokenID()))
	expectAnswer(t, s.joinAt(t, "/user/clusters/join", cluster, "X-Auth-Token", alice), http.StatusNotFound,
		`{"error":"not_found","error_description":"Resource not found."}`+"\n")

	expectNoSecrets(t, s, inv, alice, bob, carol, opsInv, exampleKey, space, parent)
	if logs := s.logs(t); !strings.Contains(logs, `"outcome":"joined"`) || !strings.Contains(logs, `"user_id":"alice"`) ||
		!strings.Contains(logs, `"joining_group_id":"operators"`) {
		t.Errorf("group_join did not log the joins:\n%s", logs)
	}
}

// examples/caddy.json: the JSON equivalent of examples/Caddyfile.
func testExampleJSON(t *testing.T, bin string) {
	raw := []byte(readExample(t, "caddy.json"))

	// Equivalent: it is what the Caddyfile adapts to with the defaults.
	for _, k := range []string{"GROUP_JOIN_PORT", "GROUP_JOIN_ADMIN", "GROUP_JOIN_BACKEND"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	var fromJSON, fromCaddyfile any
	if err := json.Unmarshal(raw, &fromJSON); err != nil {
		t.Fatalf("examples/caddy.json: %v", err)
	}
	if err := json.Unmarshal(testcaddy.Adapt(t, readExample(t, "Caddyfile")), &fromCaddyfile); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromJSON, fromCaddyfile) {
		adapted, _ := json.MarshalIndent(fromCaddyfile, "", "\t")
		t.Fatalf("examples/caddy.json differs from examples/Caddyfile adapted with the defaults:\n%s", adapted)
	}

	// And it runs: only the three addresses change.
	b := startExampleBackend(t, bin)
	port, admin := testcaddy.FreePort(t), testcaddy.FreePort(t)
	cfg := string(raw)
	for _, r := range [][2]string{
		{`"localhost:2019"`, fmt.Sprintf(`"127.0.0.1:%d"`, admin)},
		{`"127.0.0.1:8080"`, fmt.Sprintf(`"127.0.0.1:%d"`, port)},
		{`"127.0.0.1:8081"`, `"` + b.addr + `"`},
	} {
		if strings.Count(cfg, r[0]) != 1 {
			t.Fatalf("examples/caddy.json should have %s once", r[0])
		}
		cfg = strings.Replace(cfg, r[0], r[1], 1)
	}
	t.Setenv("GROUP_JOIN_KEY", exampleKey)
	s := loadExample(t, []byte(cfg), port, admin)
	inv, _ := inviteWith(t, exampleKey, tmp(0), "operators")
	alice := accessWith(t, exampleKey, tmp(0), "alice")
	expectJoined(t, s.join(t, inv, "X-Auth-Token", alice), "operators")
	expectAnswer(t, s.join(t, inv, "X-Auth-Token", alice), http.StatusConflict, alreadyMember)
	expectMembers(t, b, "operators", "alice")
	expectNoSecrets(t, s, inv, alice, exampleKey)
}

// examples/rewrite.Caddyfile: the join becomes PUT /groups/{g}/members/{u}.
func testExampleRewrite(t *testing.T, bin string) {
	b := startExampleBackend(t, bin)
	port, admin := setExampleEnv(t, b)
	t.Setenv("GROUP_JOIN_KEY", exampleKey)
	s := loadExample(t, testcaddy.Adapt(t, readExample(t, "rewrite.Caddyfile")), port, admin)

	inv, invID := inviteWith(t, exampleKey, named, "developers")
	alice := accessWith(t, exampleKey, named, "alice")
	// A client-sent X-User-Id changes nothing.
	a := s.join(t, inv, "X-Auth-Token", alice, "X-User-Id", "mallory")
	// The backend answered 201 with its own Location and a JSON body; the
	// client gets the Onedata answer.
	expectJoined(t, a, "developers")
	expectMembers(t, b, "developers", "alice")
	log := b.output()
	for _, want := range []string{
		"method=PUT path=/groups/developers/members/alice status=201",
		"token_id=" + invID, "issuer=usr-bob",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("backend log lacks %q:\n%s", want, log)
		}
	}
	if strings.Contains(log, "/user/groups/join") || strings.Contains(log, "mallory") {
		t.Errorf("the backend saw the original request:\n%s", log)
	}
	expectAnswer(t, s.join(t, inv, "X-Auth-Token", alice), http.StatusConflict, alreadyMember)
	qa, _ := inviteWith(t, exampleKey, named, "qa")
	expectAnswer(t, s.join(t, qa, "X-Auth-Token", alice), http.StatusNotFound, groupNotFound)
	expectNoSecrets(t, s, inv, alice, exampleKey)
}

// examples/basic-auth.Caddyfile: the caller comes from basic_auth.
func testExampleBasicAuth(t *testing.T, bin string) {
	b := startExampleBackend(t, bin)
	port, admin := setExampleEnv(t, b)
	t.Setenv("GROUP_JOIN_KEY", exampleKey)
	for user, pass := range map[string]string{"ALICE": "alice-password", "BOB": "bob-password"} {
		hash, err := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		t.Setenv(user+"_PASSWORD_HASH", string(hash))
	}
	s := loadExample(t, testcaddy.Adapt(t, readExample(t, "basic-auth.Caddyfile")), port, admin)
	basic := func(user, pass string) string {
		r, _ := http.NewRequest("GET", "/", nil)
		r.SetBasicAuth(user, pass)
		return r.Header.Get("Authorization")
	}

	inv, _ := inviteWith(t, exampleKey, named, "developers")
	expectJoined(t, s.join(t, inv, "Authorization", basic("alice", "alice-password")), "developers")
	expectMembers(t, b, "developers", "alice")
	expectAnswer(t, s.join(t, inv, "Authorization", basic("alice", "alice-password")), http.StatusConflict, alreadyMember)

	// basic_auth refuses before group_join runs. (Not tried: an unknown
	// user, which basic_auth checks against a deliberately slow hash.)
	for name, headers := range map[string][]string{
		"no credentials":      nil,
		"wrong password":      {"Authorization", basic("alice", "bob-password")},
		"access token only":   {"X-Auth-Token", accessWith(t, exampleKey, named, "carol")},
		"bearer access token": {"Authorization", "Bearer " + accessWith(t, exampleKey, named, "carol")},
	} {
		a := s.join(t, inv, headers...)
		if a.status != http.StatusUnauthorized || !strings.HasPrefix(a.header.Get("WWW-Authenticate"), "Basic") {
			t.Errorf("%s: got %d %q, want basic_auth's 401", name, a.status, a.header.Get("WWW-Authenticate"))
		}
	}

	// The identity is basic_auth's user, whatever access token comes along.
	ops, _ := inviteWith(t, exampleKey, named, "operators")
	expectJoined(t, s.join(t, ops, "Authorization", basic("bob", "bob-password"),
		"X-Auth-Token", accessWith(t, exampleKey, named, "alice")), "operators")
	expectMembers(t, b, "operators", "bob")
	expectMembers(t, b, "developers", "alice")
	expectNoSecrets(t, s, inv, ops, exampleKey)
}

// examples/rotation.Caddyfile: generations 41 and 42, then a rotation.
func testExampleRotation(t *testing.T, bin string) {
	b := startExampleBackend(t, bin)
	port, admin := setExampleEnv(t, b)
	const k41, k42, k43 = "generation-41-key", "generation-42-key", "generation-43-key"
	t.Setenv("GROUP_JOIN_KEY", exampleKey)
	t.Setenv("GROUP_JOIN_KEY_41", k41)
	t.Setenv("GROUP_JOIN_KEY_42", k42)
	t.Setenv("GROUP_JOIN_KEY_43", k43)
	caddyfile := readExample(t, "rotation.Caddyfile")
	s := loadExample(t, testcaddy.Adapt(t, caddyfile), port, admin)

	const revoked = `{"error":"invalid_token","error_description":"Invite token has been revoked."}`
	const invalid = `{"error":"invalid_token","error_description":"Provided token could not be validated."}`
	user := func(name string) []string { return []string{"X-Auth-Token", accessWith(t, exampleKey, named, name)} }
	inv := func(key string, p tokens.Persistence) string {
		tok, _ := inviteWith(t, key, p, "developers")
		return tok
	}

	expectJoined(t, s.join(t, inv(k42, tmp(42)), user("alice")...), "developers")
	expectJoined(t, s.join(t, inv(k41, tmp(41)), user("bob")...), "developers")
	expectJoined(t, s.join(t, inv(exampleKey, named), user("carol")...), "developers")
	// Temporary access tokens follow the same rules.
	expectJoined(t, s.join(t, inv(k42, tmp(42)), "X-Auth-Token", accessWith(t, k42, tmp(42), "dave")), "developers")
	expectAnswer(t, s.join(t, inv(k41, tmp(40)), user("erin")...), http.StatusBadRequest, revoked)
	expectAnswer(t, s.join(t, inv(k42, tmp(43)), user("erin")...), http.StatusBadRequest, invalid)
	expectAnswer(t, s.join(t, inv(k41, tmp(42)), user("erin")...), http.StatusBadRequest, invalid)
	expectAnswer(t, s.join(t, inv(exampleKey, tmp(42)), user("erin")...), http.StatusBadRequest, invalid)
	expectMembers(t, b, "developers", "alice", "bob", "carol", "dave")

	// Rotate as the comments say: add generation 43, drop 41, reload.
	const line41 = "\t\tkey 41 {env.GROUP_JOIN_KEY_41}\n"
	const line42 = "\t\tkey 42 {env.GROUP_JOIN_KEY_42}\n"
	if !strings.Contains(caddyfile, line41) || !strings.Contains(caddyfile, line42) {
		t.Fatal("rotation.Caddyfile no longer has the key 41 and key 42 lines this test edits")
	}
	rotated := strings.Replace(caddyfile, line42, line42+"\t\tkey 43 {env.GROUP_JOIN_KEY_43}\n", 1)
	rotated = strings.Replace(rotated, line41, "", 1)
	if err := testcaddy.Reload(t, testConfig(t, testcaddy.Adapt(t, rotated), s.logDir)); err != nil {
		t.Fatal(err)
	}
	testcaddy.WaitOneListener(t, urlPort(t, s.url))
	expectAnswer(t, s.join(t, inv(k41, tmp(41)), user("erin")...), http.StatusBadRequest, revoked)
	expectJoined(t, s.join(t, inv(k42, tmp(42)), user("erin")...), "developers")
	expectJoined(t, s.join(t, inv(k43, tmp(43)), user("frank")...), "developers")
	expectMembers(t, b, "developers", "alice", "bob", "carol", "dave", "erin", "frank")
	expectNoSecrets(t, s, exampleKey, k41, k42, k43)
}

// TestExamplesFilterCredentialHeaders checks every example config: each
// access log deletes X-Auth-Token and Macaroon (Caddy redacts only
// Authorization and cookies by itself).
func TestExamplesFilterCredentialHeaders(t *testing.T) {
	for _, k := range []string{"GROUP_JOIN_PORT", "GROUP_JOIN_ADMIN", "GROUP_JOIN_BACKEND"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	files, err := filepath.Glob("examples/*Caddyfile")
	if err != nil || len(files) < 4 {
		t.Fatalf("examples: %v %v", files, err)
	}
	files = append(files, "examples/caddy.json")
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(f, "Caddyfile") {
			raw = testcaddy.Adapt(t, string(raw))
		}
		var cfg struct {
			Logging struct {
				Logs map[string]struct {
					Encoder struct {
						Format string                     `json:"format"`
						Fields map[string]json.RawMessage `json:"fields"`
					} `json:"encoder"`
					Include []string `json:"include"`
				} `json:"logs"`
			} `json:"logging"`
		}
		if err := json.Unmarshal(raw, &cfg); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		access := 0
		for name, l := range cfg.Logging.Logs {
			if name == "default" {
				continue
			}
			access++
			if l.Encoder.Format != "filter" {
				t.Errorf("%s: log %s has format %q, want filter", f, name, l.Encoder.Format)
			}
			for _, field := range []string{"request>headers>X-Auth-Token", "request>headers>Macaroon"} {
				var got bytes.Buffer
				if err := json.Compact(&got, l.Encoder.Fields[field]); err != nil || got.String() != `{"filter":"delete"}` {
					t.Errorf("%s: log %s: %s is %s, want deleted", f, name, field, l.Encoder.Fields[field])
				}
			}
		}
		if access == 0 {
			t.Errorf("%s: no access log", f)
		}
	}
}

// TestExamplesReadmeCommands keeps the README's two commands what they
// must be: the quick start script, and exactly what CI runs.
func TestExamplesReadmeCommands(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	ci, err := os.ReadFile(".ci/run")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(ci)), "\n")
	testCmd := lines[len(lines)-1]
	if !strings.HasPrefix(testCmd, "go vet ./... ") || !strings.Contains(testCmd, " && go test ") {
		t.Fatalf(".ci/run ends with %q, not the test command", testCmd)
	}
	for _, cmd := range []string{"./examples/quickstart.sh", testCmd} {
		if !strings.Contains(string(readme), "\n"+cmd+"\n") {
			t.Errorf("README.md lacks the command line %q", cmd)
		}
	}
	if fi, err := os.Stat("examples/quickstart.sh"); err != nil || fi.Mode()&0o111 == 0 {
		t.Errorf("examples/quickstart.sh must exist and be executable: %v", err)
	}
	if out, err := exec.Command("bash", "-n", "examples/quickstart.sh").CombinedOutput(); err != nil {
		t.Errorf("bash -n examples/quickstart.sh: %v\n%s", err, out)
	}
}

// urlPort is the port of a test URL such as http://127.0.0.1:8080.
func urlPort(t *testing.T, raw string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(strings.TrimPrefix(raw, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// The README's Caddyfile adapts, its JSON config is JSON whose group_join
// app and handlers decode strictly into the modules' types.
func TestReadmeConfigs(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	block := func(after, lang string) string {
		i := strings.Index(string(readme), after)
		if i < 0 {
			t.Fatalf("README has no %q", after)
		}
		rest := string(readme)[i:]
		start := strings.Index(rest, "```"+lang+"\n")
		end := strings.Index(rest[start+4+len(lang):], "```")
		return rest[start+4+len(lang) : start+4+len(lang)+end]
	}
	testcaddy.Adapt(t, block("## Caddyfile", "caddyfile"))
	var doc struct {
		Apps struct {
			GroupJoin json.RawMessage `json:"group_join"`
			HTTP      struct {
				Servers map[string]struct {
					Routes []struct {
						Handle []json.RawMessage `json:"handle"`
					} `json:"routes"`
				} `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	if err := json.Unmarshal([]byte(block("### JSON config", "json")), &doc); err != nil {
		t.Fatalf("README JSON: %v", err)
	}
	strict := func(raw []byte, v any) {
		d := json.NewDecoder(bytes.NewReader(raw))
		d.DisallowUnknownFields()
		if err := d.Decode(v); err != nil {
			t.Errorf("%s: %v", raw, err)
		}
	}
	strict(doc.Apps.GroupJoin, new(App))
	n := 0
	for _, srv := range doc.Apps.HTTP.Servers {
		for _, r := range srv.Routes {
			for _, h := range r.Handle {
				if bytes.Contains(h, []byte(`"group_join"`)) {
					var fields map[string]json.RawMessage
					if err := json.Unmarshal(h, &fields); err != nil {
						t.Fatal(err)
					}
					delete(fields, "handler")
					raw, _ := json.Marshal(fields)
					strict(raw, new(Handler))
					n++
				}
			}
		}
	}
	if n != 3 {
		t.Errorf("%d group_join handlers in the README's JSON, want 3", n)
	}
}
