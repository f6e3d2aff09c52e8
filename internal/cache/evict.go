package cache

import "math/rand/v2"

// makeRoom frees space in a full cache map, in one walk over it: it drops
// every entry that expired reports true for (nil: none expire) and, when
// fewer than want were, live entries up to want, drawn at random. Freeing
// a batch rather than one entry keeps the walk off most insertions.
//
// The live entries are a uniform sample (reservoir sampling, then a
// shuffle): taking the first keys of a range instead would be biased, as
// Go starts a range at a random place but not at a uniformly random key.
func makeRoom[K comparable, V any](m map[K]V, want int, expired func(V) bool) (dropped int) {
	sample := make([]K, 0, want)
	live := 0
	for k, v := range m {
		if expired != nil && expired(v) {
			delete(m, k)
			dropped++
			continue
		}
		if len(sample) < want {
			sample = append(sample, k)
		} else if j := rand.IntN(live + 1); j < want {
			sample[j] = k
		}
		live++
	}
	if dropped >= want {
		return dropped
	}
	// The first keys walked sit in the first slots: shuffle before taking
	// fewer than all of them.
	rand.Shuffle(len(sample), func(i, j int) { sample[i], sample[j] = sample[j], sample[i] })
	for _, k := range sample[:min(len(sample), want-dropped)] {
		delete(m, k)
		dropped++
	}
	return dropped
}

// evictionBatch is how many entries a full map of n frees at once: a
// sixteenth, at least one.
func evictionBatch(n int) int { return max(1, n/16) }
