package tokens

import (
	"bytes"
	"encoding/binary"
)

// A strict reader of ONE binary macaroon, V1 or V2, that points into its
// input instead of copying it. Authenticate copies what it keeps into one
// string anyway, so going through go-macaroon (which copies the whole input,
// the identifier and the location, builds a Macaroon and grows a caveat
// slice) only cost time and allocations on every request.
//
// It accepts exactly what decodeBinary (macaroon.Slice.UnmarshalBinary, one
// macaroon, nothing after it) accepts and yields the same fields; the
// differential tests and FuzzBinaryParse in binary_test.go hold it to that.
// Every rule below therefore mirrors go-macaroon, quirks included: they are
// marked where they look surprising.

// caveatView is one caveat of a macaroonView; its fields point into the
// parsed bytes.
type caveatView struct {
	id, vid, location []byte
}

// macaroonView is a parsed binary macaroon whose fields point into the
// parsed bytes: it is only valid while those bytes are.
type macaroonView struct {
	version  uint8 // 1 or 2
	location []byte
	id       []byte
	sig      []byte // always sha256 sized
	// caveats holds the first caveats, at most the maxStored given to
	// parseMacaroon; count is the number of all caveats and thirdParty
	// tells whether any of them has a verification id. Not storing the
	// rest keeps a token with a huge number of caveats as cheap as one at
	// the limit, while its later caveats still decide ErrThirdParty (and
	// whether it is well formed at all) as they did with go-macaroon.
	caveats    []caveatView
	count      int
	thirdParty bool
}

// parseMacaroon reads b as exactly one binary macaroon; false when b is
// not one (empty, malformed, trailing bytes, a second macaroon). The
// caveats are appended to cavs[:0], so a caller can hand in a fixed array.
//
// The view travels by value, never through a pointer: a store through a
// pointer would make escape analysis move the caller's array to the heap.
func parseMacaroon(b []byte, cavs []caveatView, maxStored int) (macaroonView, bool) {
	m := macaroonView{caveats: cavs[:0]}
	if len(b) == 0 {
		return m, false
	}
	var rest []byte
	var ok bool
	switch c := b[0]; {
	case c == 2:
		m.version = 2
		m, rest, ok = m.parseV2(b[1:], maxStored)
	case '0' <= c && c <= '9' || 'a' <= c && c <= 'f':
		// V1 starts with the hex length of its first packet.
		m.version = 1
		m, rest, ok = m.parseV1(b, maxStored)
	}
	// go-macaroon would read anything left as a further macaroon; a token
	// is one macaroon, so any rest is refused whatever it holds.
	return m, ok && len(rest) == 0
}

// withCaveat returns m with c counted, and kept if fewer than maxStored
// are.
func (m macaroonView) withCaveat(c caveatView, maxStored int) macaroonView {
	if len(c.vid) > 0 {
		m.thirdParty = true
	}
	if m.count < maxStored {
		m.caveats = append(m.caveats, c)
	}
	m.count++
	return m
}

// sigLen is the length of a macaroon signature (HMAC-SHA256).
const sigLen = 32

// parseV1 reads libmacaroons' V1 form: a "location" packet, an
// "identifier" packet, caveat packets ("cid", "vid", "cl") and a
// "signature" packet. It returns m filled in and the bytes after the
// signature.
func (m macaroonView) parseV1(b []byte, maxStored int) (macaroonView, []byte, bool) {
	name, loc, n, ok := readPacketV1(b)
	if !ok || string(name) != "location" {
		return m, nil, false
	}
	b = b[n:]
	name, id, n, ok := readPacketV1(b)
	if !ok || string(name) != "identifier" {
		return m, nil, false
	}
	b = b[n:]
	m.location, m.id = loc, id
	// The caveat being read. go-macaroon starts a new caveat only at a
	// "cid" that follows another one: a "vid" or "cl" before the first
	// "cid" belongs to it, and one with no "cid" at all is dropped.
	var cav caveatView
	var hasID, hasVID bool
	for {
		name, data, n, ok := readPacketV1(b)
		if !ok {
			return m, nil, false
		}
		b = b[n:]
		switch string(name) {
		case "signature":
			if hasID {
				m = m.withCaveat(cav, maxStored)
			}
			if len(data) != sigLen {
				return m, nil, false
			}
			m.sig = data
			return m, b, true
		case "cid":
			if hasID {
				m = m.withCaveat(cav, maxStored)
				cav, hasVID = caveatView{}, false
			}
			cav.id, hasID = data, true
		case "vid":
			// A repeated "vid" is refused even when empty...
			if hasVID {
				return m, nil, false
			}
			cav.vid, hasVID = data, true
		case "cl":
			// ...but a repeated "cl" only after a non-empty one.
			if len(cav.location) > 0 {
				return m, nil, false
			}
			cav.location = data
		default:
			return m, nil, false
		}
	}
}

// readPacketV1 reads the V1 packet at the start of b: its total length n
// in 4 lower-case hex digits, the field name, a space, the data and a
// newline.
func readPacketV1(b []byte) (name, data []byte, n int, ok bool) {
	// go-macaroon wants 6 bytes left whatever the packet's own length.
	if len(b) < 6 {
		return nil, nil, 0, false
	}
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			n = n<<4 | int(c-'0')
		case 'a' <= c && c <= 'f':
			n = n<<4 | int(c-'a'+10)
		default:
			return nil, nil, 0, false
		}
	}
	if n < 4 || n > len(b) {
		return nil, nil, 0, false
	}
	body := b[4:n]
	sp := bytes.IndexByte(body, ' ')
	// An empty name is refused; the newline check is safe since sp > 0
	// leaves body at least 2 bytes long.
	if sp <= 0 || body[len(body)-1] != '\n' {
		return nil, nil, 0, false
	}
	return body[:sp], body[sp+1 : len(body)-1], n, true
}

// The V2 field types.
const (
	fieldEOS        = 0
	fieldLocation   = 1
	fieldIdentifier = 2
	fieldVID        = 4
	fieldSig        = 6 // the signature
)

// parseV2 reads the V2 form after its version byte: a header section
// (location?, identifier), caveat sections (location?, identifier, vid?),
// an empty section, then the signature field. A section is a run of fields
// ended by an EOS field; its fields must come in increasing type order,
// which the fixed shapes below imply. It returns m filled in and the bytes
// after the signature.
func (m macaroonView) parseV2(b []byte, maxStored int) (macaroonView, []byte, bool) {
	typ, data, b, ok := readFieldV2(b)
	if ok && typ == fieldLocation {
		m.location = data
		typ, data, b, ok = readFieldV2(b)
	}
	if !ok || typ != fieldIdentifier {
		return m, nil, false
	}
	m.id = data
	if typ, _, b, ok = readFieldV2(b); !ok || typ != fieldEOS {
		return m, nil, false
	}
	for {
		typ, data, b, ok = readFieldV2(b)
		if !ok {
			return m, nil, false
		}
		if typ == fieldEOS {
			break // an empty section ends the caveats
		}
		var cav caveatView
		if typ == fieldLocation {
			cav.location = data
			if typ, data, b, ok = readFieldV2(b); !ok {
				return m, nil, false
			}
		}
		if typ != fieldIdentifier {
			return m, nil, false
		}
		cav.id = data
		if typ, data, b, ok = readFieldV2(b); !ok {
			return m, nil, false
		}
		switch typ {
		case fieldEOS:
			// A first-party caveat may carry an empty location field,
			// not a non-empty one.
			if len(cav.location) > 0 {
				return m, nil, false
			}
		case fieldVID:
			cav.vid = data
			if typ, _, b, ok = readFieldV2(b); !ok || typ != fieldEOS {
				return m, nil, false
			}
		default:
			return m, nil, false
		}
		m = m.withCaveat(cav, maxStored)
	}
	typ, data, b, ok = readFieldV2(b)
	if !ok || typ != fieldSig || len(data) != sigLen {
		return m, nil, false
	}
	m.sig = data
	return m, b, true
}

// readFieldV2 reads the V2 field at the start of b: a varint type, then
// (unless the type is EOS) a varint length and that many bytes.
func readFieldV2(b []byte) (typ int, data, rest []byte, ok bool) {
	if typ, b, ok = readVarintV2(b); !ok || typ == fieldEOS {
		return typ, nil, b, ok
	}
	size, b, ok := readVarintV2(b)
	if !ok || size > len(b) {
		return 0, nil, nil, false
	}
	return typ, b[:size], b[size:], true
}

// readVarintV2 reads an unsigned varint that fits 31 bits. Like
// go-macaroon it uses binary.Uvarint, which also accepts non-minimal
// encodings (0x80 0x00 for 0).
func readVarintV2(b []byte) (int, []byte, bool) {
	v, n := binary.Uvarint(b)
	if n <= 0 || v > 0x7fffffff {
		return 0, nil, false
	}
	return int(v), b[n:], true
}
