package groupjoin

import (
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"testing"

	"github.com/caddy-groupjoin/caddy-groupjoin/tokens"
)

// TestAnswerWrite: every documented answer has exactly the documented
// headers, its status, and the JSON body with its code and description.
func TestAnswerWrite(t *testing.T) {
	all := []answer{ansMethod, ansNoUser, ansBadUser, ansUserExpired, ansInvalid, ansForbidden, ansInternal,
		ansUnavailable, ansNoBackend, ansBadGatewayNX, ansTooEarly, badRequest(`Field "token" is missing.`),
		inviteAnswerFor(tokens.ErrExpired, ""), inviteAnswerFor(tokens.ErrRevoked, ""), ansSelfJoin, ansEntity}
	for s := 100; s <= 599; s++ {
		all = append(all, backendAnswer(s))
	}
	for _, a := range all {
		w := httptest.NewRecorder()
		w.Header().Set("X-Before", "kept")
		a.write(w)
		body := `{"error":` + strconv.Quote(a.code) + `,"error_description":` + strconv.Quote(a.desc) + `}`
		want := http.Header{
			"X-Before":               {"kept"},
			"Content-Type":           {"application/json"},
			"Cache-Control":          {"no-store"},
			"X-Content-Type-Options": {"nosniff"},
			"Content-Length":         {strconv.Itoa(len(body))},
		}
		switch {
		case a.status == http.StatusMethodNotAllowed:
			want["Allow"] = []string{"POST"}
		case a.status == http.StatusUnauthorized && a.code == "invalid_token":
			want["Www-Authenticate"] = []string{`Bearer error="invalid_token"`}
		case a.status == http.StatusUnauthorized:
			want["Www-Authenticate"] = []string{"Bearer"}
		}
		if w.Code != a.status || w.Body.String() != body || !reflect.DeepEqual(w.Header(), want) {
			t.Fatalf("%+v:\n got %d %v %s\nwant %d %v %s", a, w.Code, w.Header(), w.Body, a.status, want, body)
		}
	}
}

// appendQuoted writes exactly what strconv.AppendQuote writes: for every
// documented answer, and for strings of random bytes that mix the fast
// path's characters with ones that need escaping.
func TestAppendQuotedMatchesStrconv(t *testing.T) {
	var cases []string
	for _, a := range []answer{ansMethod, ansNoUser, ansBadUser, ansUserExpired, ansInvalid, ansForbidden,
		ansInternal, ansUnavailable, ansNoBackend, ansBadGatewayNX, badRequest("Request body is too large.")} {
		cases = append(cases, a.code, a.desc)
	}
	for s := 100; s < 600; s++ {
		a := backendAnswer(s)
		cases = append(cases, a.code, a.desc)
	}
	cases = append(cases, "", `"`, `\`, "a\"b", "tab\there", "new\nline", "\x7f", "é", "\xff", "~ ", "\x00")
	rng := rand.New(rand.NewPCG(3, 4))
	alphabet := []byte("ab ~\"\\\x00\x1f\x7f\xc3\xa9\xff")
	for range 2000 {
		b := make([]byte, rng.IntN(12))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		cases = append(cases, string(b))
	}
	for _, s := range cases {
		prefix := []byte("x")
		if got, want := string(appendQuoted(prefix, s)), string(strconv.AppendQuote(prefix, s)); got != want {
			t.Fatalf("appendQuoted(%q) = %s, strconv.AppendQuote gives %s", s, got, want)
		}
	}
}
