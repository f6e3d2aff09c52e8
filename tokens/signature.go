package tokens

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"

	"gopkg.in/macaroon.v2"
)

// The macaroon signature chain, computed with a key derived once (see
// rootKey) and one SHA-256 state reused for every step. go-macaroon's own
// Verify derives the key again and builds a new HMAC per caveat; the chain
// below is the same construction (HMAC-SHA256 over the identifier, then over
// each caveat with the previous signature as key) and is checked against
// go-macaroon in the tests.
//
// The HMAC is written out inside one function on purpose: with the digest
// created and used in the same frame, the compiler calls its methods
// directly and keeps the digest, the pads and the intermediate sums on the
// stack, so verifying a signature does not allocate.

const sha256Block = 64

// signatureValid recomputes m's first-party signature chain from key and
// compares it in constant time.
func signatureValid(m *macaroon.Macaroon, key *rootKey) bool {
	mc := m.Caveats()
	cavs := make([]caveatView, len(mc))
	for i := range mc {
		cavs[i].id = mc[i].Id
	}
	return chainValid(m.Id(), cavs, m.Signature(), key)
}

// chainValid is signatureValid on the parts of a macaroon: its identifier,
// its first-party caveats (only their ids are signed) and its signature.
// Authenticate calls it on views into the decoded token (see binary.go),
// so a go-macaroon Macaroon need not exist.
func chainValid(id []byte, cavs []caveatView, want []byte, key *rootKey) bool {
	d := sha256.New()
	// HMAC's two padded key blocks: key XOR 0x36… and key XOR 0x5c…. A
	// key is 32 bytes, so the second half of each block is the bare
	// constant, written once; the first half is rewritten for each step,
	// eight bytes at a time.
	const ipad, opad = 0x3636363636363636, 0x5c5c5c5c5c5c5c5c
	var iblock, oblock [sha256Block]byte
	for j := 32; j < sha256Block; j += 8 {
		binary.LittleEndian.PutUint64(iblock[j:], ipad)
		binary.LittleEndian.PutUint64(oblock[j:], opad)
	}
	var inner, sig [32]byte
	sig = [32]byte(*key)
	for i := -1; i < len(cavs); i++ {
		msg := id
		if i >= 0 {
			msg = cavs[i].id
		}
		// HMAC-SHA256(sig, msg) into sig.
		for j := 0; j < 32; j += 8 {
			w := binary.LittleEndian.Uint64(sig[j:])
			binary.LittleEndian.PutUint64(iblock[j:], w^ipad)
			binary.LittleEndian.PutUint64(oblock[j:], w^opad)
		}
		d.Reset()
		d.Write(iblock[:])
		d.Write(msg)
		d.Sum(inner[:0])
		d.Reset()
		d.Write(oblock[:])
		d.Write(inner[:])
		d.Sum(sig[:0])
	}
	return hmac.Equal(sig[:], want)
}
