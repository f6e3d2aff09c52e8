package tokens

import (
	"crypto/hmac"
	"crypto/sha256"
	"math/rand/v2"
	"testing"
)

// refChain is the macaroon signature chain written with crypto/hmac: the
// definition chainValid must agree with.
func refChain(key *rootKey, id []byte, cavs []caveatView) []byte {
	sig := key[:]
	for _, msg := range append([]caveatView{{id: id}}, cavs...) {
		h := hmac.New(sha256.New, sig)
		h.Write(msg.id)
		sig = h.Sum(nil)
	}
	return sig
}

// chainValid agrees with crypto/hmac on identifiers and caveats of every
// length around the SHA-256 block size (empty, one block, several), with
// keys of every byte value, and refuses any one flipped bit of the
// signature.
func TestChainValidMatchesHMAC(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	randBytes := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	lengths := []int{0, 1, 31, 32, 55, 56, 63, 64, 65, 119, 120, 128, 200}
	for round := 0; round < 200; round++ {
		var key rootKey
		copy(key[:], randBytes(32))
		id := randBytes(lengths[rng.IntN(len(lengths))])
		cavs := make([]caveatView, rng.IntN(10))
		for i := range cavs {
			cavs[i].id = randBytes(lengths[rng.IntN(len(lengths))])
		}
		want := refChain(&key, id, cavs)
		if !chainValid(id, cavs, want, &key) {
			t.Fatalf("round %d: a signature made with crypto/hmac is refused", round)
		}
		bit := rng.IntN(8 * len(want))
		bad := append([]byte(nil), want...)
		bad[bit/8] ^= 1 << (bit % 8)
		if chainValid(id, cavs, bad, &key) {
			t.Fatalf("round %d: a signature with bit %d flipped is accepted", round, bit)
		}
		if chainValid(id, cavs, want[:31], &key) {
			t.Fatalf("round %d: a truncated signature is accepted", round)
		}
	}
}
