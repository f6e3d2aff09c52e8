package store

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-groupjoin/caddy-groupjoin/store/redistest"
)

// TestSentinelStore: the store finds the primary through the sentinels,
// waits for replicas with min_replicas, and follows a failover.
func TestSentinelStore(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a replica set with sentinels and fails it over (skipped with -short)")
	}
	rs := redistest.StartReplicaSet(t, 2, 3)
	// A generous replica timeout: the test machine may be loaded.
	s := newRedis(t, RedisOptions{Sentinels: rs.SentinelAddrs(), MasterName: rs.Master, MinReplicas: 2,
		ReplicaTimeout: 3 * time.Second, Options: Options{ReservationTTL: 30 * time.Second}})
	must(t, s.Register(bg, "inv", 3, 0))
	r := reserve(t, s, "inv")
	must(t, r.Commit(bg))
	if inv := get(t, s, "inv"); inv.Used != 1 {
		t.Fatalf("Get = %+v", inv)
	}

	// With the replicas cut off, an admission-deciding write is refused
	// and a reserve gives its use back.
	primary := rs.Servers[0].Addr()
	rs.CutReplication(primary)
	_, err := s.Reserve(bg, "inv")
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, ErrNotReplicated) {
		t.Fatalf("Reserve without replicas = %v", err)
	}
	if inv := get(t, s, "inv"); inv.Reserved != 0 || inv.Used != 1 {
		t.Fatalf("the unreplicated reserve was not given back: %+v", inv)
	}
	err = s.Revoke(bg, "other")
	if !errors.Is(err, ErrNotReplicated) {
		t.Fatalf("Revoke without replicas = %v", err)
	}
	rs.RestoreReplication()
	rs.WaitReplicas(primary, 2)

	// Failover: the store follows the new primary without being rebuilt.
	rs.Servers[0].Kill()
	now := rs.WaitFailover(primary)
	s2 := newRedis(t, RedisOptions{Sentinels: rs.SentinelAddrs(), MasterName: rs.Master, MinReplicas: 1,
		ReplicaTimeout: 3 * time.Second, Options: Options{ReservationTTL: 30 * time.Second}})
	for _, st := range []*Redis{s, s2} {
		st.minReplicas = 1 // one replica is left
		var r Reservation
		redistest.Eventually(t, "the store to serve from "+now, func() bool {
			var err error
			r, err = st.Reserve(bg, "inv")
			return err == nil
		})
		must(t, r.Commit(bg))
	}
	if inv := get(t, s2, "inv"); inv.Used != 3 {
		t.Fatalf("after failover Get = %+v, want the replicated use plus two", inv)
	}
}

// TestClusterStore: a Redis Cluster store keeps an invite's keys in one
// slot, races correctly and follows the promotion of a replica.
func TestClusterStore(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 6-node Redis Cluster (skipped with -short)")
	}
	c := redistest.StartCluster(t, 3)
	for _, prefix := range []string{"", "{app}:", "x{y:"} {
		s := newRedis(t, RedisOptions{Cluster: c.Addrs(), KeyPrefix: prefix})
		for _, id := range []string{"a", "b}c", "{d}", "0123456789abcdefghijklmnopqrstuv"} {
			inv, res := s.Keys(id)
			ctx := context.Background()
			s1, err1 := redistest.Do(ctx, c.Addrs()[0], "CLUSTER", "KEYSLOT", inv)
			s2, err2 := redistest.Do(ctx, c.Addrs()[0], "CLUSTER", "KEYSLOT", res)
			if err1 != nil || err2 != nil || s1 != s2 {
				t.Fatalf("prefix %q id %q: slots %v %v (%v %v)", prefix, id, s1, s2, err1, err2)
			}
		}
	}

	for _, min := range []int{0, 1} {
		o := RedisOptions{Cluster: c.Addrs(), MinReplicas: min, Options: Options{ReservationTTL: 30 * time.Second}}
		if min > 0 {
			o.ReplicaTimeout = 3 * time.Second
		}
		s := newRedis(t, o)
		peers := []*Redis{s, newRedis(t, o), newRedis(t, o)}
		// Ids spread over the three primaries.
		for _, id := range []string{"one", "two", "three", "four", "five", "six"} {
			id := id + strings.Repeat("x", min)
			must(t, s.Register(bg, id, 1, 0))
			var wins atomic.Int32
			var wg sync.WaitGroup
			for i := range 64 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r, err := peers[i%3].Reserve(bg, id)
					if err == nil {
						wins.Add(1)
						if err := r.Commit(bg); err != nil {
							t.Error(err)
						}
					} else if !errors.Is(err, ErrUsedUp) {
						t.Error(err)
					}
				}()
			}
			wg.Wait()
			if wins.Load() != 1 {
				t.Fatalf("%s: %d winners, want 1", id, wins.Load())
			}
		}
	}

	// Kill the primary owning an invite: after its replica takes over,
	// the state is there and (once the node is back as a replica)
	// min_replicas can be met again.
	s := newRedis(t, RedisOptions{Cluster: c.Addrs(), MinReplicas: 1, ReplicaTimeout: 3 * time.Second,
		Options: Options{ReservationTTL: 30 * time.Second}})
	must(t, s.Register(bg, "kill", 2, 0))
	must(t, reserve(t, s, "kill").Commit(bg))
	inv, _ := s.Keys("kill")
	owner := c.PrimaryFor(inv)
	owner.Kill()
	redistest.Eventually(t, "a replica to take over "+owner.Addr(), func() bool {
		_, err := s.Get(bg, "kill")
		return err == nil
	})
	// The promoted replica has no replica of its own: fail closed.
	if _, err := s.Reserve(bg, "kill"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Reserve with no replica for the slot = %v", err)
	}
	owner.Restart() // rejoins as a replica (nodes.conf is kept)
	c.WaitHealthy()
	var r Reservation
	redistest.Eventually(t, "min_replicas to be met again", func() bool {
		var err error
		r, err = s.Reserve(bg, "kill")
		return err == nil
	})
	must(t, r.Commit(bg))
	if got := get(t, s, "kill"); got.Used != 2 {
		t.Fatalf("Get = %+v", got)
	}
	if _, err := s.Reserve(bg, "kill"); !errors.Is(err, ErrUsedUp) {
		t.Fatalf("Reserve past the limit = %v", err)
	}
}
