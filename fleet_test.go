package groupjoin

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-groupjoin/caddy-groupjoin/internal/testcaddy"
	"github.com/caddy-groupjoin/caddy-groupjoin/store/redistest"
	"github.com/caddy-groupjoin/caddy-groupjoin/tokens"
)

// A fleet sharing one invite store: three Caddy processes built from ./cmd/caddy, each
// with its own HTTP and admin port, sharing one real redis-server, in
// front of one real backend that counts what reaches it.

// fleetInstance is one Caddy process of the fleet.
type fleetInstance struct {
	proc  *testcaddy.Process
	url   string
	admin string
}

type fleet struct {
	redis     *redistest.Server
	backend   *backend
	instances []fleetInstance
}

func (f *fleet) urls() []string {
	out := make([]string, len(f.instances))
	for i, in := range f.instances {
		out[i] = in.url
	}
	return out
}

func startFleet(t *testing.T, n int) *fleet {
	t.Helper()
	testcaddy.SkipShort(t)
	f := &fleet{redis: redistest.StartServer(t), backend: newBackend(t)}
	f.instances = startCaddyFleet(t, n, f.backend.addr(), fmt.Sprintf(`store redis %s {
			timeout 500ms
			reservation_ttl 30s
		}`, f.redis.URL()))
	return f
}

// waitHTTP waits (bounded) until the site answers at all: the admin
// endpoint may answer before the HTTP server listens.
func waitHTTP(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := storeHTTP.Get(url + "/user/groups/join")
		if err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not answer: %v", url, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestFleetRedis(t *testing.T) {
	f := startFleet(t, 3)
	user := access(t, "alice")
	forwarded := 0
	in0, in1, in2 := f.instances[0], f.instances[1], f.instances[2]

	t.Run("single use raced across instances", func(t *testing.T) {
		tok, id := namedInvite(t, "g1")
		expectJoin(t, postJoin(in1.url, tok, user), 400, "invalid_token", descUnknown)
		registerInvite(t, in0.admin, id, "1")
		checkRace(t, raceJoins(f.urls(), 64, tok, user), 1, descUsedUp)
		forwarded++
		expectBackend(t, f.backend, forwarded)
		for _, in := range f.instances {
			if st := getInviteState(t, in.admin, id); st.Used != 1 || st.Reserved != 0 || st.Remaining != float64(0) {
				t.Fatalf("state via %s: %+v", in.admin, st)
			}
		}
	})

	t.Run("limit N raced across instances", func(t *testing.T) {
		tok, id := namedInvite(t, "g2")
		registerInvite(t, in2.admin, id, "7")
		checkRace(t, raceJoins(f.urls(), 64, tok, user), 7, descUsedUp)
		forwarded += 7
		expectBackend(t, f.backend, forwarded)
	})

	t.Run("backend failure gives the use back", func(t *testing.T) {
		tok, id := namedInvite(t, "g3")
		registerInvite(t, in0.admin, id, "1")
		f.backend.respond(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusBadGateway) })
		expectJoin(t, postJoin(in1.url, tok, user), 502, "bad_gateway", "")
		forwarded++
		f.backend.respond(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
		if st := getInviteState(t, in2.admin, id); st.Used != 0 || st.Reserved != 0 {
			t.Fatalf("state after 502: %+v", st)
		}
		expectJoin(t, postJoin(in2.url, tok, user), 201, "", "")
		forwarded++
		expectJoin(t, postJoin(in0.url, tok, user), 400, "invalid_token", descUsedUp)
		expectBackend(t, f.backend, forwarded)
	})

	t.Run("revocation is seen by every instance at once", func(t *testing.T) {
		tok, id := namedInvite(t, "g4")
		registerInvite(t, in1.admin, id, `"unlimited"`)
		for _, in := range f.instances {
			expectJoin(t, postJoin(in.url, tok, user), 201, "", "")
			forwarded++
		}
		if status, body := adminCall(t, in2.admin, http.MethodPost, "/group-join/invites/"+id+"/revoke", ""); status != 200 {
			t.Fatalf("revoke: %d %s", status, body)
		}
		for _, in := range f.instances {
			expectJoin(t, postJoin(in.url, tok, user), 400, "invalid_token", descRevoked)
			if st := getInviteState(t, in.admin, id); !st.Revoked || st.Used != 3 {
				t.Fatalf("state via %s: %+v", in.admin, st)
			}
		}
		expectBackend(t, f.backend, forwarded)
	})

	t.Run("Redis killed mid-run, then back", func(t *testing.T) {
		tok, id := namedInvite(t, "g5")
		registerInvite(t, in0.admin, id, `"unlimited"`)
		single, singleID := namedInvite(t, "g5")
		registerInvite(t, in0.admin, singleID, "1")

		// Joins keep coming from 6 clients across the fleet while Redis
		// dies; bounded in count and time.
		var (
			mu       sync.Mutex
			statuses = map[int]int{}
			bad      []string
			killed   atomic.Bool
			after    atomic.Int64 // answers after the kill
		)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 100; i++ {
					select {
					case <-stop:
						return
					default:
					}
					wasKilled := killed.Load()
					r := postJoin(f.instances[(w+i)%3].url, tok, user)
					mu.Lock()
					statuses[r.status]++
					if r.err != nil || (r.status != 201 && r.status != 503) ||
						(r.status == 503 && !strings.Contains(r.body, `"error":"service_unavailable"`)) ||
						(wasKilled && r.status != 503) {
						bad = append(bad, fmt.Sprintf("%d %s %v (after kill: %v)", r.status, r.body, r.err, wasKilled))
					}
					mu.Unlock()
					if wasKilled {
						after.Add(1)
					}
				}
			}()
		}
		// Let some joins through, then kill Redis.
		deadline := time.Now().Add(10 * time.Second)
		for len(f.backend.requests()) < forwarded+10 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		f.redis.Kill()
		killed.Store(true)
		for after.Load() < 30 && time.Now().Before(deadline.Add(10*time.Second)) {
			time.Sleep(5 * time.Millisecond)
		}
		close(stop)
		wg.Wait()
		t.Logf("answers while Redis died: %v", statuses)
		for _, b := range bad {
			t.Error(b)
		}
		if statuses[201] == 0 || statuses[503] == 0 || after.Load() < 30 {
			t.Fatalf("want joins before and 503s after the kill, got %v (%d after)", statuses, after.Load())
		}
		forwarded += statuses[201]
		expectBackend(t, f.backend, forwarded)

		// Down: every instance refuses, nothing reaches the backend, the
		// admin API says so too.
		for _, in := range f.instances {
			expectJoin(t, postJoin(in.url, single, user), 503, "service_unavailable", "")
			if status, body := adminCall(t, in.admin, http.MethodGet, "/group-join/invites/"+id, ""); status != 503 || !strings.Contains(body, `"error":"invite store unavailable`) || strings.Contains(body, "redis://") {
				t.Fatalf("admin while Redis is down: %d %s", status, body)
			}
			if !in.proc.Contains("store_unavailable") {
				t.Errorf("instance %s logged no store_unavailable line", in.admin)
			}
		}
		expectBackend(t, f.backend, forwarded)

		// Back on the same port, empty (no persistence in the test): the
		// invites are unknown until registered again, then work.
		f.redis.Restart()
		for _, in := range f.instances {
			r := postJoin(in.url, tok, user)
			for tries := 0; r.status == 503 && tries < 20; tries++ {
				// A pooled connection to the dead server fails once.
				time.Sleep(50 * time.Millisecond)
				r = postJoin(in.url, tok, user)
			}
			expectJoin(t, r, 400, "invalid_token", descUnknown)
		}
		registerInvite(t, in1.admin, singleID, "1")
		checkRace(t, raceJoins(f.urls(), 24, single, user), 1, descUsedUp)
		forwarded++
		expectBackend(t, f.backend, forwarded)
	})

	t.Run("stuck Redis fails closed within the timeout", func(t *testing.T) {
		tok, id := namedInvite(t, "g6")
		registerInvite(t, in2.admin, id, `"unlimited"`)
		f.redis.Freeze()
		results := raceJoins(f.urls(), 6, tok, user)
		f.redis.Thaw()
		for i, r := range results {
			if r.err != nil || r.status != 503 || !strings.Contains(r.body, `"error":"service_unavailable"`) {
				t.Errorf("join %d while Redis hangs: %d %s %v", i, r.status, r.body, r.err)
			}
		}
		expectBackend(t, f.backend, forwarded)
		// Scripts sent before the timeout may still run once Redis wakes
		// up: they leave reservations that nobody settles, which expire
		// after reservation_ttl. Nothing was admitted.
		if st := getInviteState(t, in0.admin, id); st.Used != 0 || st.Reserved > 6 {
			t.Fatalf("state after the hang: %+v", st)
		}
		var r joinResult
		for tries := 0; tries < 20; tries++ {
			if r = postJoin(in0.url, tok, user); r.status != 503 {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		expectJoin(t, r, 201, "", "")
		forwarded++
		expectBackend(t, f.backend, forwarded)
	})
}

// A group-level route on a fleet of three sharing one Redis through the
// global group_join option: a single-use groupJoinGroup invite raced
// across the instances admits exactly one join, and the backend sees the
// joining group and the parent it joins.
func TestFleetGroupRouteSingleUse(t *testing.T) {
	testcaddy.SkipShort(t)
	redis, b := redistest.StartServer(t), newBackend(t)
	instances := startFleetProcesses(t, 3, func(port, adminPort int) string {
		return fmt.Sprintf(`{
	admin 127.0.0.1:%[2]d
	auto_https off
	persist_config off
	http_port %[1]d
	group_join {
		key %[4]s
		store redis %[5]s {
			timeout 500ms
		}
	}
}
:%[1]d {
	group_join /user/groups/join
	group_join /groups/*/parents/join groupJoinGroup
	reverse_proxy %[3]s
}
`, port, adminPort, b.addr(), testSecret, redis.URL())
	})
	urls := make([]string, len(instances))
	for i, in := range instances {
		urls[i] = in.url
	}
	gjg, _ := tokens.InviteTypeByName("groupJoinGroup")
	id := tokens.NewTokenID()
	tok := mintT(t, testSecret, tokens.InviteIDOf(tokens.Persistence{Named: true}, gjg, "bob", "parent1", id), inHour())
	user := access(t, "alice")
	expectJoin(t, postJoinTo(urls[1], "/groups/child1/parents/join", tok, user), 400, "invalid_token", descUnknown)
	registerInvite(t, instances[0].admin, id, "1")
	checkRace(t, raceJoinsTo(urls, "/groups/child1/parents/join", 48, tok, user), 1, descUsedUp)
	got := b.requests()
	if len(got) != 1 || got[0].path != "/groups/child1/parents/join" ||
		got[0].header.Get("X-Join-Entity-Id") != "child1" || got[0].header.Get("X-Join-Target-Id") != "parent1" ||
		got[0].header.Get("X-Invite-Type") != "groupJoinGroup" {
		t.Fatalf("backend got %+v", got)
	}
	for _, in := range instances {
		if st := getInviteState(t, in.admin, id); st.Used != 1 || st.Reserved != 0 {
			t.Fatalf("state via %s: %+v", in.admin, st)
		}
	}
	// The same invite on the user route is of the wrong type there.
	expectJoin(t, postJoin(urls[2], tok, user), 400, "invalid_token", "not a group invite")
}
