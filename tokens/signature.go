package tokens

import (
	"crypto/hmac"
	"crypto/sha256"

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
	var pad [sha256Block]byte
	var inner, sig [32]byte
	sig = [32]byte(*key)
	for i := -1; i < len(cavs); i++ {
		msg := id
		if i >= 0 {
			msg = cavs[i].id
		}
		// HMAC-SHA256(sig, msg) into sig.
		for j := range pad {
			pad[j] = 0x36
		}
		for j, b := range sig {
			pad[j] ^= b
		}
		d.Reset()
		d.Write(pad[:])
		d.Write(msg)
		d.Sum(inner[:0])
		for j := range pad {
			pad[j] = 0x5c
		}
		for j, b := range sig {
			pad[j] ^= b
		}
		d.Reset()
		d.Write(pad[:])
		d.Write(inner[:])
		d.Sum(sig[:0])
	}
	return hmac.Equal(sig[:], want)
}
