package groupjoin

import (
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/caddy-groupjoin/caddy-groupjoin/tokens"
)

// tok is a made-up token number i.
func tok(i int) string { return "token " + strconv.Itoa(i) }

func TestDoorkeeperSecondSight(t *testing.T) {
	d := newDoorkeeper()
	if !d.firstSight(tok(1)) {
		t.Fatal("a token never seen was reported as seen")
	}
	for i := range 3 {
		if d.firstSight(tok(1)) {
			t.Fatalf("sight %d of a token was reported as the first", i+2)
		}
	}
	if !d.firstSight(tok(2)) {
		t.Fatal("another token was reported as seen")
	}
}

func TestDoorkeeperNilHasSeenAll(t *testing.T) {
	var d *doorkeeper
	if d.firstSight(tok(1)) {
		t.Fatal("a nil doorkeeper keeps a token from the caches")
	}
}

// seenAgain counts the tokens 0..n-1 the doorkeeper reports as seen.
func seenAgain(d *doorkeeper, from, n int) int {
	seen := 0
	for i := from; i < from+n; i++ {
		if !d.firstSight(tok(i)) {
			seen++
		}
	}
	return seen
}

// A set of tokens as large as a shared-link workload (sharedInvites,
// rotated) is recognised from its second round on.
func TestDoorkeeperRemembersAWindow(t *testing.T) {
	d := newDoorkeeper()
	for round := range 3 {
		if got, want := seenAgain(d, 0, sharedInvites), min(round, 1)*sharedInvites; got != want {
			t.Fatalf("round %d: %d of %d tokens seen again, want %d", round+1, got, sharedInvites, want)
		}
	}
}

// A stream of distinct tokens far larger than the window is never
// recognised when it comes round again, and the doorkeeper's tables never
// hold more than their bound.
func TestDoorkeeperForgetsAStream(t *testing.T) {
	d := newDoorkeeper()
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
	d := newDoorkeeper()
	d.firstSight("shared")
	next := 0
	for round := range 40 {
		seenAgain(d, next, doorWindow/2)
		next += doorWindow / 2
		if d.firstSight("shared") {
			t.Fatalf("round %d: a token seen once per %d others was forgotten", round+1, doorWindow/2)
		}
	}
}

// A token seen again after fewer than doorPerShard others is always
// recognised, however the others fall into shards.
func TestDoorkeeperWindowLowerBound(t *testing.T) {
	d := newDoorkeeper()
	d.firstSight(tok(-1))
	seenAgain(d, 0, doorPerShard-1)
	if d.firstSight(tok(-1)) {
		t.Fatalf("a token seen again after %d others was forgotten", doorPerShard-1)
	}
}

func TestDoorkeeperConcurrent(t *testing.T) {
	d := newDoorkeeper()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 5000 {
				d.firstSight(tok(g*5000 + i%500))
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

// Through the handler: invites that never come back leave the invite
// caches untouched, an invite that comes back is cached from its second
// sight and served by the cache from its third, and the answers are
// those of a handler without caches (TestTokenCachesAnswerLikeNoCache).
func TestInviteCacheAdmitsReturningInvites(t *testing.T) {
	f := newCacheFixture(t)
	alice := access(t, "alice")
	for range 50 {
		f.expect(t, f.joinInvite(t, "192.0.2.1", alice, invite(t, "g1")), http.StatusCreated, "", "")
		f.expect(t, f.joinInvite(t, "192.0.2.1", alice, invite(t, "g1", "consumer = usr-carol")), http.StatusForbidden, "forbidden", "")
		forged := mintT(t, "another secret", tokens.InviteID(tokens.Persistence{Named: true}, "bob", "g1", tokens.NewTokenID()))
		f.expect(t, f.joinInvite(t, "192.0.2.1", alice, forged), http.StatusBadRequest, "invalid_token", genericInviteDesc)
	}
	f.inviteStats(t, 0, 0, 0)
	expectCacheStats(t, "refused invite cache", f.h.invites.refused, 0, 0, 0)

	shared := invite(t, "g1", tokens.TimeCaveat(f.clk.t.Add(time.Hour)))
	for i, want := range []struct {
		entries      int
		hits, misses uint64
	}{{0, 0, 0}, {1, 0, 1}, {1, 1, 1}, {1, 2, 1}} {
		f.expect(t, f.joinInvite(t, "192.0.2.1", alice, shared), http.StatusCreated, "", "")
		e, h, m := f.h.invites.passed.stats()
		if e != want.entries || h != want.hits || m != want.misses {
			t.Fatalf("sight %d: %d entries, %d hits, %d misses; want %+v", i+1, e, h, m, want)
		}
	}
}

// seenOnce makes the fixture's invite doorkeeper remember invs as if
// each had been presented once already, so that the next presentation
// goes through the caches: for tests of what the caches do.
func (f *cacheFixture) seenOnce(invs ...string) {
	for _, inv := range invs {
		f.h.invites.door.firstSight(inv)
	}
}

// BenchmarkDoorkeeper is what the doorkeeper adds to a request: "seen"
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
		d := newDoorkeeper()
		for _, s := range invs {
			d.firstSight(s)
		}
		i := 0
		for b.Loop() {
			if d.firstSight(invs[i%len(invs)]) {
				b.Fatal("a shared invite was forgotten")
			}
			i++
		}
	})
	b.Run("new", func(b *testing.B) {
		d := newDoorkeeper()
		i := 0
		for b.Loop() {
			if !d.firstSight(fresh(i)) {
				b.Fatal("a new token was reported as seen")
			}
			i++
		}
	})
	b.Run("cacheKey", func(b *testing.B) {
		c := newTokenCaches(nil)
		now := time.Now()
		i := 0
		for b.Loop() {
			k := tokenKey(fresh(i))
			c.passed.get(&k, now)
			c.refused.get(&k, now)
			i++
		}
	})
}
