package tokens

import (
	"crypto/hmac"
	"crypto/sha256"
	"hash"

	"gopkg.in/macaroon.v2"
)

// The macaroon signature chain, computed with a key derived once (see
// rootKey) and one SHA-256 state reused for every step. go-macaroon's own
// Verify derives the key again and builds a new HMAC per caveat; the chain
// below is the same construction (HMAC-SHA256 over the identifier, then over
// each caveat with the previous signature as key) and is checked against
// go-macaroon in the tests.

const sha256Block = 64

// hmacStep computes HMAC-SHA256(key, msg) into out using d as scratch.
func hmacStep(d hash.Hash, key *[32]byte, msg []byte, out *[32]byte) {
	var pad [sha256Block]byte
	for i := range pad {
		pad[i] = 0x36
	}
	for i, b := range key {
		pad[i] ^= b
	}
	d.Reset()
	d.Write(pad[:])
	d.Write(msg)
	var inner [32]byte
	d.Sum(inner[:0])
	for i := range pad {
		pad[i] = 0x5c
	}
	for i, b := range key {
		pad[i] ^= b
	}
	d.Reset()
	d.Write(pad[:])
	d.Write(inner[:])
	d.Sum(out[:0])
}

// signatureValid recomputes m's first-party signature chain from key and
// compares it in constant time.
func signatureValid(m *macaroon.Macaroon, key *rootKey) bool {
	d := sha256.New()
	var sig [32]byte
	k := [32]byte(*key)
	hmacStep(d, &k, m.Id(), &sig)
	for _, c := range m.Caveats() {
		prev := sig
		hmacStep(d, &prev, c.Id, &sig)
	}
	return hmac.Equal(sig[:], m.Signature())
}
