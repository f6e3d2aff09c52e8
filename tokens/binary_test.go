package tokens

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/macaroon.v2"
)

// parseMacaroon (binary.go) must accept exactly what decodeBinary
// (go-macaroon's Slice.UnmarshalBinary, one macaroon) accepts and yield the
// same fields, and Authenticate must answer exactly as it did when it went
// through Decode. go-macaroon is the oracle throughout.
//
//	go test -run='^$' -fuzz=FuzzBinaryParse -fuzztime=3m ./tokens/

// sameAsGoMacaroon parses b with both parsers and fails t on any
// difference: accept/refuse, version, location, identifier, signature,
// every caveat field, and with a small maxStored the kept prefix, the count
// and the third-party flag. It also checks b is left untouched. It returns
// whether b was accepted.
func sameAsGoMacaroon(t testing.TB, b []byte) bool {
	t.Helper()
	orig := append([]byte(nil), b...)
	want := decodeBinary(b)
	got, ok := parseMacaroon(b, nil, math.MaxInt)
	if !bytes.Equal(b, orig) {
		t.Fatalf("parseMacaroon modified its input")
	}
	if ok != (want != nil) {
		t.Fatalf("accepted: ours %v, go-macaroon %v; input %q", ok, want != nil, b)
	}
	for _, limit := range []int{0, 1, 3, MaxCaveats} {
		small, smallOK := parseMacaroon(b, make([]caveatView, 0, 2), limit)
		if smallOK != ok {
			t.Fatalf("maxStored %d: accepted %v, unlimited %v; input %q", limit, smallOK, ok, b)
		}
		if !ok {
			continue
		}
		if small.count != got.count || small.thirdParty != got.thirdParty || len(small.caveats) != min(limit, got.count) {
			t.Fatalf("maxStored %d: %d kept of %d (third party %v), unlimited %d (%v)",
				limit, len(small.caveats), small.count, small.thirdParty, got.count, got.thirdParty)
		}
		for i := range small.caveats {
			if !sameCaveatView(small.caveats[i], got.caveats[i]) {
				t.Fatalf("maxStored %d: caveat %d differs", limit, i)
			}
		}
	}
	if !ok {
		return false
	}
	if int(got.version) != int(want.Version()) {
		t.Fatalf("version %d, go-macaroon %d", got.version, want.Version())
	}
	if string(got.location) != want.Location() {
		t.Fatalf("location %q, go-macaroon %q", got.location, want.Location())
	}
	if !bytes.Equal(got.id, want.Id()) {
		t.Fatalf("identifier %q, go-macaroon %q", got.id, want.Id())
	}
	if !bytes.Equal(got.sig, want.Signature()) {
		t.Fatalf("signature %x, go-macaroon %x", got.sig, want.Signature())
	}
	wc := want.Caveats()
	if got.count != len(wc) || len(got.caveats) != len(wc) {
		t.Fatalf("%d caveats (%d kept), go-macaroon %d", got.count, len(got.caveats), len(wc))
	}
	third := false
	for i, c := range wc {
		g := got.caveats[i]
		if !bytes.Equal(g.id, c.Id) || !bytes.Equal(g.vid, c.VerificationId) || string(g.location) != c.Location {
			t.Fatalf("caveat %d: ours (%q, %q, %q), go-macaroon (%q, %q, %q)", i, g.id, g.vid, g.location, c.Id, c.VerificationId, c.Location)
		}
		third = third || len(c.VerificationId) > 0
	}
	if got.thirdParty != third {
		t.Fatalf("third party %v, go-macaroon %v", got.thirdParty, third)
	}
	return true
}

func sameCaveatView(a, b caveatView) bool {
	return bytes.Equal(a.id, b.id) && bytes.Equal(a.vid, b.vid) && bytes.Equal(a.location, b.location)
}

// A macaroon as the test writers below lay it out, including shapes
// go-macaroon's own writer never produces.
type genMacaroon struct {
	v2       bool
	hasLoc   bool // V2: write the header location field even when empty
	loc, id  []byte
	sig      []byte
	caveats  []genCaveat
	varintNM bool // V2: write every varint non-minimally (one extra byte)
}

type genCaveat struct {
	id, vid, loc   []byte
	hasVID, hasLoc bool // write the field even when empty
}

// encode lays g out in its version's binary form. V1 fields are written in
// the order cid, vid, cl; packets over 0xffff bytes make it fail.
func (g *genMacaroon) encode() ([]byte, bool) {
	if g.v2 {
		return g.encodeV2(), true
	}
	var b []byte
	ok := true
	packet := func(name string, data []byte) {
		var fits bool
		b, fits = appendV1Packet(b, name, data)
		ok = ok && fits
	}
	packet("location", g.loc)
	packet("identifier", g.id)
	for _, c := range g.caveats {
		packet("cid", c.id)
		if c.hasVID {
			packet("vid", c.vid)
		}
		if c.hasLoc {
			packet("cl", c.loc)
		}
	}
	packet("signature", g.sig)
	return b, ok
}

func (g *genMacaroon) encodeV2() []byte {
	b := []byte{2}
	varint := func(x uint64) {
		if g.varintNM {
			// The same value with one more (empty) 7-bit group.
			for x >= 0x80 {
				b = append(b, byte(x)|0x80)
				x >>= 7
			}
			b = append(b, byte(x)|0x80, 0)
			return
		}
		b = binary.AppendUvarint(b, x)
	}
	field := func(typ uint64, data []byte) {
		varint(typ)
		varint(uint64(len(data)))
		b = append(b, data...)
	}
	if g.hasLoc || len(g.loc) > 0 {
		field(fieldLocation, g.loc)
	}
	field(fieldIdentifier, g.id)
	varint(fieldEOS)
	for _, c := range g.caveats {
		if c.hasLoc || len(c.loc) > 0 {
			field(fieldLocation, c.loc)
		}
		field(fieldIdentifier, c.id)
		if c.hasVID || len(c.vid) > 0 {
			field(fieldVID, c.vid)
		}
		varint(fieldEOS)
	}
	varint(fieldEOS)
	field(fieldSig, g.sig)
	return b
}

// oddBytes returns a field value: often empty, text, non-UTF-8 bytes,
// bytes that look like V1 or V2 syntax, or occasionally long.
func oddBytes(r *rand.Rand) []byte {
	switch r.IntN(9) {
	case 0:
		return []byte{}
	case 1:
		return []byte("time < 9999999999")
	case 2:
		return []byte{0xff, 0xfe, 0x80, 0xc3, 0x28} // not UTF-8
	case 3:
		return []byte("0010cid x\n 0006\n")
	case 4:
		return []byte{0, 2, 4, 6, 0x80, 0x80}
	case 5:
		return bytes.Repeat([]byte{byte(r.IntN(256))}, r.IntN(300))
	case 6:
		return bytes.Repeat([]byte("a"), 200+r.IntN(1000))
	}
	b := make([]byte, r.IntN(40))
	for i := range b {
		b[i] = byte(r.IntN(256))
	}
	return b
}

// randomGen builds a macaroon of n caveats: mostly well formed, sometimes
// with a shape go-macaroon refuses (a first-party location in V2, a short
// signature, an empty or repeated field) so both answers are exercised.
func randomGen(r *rand.Rand, n int) *genMacaroon {
	g := &genMacaroon{v2: r.IntN(2) == 0, id: oddBytes(r), sig: make([]byte, 32)}
	for i := range g.sig {
		g.sig[i] = byte(r.IntN(256))
	}
	if r.IntN(3) > 0 {
		g.loc = oddBytes(r)
	}
	g.hasLoc = r.IntN(4) == 0
	g.varintNM = g.v2 && r.IntN(5) == 0
	if r.IntN(20) == 0 { // a signature of the wrong length
		g.sig = bytes.Repeat([]byte{'s'}, r.IntN(40))
	}
	for range n {
		c := genCaveat{id: oddBytes(r)}
		switch r.IntN(12) {
		case 0: // third party with a location
			c.vid, c.hasVID, c.loc, c.hasLoc = oddBytes(r), true, oddBytes(r), true
		case 1: // third party
			c.vid, c.hasVID = oddBytes(r), true
		case 2: // empty vid / location fields
			c.hasVID, c.hasLoc = r.IntN(2) == 0, r.IntN(2) == 0
		case 3: // a location without a vid (V1: first party; V2: refused unless empty)
			c.loc, c.hasLoc = oddBytes(r), true
		}
		g.caveats = append(g.caveats, c)
	}
	return g
}

// caveatCount picks 0..300 caveats, favouring the edges around the
// inline capacity and MaxCaveats.
func caveatCount(r *rand.Rand) int {
	edges := []int{0, 1, 2, 6, inlineCaveats - 1, inlineCaveats, inlineCaveats + 1, MaxCaveats - 1, MaxCaveats, MaxCaveats + 1, 300}
	if r.IntN(2) == 0 {
		return edges[r.IntN(len(edges))]
	}
	if r.IntN(4) == 0 {
		return r.IntN(301)
	}
	return r.IntN(12)
}

// appendV1Packet appends one V1 packet (4 hex digits of length, name, a
// space, data, a newline); false, and b unchanged, when it cannot fit.
func appendV1Packet(b []byte, name string, data []byte) ([]byte, bool) {
	n := 4 + len(name) + 1 + len(data) + 1
	if n > 0xffff {
		return b, false
	}
	const hex = "0123456789abcdef"
	b = append(b, hex[n>>12], hex[n>>8&15], hex[n>>4&15], hex[n&15])
	b = append(b, name...)
	b = append(b, ' ')
	b = append(b, data...)
	return append(b, '\n'), true
}

// V1 packet streams in arbitrary orders: vid/cl before any cid, repeated
// vid or cl, unknown names. These reach the quirks of go-macaroon's V1
// reader that a well-formed writer never produces.
func randomV1Stream(r *rand.Rand) []byte {
	var b []byte
	packet := func(name string, data []byte) { b, _ = appendV1Packet(b, name, data) }
	short := func() []byte {
		if r.IntN(3) == 0 {
			return nil
		}
		return []byte{"xyz"[r.IntN(3)]}
	}
	packet("location", short())
	packet("identifier", short())
	names := []string{"cid", "cid", "vid", "cl", "cl", "sig", "location", "cid "}
	for range r.IntN(8) {
		packet(names[r.IntN(len(names))], short())
	}
	packet("signature", make([]byte, 32))
	return b
}

// V2 field streams from a small alphabet of field types, in random order,
// with random section ends.
func randomV2Stream(r *rand.Rand) []byte {
	b := []byte{2}
	for range 2 + r.IntN(10) {
		typ := []uint64{0, 0, 0, 1, 2, 2, 3, 4, 6}[r.IntN(9)]
		b = binary.AppendUvarint(b, typ)
		if typ == fieldEOS {
			continue
		}
		size := r.IntN(3)
		if typ == fieldSig {
			size = 32
		}
		b = binary.AppendUvarint(b, uint64(size))
		b = append(b, make([]byte, size)...)
	}
	if r.IntN(2) == 0 {
		b = append(b, 0)
	}
	if r.IntN(2) == 0 {
		b = append(b, 6, 32)
		b = append(b, make([]byte, 32)...)
	}
	return b
}

// goMacaroonEncodings are go-macaroon's own binary encodings of minted
// macaroons, V1 and V2, with first- and third-party caveats.
func goMacaroonEncodings(t testing.TB, r *rand.Rand) [][]byte {
	t.Helper()
	var out [][]byte
	for _, n := range []int{0, 1, 6, 17, 257} {
		for _, v := range []macaroon.Version{macaroon.V1, macaroon.V2} {
			m, err := macaroon.New([]byte("root"), []byte("2/nmd/usr-bob/ujg:g:/t"), "onezone", v)
			if err != nil {
				t.Fatal(err)
			}
			for i := range n {
				if i%5 == 4 {
					if err := m.AddThirdPartyCaveat([]byte("tp"), oddBytes(r), "https://elsewhere"); err != nil {
						t.Fatal(err)
					}
					continue
				}
				if err := m.AddFirstPartyCaveat(oddBytes(r)); err != nil {
					t.Fatal(err)
				}
			}
			b, err := m.MarshalBinary()
			if err != nil {
				continue // a V1 packet over 0xffff bytes
			}
			out = append(out, b)
		}
	}
	return out
}

func newTestRand(t testing.TB) *rand.Rand {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	return rand.New(rand.NewPCG(seed, 0x70c3e5))
}

func TestBinaryParseDifferential(t *testing.T) {
	r := newTestRand(t)
	accepted, refused := 0, 0
	tally := func(ok bool) {
		if ok {
			accepted++
		} else {
			refused++
		}
	}
	for _, b := range goMacaroonEncodings(t, r) {
		if !sameAsGoMacaroon(t, b) {
			t.Fatalf("go-macaroon's own encoding refused: %q", b)
		}
	}
	for i := 0; i < 1500; i++ {
		g := randomGen(r, caveatCount(r))
		b, ok := g.encode()
		if !ok {
			continue
		}
		tally(sameAsGoMacaroon(t, b))
	}
	for i := 0; i < 3000; i++ {
		tally(sameAsGoMacaroon(t, randomV1Stream(r)))
		tally(sameAsGoMacaroon(t, randomV2Stream(r)))
	}
	// Both answers must have been exercised for the comparison to mean
	// something.
	t.Logf("%d accepted, %d refused", accepted, refused)
	if accepted < 500 || refused < 500 {
		t.Fatalf("unbalanced: %d accepted, %d refused", accepted, refused)
	}
}

// Fixed inputs for the quirks of go-macaroon that the generators above only
// reach by chance; each must get the answer written next to it from both
// parsers.
func TestBinaryParseQuirks(t *testing.T) {
	p := func(name, data string) string {
		n := 4 + len(name) + 1 + len(data) + 1
		return string("0123456789abcdef"[n>>12]) + string("0123456789abcdef"[n>>8&15]) +
			string("0123456789abcdef"[n>>4&15]) + string("0123456789abcdef"[n&15]) + name + " " + data + "\n"
	}
	sig := strings.Repeat("s", 32)
	head := p("location", "") + p("identifier", "id")
	v2sig := "\x00\x06\x20" + sig
	cases := []struct {
		name string
		in   string
		ok   bool
	}{
		{"v1 no caveats", head + p("signature", sig), true},
		{"v1 vid before cid joins the caveat", head + p("vid", "v") + p("cid", "c") + p("signature", sig), true},
		{"v1 vid without cid is dropped", head + p("vid", "v") + p("signature", sig), true},
		{"v1 repeated empty vid", head + p("cid", "c") + p("vid", "") + p("vid", "") + p("signature", sig), false},
		{"v1 repeated empty cl", head + p("cid", "c") + p("cl", "") + p("cl", "x") + p("signature", sig), true},
		{"v1 cl after non-empty cl", head + p("cid", "c") + p("cl", "x") + p("cl", "") + p("signature", sig), false},
		{"v1 empty cid is a caveat", head + p("cid", "") + p("cid", "") + p("signature", sig), true},
		{"v1 cl on a first-party caveat", head + p("cid", "c") + p("cl", "here") + p("signature", sig), true},
		{"v1 unknown field", head + p("cidx", "c") + p("signature", sig), false},
		{"v1 short signature", head + p("signature", sig[1:]), false},
		{"v1 upper-case hex length", strings.ToUpper(p("location", "")[:4]) + p("location", "")[4:] + p("identifier", "id") + p("signature", sig), false},
		{"v1 trailing byte", head + p("signature", sig) + "\n", false},
		{"v1 two macaroons", head + p("signature", sig) + head + p("signature", sig), false},
		{"v1 last packet under 6 bytes", head + p("signature", sig) + "00", false},
		{"v2 minimal", "\x02\x02\x02id\x00\x00" + "\x06\x20" + sig, true},
		{"v2 empty header location", "\x02\x01\x00\x02\x02id\x00\x00\x06\x20" + sig, true},
		{"v2 non-minimal varints", "\x02\x82\x00\x82\x00\x00\x80\x00\x80\x00\x86\x00\xa0\x00" + sig, true},
		{"v2 varint over 31 bits", "\x02\x02\x80\x80\x80\x80\x08", false},
		{"v2 first party with empty location", "\x02\x02\x02id\x00\x01\x00\x02\x01c\x00" + v2sig, true},
		{"v2 first party with a location", "\x02\x02\x02id\x00\x01\x01l\x02\x01c\x00" + v2sig, false},
		{"v2 third party with location", "\x02\x02\x02id\x00\x01\x01l\x02\x01c\x04\x01v\x00" + v2sig, true},
		{"v2 empty vid", "\x02\x02\x02id\x00\x02\x01c\x04\x00\x00" + v2sig, true},
		{"v2 fields out of order", "\x02\x02\x02id\x00\x04\x01v\x02\x01c\x00" + v2sig, false},
		{"v2 unknown field in caveat", "\x02\x02\x02id\x00\x02\x01c\x03\x00\x00" + v2sig, false},
		{"v2 header without identifier", "\x02\x01\x01l\x00" + v2sig, false},
		{"v2 no final section end", "\x02\x02\x02id\x00\x06\x20" + sig, false},
		{"v2 trailing byte", "\x02\x02\x02id\x00" + v2sig + "\x00", false},
		{"empty", "", false},
		{"unknown version", "\x01\x02\x02id\x00" + v2sig, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := sameAsGoMacaroon(t, []byte(c.in)); got != c.ok {
				t.Fatalf("accepted %v, want %v", got, c.ok)
			}
		})
	}
}

// mutate returns a corrupted copy of b: truncated, a byte flipped or
// replaced, bytes inserted, appended, deleted or duplicated.
func mutate(r *rand.Rand, b []byte) []byte {
	out := append([]byte(nil), b...)
	if len(out) == 0 {
		return append(out, byte(r.IntN(256)))
	}
	i := r.IntN(len(out))
	switch r.IntN(7) {
	case 0:
		return out[:i]
	case 1:
		out[i] ^= byte(1 + r.IntN(255))
	case 2:
		out[i] ^= 1 << r.IntN(8)
	case 3:
		return append(out[:i:i], append([]byte{byte(r.IntN(256))}, out[i:]...)...)
	case 4:
		return append(out, oddBytes(r)...)
	case 5:
		j := i + r.IntN(len(out)-i+1)
		return append(out[:i:i], out[j:]...)
	case 6:
		j := i + r.IntN(min(len(out)-i, 40)+1)
		return append(out[:j:j], append(append([]byte(nil), out[i:j]...), out[j:]...)...)
	}
	return out
}

func TestBinaryParseCorruption(t *testing.T) {
	r := newTestRand(t)
	valid := goMacaroonEncodings(t, r)
	for len(valid) < 120 {
		g := randomGen(r, caveatCount(r))
		if b, ok := g.encode(); ok && decodeBinary(b) != nil {
			valid = append(valid, b)
		}
	}
	accepted, refused := 0, 0
	for _, b := range valid {
		for range 150 {
			m := mutate(r, b)
			if r.IntN(4) == 0 {
				m = mutate(r, m)
			}
			if sameAsGoMacaroon(t, m) {
				accepted++
			} else {
				refused++
			}
		}
	}
	t.Logf("%d corruptions accepted (data bytes changed), %d refused", accepted, refused)
	if refused < 1000 || accepted < 100 {
		t.Fatalf("unbalanced: %d accepted, %d refused", accepted, refused)
	}
}

func FuzzBinaryParse(f *testing.F) {
	for _, m := range fuzzSeedMacaroons(f) {
		for _, v := range []macaroon.Version{macaroon.V1, macaroon.V2} {
			mv, err := withVersion(m, v)
			if err != nil {
				f.Fatal(err)
			}
			b, err := mv.MarshalBinary()
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for _, b := range goMacaroonEncodings(f, r) {
		if len(b) < 4096 {
			f.Add(b)
		}
	}
	for range 20 {
		if b, ok := randomGen(r, r.IntN(4)).encode(); ok && len(b) < 4096 {
			f.Add(b)
		}
	}
	keys := fuzzKeyring(f)

	f.Fuzz(func(t *testing.T, b []byte) {
		sameAsGoMacaroon(t, b)
		sameTextSteps(t, string(b))
		// The same bytes as the text forms Authenticate reads, and as text
		// themselves: Authenticate answers as the go-macaroon path does.
		u := base64.RawURLEncoding.EncodeToString(b)
		for _, s := range []string{u, onedataEscape(u), base64.StdEncoding.EncodeToString(b), string(b)} {
			sameAuthentication(t, keys, s)
		}
	})
}

// oldAuthenticate is Authenticate as it was before it read the binary
// forms itself: Decode (go-macaroon) for every form, then the same steps.
func oldAuthenticate(k *Keyring, s string) (*Token, error) {
	m, err := Decode(s)
	if err != nil {
		return nil, err
	}
	if len(m.Caveats()) > MaxCaveats {
		return nil, malformed("too many caveats")
	}
	id, err := ParseIdentifier(string(m.Id()))
	if err != nil {
		return nil, err
	}
	key, err := k.keyFor(&id)
	if err != nil {
		return nil, err
	}
	if !signatureValid(m, key) {
		return nil, ErrSignature
	}
	t := &Token{Location: m.Location(), ID: id}
	for _, mc := range m.Caveats() {
		c, err := ParseCaveat(string(mc.Id))
		if err != nil {
			return nil, err
		}
		if c.Kind == CaveatTime {
			if exp := time.Unix(c.Expires, 0); t.Expires.IsZero() || exp.Before(t.Expires) {
				t.Expires = exp
			}
		}
		t.Caveats = append(t.Caveats, c)
	}
	return t, nil
}

// sameAuthentication fails t unless Authenticate and oldAuthenticate give
// the same Token or the same error (kind, caveat and detail). It returns
// Authenticate's error.
func sameAuthentication(t testing.TB, k *Keyring, s string) error {
	t.Helper()
	got, gotErr := k.Authenticate(s)
	want, wantErr := oldAuthenticate(k, s)
	if (gotErr == nil) != (wantErr == nil) || gotErr != nil && gotErr.Error() != wantErr.Error() {
		t.Fatalf("error %v, go-macaroon path %v; token %.200q", gotErr, wantErr, s)
	}
	if gotErr == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("token %+v, go-macaroon path %+v", got, want)
	}
	if gotErr != nil && KindOf(gotErr) == 0 {
		t.Fatalf("error %v is not an *Error", gotErr)
	}
	return gotErr
}

// textForms returns m in every serialized form Authenticate reads: Onedata's,
// the four base64 variants of V1 and V2 binary, and both JSON forms
// (those that m's bytes allow).
func textForms(t testing.TB, m *macaroon.Macaroon) []string {
	t.Helper()
	var out []string
	for _, f := range []Format{FormatOnedata, FormatJSONV1, FormatJSONV2} {
		if s, err := Encode(m, f); err == nil {
			out = append(out, s)
		}
	}
	for _, v := range []macaroon.Version{macaroon.V1, macaroon.V2} {
		mv, err := withVersion(m, v)
		if err != nil {
			continue
		}
		b, err := mv.MarshalBinary()
		if err != nil {
			continue
		}
		for _, enc := range []*base64.Encoding{base64.RawURLEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.StdEncoding} {
			out = append(out, enc.EncodeToString(b))
		}
	}
	return out
}

func TestAuthenticateMatchesGoMacaroonPath(t *testing.T) {
	r := newTestRand(t)
	kinds := map[int]int{} // by Kind; 0 is accepted
	check := func(k *Keyring, s string) {
		t.Helper()
		err := sameAuthentication(t, k, s)
		kinds[int(KindOf(err))]++
	}

	// Onedata's vectors, with the keys that verify them, a wrong key, and
	// corrupted copies.
	for _, v := range loadVectors(t) {
		keyrings := []*Keyring{fuzzKeyring(t)}
		if wrong, err := NewKeyring([]byte(v.Secret+"x"), nil); err == nil {
			keyrings = append(keyrings, wrong)
		}
		if v.Secret != "" {
			def, _ := NewKeyring([]byte(v.Secret), nil)
			keyrings = append(keyrings, def)
			if id, err := ParseIdentifier(v.Identifier); err == nil && !id.Persistence.Named {
				gen, _ := NewKeyring(nil, map[uint64][]byte{id.Persistence.Generation: []byte(v.Secret)})
				keyrings = append(keyrings, gen)
			}
		}
		for _, k := range keyrings {
			check(k, v.Token)
			for range 100 {
				check(k, string(mutate(r, []byte(v.Token))))
			}
		}
	}

	// Minted tokens of every shape, in every form.
	keys, _ := NewKeyring(testSecret, map[uint64][]byte{5: []byte("gen five"), 7: []byte("gen seven")})
	named := InviteID(Persistence{Named: true}, "bob", "grp1", "tok1")
	goodCaveats := append(append([]string(nil), benchInviteCaveats...), benchAccessCaveats...)
	many := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = goodCaveats[i%len(goodCaveats)]
		}
		return out
	}
	type spec struct {
		secret   []byte
		id       string
		loc      string
		caveats  []string
		thirdAt  int // index at which a third-party caveat goes; -1 none
		rawBytes []byte
	}
	specs := []spec{
		{testSecret, named.String(), "onezone", nil, -1, nil},
		{testSecret, named.String(), "", benchInviteCaveats, -1, nil},
		{testSecret, named.String(), "here", many(inlineCaveats + 1), -1, nil},
		{testSecret, named.String(), "x", many(MaxCaveats), -1, nil},
		{testSecret, named.String(), "x", many(MaxCaveats + 1), -1, nil},
		{testSecret, named.String(), "x", many(300), -1, nil},
		{testSecret, named.String(), "x", many(300), 290, nil},        // third party past MaxCaveats
		{testSecret, named.String(), "x", benchInviteCaveats, 3, nil}, // third party in the middle
		{testSecret, named.String(), "", []string{"time < 10", "time < 5", "time < 99"}, -1, nil},
		{testSecret, named.String(), "", []string{"ip = 10.0.0.0/8", "nonsense"}, -1, nil},
		{testSecret, named.String(), "", nil, -1, []byte{0xff, 'a', 0}}, // non-UTF-8 caveat
		{[]byte("wrong"), named.String(), "", benchInviteCaveats, -1, nil},
		{[]byte("gen seven"), InviteID(Persistence{Generation: 7}, "bob", "g", "t").String(), "", benchInviteCaveats, -1, nil},
		{testSecret, InviteID(Persistence{Generation: 6}, "bob", "g", "t").String(), "", nil, -1, nil}, // no key
		{testSecret, InviteID(Persistence{Generation: 2}, "bob", "g", "t").String(), "", nil, -1, nil}, // revoked
		{testSecret, "legacyIdentifier", "", nil, -1, nil},
		{testSecret, "2/nmd/usr-bob/ujg:g:/", "", nil, -1, nil}, // malformed identifier
		{testSecret, "", "", nil, -1, nil},
	}
	for i, sp := range specs {
		for _, v := range []macaroon.Version{macaroon.V1, macaroon.V2} {
			m, err := macaroon.New(sp.secret, []byte(sp.id), sp.loc, v)
			if err != nil {
				t.Fatal(err)
			}
			for j, c := range sp.caveats {
				if j == sp.thirdAt {
					if err := m.AddThirdPartyCaveat([]byte("tp"), []byte("tp caveat"), "https://elsewhere"); err != nil {
						t.Fatal(err)
					}
				}
				m.AddFirstPartyCaveat([]byte(c))
			}
			if sp.rawBytes != nil {
				m.AddFirstPartyCaveat(sp.rawBytes)
			}
			forms := textForms(t, m)
			if len(forms) < 8 {
				t.Fatalf("spec %d: only %d forms", i, len(forms))
			}
			for _, s := range forms {
				err := sameAuthentication(t, keys, s)
				kinds[int(KindOf(err))]++
				// The order of refusals is part of the contract: a third
				// party caveat wins over too many caveats.
				if sp.thirdAt >= 0 && KindOf(err) != KindThirdParty {
					t.Fatalf("spec %d: third party caveat gave %v", i, err)
				}
				if len(sp.caveats) > MaxCaveats && sp.thirdAt < 0 && (err == nil || !strings.Contains(err.Error(), "too many caveats")) {
					t.Fatalf("spec %d: %d caveats gave %v", i, len(sp.caveats), err)
				}
				for range 20 {
					check(keys, string(mutate(r, []byte(s))))
				}
			}
		}
	}
	t.Logf("outcomes by kind number (0 = accepted): %v", kinds)
	for _, k := range []Kind{0, KindMalformed, KindThirdParty, KindNoKey, KindRevoked, KindSignature, KindCaveat} {
		if kinds[int(k)] == 0 {
			t.Errorf("no case ended with kind %d (%v)", k, k)
		}
	}
}

// unescapeOnedata and decodeBase64As, the text steps of Authenticate and
// Decode, must agree with the straightforward unescape and base64DecodeInto.
func TestFastTextStepsMatchDecodeText(t *testing.T) {
	r := newTestRand(t)
	var inputs []string
	for _, v := range loadVectors(t) {
		inputs = append(inputs, v.Token)
	}
	const alphabet = "0012345_-/+=\nAz9"
	for range 20000 {
		b := make([]byte, r.IntN(24))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		inputs = append(inputs, string(b))
		raw := make([]byte, r.IntN(40))
		for i := range raw {
			raw[i] = byte(r.IntN(256))
		}
		for _, enc := range []*base64.Encoding{base64.RawURLEncoding, base64.URLEncoding, base64.StdEncoding} {
			inputs = append(inputs, onedataEscape(enc.EncodeToString(raw)), enc.EncodeToString(raw))
		}
	}
	for _, s := range inputs {
		sameTextSteps(t, s)
	}
}

func sameTextSteps(t testing.TB, s string) {
	t.Helper()
	want, wantOK := referenceOnedataUnescape(nil, s)
	got, std, ok := unescapeOnedata(make([]byte, 0, len(s)), s)
	if ok != wantOK || ok && !bytes.Equal(got, want) {
		t.Fatalf("%q: unescaped %q,%v; decode.go %q,%v", s, got, ok, want, wantOK)
	}
	if !ok {
		return
	}
	if std != bytes.ContainsAny(want, "+/") {
		t.Fatalf("%q: std %v", s, std)
	}
	d1 := decodeBase64As(make([]byte, len(got)), got, std)
	d2 := base64DecodeInto(make([]byte, len(want)), want)
	if (d1 == nil) != (d2 == nil) || !bytes.Equal(d1, d2) {
		t.Fatalf("%q: decoded %q; decode.go %q", s, d1, d2)
	}
}

// Tokens Authenticate accepts must not share memory with the pooled
// buffer: a later Authenticate reuses it, and the earlier Token must not
// change.
func TestAuthenticateTokenOutlivesBuffer(t *testing.T) {
	keys, _ := NewKeyring(testSecret, nil)
	a, err := Mint(testSecret, "loc-a", InviteID(Persistence{Named: true}, "bob", "grp-a", "tok-a"), benchInviteCaveats...)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Mint(testSecret, "loc-b", InviteID(Persistence{Named: true}, "eve", "grp-b", "tok-b"), "time < 1", "ip = 10.0.0.0/8")
	if err != nil {
		t.Fatal(err)
	}
	ta, err := keys.Authenticate(a)
	if err != nil {
		t.Fatal(err)
	}
	snapshot, _ := json.Marshal(ta)
	for range 50 {
		if _, err := keys.Authenticate(b); err != nil {
			t.Fatal(err)
		}
	}
	after, _ := json.Marshal(ta)
	if !bytes.Equal(snapshot, after) {
		t.Fatalf("token changed after later calls:\n%s\n%s", snapshot, after)
	}
	if ta.Location != "loc-a" || ta.ID.TokenID != "tok-a" || len(ta.Caveats) != len(benchInviteCaveats) {
		t.Fatalf("token %+v", ta)
	}
}

// The point of the binary reader: verifying an invite allocates only the
// Token, its caveats and their one string.
func TestAuthenticateAllocs(t *testing.T) {
	keys, _ := NewKeyring(testSecret, nil)
	s, err := Mint(testSecret, "", InviteID(Persistence{Named: true}, "bob", "grp1", "tok1"), benchInviteCaveats...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Authenticate(s); err != nil {
		t.Fatal(err)
	}
	n := testing.AllocsPerRun(200, func() {
		if _, err := keys.Authenticate(s); err != nil {
			t.Fatal(err)
		}
	})
	if n > 3 {
		t.Fatalf("Authenticate allocates %v times per call, want at most 3", n)
	}
}

// referenceOnedataUnescape is the straightforward, character by character
// unescape that unescapeOnedata must agree with.
func referenceOnedataUnescape(b []byte, s string) ([]byte, bool) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '0':
			if i+1 >= len(s) || s[i+1] < '0' || s[i+1] > '5' {
				return b, false
			}
			b = append(b, onedataEscapes[s[i+1]-'0'])
			i++
		case '_', '-', '/', '+', '=':
			// Never appear unescaped in Onedata's form.
			return b, false
		default:
			b = append(b, c)
		}
	}
	return b, true
}
