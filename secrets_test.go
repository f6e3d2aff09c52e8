package groupjoin

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/caddy-groupjoin/caddy-groupjoin/internal/testcaddy"
	"github.com/caddy-groupjoin/caddy-groupjoin/store"
	"github.com/caddy-groupjoin/caddy-groupjoin/tokens"
)

// secretForms lists what must never be printed for a token: the token
// itself (and a long run of it), and its signature raw, hex and base64.
func secretForms(t *testing.T, tok string) []string {
	t.Helper()
	forms := []string{tok}
	if len(tok) > 80 {
		forms = append(forms, tok[len(tok)/2-20:len(tok)/2+20])
	}
	m, err := tokens.Decode(tok)
	if err != nil {
		t.Fatalf("test token does not decode: %v", err)
	}
	return append(forms, bytesForms(m.Signature())...)
}

func bytesForms(b []byte) []string {
	return []string{string(b), hex.EncodeToString(b), strings.ToUpper(hex.EncodeToString(b)),
		base64.StdEncoding.EncodeToString(b), base64.RawStdEncoding.EncodeToString(b),
		base64.URLEncoding.EncodeToString(b), base64.RawURLEncoding.EncodeToString(b)}
}

// TestSecretsNeverLogged runs a whole scenario — success, every rejection
// kind, store refusals and failures, backend failures — with Caddy at
// DEBUG and the access log on, both with the documented redacting filter,
// and checks that no token, signature, key or store password appears in
// any log line or answer body.
func TestSecretsNeverLogged(t *testing.T) {
	const storeTTL = 19 * time.Minute
	const redisPassword = "redis-pass-never-logged-7781"
	options := "key " + testSecret + "\n\t\tkey 5 " + genFive + "\n\t\tstore memory {\n\t\t\treservation_ttl 19m\n\t\t}"
	e := startEdge(t, edgeOpts{options: options, proxy: "transport http {\n\t\t\tresponse_header_timeout 500ms\n\t\t}"})
	st := memoryStore(t, storeTTL)
	ctx := context.Background()

	var secrets []string // what must never appear
	var bodies []string  // every answer body
	keep := func(toks ...string) {
		for _, tok := range toks {
			secrets = append(secrets, secretForms(t, tok)...)
		}
	}
	secrets = append(secrets, testSecret, genFive, redisPassword)
	secrets = append(secrets, bytesForms(derivedKey(testSecret))...)
	secrets = append(secrets, bytesForms(derivedKey(genFive))...)

	named := func(id string, cavs ...string) string {
		return mintT(t, testSecret, tokens.InviteID(tokens.Persistence{Named: true}, "bob", "g1", id), cavs...)
	}
	registered := func(id string, limit int64, cavs ...string) string {
		if err := st.Register(ctx, id, limit, 0); err != nil {
			t.Fatal(err)
		}
		return named(id, cavs...)
	}
	user := access(t, "alice")
	expired := access(t, "alice", tokens.TimeCaveat(time.Now().Add(-time.Minute)))
	tmp5 := mintT(t, genFive, tokens.InviteID(tokens.Persistence{Generation: 5}, "bob", "g5", "t5"))
	tmp3 := mintT(t, testSecret, tokens.InviteID(tokens.Persistence{Generation: 3}, "bob", "g5", "t3"))
	otherKey := mintT(t, "some other secret", tokens.InviteID(tokens.Persistence{Named: true}, "bob", "g1", "ok1"))
	single := registered("single", 1)
	revoked := registered("revoked", 1)
	if err := st.Revoke(ctx, "revoked"); err != nil {
		t.Fatal(err)
	}
	unknown := named("unknown")
	consumer := registered("consumer", 5, "consumer = usr-carol")
	ipElsewhere := registered("ip", 5, "ip = 192.0.2.0/24")
	expiredInvite := registered("expired", 5, tokens.TimeCaveat(time.Now().Add(-time.Minute)))
	backendFail := registered("backend", store.Unlimited)
	keep(user, expired, tmp5, tmp3, otherKey, single, revoked, unknown, consumer, ipElsewhere, expiredInvite, backendFail)

	type step struct {
		name    string
		method  string
		body    string
		headers []string
		status  int
	}
	run := func(steps []step) {
		for _, s := range steps {
			method := s.method
			if method == "" {
				method = http.MethodPost
			}
			resp := e.do(method, "/user/groups/join", s.body, append([]string{"Content-Type", "application/json"}, s.headers...)...)
			b := bodyOf(resp)
			bodies = append(bodies, b)
			if resp.StatusCode != s.status {
				t.Errorf("%s: status %d, want %d: %s", s.name, resp.StatusCode, s.status, b)
			}
		}
	}
	auth := []string{"X-Auth-Token", user}
	run([]step{
		{"join", "", joinBody(single), auth, 201},
		{"used up", "", joinBody(single), auth, 400},
		{"temporary invite", "", joinBody(tmp5), []string{"Authorization", "Bearer " + user}, 201},
		{"Macaroon header", "", joinBody(tmp5), []string{"Macaroon", user}, 201},
		{"405", "PUT", joinBody(single), auth, 405},
		{"no credentials", "", joinBody(single), nil, 401},
		{"garbage credentials", "", joinBody(single), []string{"X-Auth-Token", "garbage"}, 401},
		{"expired credentials", "", joinBody(single), []string{"X-Auth-Token", expired}, 401},
		{"invite as credentials", "", joinBody(tmp5), []string{"Macaroon", tmp5}, 401},
		{"duplicate token", "", `{"token":"` + tmp5 + `","token":"` + single + `"}`, auth, 400},
		{"too large", "", `{"pad":"` + strings.Repeat("x", 70<<10) + `","token":"` + tmp5 + `"}`, auth, 400},
		{"revoked generation", "", joinBody(tmp3), auth, 400},
		{"wrong key", "", joinBody(otherKey), auth, 400},
		{"revoked id", "", joinBody(revoked), auth, 400},
		{"unregistered", "", joinBody(unknown), auth, 400},
		{"consumer", "", joinBody(consumer), auth, 403},
		{"ip caveat", "", joinBody(ipElsewhere), auth, 400},
		{"expired invite", "", joinBody(expiredInvite), auth, 400},
		{"access token as invite", "", joinBody(user), auth, 400},
	})
	// Backend failures: an error page that echoes the request, a hang,
	// and no backend at all.
	e.backend.respond(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprintf(w, "boom; request headers were %v", r.Header)
	})
	run([]step{{"backend 500 echoing headers", "", joinBody(backendFail), auth, 500}})
	e.backend.respond(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusConflict)
		fmt.Fprint(w, `{"error":"already_member","error_description":"already in g1"}`)
	})
	run([]step{{"backend 409 document", "", joinBody(backendFail), auth, 409}})
	e.backend.respond(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	run([]step{{"backend timeout", "", joinBody(backendFail), auth, 504}})
	closed := closedPort(t)
	e.reload(t, testcaddy.Adapt(t, e.config(edgeOpts{options: options, upstream: closed})))
	run([]step{{"backend unreachable", "", joinBody(backendFail), auth, 502}})

	// Store failure: Redis unreachable, with a password in its URL.
	e.reload(t, testcaddy.Adapt(t, e.config(edgeOpts{options: "key " + testSecret + "\n\t\tstore redis redis://:" + redisPassword + "@" + closed + "/0 {\n\t\t\ttimeout 300ms\n\t\t}"})))
	run([]step{{"store unreachable", "", joinBody(backendFail), auth, 503}})

	logs := e.logText()
	for _, want := range []string{`"msg":"upstream roundtrip"`, `"msg":"handled request"`, `"msg":"group join"`, `"outcome":"store_unavailable"`, `"outcome":"upstream_error"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log lacks %s: the scenario did not log what it should", want)
		}
	}
	for _, s := range secrets {
		if s == "" {
			continue
		}
		for i, line := range strings.Split(logs, "\n") {
			if strings.Contains(line, s) {
				t.Errorf("secret %.12q… in log line %d: %s", s, i+1, tail(line, 600))
				break
			}
		}
		for _, b := range bodies {
			if strings.Contains(b, s) {
				t.Errorf("secret %.12q… in an answer: %s", s, b)
			}
		}
	}
}

// TestDefaultLogNeedsTheFilterAtDebug documents why the README asks for the
// filter on the default log too when it runs at DEBUG: reverse_proxy's
// debug line prints the upstream request's headers, X-Auth-Token included.
// If this starts failing, Caddy redacts the header itself and the README
// can drop that advice.
func TestDefaultLogNeedsTheFilterAtDebug(t *testing.T) {
	b := newBackend(t)
	port := testcaddy.FreePort(t)
	logPath := filepath.Join(t.TempDir(), "caddy.log")
	cfg := strings.Replace(edgeCaddyfile(port, logPath, b.addr(), edgeOpts{options: "key " + testSecret}),
		"\t\tlevel DEBUG\n\t\tformat filter {\n\t\t\trequest>headers>X-Auth-Token delete\n\t\t\trequest>headers>Macaroon delete\n\t\t}\n",
		"\t\tlevel DEBUG\n", 1)
	if strings.Count(cfg, "format filter") != 1 {
		t.Fatalf("could not remove the default log's filter:\n%s", cfg)
	}
	testcaddy.LoadCaddyfile(t, cfg)
	e := &edge{logPath: logPath, site: &site{t: t, url: fmt.Sprintf("http://127.0.0.1:%d", port), port: port, backend: b,
		client: &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}}}
	user := access(t, "alice")
	if resp := e.join(joinBody(invite(t, "g1")), "X-Auth-Token", user); resp.StatusCode != 201 {
		t.Fatalf("status %d %s", resp.StatusCode, bodyOf(resp))
	}
	logs := e.logText()
	var proxyLine, accessLine string
	for _, line := range strings.Split(logs, "\n") {
		switch {
		case strings.Contains(line, `"msg":"upstream roundtrip"`):
			proxyLine = line
		case strings.Contains(line, `"msg":"handled request"`):
			accessLine = line
		}
	}
	if !strings.Contains(proxyLine, user) {
		t.Errorf("reverse_proxy's debug line no longer prints X-Auth-Token: %s", proxyLine)
	}
	if accessLine == "" || strings.Contains(accessLine, user) {
		t.Errorf("the filtered access log line: %s", accessLine)
	}
}

// closedPort is a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// TestSecretComparisonsConstantTime audits the module's non-test sources:
// a signature, secret, key, password or MAC is never compared with ==, !=,
// bytes.Equal, strings.EqualFold or reflect.DeepEqual (which return early
// on the first differing byte); hmac.Equal or crypto/subtle must be used.
// Comparisons with "" , nil or a length are not comparisons of secrets.
func TestSecretComparisonsConstantTime(t *testing.T) {
	secretish := regexp.MustCompile(`(?i)(signature|\bsig\b|secret|password|passwd|\bmac\b|rootkey|derived)`)
	fset := token.NewFileSet()
	var checked int
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != "." && (strings.HasPrefix(name, ".") || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		f, err := parser.ParseFile(fset, path, src, 0)
		if err != nil {
			return nil // someone's file in progress; not ours to judge
		}
		checked++
		text := func(n ast.Node) string {
			return string(src[fset.Position(n.Pos()).Offset:fset.Position(n.End()).Offset])
		}
		harmless := func(e ast.Expr) bool {
			switch x := e.(type) {
			case *ast.BasicLit:
				return true
			case *ast.Ident:
				return x.Name == "nil" || x.Name == "true" || x.Name == "false"
			case *ast.CallExpr:
				if id, ok := x.Fun.(*ast.Ident); ok && (id.Name == "len" || id.Name == "cap") {
					return true
				}
			}
			return false
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch x := n.(type) {
			case *ast.BinaryExpr:
				if x.Op != token.EQL && x.Op != token.NEQ {
					return true
				}
				if harmless(x.X) || harmless(x.Y) {
					return true
				}
				if secretish.MatchString(text(x.X)) || secretish.MatchString(text(x.Y)) {
					t.Errorf("%s: %s compares a secret with %s; use hmac.Equal", fset.Position(x.Pos()), text(x), x.Op)
				}
			case *ast.CallExpr:
				sel, ok := x.Fun.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				pkg, ok := sel.X.(*ast.Ident)
				if !ok {
					return true
				}
				switch pkg.Name + "." + sel.Sel.Name {
				case "bytes.Equal", "bytes.Compare", "strings.EqualFold", "strings.Compare", "reflect.DeepEqual", "bytes.EqualFold":
					for _, a := range x.Args {
						if secretish.MatchString(text(a)) {
							t.Errorf("%s: %s compares a secret in variable time; use hmac.Equal", fset.Position(x.Pos()), text(x))
						}
					}
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 10 {
		t.Fatalf("only %d source files audited", checked)
	}
	// The one place a secret-derived value is compared is the signature
	// check, and it is constant-time.
	src, err := os.ReadFile(filepath.Join("tokens", "signature.go"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(src), "hmac.Equal(") {
		t.Error("tokens/signature.go no longer compares signatures with hmac.Equal")
	}
}

// TestLiteralSecretsNamed: the options whose secret is written literally
// are named, those given as placeholders are not, and no name carries a
// value.
func TestLiteralSecretsNamed(t *testing.T) {
	h := &Handler{Shared: Shared{Keys: []Key{{Secret: "literal-key-value"}, {Generation: ptr(uint64(5)), Secret: "{env.GJ_NOT_LITERAL}"},
		{Generation: ptr(uint64(6)), Secret: "{file./run/secrets/k6}"}}, Store: &StoreConfig{Type: "redis", URL: "redis://:url-pass-value@127.0.0.1:6399/0",
		Password: "{env.GJ_REDIS_PASSWORD}", SentinelPassword: "sentinel-pass-value"}}}
	got := strings.Join(h.literalSecrets(), "; ")
	want := "key #1; store redis URL (its password); store redis sentinel_password"
	if got != want {
		t.Errorf("literalSecrets = %q, want %q", got, want)
	}
	h = &Handler{Shared: Shared{Keys: []Key{{Secret: "{env.GJ_K}"}}, Store: &StoreConfig{Type: "redis", URL: "redis://127.0.0.1:6399/0", Password: "p"}}}
	if got := strings.Join(h.literalSecrets(), "; "); got != "store redis password" {
		t.Errorf("literalSecrets = %q, want only the password", got)
	}
}

// TestLiteralSecretWarning: a literal key makes Caddy's log carry one
// warning that names the option; neither the literal nor the value of a
// placeholder key is in the log.
func TestLiteralSecretWarning(t *testing.T) {
	const literal = "literal-root-key-never-logged-5512"
	const fromEnv = "env-root-key-never-logged-9034"
	t.Setenv("GJ_WARN_TEST_KEY", fromEnv)
	e := startEdge(t, edgeOpts{options: "key " + literal + "\n\t\tkey 5 {env.GJ_WARN_TEST_KEY}"})
	log := e.logText()
	var warnings []map[string]any
	for _, line := range strings.Split(log, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["level"] == "warn" && strings.Contains(fmt.Sprint(m["msg"]), "secret written literally") {
			warnings = append(warnings, m)
		}
	}
	if len(warnings) != 1 || warnings[0]["option"] != "key #1" {
		t.Errorf("warnings %v, want one naming key #1", warnings)
	}
	for _, s := range []string{literal, fromEnv} {
		if strings.Contains(log, s) {
			t.Errorf("a key's value is in Caddy's log")
		}
	}
}
