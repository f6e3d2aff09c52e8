package tokens

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"strings"
	"sync"

	"gopkg.in/macaroon.v2"
)

// MaxTokenSize bounds a serialized token. Anything larger is refused before
// any decoding work.
const MaxTokenSize = 1 << 20

// Decode turns a serialized token into exactly one macaroon. It accepts, in
// this order: Onedata's escaped base64url of a V1 binary macaroon; plain
// base64 (standard or URL alphabet, padded or not) of a V1 or V2 binary
// macaroon; a V1 or V2 JSON macaroon. It refuses tokens over MaxTokenSize,
// trailing bytes, more than one macaroon and third-party caveats.
func Decode(s string) (*macaroon.Macaroon, error) {
	if len(s) > MaxTokenSize {
		return nil, ErrTooLarge
	}
	if s == "" {
		return nil, malformed("empty token")
	}
	var m *macaroon.Macaroon
	switch {
	case s[0] == '{':
		m = decodeJSON(s)
	default:
		m = decodeText(s)
	}
	if m == nil {
		return nil, malformed("not a macaroon")
	}
	for _, c := range m.Caveats() {
		if len(c.VerificationId) > 0 {
			return nil, ErrThirdParty
		}
	}
	return m, nil
}

// decodeBinary parses exactly one binary macaroon; nil otherwise.
// (*Macaroon).UnmarshalBinary would ignore trailing bytes, Slice does not.
func decodeBinary(b []byte) *macaroon.Macaroon {
	if len(b) == 0 {
		return nil
	}
	var ms macaroon.Slice
	if err := ms.UnmarshalBinary(b); err != nil || len(ms) != 1 {
		return nil
	}
	return ms[0]
}

func decodeJSON(s string) *macaroon.Macaroon {
	m := new(macaroon.Macaroon)
	// json.Unmarshal refuses trailing data; Macaroon.UnmarshalJSON picks V1
	// or V2 from the field names and refuses a mix.
	if err := json.Unmarshal([]byte(s), m); err != nil {
		return nil
	}
	return m
}

// textBufs holds scratch buffers for the base64 forms: the unescaped (or
// copied) text, then its decoding. go-macaroon copies the bytes it parses
// (Slice.UnmarshalBinary), so a buffer goes back to the pool as soon as the
// macaroon is built, and decoding a token allocates no scratch memory.
var textBufs = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledBuf bounds the buffers kept for reuse, so that a rare large
// token does not pin its memory.
const maxPooledBuf = 16 << 10

// decodeText decodes the base64 forms: Onedata's escaped form first, then
// plain base64 of s itself.
func decodeText(s string) *macaroon.Macaroon {
	bp := textBufs.Get().(*[]byte)
	if need := len(s) + base64.RawStdEncoding.DecodedLen(len(s)); cap(*bp) < need {
		*bp = make([]byte, 0, need)
	}
	buf := *bp
	var m *macaroon.Macaroon
	text, std, ok := unescapeOnedata(buf[:0], s)
	if ok {
		m = decodeBinary(decodeBase64As(buf[len(text):cap(buf)], text, std))
	}
	// Without any escape ('0'), the unescaped text is s itself: trying it
	// again as plain base64 would only repeat the same work.
	if m == nil && (!ok || len(text) != len(s)) {
		text = append(buf[:0], s...)
		m = decodeBinary(base64DecodeInto(buf[len(text):cap(buf)], text))
	}
	if cap(buf) <= maxPooledBuf {
		textBufs.Put(bp)
	}
	return m
}

// base64DecodeInto decodes src (standard or URL alphabet, padded or not)
// into dst, which must hold at least 3/4 of len(src) bytes; nil on any
// error.
func base64DecodeInto(dst, src []byte) []byte {
	return decodeBase64As(dst, src, bytes.ContainsAny(src, "+/"))
}

// Onedata escapes a base64url string so that it survives places that treat
// '_' and '-' specially: '0'→"00", '_'→"01", '-'→"02", '/'→"03", '+'→"04",
// '='→"05".
const onedataEscapes = "0_-/+="

// onedataUnescape reverses the escape; ok is false when s is not a valid
// escaped string (a '0' not followed by 0-5).
func onedataUnescape(s string) (string, bool) {
	b, _, ok := unescapeOnedata(nil, s)
	return string(b), ok
}

// unescapeOnedata appends the unescaped s to b; ok is false when s is not
// a valid escaped string (a '0' not followed by 0-5, or a character that
// never appears unescaped). It is on the request path, so the characters
// that never appear unescaped are looked for once, the text between
// escapes is copied whole, and std reports whether an escape produced '+'
// or '/', the characters base64DecodeInto picks the standard alphabet for:
// decodeBase64As then need not scan for them.
func unescapeOnedata(b []byte, s string) (text []byte, std, ok bool) {
	const never = "_-/+=" // the escaped characters
	for i := 0; i < len(never); i++ {
		if strings.IndexByte(s, never[i]) >= 0 {
			return b, false, false
		}
	}
	for {
		i := strings.IndexByte(s, '0')
		if i < 0 {
			return append(b, s...), std, true
		}
		if i+1 >= len(s) || s[i+1] < '0' || s[i+1] > '5' {
			return b, false, false
		}
		c := onedataEscapes[s[i+1]-'0']
		std = std || c == '+' || c == '/'
		b = append(append(b, s[:i]...), c)
		s = s[i+2:]
	}
}

// decodeBase64As is base64DecodeInto with the alphabet already
// known: the standard one when std, else the URL one.
func decodeBase64As(dst, src []byte, std bool) []byte {
	enc := base64.RawURLEncoding
	if std {
		enc = base64.RawStdEncoding
	}
	src = bytes.TrimRight(src, "=")
	n, err := enc.Decode(dst[:enc.DecodedLen(len(src))], src)
	if err != nil {
		return nil
	}
	return dst[:n]
}

func onedataEscape(s string) string {
	var b strings.Builder
	b.Grow(len(s) + len(s)/8)
	for i := 0; i < len(s); i++ {
		if j := strings.IndexByte(onedataEscapes, s[i]); j >= 0 {
			b.WriteByte('0')
			b.WriteByte(byte('0' + j))
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Format is a serialized form that Encode can produce.
type Format uint8

// Serialized forms.
const (
	FormatOnedata  Format = iota // escaped base64url V1 binary (Onedata's own)
	FormatBase64V1               // plain base64url V1 binary, no padding
	FormatBase64V2               // plain base64url V2 binary, no padding
	FormatJSONV1                 // V1 JSON object
	FormatJSONV2                 // V2 JSON object
)

// Encode serializes m in the given form.
func Encode(m *macaroon.Macaroon, f Format) (string, error) {
	want := macaroon.V2
	if f == FormatOnedata || f == FormatBase64V1 || f == FormatJSONV1 {
		want = macaroon.V1
	}
	m, err := withVersion(m, want)
	if err != nil {
		return "", err
	}
	if f == FormatJSONV1 || f == FormatJSONV2 {
		b, err := json.Marshal(m)
		return string(b), err
	}
	b, err := m.MarshalBinary()
	if err != nil {
		return "", err
	}
	s := base64.RawURLEncoding.EncodeToString(b)
	if f == FormatOnedata {
		s = onedataEscape(s)
	}
	return s, nil
}

// withVersion returns m re-expressed in version v. The signature does not
// depend on the version. go-macaroon has no public setter, so the binary
// form of the wanted version is written here and parsed back: identifier,
// location and caveat ids travel byte for byte whatever they hold (a detour
// through JSON strings turned invalid UTF-8 into U+FFFD and silently
// changed the token). First-party caveats carry no location (V2 forbids
// one; go-macaroon's V1 writer drops it too).
func withVersion(m *macaroon.Macaroon, v macaroon.Version) (*macaroon.Macaroon, error) {
	if m.Version() == v {
		return m, nil
	}
	var b []byte
	if v == macaroon.V1 {
		var err error
		if b, err = appendBinaryV1(nil, m); err != nil {
			return nil, err
		}
	} else {
		b = appendBinaryV2(nil, m)
	}
	out := new(macaroon.Macaroon)
	if err := out.UnmarshalBinary(b); err != nil {
		return nil, err
	}
	return out, nil
}

// appendBinaryV1 writes m in libmacaroons' V1 binary form: packets
// "XXXXname value\n", XXXX the packet length in 4 lower-case hex digits.
func appendBinaryV1(b []byte, m *macaroon.Macaroon) ([]byte, error) {
	packet := func(name string, data []byte) bool {
		n := 4 + len(name) + 1 + len(data) + 1
		if n > 0xffff {
			return false
		}
		const hexDigits = "0123456789abcdef"
		b = append(b, hexDigits[n>>12], hexDigits[n>>8&0xf], hexDigits[n>>4&0xf], hexDigits[n&0xf])
		b = append(b, name...)
		b = append(b, ' ')
		b = append(b, data...)
		b = append(b, '\n')
		return true
	}
	tooLong := errors.New("macaroon field too long for the V1 format")
	if !packet("location", []byte(m.Location())) || !packet("identifier", m.Id()) {
		return nil, tooLong
	}
	for _, c := range m.Caveats() {
		if !packet("cid", c.Id) {
			return nil, tooLong
		}
		if len(c.VerificationId) > 0 && (!packet("vid", c.VerificationId) || !packet("cl", []byte(c.Location))) {
			return nil, tooLong
		}
	}
	if !packet("signature", m.Signature()) {
		return nil, tooLong
	}
	return b, nil
}

// appendBinaryV2 writes m in the V2 binary form: a version byte 2, then
// sections of (varint field type, varint length, data) fields ended by 0.
func appendBinaryV2(b []byte, m *macaroon.Macaroon) []byte {
	const (
		eos, location, identifier, vid, signature = 0, 1, 2, 4, 6
	)
	field := func(typ uint64, data []byte) {
		b = binary.AppendUvarint(b, typ)
		b = binary.AppendUvarint(b, uint64(len(data)))
		b = append(b, data...)
	}
	b = append(b, 2)
	if m.Location() != "" {
		field(location, []byte(m.Location()))
	}
	field(identifier, m.Id())
	b = append(b, eos)
	for _, c := range m.Caveats() {
		if len(c.VerificationId) > 0 && c.Location != "" {
			field(location, []byte(c.Location))
		}
		field(identifier, c.Id)
		if len(c.VerificationId) > 0 {
			field(vid, c.VerificationId)
		}
		b = append(b, eos)
	}
	b = append(b, eos)
	field(signature, m.Signature())
	return b
}
