package groupjoin

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"github.com/caddy-groupjoin/caddy-groupjoin/internal/testcaddy"
)

// received is one request exactly as a backend got it.
type received struct {
	proto, method, uri, host string
	header, trailer          http.Header
	contentLength            int64
	transferEncoding         []string
	body                     []byte
}

// recorder is a backend on 127.0.0.1 that keeps every request whole,
// trailers included (read after the body, where net/http puts them).
type recorder struct {
	addr string
	mu   sync.Mutex
	reqs []received
}

func newRecorder(t *testing.T) *recorder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{addr: ln.Addr().String()}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rec.mu.Lock()
		rec.reqs = append(rec.reqs, received{r.Proto, r.Method, r.RequestURI, r.Host, r.Header.Clone(), r.Trailer.Clone(),
			r.ContentLength, slices.Clone(r.TransferEncoding), body})
		rec.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return rec
}

// take returns the requests received since the last call.
func (rec *recorder) take() []received {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	r := rec.reqs
	rec.reqs = nil
	return r
}

// partsEdge is a Caddy with group_join (and its preview) in front of a
// recorder, on three sites: plain HTTP/1.1 from an untrusted client, the
// same from a trusted proxy, and HTTPS with Caddy's internal CA (HTTP/1.1,
// HTTP/2 and HTTP/3).
type partsEdge struct {
	rec                      *recorder
	plain, trusted, tlsPort  int
	h1, h2, h3, trustedProxy *http.Client
}

func startPartsEdge(t *testing.T) *partsEdge {
	t.Helper()
	testcaddy.SkipShort(t)
	e := &partsEdge{rec: newRecorder(t)}
	e.plain, e.trusted, e.tlsPort = testcaddy.FreePort(t), testcaddy.FreePort(t), testcaddy.FreePort(t)
	storage := t.TempDir()
	route := fmt.Sprintf(`group_join /user/groups/join
	group_join /groups/*/parents/join groupJoinGroup
	group_join /tokens/examine examine
	group_join /tokens/verify_invite_token verify
	@joins path /user/groups/join /groups/*/parents/join
	reverse_proxy @joins %s`, e.rec.addr)
	cfg := fmt.Sprintf(`{
	admin off
	persist_config off
	storage file_system %[1]s
	local_certs
	skip_install_trust
	auto_https disable_redirects
	http_port %[2]d
	https_port %[4]d
	log {
		output discard
	}
	servers :%[3]d {
		trusted_proxies static 127.0.0.0/8
	}
	group_join {
		key %[6]s
	}
}
http://:%[2]d {
	%[5]s
}
http://:%[3]d {
	%[5]s
}
https://localhost:%[4]d {
	tls internal
	%[5]s
}
`, storage, e.plain, e.trusted, e.tlsPort, route, testSecret)
	testcaddy.LoadCaddyfile(t, cfg)

	pem, err := os.ReadFile(filepath.Join(storage, "pki", "authorities", "local", "root.crt"))
	if err != nil {
		t.Fatalf("Caddy's local CA: %v", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		t.Fatal("Caddy's local CA root does not parse")
	}
	tlsConf := func(protos ...string) *tls.Config {
		return &tls.Config{RootCAs: roots, ServerName: "localhost", NextProtos: protos}
	}
	// localhost may resolve to ::1 first: always dial 127.0.0.1.
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		_, port, _ := net.SplitHostPort(addr)
		return (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, "127.0.0.1:"+port)
	}
	plain := func() *http.Client {
		return &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
			DialContext: dial, ExpectContinueTimeout: 5 * time.Second}}
	}
	e.h1, e.trustedProxy = plain(), plain()
	e.h2 = &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, DialContext: dial,
		TLSClientConfig: tlsConf("h2"), ForceAttemptHTTP2: true, ExpectContinueTimeout: 5 * time.Second}}
	h3 := &http3.Transport{TLSClientConfig: tlsConf(http3.NextProtoH3),
		Dial: func(ctx context.Context, addr string, tc *tls.Config, qc *quic.Config) (*quic.Conn, error) {
			_, port, _ := net.SplitHostPort(addr)
			return quic.DialAddr(ctx, "127.0.0.1:"+port, tc, qc)
		}}
	t.Cleanup(func() { _ = h3.Close() })
	e.h3 = &http.Client{Timeout: 20 * time.Second, Transport: h3}
	e.waitCertificate(t)
	return e
}

// waitCertificate waits until Caddy's internal CA has issued the site's
// certificate (it does so in the background after the config loads).
func (e *partsEdge) waitCertificate(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := e.h2.Get(fmt.Sprintf("https://localhost:%d/", e.tlsPort))
		if err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no TLS certificate from Caddy's internal CA: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// partsProto is one way of reaching the edge.
type partsProto struct {
	name   string
	via    string // what reverse_proxy puts in Via
	scheme string // X-Forwarded-Proto
	client func(*partsEdge) *http.Client
	base   func(*partsEdge) string
}

var partsProtos = []partsProto{
	{"HTTP/1.1", "1.1 Caddy", "http", func(e *partsEdge) *http.Client { return e.h1 },
		func(e *partsEdge) string { return fmt.Sprintf("http://127.0.0.1:%d", e.plain) }},
	{"HTTP/2", "2.0 Caddy", "https", func(e *partsEdge) *http.Client { return e.h2 },
		func(e *partsEdge) string { return fmt.Sprintf("https://localhost:%d", e.tlsPort) }},
	{"HTTP/3", "3.0 Caddy", "https", func(e *partsEdge) *http.Client { return e.h3 },
		func(e *partsEdge) string { return fmt.Sprintf("https://localhost:%d", e.tlsPort) }},
}

// partsRow is one row of the inventory in docs/security.md, as a request.
type partsRow struct {
	name     string
	only     string   // run on this protocol only ("" = all)
	path     string   // default /user/groups/join
	ctype    string   // default application/json
	headers  []string // name, value pairs, added as given
	trailers []string // name, value pairs, declared and sent after the body
	unsized  bool     // no Content-Length: chunked on HTTP/1.1
	gzip     bool     // body gzip-compressed

	status int    // the edge's answer
	desc   string // for a refusal: part of its description
	// extra is what the backend gets beyond the base set (name, value);
	// drop, what it does not get of the base set.
	extra, drop []string
}

func partsRows() []partsRow {
	forged := "mallory"
	return []partsRow{
		{name: "plain join", status: 201},
		{name: "edge-owned headers forged in every spelling", headers: []string{
			"X-User-Id", forged, "X-User-Id", forged, "x-group-id", "g-" + forged, "X-Invite-Issuer", "usr-" + forged,
			"X-INVITE-TOKEN-ID", forged, "X_User_Id", forged, "X.Group.Id", forged}, status: 201},
		{name: "declared trailers forging identity", unsized: true, trailers: []string{
			"X-User-Id", forged, "X-Group-Id", "g-" + forged, "X-Invite-Issuer", "usr-" + forged, "X-Invite-Token-Id", forged},
			status: 400, desc: "trailers"},
		{name: "harmless declared trailer", unsized: true, trailers: []string{"X-Checksum", "abc"}, status: 400, desc: "trailers"},
		{name: "body without Content-Length", unsized: true, status: 201},
		{name: "headers named in Connection", only: "HTTP/1.1", headers: []string{
			"Connection", "X-Hop, Keep-Alive", "X-Hop", forged, "Keep-Alive", "timeout=5"}, status: 201},
		{name: "Connection naming the edge's and end-to-end headers", only: "HTTP/1.1", headers: []string{
			"Connection", "X-User-Id, Content-Type, X-Auth-Token"}, status: 201, drop: []string{"X-Auth-Token"}},
		{name: "hop-by-hop headers", only: "HTTP/1.1", headers: []string{
			"Proxy-Connection", "keep-alive", "Te", "trailers", "Proxy-Authorization", "Basic " + forged,
			"Upgrade", "websocket", "Alt-Svc", "h3=\":1\""}, status: 201},
		{name: "TE: trailers", headers: []string{"Te", "trailers"}, status: 201},
		{name: "Expect: 100-continue", only: "HTTP/1.1", headers: []string{"Expect", "100-continue"}, status: 201},
		{name: "h2c upgrade", only: "HTTP/1.1", headers: []string{
			"Connection", "Upgrade, HTTP2-Settings", "Upgrade", "h2c", "Http2-Settings", "AAMAAABkAARAAAAAAAIAAAAA"}, status: 201},
		{name: "websocket upgrade", only: "HTTP/1.1", headers: []string{
			"Connection", "Upgrade", "Upgrade", "websocket", "Sec-Websocket-Version", "13", "Sec-Websocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="},
			status: 201, extra: []string{"Sec-Websocket-Version", "13", "Sec-Websocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="}},
		{name: "Content-Encoding gzip, body gzip", gzip: true, headers: []string{"Content-Encoding", "gzip"}, status: 400, desc: "encoded"},
		{name: "Content-Encoding gzip, body plain", headers: []string{"Content-Encoding", "gzip"}, status: 400, desc: "encoded"},
		{name: "Content-Encoding identity", headers: []string{"Content-Encoding", "identity"}, status: 201},
		{name: "Accept-Encoding from the client", headers: []string{"Accept-Encoding", "br"}, status: 201},
		{name: "Content-Type with charset=utf-8", ctype: "application/json; charset=UTF-8", status: 201},
		{name: "Content-Type with another charset", ctype: "application/json; charset=utf-16", status: 400, desc: "Content-Type"},
		{name: "cookies", headers: []string{"Cookie", "session=s1; theme=dark"}, status: 201,
			extra: []string{"Cookie", "session=s1; theme=dark"}},
		{name: "credentials and other end-to-end headers", headers: []string{
			"Authorization", "Basic YWxpY2U6cHc=", "X-Request-Id", "req-1", "Traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
			status: 201, extra: []string{"Authorization", "Basic YWxpY2U6cHc=", "X-Request-Id", "req-1",
				"Traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}},
		{name: "Forwarded and X-Forwarded-* from an untrusted client", headers: []string{
			"Forwarded", "for=203.0.113.9;proto=https", "X-Forwarded-For", "203.0.113.9", "X-Forwarded-Host", "evil.example",
			"X-Forwarded-Proto", "https", "X-Forwarded-Port", "443", "X-Forwarded-Prefix", "/admin", "X-Real-Ip", "203.0.113.9",
			"True-Client-Ip", "203.0.113.9"}, status: 201},
		{name: "X-Forwarded-* from a trusted proxy", only: "trusted", headers: []string{
			"Forwarded", "for=203.0.113.9", "X-Forwarded-For", "203.0.113.9", "X-Forwarded-Port", "443", "X-Real-Ip", "203.0.113.9"},
			status: 201, extra: []string{"Forwarded", "for=203.0.113.9", "X-Forwarded-Port", "443", "X-Real-Ip", "203.0.113.9"}},
		{name: "method override headers", headers: []string{
			"X-Http-Method-Override", "DELETE", "X-Http-Method", "DELETE", "X-Method-Override", "DELETE"}, status: 201},
		{name: "early-data header from the client", headers: []string{"Early-Data", "1"}, status: 201},
		{name: "query string", path: "/user/groups/join?user=mallory", status: 400, desc: "query"},
		{name: "dot-dot segments", path: "/user/spaces/join/../../groups/join", status: 400, desc: "path must be plain"},
		{name: "percent-escapes", path: "/user/groups/%6Aoin", status: 400, desc: "path must be plain"},
		{name: "encoded slash", path: "/user%2Fgroups/join", status: 400, desc: "path must be plain"},
		{name: "doubled slashes", path: "//user/groups/join", status: 400, desc: "path must be plain"},
	}
}

// TestUpstreamRequestParts sends every row of the request-parts inventory
// through a real Caddy with reverse_proxy to a recording backend, over
// HTTP/1.1, HTTP/2 and HTTP/3, and checks what the backend received: the
// exact header set, no trailers, Content-Length equal to the body's
// length, and the body byte for byte. Refused rows must not reach it.
func TestUpstreamRequestParts(t *testing.T) {
	e := startPartsEdge(t)
	user := access(t, "alice")
	for _, p := range append(partsProtos, partsProto{"trusted", "1.1 Caddy", "http",
		func(e *partsEdge) *http.Client { return e.trustedProxy },
		func(e *partsEdge) string { return fmt.Sprintf("http://127.0.0.1:%d", e.trusted) }}) {
		t.Run(p.name, func(t *testing.T) {
			for _, row := range partsRows() {
				if row.only != "" && row.only != p.name || row.only == "" && p.name == "trusted" {
					continue
				}
				t.Run(row.name, func(t *testing.T) {
					e.rec.take()
					body := joinBody(invite(t, "g1"))
					status, answer, err := e.send(p, row, user, body)
					if err != nil {
						t.Fatal(err)
					}
					if status != row.status {
						t.Fatalf("status %d, want %d: %s", status, row.status, answer)
					}
					got := e.rec.take()
					if row.status != http.StatusCreated {
						if !strings.Contains(answer, row.desc) || !strings.Contains(answer, `"invalid_request"`) {
							t.Errorf("answer %s, want invalid_request with %q", answer, row.desc)
						}
						if len(got) != 0 {
							t.Fatalf("a refused request reached the backend: %+v", got)
						}
						return
					}
					if len(got) != 1 {
						t.Fatalf("backend got %d requests, want 1", len(got))
					}
					checkReceived(t, got[0], body, expectedHeaders(p, row, e, user, got[0]))
				})
			}
		})
	}
}

// send makes the row's request on protocol p and returns the answer.
func (e *partsEdge) send(p partsProto, row partsRow, user, body string) (int, string, error) {
	path := row.path
	if path == "" {
		path = "/user/groups/join"
	}
	payload := body
	if row.gzip {
		payload = gzipped(body)
	}
	var rd io.Reader = strings.NewReader(payload)
	if row.unsized {
		rd = io.MultiReader(rd) // hides the length
	}
	req, err := http.NewRequest(http.MethodPost, p.base(e)+path, rd)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("User-Agent", "parts-test")
	req.Header.Set("X-Auth-Token", user)
	ctype := row.ctype
	if ctype == "" {
		ctype = "application/json"
	}
	req.Header.Set("Content-Type", ctype)
	for i := 0; i+1 < len(row.headers); i += 2 {
		// Direct map writes keep odd spellings as written.
		k := row.headers[i]
		if !strings.ContainsAny(k, "_.") {
			k = http.CanonicalHeaderKey(k)
		}
		req.Header[k] = append(req.Header[k], row.headers[i+1])
	}
	if len(row.trailers) > 0 {
		req.Trailer = http.Header{}
		for i := 0; i+1 < len(row.trailers); i += 2 {
			req.Trailer.Add(row.trailers[i], row.trailers[i+1])
		}
	}
	if row.unsized {
		req.ContentLength = -1
	}
	resp, err := p.client(e).Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// expectedHeaders is the exact header set the backend must get for an
// admitted row: what the client sent that goes on as is, the edge's own,
// and what reverse_proxy and Go's transport add.
func expectedHeaders(p partsProto, row partsRow, e *partsEdge, user string, got received) http.Header {
	want := http.Header{
		"User-Agent":        {"parts-test"},
		"X-Auth-Token":      {user},
		"Content-Type":      {"application/json"},
		"Content-Length":    {fmt.Sprint(len(got.body))},
		"X-Forwarded-For":   {"127.0.0.1"},
		"X-Forwarded-Proto": {p.scheme},
		"X-Forwarded-Host":  {got.host},
		"Via":               {p.via},
		"Accept-Encoding":   {"gzip"}, // Go's transport asks for it itself, and decodes
	}
	// The token id is checked against the invite in checkReceived.
	maps.Copy(want, edgeHeaders("alice", "userJoinGroup", "alice", "g1", got.header.Get("X-Invite-Token-Id"), "usr-bob"))
	if p.name == "trusted" {
		want["X-Forwarded-For"] = []string{"203.0.113.9, 127.0.0.1"}
	}
	for i := 0; i+1 < len(row.extra); i += 2 {
		want.Add(row.extra[i], row.extra[i+1])
	}
	for _, k := range row.drop {
		delete(want, k)
	}
	return want
}

// checkReceived asserts what one admitted request looked like upstream.
func checkReceived(t *testing.T, got received, body string, want http.Header) {
	t.Helper()
	if got.method != http.MethodPost || got.uri != "/user/groups/join" {
		t.Errorf("backend got %s %s, want POST /user/groups/join", got.method, got.uri)
	}
	if string(got.body) != body {
		t.Errorf("backend body %q, want the verified bytes %q", got.body, body)
	}
	if got.contentLength != int64(len(body)) || len(got.transferEncoding) != 0 {
		t.Errorf("backend framing: Content-Length %d, Transfer-Encoding %q; want %d and none",
			got.contentLength, got.transferEncoding, len(body))
	}
	if len(got.trailer) != 0 {
		t.Errorf("backend got trailers %v", got.trailer)
	}
	if ids := got.header["X-Invite-Token-Id"]; len(ids) != 1 || ids[0] == "" || ids[0] == "mallory" {
		t.Errorf("X-Invite-Token-Id %q", ids)
	}
	if !headersEqual(got.header, want) {
		t.Errorf("backend headers:\n%s\nwant exactly:\n%s", dumpHeaders(got.header), dumpHeaders(want))
	}
}

func headersEqual(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

func dumpHeaders(h http.Header) string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "  %s: %q\n", k, h[k])
	}
	return b.String()
}

// TestPreviewPartsNeverReachBackend sends the same rows to both preview
// endpoints, over every protocol: the edge answers each (200 where the
// join would have been forwarded, the same refusal otherwise), and the
// backend sees none of them.
func TestPreviewPartsNeverReachBackend(t *testing.T) {
	e := startPartsEdge(t)
	user := access(t, "alice")
	for _, p := range partsProtos {
		t.Run(p.name, func(t *testing.T) {
			for _, path := range []string{DefaultExaminePath, DefaultVerifyPath} {
				for _, row := range partsRows() {
					if row.only != "" && row.only != p.name || row.path != "" {
						continue
					}
					t.Run(path+"/"+row.name, func(t *testing.T) {
						row.path = path
						want := row.status
						if want == http.StatusCreated {
							want = http.StatusOK
						}
						status, answer, err := e.send(p, row, user, joinBody(invite(t, "g1")))
						if err != nil {
							t.Fatal(err)
						}
						if status != want || row.desc != "" && !strings.Contains(answer, row.desc) {
							t.Errorf("status %d %s, want %d with %q", status, answer, want, row.desc)
						}
						if got := e.rec.take(); len(got) != 0 {
							t.Fatalf("a preview request reached the backend: %+v", got)
						}
					})
				}
			}
		})
	}
}

// TestAbsoluteFormTarget: an absolute-form request target is accepted as
// net/http accepts it (the host comes from the target, not the Host
// header) and reaches the backend in origin form.
func TestAbsoluteFormTarget(t *testing.T) {
	e := startPartsEdge(t)
	addr := fmt.Sprintf("127.0.0.1:%d", e.plain)
	body := joinBody(invite(t, "g1"))
	raw := "POST http://" + addr + "/user/groups/join HTTP/1.1\r\nHost: other.example\r\nContent-Type: application/json\r\n" +
		"X-Auth-Token: " + access(t, "alice") + "\r\nContent-Length: " + itoa(len(body)) + "\r\n\r\n" + body
	resp, answer, err := rawExchange(addr, raw, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("status %d %s", resp.StatusCode, answer)
	}
	got := e.rec.take()
	if len(got) != 1 {
		t.Fatalf("backend got %d requests", len(got))
	}
	if got[0].uri != "/user/groups/join" || got[0].host != addr || string(got[0].body) != body {
		t.Errorf("backend got %s for host %q, body %q", got[0].uri, got[0].host, got[0].body)
	}
}
