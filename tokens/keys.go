package tokens

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
)

// A derived root key: go-macaroon (and libmacaroons, and Onedata) turn a
// secret of any length into the HMAC key HMAC-SHA256("macaroons-key-generator",
// secret). Deriving it once at provision saves one HMAC per verification.
type rootKey [32]byte

func deriveKey(secret []byte) *rootKey {
	h := hmac.New(sha256.New, []byte("macaroons-key-generator"))
	h.Write(secret)
	var k rootKey
	h.Sum(k[:0])
	return &k
}

// Keyring holds the root keys: a default key and keys per temporary-token
// generation. The key for a token is chosen from its identifier, never by
// trying every key. A Keyring is immutable once built and safe for
// concurrent use; a config reload builds a new one.
type Keyring struct {
	def    *rootKey
	gens   map[uint64]*rootKey
	minGen uint64
}

// NewKeyring builds a keyring. defaultSecret may be nil when only
// generation keys are wanted; at least one key is required. Secrets are
// never kept: only derived keys are.
func NewKeyring(defaultSecret []byte, generations map[uint64][]byte) (*Keyring, error) {
	if defaultSecret == nil && len(generations) == 0 {
		return nil, errors.New("at least one key is required")
	}
	k := &Keyring{gens: make(map[uint64]*rootKey, len(generations))}
	if defaultSecret != nil {
		if len(defaultSecret) == 0 {
			return nil, errors.New("default key is empty")
		}
		k.def = deriveKey(defaultSecret)
	}
	first := true
	for g, s := range generations {
		if len(s) == 0 {
			return nil, fmt.Errorf("key of generation %d is empty", g)
		}
		k.gens[g] = deriveKey(s)
		if first || g < k.minGen {
			k.minGen, first = g, false
		}
	}
	return k, nil
}

// keyFor picks the key of a token from its identifier (docs/contract.md,
// "Keys and rotation"):
// with no generation keys the default key verifies everything; otherwise a
// tmp-N token needs generation N's key, N below the lowest configured
// generation is revoked, and any other missing N has no key. Named and
// legacy tokens use the default key.
func (k *Keyring) keyFor(id *Identifier) (*rootKey, error) {
	if id.Legacy || id.Persistence.Named || len(k.gens) == 0 {
		if k.def == nil {
			return nil, &Error{Kind: KindNoKey, Detail: "no default key configured"}
		}
		return k.def, nil
	}
	g := id.Persistence.Generation
	if key, ok := k.gens[g]; ok {
		return key, nil
	}
	if g < k.minGen {
		return nil, &Error{Kind: KindRevoked, Detail: "token generation has been revoked"}
	}
	return nil, &Error{Kind: KindNoKey, Detail: "no key for this token generation"}
}

// Generations reports how many generation keys the keyring holds and the
// lowest one; for logs and the admin view.
func (k *Keyring) Generations() (count int, lowest uint64) { return len(k.gens), k.minGen }

// HasDefault reports whether a default key is configured.
func (k *Keyring) HasDefault() bool { return k.def != nil }
