package groupjoin

import (
	"crypto/tls"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func TestUpstreamRule(t *testing.T) {
	for _, c := range []struct {
		name             string
		untrusted, trust rule
	}{
		{"Connection", strip, strip},
		{"Keep-Alive", strip, strip},
		{"Te", strip, strip},
		{"Trailer", strip, strip},
		{"Transfer-Encoding", strip, strip},
		{"Upgrade", strip, strip},
		{"Http2-Settings", strip, strip},
		{"Expect", strip, strip},
		{"Content-Length", strip, strip},
		{"Content-Encoding", strip, strip},
		{"Accept-Encoding", strip, strip},
		{"Early-Data", strip, strip},
		{"X-Http-Method-Override", strip, strip},
		{"X-User-Id", strip, strip},
		{"X_user_id", strip, strip},
		{"X.Invite.Issuer", strip, strip},
		{"X-INVITE-TOKEN-ID", strip, strip},
		{"X-Group-Ids", forward, forward},
		{"Forwarded", strip, forward},
		{"X-Real-Ip", strip, forward},
		{"X-Forwarded-For", strip, forward},
		{"X-Forwarded-Port", strip, forward},
		{"X_forwarded_prefix", strip, forward},
		{"X-Forwarded-", forward, forward}, // no name after the prefix: not one of them
		{"Cookie", forward, forward},
		{"Authorization", forward, forward},
		{"X-Auth-Token", forward, forward},
		{"Content-Type", forward, forward},
		{"Traceparent", forward, forward},
	} {
		if got := upstreamRule(c.name, false); got != c.untrusted {
			t.Errorf("upstreamRule(%q, untrusted) = %v, want %v", c.name, got, c.untrusted)
		}
		if got := upstreamRule(c.name, true); got != c.trust {
			t.Errorf("upstreamRule(%q, trusted) = %v, want %v", c.name, got, c.trust)
		}
	}
}

func TestSameHeaderName(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"X-User-Id", "X-User-Id", true},
		{"x-user-id", "X-User-Id", true},
		{"X_USER.ID", "X-User-Id", true},
		{"X-User-Ix", "X-User-Id", false},
		{"X-User-I", "X-User-Id", false},
		{"X\rUser-Id", "X-User-Id", false}, // '\r'|0x20 is '-': no such shortcut
		{"X-User-Id\x00", "X-User-Id", false},
	} {
		if got := sameHeaderName(c.a, c.b); got != c.want {
			t.Errorf("sameHeaderName(%q, %q) = %v", c.a, c.b, got)
		}
	}
}

func TestPlainPath(t *testing.T) {
	for p, want := range map[string]bool{
		"/user/groups/join":                   true,
		"/":                                   true,
		"":                                    false,
		"user/groups/join":                    false,
		"/user/groups/join/":                  false,
		"//user/groups/join":                  false,
		"/user//groups/join":                  false,
		"/user/./groups/join":                 false,
		"/user/spaces/join/../../groups/join": false,
		"/user/groups/join/..":                false,
		"/user/groups/%6Aoin":                 false,
		"/user%2Fgroups/join":                 false,
		"/user/groups/join;jsessionid=1":      false,
		"/groups/g-1.x~y@z/parents/join":      true,
	} {
		if got := plainPath(p); got != want {
			t.Errorf("plainPath(%q) = %v, want %v", p, got, want)
		}
	}
}

func TestIdentityEncoding(t *testing.T) {
	for _, c := range []struct {
		values []string
		want   bool
	}{
		{nil, true},
		{[]string{"identity"}, true},
		{[]string{"Identity", " identity ,identity"}, true},
		{[]string{""}, true},
		{[]string{"gzip"}, false},
		{[]string{"identity", "br"}, false},
		{[]string{"identity, x-gzip"}, false},
	} {
		if got := identityEncoding(c.values); got != c.want {
			t.Errorf("identityEncoding(%q) = %v, want %v", c.values, got, c.want)
		}
	}
}

// TestUpstreamRequestServeHTTP: what the next handler gets, through
// ServeHTTP with a hostile header set: the exact headers, the body with
// its length, no trailer map.
func TestUpstreamRequestServeHTTP(t *testing.T) {
	h := provisionHandler(t, &Handler{Shared: Shared{Keys: []Key{{Secret: testSecret}}}})
	body := joinBody(invite(t, "g1"))
	user := access(t, "alice")
	var got *http.Request
	var gotBody []byte
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		got = r
		gotBody, _ = io.ReadAll(r.Body)
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
	r := handlerRequest("192.0.2.1", user, body)
	r.Header.Set("Content-Type", "application/json; charset=utf-8")
	for _, kv := range [][2]string{
		{"Connection", "X-Hop, Cookie"}, {"X-Hop", "1"}, {"Cookie", "a=b"}, {"Keep-Alive", "timeout=5"},
		{"Te", "trailers"}, {"Upgrade", "h2c"}, {"Expect", "100-continue"}, {"Accept-Encoding", "br"},
		{"Content-Length", "999"}, {"Content-Encoding", "identity"}, {"X-User-Id", "mallory"}, {"X_User_Id", "mallory"},
		{"Forwarded", "for=203.0.113.9"}, {"X-Forwarded-For", "203.0.113.9"}, {"X-Http-Method-Override", "DELETE"},
		{"X-Request-Id", "r1"}, {"X-Join-Target-Id", "g666"}, {"x-invite-type", "groupJoinGroup"}, {"X-Join-Entity.Id", "mallory"},
	} {
		r.Header[kv[0]] = append(r.Header[kv[0]], kv[1])
	}
	r.ContentLength = -1
	r.TransferEncoding = []string{"chunked"}
	w := httptest.NewRecorder()
	if err := h.ServeHTTP(w, r, next); err != nil || w.Code != http.StatusCreated {
		t.Fatalf("status %d, err %v: %s", w.Code, err, w.Body)
	}
	want := http.Header{
		"Content-Type": {"application/json"},
		"X-Auth-Token": {user},
		"X-Request-Id": {"r1"},
	}
	maps.Copy(want, edgeHeaders("alice", "userJoinGroup", "alice", "g1", got.Header.Get("X-Invite-Token-Id"), "usr-bob"))
	if !headersEqual(got.Header, want) {
		t.Errorf("next handler's headers:\n%s\nwant exactly:\n%s", dumpHeaders(got.Header), dumpHeaders(want))
	}
	if string(gotBody) != body || got.ContentLength != int64(len(body)) || got.TransferEncoding != nil || got.Trailer != nil {
		t.Errorf("body %q, ContentLength %d, TransferEncoding %q, Trailer %v", gotBody, got.ContentLength, got.TransferEncoding, got.Trailer)
	}
}

// trailerBody fills the request's trailer map when it reaches EOF, as
// net/http does for a chunked body.
type trailerBody struct {
	io.Reader
	r       *http.Request
	trailer http.Header
}

func (b *trailerBody) Read(p []byte) (int, error) {
	n, err := b.Reader.Read(p)
	if err == io.EOF {
		b.r.Trailer = b.trailer
	}
	return n, err
}

func (*trailerBody) Close() error { return nil }

// TestRequestPartsRefusedServeHTTP: the refusals of request parts, on the
// join and on both preview endpoints, through ServeHTTP; none reaches the
// next handler.
func TestRequestPartsRefusedServeHTTP(t *testing.T) {
	h := provisionHandler(t, &Handler{Shared: Shared{Keys: []Key{{Secret: testSecret}}}})
	handlers := map[string]*Handler{"/user/groups/join": h, DefaultExaminePath: sibling(t, h, ServeExamine), DefaultVerifyPath: sibling(t, h, ServeVerify)}
	reached := 0
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		reached++
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
	user := access(t, "alice")
	body := joinBody(invite(t, "g1"))
	rows := []struct {
		name   string
		change func(r *http.Request)
		status int
		code   string
		desc   string
	}{
		{"early data", func(r *http.Request) { r.TLS = &tls.ConnectionState{HandshakeComplete: false} }, 425, "too_early", "early data"},
		{"declared trailer", func(r *http.Request) { r.Trailer = http.Header{"X-User-Id": nil} }, 400, "invalid_request", "trailers"},
		{"trailer found at the end of the body", func(r *http.Request) {
			r.ContentLength = -1
			r.Body = &trailerBody{Reader: strings.NewReader(body), r: r, trailer: http.Header{"X-User-Id": {"mallory"}}}
		}, 400, "invalid_request", "trailers"},
		{"query", func(r *http.Request) { r.URL.RawQuery = "a=1" }, 400, "invalid_request", "query"},
		{"fragment left in the path", func(r *http.Request) { r.URL.Path += "#frag" }, 400, "invalid_request", "path must be plain"},
		{"empty query", func(r *http.Request) { r.URL.ForceQuery = true }, 400, "invalid_request", "query"},
		{"gzip body", func(r *http.Request) { r.Header.Set("Content-Encoding", "gzip") }, 400, "invalid_request", "encoded"},
		{"charset", func(r *http.Request) { r.Header.Set("Content-Type", "application/json; charset=iso-8859-2") }, 400, "invalid_request", "Content-Type"},
	}
	for _, path := range []string{"/user/groups/join", DefaultExaminePath, DefaultVerifyPath} {
		for _, row := range rows {
			t.Run(path+"/"+row.name, func(t *testing.T) {
				r := handlerRequest("192.0.2.1", user, body)
				r.URL.Path = path
				row.change(r)
				w := httptest.NewRecorder()
				if err := handlers[path].ServeHTTP(w, r, next); err != nil {
					t.Fatal(err)
				}
				var doc struct {
					Error string `json:"error"`
					Desc  string `json:"error_description"`
				}
				if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil || w.Code != row.status || doc.Error != row.code ||
					!strings.Contains(doc.Desc, row.desc) {
					t.Errorf("answer %d %s, want %d %s with %q", w.Code, w.Body, row.status, row.code, row.desc)
				}
			})
		}
	}
	if reached != 0 {
		t.Errorf("%d refused requests reached the next handler", reached)
	}
}

// BenchmarkFilterHeaders: the header pass of prepareUpstream over a
// typical join's headers.
func BenchmarkFilterHeaders(b *testing.B) {
	base := http.Header{"Content-Type": {"application/json"}, "User-Agent": {"bench"}, "Accept-Encoding": {"gzip"},
		"X-Auth-Token": {"t"}, "Content-Length": {"200"}, "Accept": {"*/*"}}
	hdr := make(http.Header, 8)
	b.ReportAllocs()
	for b.Loop() {
		for k, v := range base {
			hdr[k] = v
		}
		filterHeaders(hdr, false)
	}
}
