package groupjoin

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-groupjoin/caddy-groupjoin/tokens"
)

// FuzzHandler drives the provisioned handler's ServeHTTP with arbitrary
// request parts: method, Content-Type, credential headers and body. The
// answer must always be documented: a status from the table, the JSON
// error document for anything but 201, and the next handler (the backend)
// called exactly when the answer is 201.
//
// auth is one header per line, "Name: value"; a line without ": " is an
// X-Auth-Token value. Two pseudo-lines reach the parts that are not
// headers: ":path <target>" sets the request target, ":trailer Name:
// value" declares a trailer and sends it after the body. When the next
// handler is called, what it got must be what the edge verified: the
// body with its length, no trailers, the identity once, none of the
// headers the edge strips.
//
// Seeds: testdata/fuzz/FuzzHandler (committed) and the f.Add calls below,
// which include a valid access token and invite so mutations start from
// an admitted request.
func FuzzHandler(f *testing.F) {
	h := fuzzHandler(f)
	user := mintT(f, testSecret, tokens.AccessID(tokens.Persistence{Named: true}, "alice", "", "fuzz-access"))
	inv := mintT(f, testSecret, tokens.InviteID(tokens.Persistence{Named: true}, "bob", "g1", "fuzz-invite"))
	tmp := mintT(f, genFive, tokens.InviteID(tokens.Persistence{Generation: 5}, "bob", "g5", "fuzz-tmp"), "ip = 127.0.0.0/8")
	for _, s := range []struct {
		method, ctype, auth, body string
	}{
		{"POST", "application/json", user, joinBody(inv)},
		{"POST", "application/json; charset=utf-8", "Authorization: Bearer " + user, `{"x":[1,{"token":"n"}],"token":"` + tmp + `"}`},
		{"POST", "application/json", "Macaroon: " + user, joinBody(mintT(f, testSecret, tokens.InviteID(tokens.Persistence{Named: true}, "bob", "g1", "c"), "consumer = usr-carol"))},
		{"POST", "application/json", user + "\nX-Auth-Token: " + user, joinBody(inv)},
		{"POST", "application/json", user, `{"token":"` + inv + `","\u0074oken":"x"}`},
		{"POST", "text/plain", user, joinBody(inv)},
		{"GET", "", "", ""},
		{"POST", "application/json", "", joinBody(inv)},
		{"POST", "application/json", user, joinBody(user)},
		{"POST", "application/json", user + "\n:path /user/groups/join?user=mallory", joinBody(inv)},
		{"POST", "application/json", user + "\n:path /user/x/../groups/join", joinBody(inv)},
		{"POST", "application/json", user + "\n:trailer X-User-Id: mallory", joinBody(inv)},
		{"POST", "application/json", user + "\nConnection: X-Hop, Keep-Alive\nX-Hop: 1\nForwarded: for=mallory\nX-User-Id: mallory\nUpgrade: h2c\nContent-Encoding: identity", joinBody(inv)},
	} {
		f.Add(s.method, s.ctype, s.auth, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, method, ctype, auth string, body []byte) {
		status, rec, called, seen := serveFuzz(h, method, ctype, auth, body)
		checkFuzzAnswer(t, status, rec, called, seen)
	})
}

// fuzzHandler provisions a handler the way Caddy would, with a default key
// and generation 5, and no store.
func fuzzHandler(tb testing.TB) *Handler {
	tb.Helper()
	gen := uint64(5)
	return provisionHandler(tb, &Handler{Shared: Shared{Keys: []Key{{Secret: testSecret}, {Generation: &gen, Secret: genFive}}}})
}

// upstreamSeen is what the next handler saw.
type upstreamSeen struct {
	user, group   []string
	header        http.Header
	trailer       http.Header
	contentLength int64
	chunked       bool
	body          []byte
}

// serveFuzz runs one request through h and a next handler that answers
// 204 and records what it saw.
func serveFuzz(h *Handler, method, ctype, auth string, body []byte) (int, *httptest.ResponseRecorder, bool, upstreamSeen) {
	req := &http.Request{
		Method:        method,
		URL:           &url.URL{Path: "/user/groups/join"},
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        make(http.Header),
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
		RemoteAddr:    "127.0.0.1:40000",
		Host:          "edge.example",
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for _, line := range strings.Split(auth, "\n") {
		if line == "" {
			continue
		}
		if target, ok := strings.CutPrefix(line, ":path "); ok {
			if u, err := url.ParseRequestURI(target); err == nil {
				req.URL = u
			}
			continue
		}
		if tr, ok := strings.CutPrefix(line, ":trailer "); ok {
			name, value, _ := strings.Cut(tr, ": ")
			if req.Trailer == nil {
				req.Trailer = make(http.Header)
			}
			req.Trailer[textproto.CanonicalMIMEHeaderKey(name)] = nil
			req.Body = &trailerBody{Reader: req.Body, r: req, trailer: http.Header{textproto.CanonicalMIMEHeaderKey(name): {value}}}
			continue
		}
		name, value, ok := strings.Cut(line, ": ")
		if !ok || name == "" {
			name, value = "X-Auth-Token", line
		}
		name = textproto.CanonicalMIMEHeaderKey(name)
		req.Header[name] = append(req.Header[name], value)
	}
	ctx := context.WithValue(context.Background(), caddy.ReplacerCtxKey, caddy.NewReplacer())
	ctx = context.WithValue(ctx, caddyhttp.VarsCtxKey, map[string]any{caddyhttp.ClientIPVarKey: "127.0.0.1"})
	req = req.WithContext(ctx)

	var called bool
	var seen upstreamSeen
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		called = true
		seen.user = r.Header.Values("X-User-Id")
		seen.group = r.Header.Values("X-Group-Id")
		seen.header = r.Header.Clone()
		seen.body, _ = io.ReadAll(r.Body)
		seen.trailer, seen.contentLength, seen.chunked = r.Trailer, r.ContentLength, len(r.TransferEncoding) > 0
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
	rec := httptest.NewRecorder()
	if err := h.ServeHTTP(rec, req, next); err != nil {
		// The handler answers every failure itself.
		rec.Code = -1
		rec.Body.WriteString("ServeHTTP returned " + err.Error())
	}
	return rec.Code, rec, called, seen
}

// documentedCodes are the error codes the edge itself answers, by status.
var documentedCodes = map[int][]string{
	400: {"invalid_request", "invalid_token"},
	401: {"unauthorized", "invalid_token"},
	403: {"forbidden"},
	405: {"method_not_allowed"},
}

func checkFuzzAnswer(t *testing.T, status int, rec *httptest.ResponseRecorder, called bool, seen upstreamSeen) {
	t.Helper()
	body := rec.Body.Bytes()
	if status == http.StatusCreated {
		if !called {
			t.Fatalf("201 without the backend")
		}
		if len(body) != 0 {
			t.Errorf("201 with a body: %q", body)
		}
		if len(seen.user) != 1 || !tokens.ValidID(seen.user[0]) || len(seen.group) != 1 || !tokens.ValidID(seen.group[0]) {
			t.Fatalf("backend saw X-User-Id %q, X-Group-Id %q", seen.user, seen.group)
		}
		if loc := rec.Header().Get("Location"); loc != DefaultLocationPrefix+seen.group[0] {
			t.Errorf("Location %q for group %q", loc, seen.group[0])
		}
		if seen.trailer != nil || seen.chunked || seen.contentLength != int64(len(seen.body)) {
			t.Fatalf("backend framing: trailers %v, chunked %v, Content-Length %d for %d bytes",
				seen.trailer, seen.chunked, seen.contentLength, len(seen.body))
		}
		for k, v := range seen.header {
			if upstreamRule(k, false) == strip && !slices.Contains(upstreamHeaders[:], k) {
				t.Fatalf("backend got %s: %q, which the edge strips", k, v)
			}
		}
		return
	}
	if called {
		t.Fatalf("backend called, but the answer is %d %q", status, body)
	}
	codes, ok := documentedCodes[status]
	if !ok {
		t.Fatalf("undocumented status %d: %q", status, body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	var doc map[string]any
	if err := json.Unmarshal(body, &doc); err != nil || len(doc) != 2 {
		t.Fatalf("not the error document: %q", body)
	}
	code, _ := doc["error"].(string)
	desc, _ := doc["error_description"].(string)
	if desc == "" || !contains(codes, code) {
		t.Fatalf("%d with body %q", status, body)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// TestFuzzHandlerSeedsAnswer pins what the seeds do, so the corpus keeps
// covering an admitted request and the main refusals.
func TestFuzzHandlerSeedsAnswer(t *testing.T) {
	h := fuzzHandler(t)
	user := mintT(t, testSecret, tokens.AccessID(tokens.Persistence{Named: true}, "alice", "", "fuzz-access"))
	inv := mintT(t, testSecret, tokens.InviteID(tokens.Persistence{Named: true}, "bob", "g1", "fuzz-invite"))
	for _, c := range []struct {
		method, ctype, auth, body string
		status                    int
	}{
		{"POST", "application/json", user, joinBody(inv), 201},
		{"POST", "application/json", "Authorization: Bearer " + user, joinBody(inv), 201},
		{"POST", "application/json", user + "\nX-Auth-Token: " + user, joinBody(inv), 401},
		{"POST", "application/json", "", joinBody(inv), 401},
		{"POST", "application/json", user, `{"token":"` + inv + `","TOKEN":"x"}`, 400},
		{"POST", "application/json", user, joinBody(mintT(t, testSecret, tokens.InviteID(tokens.Persistence{Named: true}, "bob", "g1", "c"), "consumer = usr-carol")), 403},
		{"PATCH", "application/json", user, joinBody(inv), 405},
	} {
		status, rec, called, seen := serveFuzz(h, c.method, c.ctype, c.auth, []byte(c.body))
		if status != c.status {
			t.Errorf("%s %q: status %d, want %d (%s)", c.method, c.auth, status, c.status, rec.Body)
		}
		checkFuzzAnswer(t, status, rec, called, seen)
		if status == 201 && string(seen.body) != c.body {
			t.Errorf("body not forwarded byte for byte")
		}
	}
}
