// Package joinpage tests the join page in a real browser: headless
// Chromium, driven through chromedp, against a real Caddy running this
// folder's Caddyfile (group_join routes and previews, file_server, reverse_proxy)
// and a small membership backend on loopback.
package joinpage

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
	"github.com/chromedp/chromedp"

	_ "github.com/caddy-groupjoin/caddy-groupjoin"
	"github.com/caddy-groupjoin/caddy-groupjoin/tokens"
)

const testKey = "join-page-test-key-5c1f0e2a"

// members is the membership backend: it trusts X-User-Id and
// X-Join-Target-Type/-Id (set by group_join), admits a user once per
// group or space and answers 409 after.
type members struct {
	mu  sync.Mutex
	set map[string]bool
	srv *httptest.Server
}

func newMembers(t *testing.T) *members {
	m := &members{set: map[string]bool{}}
	m.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k := r.Header.Get("X-Join-Target-Type") + ":" + r.Header.Get("X-Join-Target-Id") + "/" + r.Header.Get("X-User-Id")
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.set[k] {
			w.WriteHeader(http.StatusConflict)
			return
		}
		m.set[k] = true
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(m.srv.Close)
	return m
}

func (m *members) has(group, user string) bool {
	return m.hasIn("group", group, user)
}

func (m *members) hasIn(kind, id, user string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.set[kind+":"+id+"/"+user]
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// chromium finds a Chromium or Chrome binary; the test skips without one.
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no Chromium installed (apt-get install chromium): the join page is not tested in a browser")
	return ""
}

// edge runs this folder's Caddyfile in-process, with the backend, ports and
// key from the environment variables it reads.
type edge struct {
	url, admin string
}

// startEdge runs the Caddyfile with the error model given ("" keeps the
// file's, the documented one).
func startEdge(t *testing.T, backend, model string) *edge {
	port, adminPort := freePort(t), freePort(t)
	root, err := filepath.Abs("site")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("GROUP_JOIN_KEY", testKey)
	t.Setenv("JOIN_PAGE_PORT", fmt.Sprint(port))
	t.Setenv("JOIN_PAGE_ADMIN", fmt.Sprintf("127.0.0.1:%d", adminPort))
	t.Setenv("JOIN_PAGE_BACKEND", backend)
	t.Setenv("JOIN_PAGE_ROOT", root)
	src, err := os.ReadFile("Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	// The example's access log goes to stderr; the test keeps it quiet.
	src = bytes.Replace(src, []byte("output stderr"), []byte("output discard"), 1)
	if model != "" {
		src = bytes.Replace(src, []byte("\t\tstore memory\n"), []byte("\t\tstore memory\n\t\terror_model "+model+"\n"), 1)
		if !bytes.Contains(src, []byte("error_model")) {
			t.Fatal("the example Caddyfile's global group_join option has no store memory line to add error_model after")
		}
	}
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt(src, map[string]any{"filename": "Caddyfile"})
	if err != nil {
		t.Fatalf("adapting the example Caddyfile: %v", err)
	}
	if err := caddy.Load(cfg, true); err != nil {
		t.Fatalf("loading the example Caddyfile: %v", err)
	}
	t.Cleanup(func() { _ = caddy.Stop() })
	return &edge{url: fmt.Sprintf("http://127.0.0.1:%d", port), admin: fmt.Sprintf("http://127.0.0.1:%d", adminPort)}
}

// register registers a named invite with a usage limit through the admin
// API.
func (e *edge) register(t *testing.T, id string, uses int) {
	body := fmt.Sprintf(`{"id":%q,"uses":%d}`, id, uses)
	resp, err := http.Post(e.admin+"/group-join/invites", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("registering %s: %s", id, resp.Status)
	}
}

func mint(t *testing.T, id tokens.Identifier, cavs ...string) string {
	tok, err := tokens.Mint([]byte(testKey), "onezone.example.org", id, cavs...)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func inviteTo(group string, p tokens.Persistence, id string) tokens.Identifier {
	return tokens.InviteID(p, "bob", group, id)
}

func accessFor(t *testing.T, user string) string {
	return mint(t, tokens.AccessID(tokens.Persistence{Generation: 0}, user, "", tokens.NewTokenID()),
		tokens.TimeCaveat(time.Now().Add(time.Hour)))
}

// page drives one browser tab.
type page struct {
	t     *testing.T
	ctx   context.Context
	shots string
}

// waitSeq waits until element id has shown its n-th answer.
func (p *page) waitSeq(id string, n int) {
	p.t.Helper()
	expr := fmt.Sprintf(`Number(document.getElementById(%q).dataset.seq || "0") >= %d`, id, n)
	if _, err := chromedp.Run(p.ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(15*time.Second))); err != nil {
		p.t.Fatalf("waiting for answer %d in #%s: %v", n, id, err)
	}
}

func (p *page) text(id string) string {
	p.t.Helper()
	s, err := chromedp.Run(p.ctx, chromedp.Text(chromedp.ID(id)))
	if err != nil {
		p.t.Fatalf("reading #%s: %v", id, err)
	}
	return strings.TrimSpace(s)
}

func (p *page) do(steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	if err := chromedp.Do(p.ctx, steps...); err != nil {
		p.t.Fatal(err)
	}
}

// open loads the link of invite; the page is ready once it has examined
// the invite and verified it.
func (p *page) open(link string) {
	p.t.Helper()
	p.do(chromedp.Navigate(link))
	if _, err := chromedp.Run(p.ctx, chromedp.Poll[bool](`document.body.dataset.ready === "true"`,
		chromedp.WithPollingTimeout(15*time.Second))); err != nil {
		p.t.Fatalf("page not ready: %v", err)
	}
}

// signIn stores an access token through the form and waits for the new
// verdict (the n-th).
func (p *page) signIn(token string, verdict int) {
	p.t.Helper()
	p.do(chromedp.SetValue(chromedp.ID("access-token"), token), chromedp.Click(chromedp.CSS("#signin button")))
	p.waitSeq("verdict", verdict)
}

func (p *page) signOut(verdict int) {
	p.t.Helper()
	p.do(chromedp.Click(chromedp.ID("signout")))
	p.waitSeq("verdict", verdict)
}

// join clicks Join and returns the n-th result shown.
func (p *page) join(n int) string {
	p.t.Helper()
	p.do(chromedp.Click(chromedp.ID("join")))
	p.waitSeq("result", n)
	return p.text("result")
}

func (p *page) screenshot(name string) {
	p.t.Helper()
	png, err := chromedp.Run(p.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		p.t.Fatalf("screenshot: %v", err)
	}
	path := filepath.Join(p.shots, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		p.t.Fatal(err)
	}
	p.t.Logf("screenshot: %s", path)
}

func expect(t *testing.T, what, got, want string) {
	t.Helper()
	if !strings.Contains(got, want) {
		t.Errorf("%s: %q, want it to contain %q", what, got, want)
	}
}

func TestJoinPageInBrowser(t *testing.T) {
	for _, model := range []string{"", "onezone"} {
		name := model
		if name == "" {
			name = "documented"
		}
		t.Run(name, func(t *testing.T) { testJoinPageInBrowser(t, model) })
	}
}

func testJoinPageInBrowser(t *testing.T, model string) {
	exe := chromium(t)
	backend := newMembers(t)
	e := startEdge(t, strings.TrimPrefix(backend.srv.URL, "http://"), model)
	// The edge answers in the model asked for: the page reads what comes.
	resp, err := http.Post(e.url+"/user/groups/join", "application/json", strings.NewReader(`{"token":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&doc)
	resp.Body.Close()
	if _, nested := doc["error"].(map[string]any); nested != (model == "onezone") {
		t.Fatalf("error answer %v is not in the %q model", doc, model)
	}
	link := e.url + "/join#"

	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		append(chromedp.DefaultExecAllocatorOptions[:],
			chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.WindowSize(820, 1000))...)
	defer cancelAlloc()
	browserCtx, cancelBrowser := chromedp.NewContext(allocCtx)
	defer cancelBrowser()
	// Starts the browser, on the context it lives as long as.
	if err := chromedp.Do(browserCtx); err != nil {
		t.Fatalf("starting %s: %v", exe, err)
	}
	// Screenshots are test artifacts: a temp dir that outlives the test
	// (its path is logged), or JOIN_PAGE_SHOTS.
	shots := os.Getenv("JOIN_PAGE_SHOTS")
	if shots == "" {
		var err error
		if shots, err = os.MkdirTemp("", "join-page-shots-"); err != nil {
			t.Fatal(err)
		}
	} else if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}

	// Each scenario runs in its own tab (its own sessionStorage) with a
	// time limit.
	tab := func(t *testing.T) *page {
		ctx, cancel := chromedp.NewContext(browserCtx)
		t.Cleanup(cancel)
		ctx, cancelT := context.WithTimeout(ctx, time.Minute)
		t.Cleanup(cancelT)
		return &page{t: t, ctx: ctx, shots: shots}
	}
	alice, mallory := accessFor(t, "alice"), accessFor(t, "mallory")
	until := time.Now().Add(72 * time.Hour)

	t.Run("valid invite: join, then already a member", func(t *testing.T) {
		p := tab(t)
		inv := mint(t, inviteTo("physics", tokens.Persistence{Generation: 0}, tokens.NewTokenID()),
			tokens.TimeCaveat(until), "ip = 127.0.0.0/8|::1/128")
		p.open(link + inv)
		expect(t, "group", p.text("group"), "physics")
		expect(t, "inviter", p.text("inviter"), "bob")
		expect(t, "expiry", p.text("expiry"), "(in 3 days)")
		expect(t, "restrictions", p.text("restrictions"), "Only from the networks 127.0.0.0/8, ::1/128.")
		// Not signed in: the page says so, and so does a Join.
		expect(t, "verdict signed out", p.text("verdict"), "This invite is valid: sign in to join.")
		expect(t, "join signed out", p.join(1), "Please sign in to join.")
		p.signIn(alice, 3) // the join above verified again (2), sign-in (3)
		expect(t, "whoami", p.text("whoami"), "Signed in as alice.")
		expect(t, "verdict", p.text("verdict"), "Yes: this invite will work for you.")
		p.screenshot("1-valid-before-join")
		expect(t, "join", p.join(2), "Done: you are now a member of group physics.")
		if !backend.has("physics", "alice") {
			t.Error("the backend did not admit alice")
		}
		p.screenshot("2-joined")
		expect(t, "join again", p.join(3), "You are already a member of this group.")
		p.screenshot("3-already-member")
	})

	t.Run("space invite: join the space", func(t *testing.T) {
		p := tab(t)
		ujs, _ := tokens.InviteTypeByName("userJoinSpace")
		inv := mint(t, tokens.InviteIDOf(tokens.Persistence{Generation: 0}, ujs, "bob", "telescope-data", tokens.NewTokenID()),
			tokens.TimeCaveat(until))
		p.open(link + inv)
		expect(t, "target kind", p.text("target-kind"), "Space")
		expect(t, "space", p.text("group"), "telescope-data")
		expect(t, "status", p.text("invite-status"), "You have been invited to join a space.")
		p.signIn(alice, 2)
		expect(t, "verdict", p.text("verdict"), "Yes: this invite will work for you.")
		expect(t, "join", p.join(1), "Done: you are now a member of space telescope-data.")
		if !backend.hasIn("space", "telescope-data", "alice") || backend.has("telescope-data", "alice") {
			t.Error("the backend did not admit alice to the space (and only there)")
		}
		expect(t, "join again", p.join(2), "You are already a member of this space.")
		p.screenshot("7-space-joined")
	})

	t.Run("an invite for a group to join", func(t *testing.T) {
		p := tab(t)
		gjg, _ := tokens.InviteTypeByName("groupJoinGroup")
		inv := mint(t, tokens.InviteIDOf(tokens.Persistence{Generation: 0}, gjg, "bob", "physics", tokens.NewTokenID()),
			tokens.TimeCaveat(until))
		p.open(link + inv)
		expect(t, "status", p.text("invite-status"), "not for a person to accept")
		expect(t, "verdict", p.text("verdict"), "No usable invite.")
	})

	t.Run("expired invite", func(t *testing.T) {
		p := tab(t)
		inv := mint(t, inviteTo("chemistry", tokens.Persistence{Generation: 0}, tokens.NewTokenID()),
			tokens.TimeCaveat(time.Now().Add(-time.Hour)))
		p.open(link + inv)
		expect(t, "group", p.text("group"), "chemistry")
		expect(t, "expiry", p.text("expiry"), "(expired)")
		expect(t, "verdict", p.text("verdict"), "This invite has expired.")
		p.signIn(alice, 2)
		expect(t, "join", p.join(1), "This invite has expired.")
		p.screenshot("4-expired")
		if backend.has("chemistry", "alice") {
			t.Error("an expired invite admitted alice")
		}
	})

	t.Run("single-use invite, used up", func(t *testing.T) {
		p := tab(t)
		id := tokens.NewTokenID()
		e.register(t, id, 1)
		inv := mint(t, inviteTo("biology", tokens.Persistence{Named: true}, id), tokens.TimeCaveat(until))
		// Somebody else uses it first.
		req, _ := http.NewRequest(http.MethodPost, e.url+"/user/groups/join", strings.NewReader(`{"token":"`+inv+`"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Auth-Token", accessFor(t, "carol"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("carol's join: %s", resp.Status)
		}
		p.open(link + inv)
		expect(t, "group", p.text("group"), "biology")
		expect(t, "verdict", p.text("verdict"), "This invite has been used up")
		p.signIn(alice, 2)
		expect(t, "join", p.join(1), "This invite has been used up")
		p.screenshot("5-used-up")
		if backend.has("biology", "alice") {
			t.Error("a used-up invite admitted alice")
		}
	})

	t.Run("invite for alice, opened by mallory", func(t *testing.T) {
		p := tab(t)
		inv := mint(t, inviteTo("secret-lab", tokens.Persistence{Generation: 0}, tokens.NewTokenID()),
			tokens.TimeCaveat(until), "consumer = usr-alice")
		p.open(link + inv)
		expect(t, "restrictions", p.text("restrictions"), "Only for user alice.")
		expect(t, "verdict signed out", p.text("verdict"), "Sign in to check whether this invite is meant for you.")
		p.signIn(mallory, 2)
		expect(t, "whoami", p.text("whoami"), "Signed in as mallory.")
		expect(t, "verdict", p.text("verdict"), "This invite is meant for someone else.")
		expect(t, "join", p.join(1), "This invite is meant for someone else.")
		p.screenshot("6-wrong-user")
		if backend.has("secret-lab", "mallory") {
			t.Error("mallory joined")
		}
		// An access token that is not accepted: 401 invalid_token.
		p.signOut(4)
		p.signIn(mint(t, tokens.AccessID(tokens.Persistence{Generation: 0}, "alice", "", tokens.NewTokenID()), "time < 1000"), 5)
		expect(t, "join, expired access token", p.join(2), "Your access token was not accepted")
	})

	t.Run("link without an invite", func(t *testing.T) {
		p := tab(t)
		p.open(e.url + "/join")
		expect(t, "status", p.text("invite-status"), "This link contains no invite.")
	})
	if t.Failed() {
		return
	}
	var shotsList []string
	entries, _ := os.ReadDir(shots)
	for _, en := range entries {
		shotsList = append(shotsList, en.Name())
	}
	b, _ := json.Marshal(shotsList)
	t.Logf("screenshots in %s: %s", shots, b)
}
