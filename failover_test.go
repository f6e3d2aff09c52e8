package groupjoin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-groupjoin/caddy-groupjoin/store"
	"github.com/caddy-groupjoin/caddy-groupjoin/store/redistest"
)

var bg = context.Background()

// Chaos tests of a fleet on Redis Sentinel and Redis Cluster: three Caddy
// processes (the built binary), real redis-server processes, and a
// backend that admits every join it receives after a delay, so that the
// primary can be killed while joins are in flight. What the backend
// received is what was admitted.

// haBackend counts the joins it admits, per invite token id.
type haBackend struct {
	srv   *httptest.Server
	delay time.Duration
	mu    sync.Mutex
	byID  map[string]int
	first chan struct{} // closed at the first join of a round
	once  *sync.Once
}

func newHABackend(t *testing.T, delay time.Duration) *haBackend {
	b := &haBackend{delay: delay, byID: map[string]int{}}
	b.arm()
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		b.byID[r.Header.Get("X-Invite-Token-Id")]++
		once, first := b.once, b.first
		b.mu.Unlock()
		once.Do(func() { close(first) })
		time.Sleep(b.delay)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(b.srv.Close)
	return b
}

// arm resets the first-join signal for the next round.
func (b *haBackend) arm() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.first, b.once = make(chan struct{}), new(sync.Once)
}

func (b *haBackend) admitted(id string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.byID[id]
}

// chaosOutcome is one round of a race through a failover.
type chaosOutcome struct {
	statuses map[string]int // final answers, "201", "400", ...
	retries  int            // 503s retried
	bad      []string       // answers that are neither 201, 400 invalid_token nor 503 service_unavailable
}

// raceThroughFailure races callers distinct users for tok across the
// fleet; failure runs concurrently (it kills something). A caller that
// gets 503 retries until it gets another answer or until the deadline.
func raceThroughFailure(t *testing.T, fleet []fleetInstance, tok string, callers int, first201 chan<- struct{}, deadline time.Time) chaosOutcome {
	var (
		mu  sync.Mutex
		out = chaosOutcome{statuses: map[string]int{}}
		wg  sync.WaitGroup
		one sync.Once
	)
	users := make([]string, callers)
	for i := range users {
		users[i] = access(t, fmt.Sprintf("chaos-%s-%d", tok[len(tok)-6:], i))
	}
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for attempt := 0; ; attempt++ {
				r := postJoin(fleet[(i+attempt)%len(fleet)].url, tok, users[i])
				mu.Lock()
				switch {
				case r.err == nil && r.status == http.StatusServiceUnavailable && strings.Contains(r.body, `"error":"service_unavailable"`):
					out.retries++
					if time.Now().Before(deadline) {
						mu.Unlock()
						time.Sleep(100 * time.Millisecond)
						continue
					}
					out.statuses["503 (gave up)"]++
				case r.err == nil && r.status == http.StatusCreated:
					out.statuses["201"]++
					one.Do(func() { close(first201) })
				case r.err == nil && r.status == http.StatusBadRequest && strings.Contains(r.body, `"error":"invalid_token"`):
					out.statuses["400"]++
				default:
					out.bad = append(out.bad, fmt.Sprintf("%d %s %v", r.status, r.body, r.err))
				}
				mu.Unlock()
				return
			}
		}()
	}
	wg.Wait()
	return out
}

// TestFailoverSentinel kills the primary of a Sentinel-managed replica set
// in the middle of a race for a limit-N invite, round after round, with
// the replicas' link cut so that writes are really lost: with
// min_replicas 1 the invite never admits more than N members; without it
// the outcome is logged (it may over-admit; that is what min_replicas is
// for).
func TestFailoverSentinel(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos test with Redis Sentinel failovers (skipped with -short)")
	}
	for _, min := range []int{1, 0} {
		t.Run(fmt.Sprintf("min_replicas=%d", min), func(t *testing.T) { sentinelChaos(t, min) })
	}
}

func sentinelChaos(t *testing.T, minReplicas int) {
	const (
		rounds  = 5
		limit   = 3
		callers = 12
	)
	rs := redistest.StartReplicaSet(t, 2, 3)
	backend := newHABackend(t, 300*time.Millisecond)
	durability := ""
	if minReplicas > 0 {
		durability = fmt.Sprintf("min_replicas %d 300ms", minReplicas)
	}
	fleet := startCaddyFleet(t, 3, backend.srv.Listener.Addr().String(), fmt.Sprintf(`store redis {
			sentinels %s
			master %s
			timeout 500ms
			reservation_ttl 1s
			%s
		}`, strings.Join(rs.SentinelAddrs(), " "), rs.Master, durability))
	status, body := adminCall(t, fleet[0].admin, http.MethodGet, "/group-join/stores", "")
	if want := `"name":"sentinel://` + rs.Master + `@` + strings.Join(rs.SentinelAddrs(), ",") + `/db=0,key_prefix=groupjoin:","type":"redis-sentinel"`; status != 200 || !strings.Contains(body, want) {
		t.Fatalf("GET /group-join/stores: %d %s, want %s", status, body, want)
	}
	// The test registers directly, waiting for both replicas.
	admin, err := store.NewRedis(store.RedisOptions{Sentinels: rs.SentinelAddrs(), MasterName: rs.Master, MinReplicas: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })

	over := 0
	for round := range rounds {
		primary := rs.SentinelPrimary()
		tok, id := namedInvite(t, "chaos")
		redistest.Eventually(t, "the registration to be replicated", func() bool {
			// An attempt whose WAIT fell short may have registered it.
			err := admin.Register(bg, id, limit, time.Hour)
			return err == nil || errors.Is(err, store.ErrExists)
		})
		// Even rounds cut the replicas off before the race (the reserves
		// are lost without min_replicas); odd rounds at the first join
		// that reaches the backend (the reserves are replicated, the
		// commits are lost).
		cutBefore := round%2 == 0
		if cutBefore {
			rs.CutReplication(primary)
		}
		backend.arm()
		first201 := make(chan struct{})
		killed := make(chan string)
		go func() {
			select {
			case <-backend.first:
			case <-time.After(time.Second):
			}
			if !cutBefore {
				rs.CutReplication(primary)
			}
			// Kill once a join came back admitted (its commit is on the
			// primary only), or after a second at most.
			select {
			case <-first201:
			case <-time.After(time.Second):
			}
			rs.ServerAt(primary).Kill()
			rs.RestoreReplication()
			killed <- rs.WaitFailover(primary)
		}()
		out := raceThroughFailure(t, fleet, tok, callers, first201, time.Now().Add(45*time.Second))
		newPrimary := <-killed
		// A second wave of new callers once the new primary serves and
		// the first wave's reservations have lapsed: this is where lost
		// writes would admit too many.
		time.Sleep(1200 * time.Millisecond)
		second := raceThroughFailure(t, fleet, tok, callers, make(chan struct{}), time.Now().Add(30*time.Second))
		for k, v := range second.statuses {
			out.statuses["after failover "+k] += v
			if k == "201" || k == "503 (gave up)" {
				out.statuses[k] += v
			}
		}
		out.retries += second.retries
		out.bad = append(out.bad, second.bad...)
		got := backend.admitted(id)
		t.Logf("round %d (cut %s): admitted %d of limit %d; answers %v, %d retried 503s; primary %s → %s",
			round, map[bool]string{true: "before the race", false: "at the first forwarded join"}[cutBefore],
			got, limit, out.statuses, out.retries, primary, newPrimary)
		for _, b := range out.bad {
			t.Errorf("round %d: unexpected answer %s", round, b)
		}
		if out.statuses["503 (gave up)"] > 0 {
			t.Errorf("round %d: service did not resume within the deadline: %v", round, out.statuses)
		}
		if got != out.statuses["201"] {
			t.Errorf("round %d: backend admitted %d, clients saw %d 201s", round, got, out.statuses["201"])
		}
		if got > limit {
			over++
			if minReplicas > 0 {
				t.Errorf("round %d: OVER-ADMISSION with min_replicas %d: %d members for a limit of %d", round, minReplicas, got, limit)
			} else {
				t.Logf("round %d: over-admission without min_replicas: %d members for a limit of %d", round, got, limit)
			}
		}
		// The killed primary comes back as a replica of the new one.
		host, port, _ := net.SplitHostPort(newPrimary)
		rs.ServerAt(primary).RestartArgs("--replicaof", host, port)
		rs.Follow(newPrimary)
		rs.WaitStable(newPrimary, 2)
	}
	t.Logf("min_replicas=%d: %d of %d rounds over-admitted", minReplicas, over, rounds)

	if minReplicas > 0 {
		t.Run("revocation during a failover", func(t *testing.T) { revokeThroughFailover(t, rs, fleet) })
	}
	for _, in := range fleet {
		if out := in.proc.Output(); strings.Contains(out, "redis: 20") || strings.Contains(out, "pool.go:") {
			t.Errorf("instance %s printed raw go-redis lines", in.admin)
		}
	}
}

// revokeThroughFailover revokes through one instance while the primary
// is being replaced; once the new primary serves, every instance refuses
// the invite.
func revokeThroughFailover(t *testing.T, rs *redistest.ReplicaSet, fleet []fleetInstance) {
	tok, id := namedInvite(t, "revoked")
	registerInvite(t, fleet[1].admin, id, `"unlimited"`)
	user := access(t, "revoke-check")
	expectJoin(t, postJoin(fleet[2].url, tok, user), 201, "", "")
	primary := rs.SentinelPrimary()
	rs.ServerAt(primary).Kill()
	deadline := time.Now().Add(45 * time.Second)
	for {
		status, body := adminCall(t, fleet[0].admin, http.MethodPost, "/group-join/invites/"+id+"/revoke", "")
		if status == http.StatusOK {
			break
		}
		if status != http.StatusServiceUnavailable || time.Now().After(deadline) {
			t.Fatalf("revoke during the failover: %d %s", status, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	newPrimary := rs.WaitFailover(primary)
	for _, in := range fleet {
		r := postJoin(in.url, tok, user)
		for r.status == http.StatusServiceUnavailable && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
			r = postJoin(in.url, tok, user)
		}
		expectJoin(t, r, 400, "invalid_token", descRevoked)
	}
	host, port, _ := net.SplitHostPort(newPrimary)
	rs.ServerAt(primary).RestartArgs("--replicaof", host, port)
	rs.Follow(newPrimary)
	rs.WaitStable(newPrimary, 2)
}

// TestFailoverCluster: a fleet on a 6-node Redis Cluster; a single-use
// invite raced 64 times admits one member; killing the primary that owns
// a limit-N invite's slot mid-race admits no more than N, and service
// resumes once the replica has taken over and the killed node is back.
func TestFailoverCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos test with a Redis Cluster failover (skipped with -short)")
	}
	c := redistest.StartCluster(t, 3)
	backend := newHABackend(t, 300*time.Millisecond)
	fleet := startCaddyFleet(t, 3, backend.srv.Listener.Addr().String(), fmt.Sprintf(`store redis {
			cluster %s
			timeout 500ms
			reservation_ttl 1s
			min_replicas 1 300ms
		}`, strings.Join(c.Addrs(), " ")))
	status, body := adminCall(t, fleet[0].admin, http.MethodGet, "/group-join/stores", "")
	if want := `"name":"cluster://` + strings.Join(c.Addrs(), ",") + `/key_prefix=groupjoin:","type":"redis-cluster"`; status != 200 || !strings.Contains(body, want) {
		t.Fatalf("GET /group-join/stores: %d %s, want %s", status, body, want)
	}
	urls := make([]string, len(fleet))
	for i, in := range fleet {
		urls[i] = in.url
	}
	user := access(t, "cluster-racer")

	tok, id := namedInvite(t, "single")
	registerInvite(t, fleet[0].admin, id, "1")
	checkRace(t, raceJoins(urls, 64, tok, user), 1, descUsedUp)
	if got := backend.admitted(id); got != 1 {
		t.Fatalf("backend admitted %d, want 1", got)
	}

	const limit = 3
	tok, id = namedInvite(t, "chaos")
	registerInvite(t, fleet[1].admin, id, fmt.Sprint(limit))
	owner := c.PrimaryFor(store.DefaultKeyPrefix + "invite:{" + id + "}")
	backend.arm()
	first201 := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		select {
		case <-first201:
		case <-time.After(2 * time.Second):
		}
		owner.Kill()
		time.Sleep(3 * time.Second) // the replica takes over (node timeout 1s)
		owner.Restart()             // and gets a replica again
	}()
	out := raceThroughFailure(t, fleet, tok, 12, first201, time.Now().Add(60*time.Second))
	// A second wave while the slot changes hands: 503 until the promoted
	// replica serves with a replica of its own, then refused.
	second := raceThroughFailure(t, fleet, tok, 12, make(chan struct{}), time.Now().Add(60*time.Second))
	<-done
	for k, v := range second.statuses {
		out.statuses["second wave "+k] += v
		if k == "201" || k == "503 (gave up)" {
			out.statuses[k] += v
		}
	}
	out.retries += second.retries
	out.bad = append(out.bad, second.bad...)
	got := backend.admitted(id)
	t.Logf("cluster: admitted %d of limit %d; answers %v, %d retried 503s", got, limit, out.statuses, out.retries)
	for _, b := range out.bad {
		t.Errorf("unexpected answer %s", b)
	}
	if got > limit {
		t.Errorf("OVER-ADMISSION: %d members for a limit of %d", got, limit)
	}
	if out.statuses["503 (gave up)"] > 0 {
		t.Errorf("service did not resume: %v", out.statuses)
	}
	c.WaitHealthy()
}

// TestFailoverStoreClose: closing HA stores leaves no goroutines behind.
func TestFailoverStoreClose(t *testing.T) {
	if testing.Short() {
		t.Skip("starts sentinels and a cluster (skipped with -short)")
	}
	rs := redistest.StartReplicaSet(t, 1, 1)
	c := redistest.StartCluster(t, 3)
	settled := leakCheck(t, 2)
	for range 3 {
		for _, o := range []store.RedisOptions{
			{Sentinels: rs.SentinelAddrs(), MasterName: rs.Master, MinReplicas: 1},
			{Cluster: c.Addrs(), MinReplicas: 1},
		} {
			s, err := store.NewRedis(o)
			if err != nil {
				t.Fatal(err)
			}
			id := fmt.Sprintf("close-%d", time.Now().UnixNano())
			if err := s.Register(bg, id, 1, time.Minute); err != nil {
				t.Fatal(err)
			}
			r, err := s.Reserve(bg, id)
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Commit(bg); err != nil {
				t.Fatal(err)
			}
			s.Close()
		}
	}
	settled()
}
