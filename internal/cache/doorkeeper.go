package cache

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
)

// Doorkeeper is the admission policy of the invite caches: a token is
// looked up and cached only when it comes back. Nearly every join brings
// an invite the edge has never seen and will not see again soon; for each
// of them the caches cost a SHA-256 of the token, two lookups, an
// insertion, an eviction and about a kilobyte of heap held until evicted,
// for a hit that never came. A shared invite link, a retrying client or a
// bot replaying the same junk comes back, and is cached from its second
// sight on.
//
// It remembers 64-bit fingerprints of recently seen tokens (maphash with
// a per-Doorkeeper random seed, much cheaper than the SHA-256 the caches
// key on) in two generations of fixed-size open-addressing tables per
// shard: when the current generation is full, the older one is cleared
// and becomes the current one, so a token is remembered for at least
// doorPerShard and at most 2×doorPerShard new tokens of its shard. A
// token found in the older generation moves to the current one, so one
// that keeps coming back is never forgotten. Memory is fixed (doorShards
// × 2 × doorSlots × 8 bytes = 128 KiB) whatever the traffic.
//
// Answers never depend on it: a token it does not remember is verified
// from scratch, which is what the caches would have answered (they hold
// results of Authenticate, a function of the token and the keyring
// only); a fingerprint shared by two tokens only sends a token to the
// caches, keyed by the whole SHA-256, on its first sight.
type Doorkeeper struct {
	seed   maphash.Seed
	shards [doorShards]doorShard
}

const (
	doorShards = 16
	// doorWindow is about how many distinct new tokens the Doorkeeper
	// remembers (between doorWindow and twice that): as many as half the
	// cache holds, so that a set of shared invites the cache could hold is
	// recognised, and far below what a stream of never-seen invites
	// rotates through.
	doorWindow = TokenCacheSize / 2
	// doorPerShard fingerprints fill one generation of a shard; its table
	// has twice as many slots, so that probes stay short.
	doorPerShard = doorWindow / doorShards
	doorSlots    = 2 * doorPerShard
)

// doorShard is one shard. Writers hold mu; the current generation is also
// read without it, slot by slot (atomically): a read that races with a
// write can only miss a fingerprint being added or cleared, which sends
// a token past the caches once more, or see one that was there a moment
// ago, which sends it to the caches: either way the answer is the same.
type doorShard struct {
	mu   sync.Mutex
	gens [2]doorTable
	cur  atomic.Int32 // the generation being filled
	n    int          // fingerprints in gens[cur]
}

// doorTable is one generation of a shard: linear probing from the
// fingerprint's own bits.
type doorTable [doorSlots]atomic.Uint64 // 0 is an empty slot

func NewDoorkeeper() *Doorkeeper { return &Doorkeeper{seed: maphash.MakeSeed()} }

// FirstSight reports whether raw was not seen recently, and remembers it
// either way. A nil Doorkeeper has seen everything.
func (d *Doorkeeper) FirstSight(raw string) bool {
	if d == nil {
		return false
	}
	fp := maphash.String(d.seed, raw) | 1
	s := &d.shards[fp>>60%doorShards]
	if s.gens[s.cur.Load()].find(fp) {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.cur.Load()
	if s.gens[cur].find(fp) {
		return false // another request put it there meanwhile
	}
	seen := s.gens[1-cur].find(fp)
	// New, or found in the older generation: (re)written to the current
	// one, so that a token that keeps coming back stays.
	if s.n == doorPerShard {
		cur = 1 - cur
		s.gens[cur].clear()
		s.cur.Store(cur)
		s.n = 0
	}
	s.gens[cur].insert(fp)
	s.n++
	return !seen
}

func (t *doorTable) find(fp uint64) bool {
	for i := fp >> 20; ; i++ {
		switch t[i%doorSlots].Load() {
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
	for i := fp >> 20; ; i++ {
		if t[i%doorSlots].Load() == 0 {
			t[i%doorSlots].Store(fp)
			return
		}
	}
}

func (t *doorTable) clear() {
	for i := range t {
		t[i].Store(0)
	}
}
