package groupjoin

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"
	"unsafe"
)

// readBody checks the content type and reads at most max bytes of the body.
// The body is kept whole because the backend must get it byte for byte.
// With a known length it takes one allocation of exactly that size (plus
// one byte, to see the end or a body longer than announced).
func readBody(r *http.Request, max int64) ([]byte, *answer) {
	if !isJSON(r.Header.Get("Content-Type")) {
		a := badRequest("Content-Type must be application/json.")
		return nil, &a
	}
	if r.ContentLength > max {
		a := badRequest("Request body is too large.")
		return nil, &a
	}
	limit := max + 1 // reading one byte more than allowed tells "too large"
	size := limit
	if r.ContentLength >= 0 {
		size = r.ContentLength + 1
	}
	buf := make([]byte, 0, min(size, 4096))
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, 1)
		}
		n, err := r.Body.Read(buf[len(buf):min(int64(cap(buf)), limit)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > max {
			a := badRequest("Request body is too large.")
			return nil, &a
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			a := badRequest("Request body could not be read.")
			return nil, &a
		}
	}
}

// isJSON reports whether a Content-Type is application/json, without
// parsing the common exact value. The one parameter allowed is
// charset=utf-8: the edge reads the body as UTF-8, and a backend told
// another charset would read other characters than those verified.
func isJSON(contentType string) bool {
	if contentType == "application/json" {
		return true
	}
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "application/json" {
		return false
	}
	for k, v := range params {
		if k != "charset" || !strings.EqualFold(v, "utf-8") {
			return false
		}
	}
	return true
}

// tokenField extracts the "token" string of a JSON object body. The body
// must be valid UTF-8 JSON whose top level is an object; the key "token"
// (compared after unescaping, case-sensitive) must appear exactly once,
// because the backend reads the same bytes and might pick the other copy.
// Other members are ignored.
func tokenField(body []byte) (string, *answer) {
	if tok, ok := plainTokenBody(body); ok {
		return tok, nil
	}
	fail := func(desc string) (string, *answer) { a := badRequest(desc); return "", &a }
	failOz := func(desc string, oz *ozError) (string, *answer) {
		a := badRequest(desc)
		a.oz = oz
		return "", &a
	}
	f, ok := topField(body, "token")
	switch {
	case !ok:
		return fail("Request body must be valid JSON.")
	case !f.object:
		return fail("Request body must be a JSON object.")
	case f.count == 0:
		return failOz(`Field "token" is missing.`, ozMissingToken)
	case f.count > 1:
		return fail(`Field "token" is given more than once.`)
	case f.folded > 0:
		// Go's encoding/json (and others) match member names without
		// regard to case: a backend decoding {"token":…,"TOKEN":…} into a
		// struct reads the last one, not the one verified here.
		return fail(`Field "token" is given more than once (names differing only in case).`)
	}
	tok, isString := f.str()
	switch {
	case !isString:
		return failOz(`Field "token" must be a string.`, ozTokenNotText)
	case tok == "":
		return failOz(`Field "token" is empty.`, ozEmptyToken)
	}
	return tok, nil
}

// plainTokenBody recognises, without a JSON parser, the body nearly every
// client sends: {"token":"…"}, whitespace allowed around the punctuation,
// a non-empty token of printable ASCII without '"' or '\'. Such a body is
// valid JSON by construction, an object with exactly one member, so
// tokenField's answer for it is that token; anything else (escapes, other
// members, invalid JSON) takes the general path.
func plainTokenBody(body []byte) (string, bool) {
	s := scanner{b: body}
	s.space()
	if !s.eat('{') {
		return "", false
	}
	s.space()
	const key = `"token"`
	if !bytes.HasPrefix(body[s.i:], []byte(key)) {
		return "", false
	}
	s.i += len(key)
	s.space()
	if !s.eat(':') {
		return "", false
	}
	s.space()
	if !s.eat('"') {
		return "", false
	}
	start := s.i
	for s.i < len(body) && plainByte[body[s.i]] {
		s.i++
	}
	end := s.i
	if end == start || !s.eat('"') {
		return "", false
	}
	s.space()
	if !s.eat('}') {
		return "", false
	}
	s.space()
	if s.i != len(body) {
		return "", false
	}
	// A view, not a copy: the body is never written to once read (it is
	// forwarded as is), and nothing keeps the token past the request
	// (Authenticate copies what it keeps; the caches keep digests).
	return unsafe.String(&body[start], end-start), true
}

// plainByte marks the bytes a plain token may hold: printable ASCII but
// '"' and '\'.
var plainByte = func() (t [256]bool) {
	for c := 0x20; c <= 0x7e; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// field is what topField found of one member.
type field struct {
	object bool   // the document is an object
	count  int    // how many times the member appears
	folded int    // members whose name differs from it only in case
	raw    []byte // the raw JSON value of its first appearance
}

// str decodes the member's value when it is a string.
func (f field) str() (string, bool) {
	if len(f.raw) < 2 || f.raw[0] != '"' {
		return "", false
	}
	if bytes.IndexByte(f.raw, '\\') < 0 {
		return string(f.raw[1 : len(f.raw)-1]), true
	}
	var s string
	return s, json.Unmarshal(f.raw, &s) == nil
}

// topField finds the member name at the top level of a JSON document; ok
// is false when the document is not valid UTF-8 JSON.
func topField(body []byte, name string) (f field, ok bool) {
	if !utf8.Valid(body) || !json.Valid(body) {
		return f, false
	}
	s := scanner{b: body}
	s.space()
	if !s.eat('{') {
		return f, true
	}
	f.object = true
	for s.space(); !s.eat('}'); s.space() {
		s.eat(',')
		s.space()
		key := s.str()
		s.space()
		s.eat(':')
		s.space()
		start := s.i
		s.value()
		switch exact, folded := keyIs(key, name); {
		case exact:
			if f.count == 0 {
				f.raw = body[start:s.i]
			}
			f.count++
		case folded:
			f.folded++
		}
	}
	return f, true
}

// keyIs compares a raw JSON string (with quotes) to name after unescaping:
// exactly, or else under Unicode case folding (as encoding/json matches
// struct fields).
func keyIs(raw []byte, name string) (exact, folded bool) {
	k := raw[1 : len(raw)-1]
	if bytes.IndexByte(raw, '\\') >= 0 {
		var u string
		if json.Unmarshal(raw, &u) != nil {
			return false, false
		}
		k = []byte(u)
	}
	if string(k) == name {
		return true, false
	}
	return false, bytes.EqualFold(k, []byte(name))
}

// scanner walks JSON that json.Valid already accepted, so it only needs to
// find boundaries, not to report errors.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) eat(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// str returns the raw string token at the cursor, quotes included.
func (s *scanner) str() []byte {
	start := s.i
	s.i++ // opening quote
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case '\\':
			s.i += 2
		case '"':
			s.i++
			return s.b[start:s.i]
		default:
			s.i++
		}
	}
	return s.b[start:s.i]
}

// value skips one JSON value.
func (s *scanner) value() {
	if s.i >= len(s.b) {
		return
	}
	switch s.b[s.i] {
	case '"':
		s.str()
	case '{', '[':
		depth := 0
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case '"':
				s.str()
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
			}
			s.i++
			if depth == 0 {
				return
			}
		}
	default: // number, true, false, null
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return
			}
			s.i++
		}
	}
}

// bodyReader forwards the body as read; closing it does nothing.
type bodyReader struct{ bytes.Reader }

func (*bodyReader) Close() error { return nil }
