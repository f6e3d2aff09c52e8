package groupjoin

import (
	"crypto/sha256"
	"encoding/binary"
	"sync"
)

// doorkeeper is the admission policy of the invite caches: a token's
// result is cached only when the token comes back. Nearly every join
// brings an invite the edge has never seen and will not see again soon;
// caching each of them cost an insertion, an eviction and about a
// kilobyte of heap held until evicted, for a hit that never came. A
// shared invite link, a retrying client or a bot replaying the same junk
// comes back, and is cached from its second sight on.
//
// It remembers the fingerprints of the last doorWindow to 2×doorWindow
// distinct tokens it refused to admit, in two generations of fixed-size
// open-addressing tables per shard: when the current generation is full,
// the older one is cleared and becomes the current one. Memory is fixed
// (doorShards × 2 × doorSlots × 8 bytes = 128 KiB) whatever the traffic.
//
// A fingerprint is 64 bits of the token's SHA-256 digest. A false match
// (two tokens with the same fingerprint) only caches a token on its first
// sight, which is what happened before there was a doorkeeper: the cache
// itself is keyed by the whole digest, so answers never depend on it.
type doorkeeper struct {
	shards [doorShards]doorShard
}

const (
	doorShards = 16
	// doorWindow is how many distinct unadmitted tokens (at least) the
	// doorkeeper remembers: a token seen again within that many others is
	// admitted. As large as half the cache, so that a set of shared
	// invites the cache could hold is recognised; far below what a stream
	// of never-seen invites rotates through.
	doorWindow = tokenCacheSize / 2
	// doorPerShard fingerprints fill one generation of a shard; its table
	// has twice as many slots, so that probes stay short.
	doorPerShard = doorWindow / doorShards
	doorSlots    = 2 * doorPerShard
)

type doorShard struct {
	mu   sync.Mutex
	gens [2]doorTable
	cur  int // the generation being filled
	n    int // fingerprints in gens[cur]
}

func newDoorkeeper() *doorkeeper { return new(doorkeeper) }

// admit reports whether the token of digest k was seen (and not admitted)
// recently; if not, it remembers it and reports false. A nil doorkeeper
// admits everything.
func (d *doorkeeper) admit(k *[sha256.Size]byte) bool {
	if d == nil {
		return true
	}
	// The cache shards on k[0]; other bytes pick the shard, the slot
	// and the fingerprint, so that they are independent of one another.
	fp := binary.LittleEndian.Uint64(k[8:16]) | 1
	s := &d.shards[k[1]%doorShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gens[s.cur].find(fp) || s.gens[1-s.cur].find(fp) {
		return true
	}
	if s.n == doorPerShard {
		s.cur = 1 - s.cur
		clear(s.gens[s.cur][:])
		s.n = 0
	}
	s.gens[s.cur].insert(fp)
	s.n++
	return false
}

// doorTable is one generation of a shard: linear probing from the
// fingerprint's own bits.
type doorTable [doorSlots]uint64 // 0 is an empty slot

func (t *doorTable) find(fp uint64) bool {
	for i := fp >> 32; ; i++ {
		switch t[i%doorSlots] {
		case fp:
			return true
		case 0:
			return false
		}
	}
}

// insert adds fp, which is not in t; t is never full (at most
// doorPerShard of its doorSlots are used).
func (t *doorTable) insert(fp uint64) {
	for i := fp >> 32; ; i++ {
		if t[i%doorSlots] == 0 {
			t[i%doorSlots] = fp
			return
		}
	}
}
