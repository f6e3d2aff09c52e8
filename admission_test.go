package groupjoin

import (
	"crypto/sha256"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/caddy-groupjoin/caddy-groupjoin/tokens"
)

// digest is the cache key of a made-up token number i.
func digest(i int) [sha256.Size]byte { return sha256.Sum256([]byte("token " + strconv.Itoa(i))) }

func TestDoorkeeperAdmitsOnSecondSight(t *testing.T) {
	d := newDoorkeeper()
	k := digest(1)
	if d.admit(&k) {
		t.Fatal("a token seen for the first time was admitted")
	}
	for i := range 3 {
		if !d.admit(&k) {
			t.Fatalf("sight %d of a token was not admitted", i+2)
		}
	}
	other := digest(2)
	if d.admit(&other) {
		t.Fatal("another token was admitted on its first sight")
	}
}

func TestDoorkeeperNilAdmitsAll(t *testing.T) {
	var d *doorkeeper
	k := digest(1)
	if !d.admit(&k) {
		t.Fatal("a nil doorkeeper refused a token")
	}
}

// A set of tokens as large as a shared-link workload (sharedInvites,
// rotated) is recognised on its second round: all of it is admitted.
func TestDoorkeeperRemembersAWindow(t *testing.T) {
	d := newDoorkeeper()
	for round := range 2 {
		admitted := 0
		for i := range sharedInvites {
			k := digest(i)
			if d.admit(&k) {
				admitted++
			}
		}
		if want := round * sharedInvites; admitted != want {
			t.Fatalf("round %d: %d of %d tokens admitted, want %d", round+1, admitted, sharedInvites, want)
		}
	}
}

// A stream of distinct tokens far larger than the window is never
// admitted when it comes round again, and the doorkeeper's tables never
// hold more than their bound.
func TestDoorkeeperForgetsAStream(t *testing.T) {
	d := newDoorkeeper()
	const n = 30000
	for round := range 3 {
		admitted := 0
		for i := range n {
			k := digest(i)
			if d.admit(&k) {
				admitted++
			}
		}
		if admitted != 0 {
			t.Fatalf("round %d: %d of %d tokens admitted, none seen within the window", round+1, admitted, n)
		}
	}
	for i := range d.shards {
		s := &d.shards[i]
		for g := range s.gens {
			used := 0
			for _, fp := range s.gens[g] {
				if fp != 0 {
					used++
				}
			}
			if used > doorPerShard {
				t.Fatalf("shard %d generation %d holds %d fingerprints, bound %d", i, g, used, doorPerShard)
			}
		}
	}
}

// A token seen again after fewer than doorPerShard others is always
// admitted, however the others fall into shards.
func TestDoorkeeperWindowLowerBound(t *testing.T) {
	d := newDoorkeeper()
	k := digest(-1)
	d.admit(&k)
	for i := range doorPerShard - 1 {
		o := digest(i)
		d.admit(&o)
	}
	if !d.admit(&k) {
		t.Fatalf("a token seen again after %d others was not admitted", doorPerShard-1)
	}
}

func TestDoorkeeperConcurrent(t *testing.T) {
	d := newDoorkeeper()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 5000 {
				k := digest(g*5000 + i%500)
				d.admit(&k)
			}
		})
	}
	wg.Wait()
	// Every goroutine's 500 tokens were seen ten times each.
	for i := range 500 {
		k := digest(i)
		if !d.admit(&k) {
			t.Fatalf("token %d, seen ten times, is not admitted", i)
		}
	}
}

// Through the handler: invites that never come back leave the invite
// caches empty, an invite that comes back is cached from its second
// sight and served by the cache from its third, and every answer is the
// one the handler gives without caches.
func TestInviteCacheAdmitsReturningInvites(t *testing.T) {
	f := newCacheFixture(t)
	alice := access(t, "alice")
	for range 50 {
		f.expect(t, f.joinInvite(t, "192.0.2.1", alice, invite(t, "g1")), http.StatusCreated, "")
		f.expect(t, f.joinInvite(t, "192.0.2.1", alice, invite(t, "g1", "consumer = usr-carol")), http.StatusForbidden, "")
		forged := mintT(t, "another secret", tokens.InviteID(tokens.Persistence{Named: true}, "bob", "g1", tokens.NewTokenID()))
		f.expect(t, f.joinInvite(t, "192.0.2.1", alice, forged), http.StatusBadRequest, genericInviteDesc)
	}
	f.inviteStats(t, 0, 0, 150)
	if e, _, _ := f.h.invites.refused.stats(); e != 0 {
		t.Fatalf("%d never-seen refused invites cached", e)
	}

	shared := invite(t, "g1", tokens.TimeCaveat(f.clk.t.Add(time.Hour)))
	for i, want := range []struct {
		entries      int
		hits, misses uint64
	}{{0, 0, 151}, {1, 0, 152}, {1, 1, 152}, {1, 2, 152}} {
		f.expect(t, f.joinInvite(t, "192.0.2.1", alice, shared), http.StatusCreated, "")
		e, h, m := f.h.invites.passed.stats()
		if e != want.entries || h != want.hits || m != want.misses {
			t.Fatalf("sight %d: %d entries, %d hits, %d misses; want %+v", i+1, e, h, m, want)
		}
	}
}

// seenOnce makes the fixture's invite doorkeeper remember invs as if
// each had been presented once already, so that the next presentation is
// cached: for tests of what the cache does with an entry.
func (f *cacheFixture) seenOnce(invs ...string) {
	for _, inv := range invs {
		k := tokenKey(inv)
		f.h.invites.door.admit(&k)
	}
}
