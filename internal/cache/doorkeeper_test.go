package cache

import (
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"
	"unsafe"
)

// tok is a made-up token number i.
func tok(i int) string { return "token " + strconv.Itoa(i) }

func TestDoorkeeperSecondSight(t *testing.T) {
	d := NewDoorkeeper()
	if !d.FirstSight(tok(1)) {
		t.Fatal("a token never seen was reported as seen")
	}
	for i := range 3 {
		if d.FirstSight(tok(1)) {
			t.Fatalf("sight %d of a token was reported as the first", i+2)
		}
	}
	if !d.FirstSight(tok(2)) {
		t.Fatal("another token was reported as seen")
	}
}

func TestDoorkeeperNilHasSeenAll(t *testing.T) {
	var d *Doorkeeper
	if d.FirstSight(tok(1)) {
		t.Fatal("a nil Doorkeeper keeps a token from the caches")
	}
}

// seenAgain counts the tokens 0..n-1 the Doorkeeper reports as seen.
func seenAgain(d *Doorkeeper, from, n int) int {
	seen := 0
	for i := from; i < from+n; i++ {
		if !d.FirstSight(tok(i)) {
			seen++
		}
	}
	return seen
}

// A set of tokens as large as a shared-link workload (sharedInvites,
// rotated) is recognised from its second round on.
func TestDoorkeeperRemembersAWindow(t *testing.T) {
	d := NewDoorkeeper()
	for round := range 3 {
		if got, want := seenAgain(d, 0, sharedInvites), min(round, 1)*sharedInvites; got != want {
			t.Fatalf("round %d: %d of %d tokens seen again, want %d", round+1, got, sharedInvites, want)
		}
	}
}

// A stream of distinct tokens far larger than the window is never
// recognised when it comes round again, and the Doorkeeper's tables never
// hold more than their bound.
func TestDoorkeeperForgetsAStream(t *testing.T) {
	d := NewDoorkeeper()
	const n = 30000
	for round := range 3 {
		if got := seenAgain(d, 0, n); got != 0 {
			t.Fatalf("round %d: %d of %d tokens seen again, none within the window", round+1, got, n)
		}
	}
	for i := range d.shards {
		s := &d.shards[i]
		for g := range s.gens {
			used := 0
			for j := range s.gens[g] {
				if s.gens[g][j].Load() != 0 {
					used++
				}
			}
			if used > doorPerShard {
				t.Fatalf("shard %d generation %d holds %d fingerprints, bound %d", i, g, used, doorPerShard)
			}
		}
	}
}

// A token that keeps coming back, once per half window (the others fall
// into shards at random: about doorPerShard/2 in its own), is never
// forgotten however many new tokens pass in all.
func TestDoorkeeperKeepsAReturningToken(t *testing.T) {
	d := NewDoorkeeper()
	d.FirstSight("shared")
	next := 0
	for round := range 40 {
		seenAgain(d, next, doorWindow/2)
		next += doorWindow / 2
		if d.FirstSight("shared") {
			t.Fatalf("round %d: a token seen once per %d others was forgotten", round+1, doorWindow/2)
		}
	}
}

// A token seen again after fewer than doorPerShard others is always
// recognised, however the others fall into shards.
func TestDoorkeeperWindowLowerBound(t *testing.T) {
	d := NewDoorkeeper()
	d.FirstSight(tok(-1))
	seenAgain(d, 0, doorPerShard-1)
	if d.FirstSight(tok(-1)) {
		t.Fatalf("a token seen again after %d others was forgotten", doorPerShard-1)
	}
}

func TestDoorkeeperConcurrent(t *testing.T) {
	d := NewDoorkeeper()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 5000 {
				d.FirstSight(tok(g*5000 + i%500))
			}
		})
	}
	wg.Wait()
	// Every goroutine's 500 tokens were seen ten times each.
	for g := range 4 {
		if got := seenAgain(d, g*5000, 500); got != 500 {
			t.Fatalf("goroutine %d: %d of its 500 tokens, seen ten times each, are remembered", g, got)
		}
	}
}

// BenchmarkDoorkeeper is what the Doorkeeper adds to a request: "seen"
// for a shared-link invite (sharedInvites rotated), "new" for a stream
// of never-seen ones; "cacheKey" is the SHA-256 and the two cache lookups
// it spares a new invite. New tokens are written into one buffer, hot in
// the CPU cache as a token just read from the network is.
func BenchmarkDoorkeeper(b *testing.B) {
	const size = 420 // a 6-caveat invite
	invs := make([]string, sharedInvites)
	for i := range invs {
		invs[i] = fmt.Sprintf("%0*d", size, i)
	}
	buf := make([]byte, size)
	fresh := func(i int) string {
		strconv.AppendInt(buf[:size-20], int64(1e18+i), 10)
		return unsafe.String(&buf[0], size)
	}
	b.Run("seen", func(b *testing.B) {
		d := NewDoorkeeper()
		for _, s := range invs {
			d.FirstSight(s)
		}
		i := 0
		for b.Loop() {
			if d.FirstSight(invs[i%len(invs)]) {
				b.Fatal("a shared invite was forgotten")
			}
			i++
		}
	})
	b.Run("new", func(b *testing.B) {
		d := NewDoorkeeper()
		i := 0
		for b.Loop() {
			if !d.FirstSight(fresh(i)) {
				b.Fatal("a new token was reported as seen")
			}
			i++
		}
	})
	b.Run("cacheKey", func(b *testing.B) {
		c := NewTokens(nil)
		now := time.Now()
		i := 0
		for b.Loop() {
			k := tokenKey(fresh(i))
			c.Passed.get(&k, now)
			c.Refused.get(&k, now)
			i++
		}
	})
}
