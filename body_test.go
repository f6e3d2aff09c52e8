package groupjoin

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"
)

// The body is read in one exact allocation, the content type checked
// without parsing it, and the token of a plain body found without a JSON
// parser; each keeps the answers of the general path.

var plainTokenSeeds = []string{
	`{"token":"abc"}`,
	` { "token" : "abc" } `,
	"{\n\t\"token\":\t\"a b~c\"\r\n}\n",
	`{"token":"ab\"c"}`,
	`{"token":"a\\bc"}`,
	`{"token":""}`,
	`{"token":"abc","token":"def"}`,
	`{"token":"abc","TOKEN":"def"}`,
	`{"token":"abc"}x`,
	`{"token":"abc"}}`,
	`{"token":"abc"`,
	`{"token":abc}`,
	`{"token": "é"}`,
	"{\"token\": \"a\x00b\"}",
	`{"tok\u0065n":"abc"}`,
	`{"Token":"abc"}`,
	`["token","abc"]`,
	`{"token":"abc" , }`,
	`{"pad":1,"token":"abc"}`,
	"\xef\xbb\xbf{\"token\":\"abc\"}",
}

func TestReadBodySizesAndErrors(t *testing.T) {
	const max = 10_000
	body := func(n int) string { return `{"token":"` + strings.Repeat("x", n-12) + `"}` }
	cases := []struct {
		name      string
		body      string
		length    int64 // -1: unknown (chunked)
		reader    func(io.Reader) io.Reader
		wantErr   string
		wantBytes int
	}{
		{"small, known length", body(450), 450, nil, "", 450},
		{"small, unknown length", body(450), -1, nil, "", 450},
		{"one byte at a time", body(450), 450, iotest.OneByteReader, "", 450},
		{"larger than the first buffer, unknown length", body(9000), -1, nil, "", 9000},
		{"larger than the first buffer, known length", body(9000), 9000, iotest.HalfReader, "", 9000},
		{"exactly max", body(max), max, nil, "", max},
		{"exactly max, unknown length", body(max), -1, iotest.OneByteReader, "", max},
		{"max + 1 announced", body(max + 1), max + 1, nil, "too large", 0},
		{"max + 1, unknown length", body(max + 1), -1, nil, "too large", 0},
		{"much more, unknown length", body(5 * max), -1, nil, "too large", 0},
		{"data with EOF", body(300), 300, iotest.DataErrReader, "", 300},
		{"read error", body(300), 300, func(r io.Reader) io.Reader {
			return io.MultiReader(io.LimitReader(r, 100), iotest.ErrReader(errors.New("connection reset")))
		}, "could not be read", 0},
		{"empty", "", 0, nil, "", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var rd io.Reader = strings.NewReader(c.body)
			if c.reader != nil {
				rd = c.reader(rd)
			}
			r := httptest.NewRequest(http.MethodPost, "/", nil)
			r.Body = io.NopCloser(rd)
			r.ContentLength = c.length
			r.Header.Set("Content-Type", "application/json")
			got, a := readBody(r, max)
			if c.wantErr != "" {
				if a == nil || a.status != http.StatusBadRequest || !strings.Contains(a.desc, c.wantErr) {
					t.Fatalf("answer %+v, want 400 %q", a, c.wantErr)
				}
				return
			}
			if a != nil {
				t.Fatalf("answer %+v", a)
			}
			if len(got) != c.wantBytes || string(got) != c.body[:c.wantBytes] {
				t.Fatalf("read %d bytes, want %d, the same bytes", len(got), c.wantBytes)
			}
		})
	}
}

func TestReadBodyOneExactAllocation(t *testing.T) {
	const n = 450
	src := []byte(`{"token":"` + strings.Repeat("x", n-12) + `"}`)
	r := httptest.NewRequest(http.MethodPost, "/", nil)
	r.Header.Set("Content-Type", "application/json")
	rd := bytes.NewReader(src)
	var got []byte
	allocs := testing.AllocsPerRun(100, func() {
		rd.Reset(src)
		r.Body, r.ContentLength = io.NopCloser(rd), n
		got, _ = readBody(r, DefaultMaxBody)
	})
	if !bytes.Equal(got, src) {
		t.Fatal("body changed")
	}
	// io.NopCloser's value is the one other allocation.
	if allocs > 2 {
		t.Fatalf("%.0f allocations to read a %d-byte body of known length", allocs, n)
	}
	if cap(got) > n+1 {
		t.Fatalf("buffer of %d bytes for a %d-byte body", cap(got), n)
	}
}

func TestIsJSONContentType(t *testing.T) {
	for ct, want := range map[string]bool{
		"application/json":                 true,
		"application/json; charset=utf-8":  true,
		"Application/JSON":                 true,
		"application/json ; charset=UTF-8": true,
		"application/jsonx":                false,
		"application/json; charset":        false, // malformed parameter
		"text/json":                        false,
		"application/problem+json":         false,
		"":                                 false,
		" application/json":                true,  // as mime.ParseMediaType trims
		"application/json; charset=utf-16": false, // the backend would read other characters
		"application/json; charset=latin1": false,
		"application/json; version=2":      false, // a parameter the edge cannot vouch for
	} {
		if got := isJSON(ct); got != want {
			t.Errorf("isJSON(%q) = %v, want %v", ct, got, want)
		}
	}
}

// plainTokenBody is a shortcut: whenever it answers, the general path
// (json.Valid, then the member scan) must give the same token.
func checkPlainTokenBody(t *testing.T, body []byte) {
	t.Helper()
	tok, ok := plainTokenBody(body)
	if !ok {
		return
	}
	f, valid := topField(body, "token")
	general, isString := f.str()
	if !valid || !f.object || f.count != 1 || f.folded != 0 || !isString || general == "" || general != tok {
		t.Fatalf("plainTokenBody(%q) = %q, general path: valid %v object %v count %d folded %d token %q",
			body, tok, valid, f.object, f.count, f.folded, general)
	}
}

func TestPlainTokenBodyAgreesWithGeneralPath(t *testing.T) {
	accepted := 0
	for _, b := range plainTokenSeeds {
		checkPlainTokenBody(t, []byte(b))
		if _, ok := plainTokenBody([]byte(b)); ok {
			accepted++
		}
	}
	if accepted < 3 {
		t.Fatalf("only %d seeds take the shortcut", accepted)
	}
	// Random bodies assembled from JSON fragments, bounded in number.
	frags := []string{"{", "}", `"token"`, `"Token"`, `"tok\u0065n"`, ":", ",", `"`, "\\", `\"`, " ", "\t", "\n",
		"abc", "0", "x y", "\x00", "\x1f", "\x7f", "é", "\xff", `"a"`, "[", "]", "null", `"token":"v"`}
	rng := rand.New(rand.NewPCG(6, 6))
	for range 200_000 {
		var b []byte
		if rng.IntN(2) == 0 {
			b = append(b, `{"token":"`...)
		}
		for n := rng.IntN(8); n > 0; n-- {
			b = append(b, frags[rng.IntN(len(frags))]...)
		}
		if rng.IntN(2) == 0 {
			b = append(b, `"}`...)
		}
		checkPlainTokenBody(t, b)
	}
}

func FuzzPlainTokenBody(f *testing.F) {
	for _, s := range plainTokenSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) { checkPlainTokenBody(t, body) })
}
