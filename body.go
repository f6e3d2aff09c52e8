package groupjoin

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"unicode/utf8"
)

// readBody checks the content type and reads at most max bytes of the body.
// The body is kept whole because the backend must get it byte for byte.
func readBody(r *http.Request, max int64) ([]byte, *answer) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		a := badRequest("Content-Type must be application/json.")
		return nil, &a
	}
	if r.ContentLength > max {
		a := badRequest("Request body is too large.")
		return nil, &a
	}
	size := max + 1
	if r.ContentLength >= 0 {
		size = r.ContentLength + 1
	}
	buf := bytes.NewBuffer(make([]byte, 0, min(size, 4096)))
	n, err := buf.ReadFrom(io.LimitReader(r.Body, max+1))
	if n > max {
		a := badRequest("Request body is too large.")
		return nil, &a
	}
	if err != nil {
		a := badRequest("Request body could not be read.")
		return nil, &a
	}
	return buf.Bytes(), nil
}

// tokenField extracts the "token" string of a JSON object body. The body
// must be valid UTF-8 JSON whose top level is an object; the key "token"
// (compared after unescaping, case-sensitive) must appear exactly once,
// because the backend reads the same bytes and might pick the other copy.
// Other members are ignored.
func tokenField(body []byte) (string, *answer) {
	fail := func(desc string) (string, *answer) { a := badRequest(desc); return "", &a }
	f, ok := topField(body, "token")
	switch {
	case !ok:
		return fail("Request body must be valid JSON.")
	case !f.object:
		return fail("Request body must be a JSON object.")
	case f.count == 0:
		return fail(`Field "token" is missing.`)
	case f.count > 1:
		return fail(`Field "token" is given more than once.`)
	}
	tok, isString := f.str()
	switch {
	case !isString:
		return fail(`Field "token" must be a string.`)
	case tok == "":
		return fail(`Field "token" is empty.`)
	}
	return tok, nil
}

// field is what topField found of one member.
type field struct {
	object bool   // the document is an object
	count  int    // how many times the member appears
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
		if keyIs(key, name) {
			if f.count == 0 {
				f.raw = body[start:s.i]
			}
			f.count++
		}
	}
	return f, true
}

// keyIs compares a raw JSON string (with quotes) to name after unescaping.
func keyIs(raw []byte, name string) bool {
	if bytes.IndexByte(raw, '\\') < 0 {
		return len(raw) == len(name)+2 && string(raw[1:len(raw)-1]) == name
	}
	var k string
	return json.Unmarshal(raw, &k) == nil && k == name
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
