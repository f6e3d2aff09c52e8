package groupjoin

import (
	"math/rand/v2"
	"strconv"
	"testing"
)

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
