package groupjoin

import (
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"testing"

	"github.com/caddy-groupjoin/caddy-groupjoin/tokens"
)

// writeWithSet is answer.write as it was, with Header.Set: the reference
// the one-allocation version must match.
func writeWithSet(a answer, w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	switch a.status {
	case http.StatusMethodNotAllowed:
		h.Set("Allow", "POST")
	case http.StatusUnauthorized:
		if a.code == "invalid_token" {
			h.Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		} else {
			h.Set("WWW-Authenticate", "Bearer")
		}
	}
	body := `{"error":` + strconv.Quote(a.code) + `,"error_description":` + strconv.Quote(a.desc) + `}`
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(a.status)
	_, _ = io.WriteString(w, body)
}

func TestAnswerWriteMatchesHeaderSet(t *testing.T) {
	all := []answer{ansMethod, ansNoUser, ansBadUser, ansUserExpired, ansInvalid, ansForbidden, ansInternal,
		ansUnavailable, ansNoBackend, ansBadGatewayNX, badRequest(`Field "token" is missing.`),
		inviteAnswer(tokens.ErrExpired), inviteAnswer(tokens.ErrRevoked)}
	for s := 100; s <= 599; s++ {
		all = append(all, backendAnswer(s))
	}
	for _, a := range all {
		got, want := httptest.NewRecorder(), httptest.NewRecorder()
		got.Header().Set("X-Before", "kept")
		want.Header().Set("X-Before", "kept")
		a.write(got)
		writeWithSet(a, want)
		if got.Code != want.Code || got.Body.String() != want.Body.String() || !reflect.DeepEqual(got.Header(), want.Header()) {
			t.Fatalf("%+v:\n got %d %v %s\nwant %d %v %s", a, got.Code, got.Header(), got.Body, want.Code, want.Header(), want.Body)
		}
		// The shared allocation: appending to one header leaves the others.
		got.Header().Add("Cache-Control", "private")
		if got.Header().Get("X-Content-Type-Options") != "nosniff" || got.Header().Get("Content-Type") != "application/json" {
			t.Fatalf("append to one header changed another: %v", got.Header())
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
