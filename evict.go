package groupjoin

import "math/rand/v2"

// makeRoom frees space in a full cache map: it drops every entry that
// expired reports true for (nil: none expire) and then, when fewer than
// want were dropped, live entries at random until at least one is gone and,
// on average, want are. Freeing a batch rather than one entry keeps the
// walk over the map off most insertions.
//
// Live entries are drawn with equal chances, each with probability
// (want-dropped)/len(m) per walk. Taking the first keys of a range instead
// would be biased: Go starts a range at a random place, but not at a
// uniformly random key.
func makeRoom[K comparable, V any](m map[K]V, want int, expired func(V) bool) (dropped int) {
	if expired != nil {
		for k, v := range m {
			if expired(v) {
				delete(m, k)
				dropped++
			}
		}
	}
	for dropped < want && len(m) > 0 {
		n, k := len(m), want-dropped
		before := dropped
		for key := range m {
			if rand.IntN(n) < k {
				delete(m, key)
				dropped++
			}
		}
		if dropped > before {
			break
		}
	}
	return dropped
}

// evictionBatch is how many entries a full map of n frees at once: a
// sixteenth, at least one.
func evictionBatch(n int) int { return max(1, n/16) }
