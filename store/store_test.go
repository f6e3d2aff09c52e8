package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-groupjoin/caddy-groupjoin/store/redistest"
)

// env is one store under test plus what the semantic suite needs to drive
// it. peer returns another handle on the same state, like a second Caddy
// instance (a second Redis client; for Memory the same map).
type env struct {
	s    Store
	peer func() Store
	// resTTL is the store's reservation TTL in cases that declare
	// shortTTL, and a short duration for registration TTLs in all.
	resTTL time.Duration
	// wait lets d pass on the store's clock.
	wait func(d time.Duration)
	// lapsedCounts: a reservation that expires without Commit or Release
	// counts as used (Redis) instead of giving its use back (Memory).
	lapsedCounts bool
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func memoryEnv(t *testing.T, _ bool) *env {
	clk := newFakeClock()
	m := NewMemory(Options{Now: clk.Now})
	return &env{s: m, peer: func() Store { return m }, resTTL: DefaultReservationTTL, wait: clk.Advance}
}

// redisShortTTL is the reservation TTL of Redis suite cases that wait for
// expiries (and the unit of time they wait); the other cases use
// redisLongTTL so that a slow, loaded test machine cannot expire their
// reservations.
const (
	redisShortTTL = 250 * time.Millisecond
	redisLongTTL  = 30 * time.Second
)

var prefixSeq atomic.Int64

func redisEnv(srv *redistest.Server) func(t *testing.T, short bool) *env {
	return func(t *testing.T, short bool) *env {
		prefix := fmt.Sprintf("test%d:", prefixSeq.Add(1))
		resTTL := redisLongTTL
		if short {
			resTTL = redisShortTTL
		}
		open := func() Store {
			r, err := NewRedis(RedisOptions{
				Options:   Options{ReservationTTL: resTTL},
				URL:       srv.URL(),
				KeyPrefix: prefix,
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { r.Close() })
			return r
		}
		return &env{s: open(), peer: open, resTTL: redisShortTTL, wait: time.Sleep, lapsedCounts: true}
	}
}

// TestSemantics runs the same suite against every implementation.
func TestSemantics(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		t.Parallel()
		runSuite(t, memoryEnv)
	})
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		srv := redistest.StartServer(t)
		runSuite(t, redisEnv(srv))
	})
}

var suite = []struct {
	name     string
	fn       func(t *testing.T, e *env)
	shortTTL bool // needs reservations that expire after e.resTTL
}{
	{name: "Unknown", fn: testUnknown},
	{name: "RegisterGet", fn: testRegisterGet},
	{name: "RegisterTwice", fn: testRegisterTwice},
	{name: "Invalid", fn: testInvalid},
	{name: "SingleUse", fn: testSingleUse},
	{name: "LimitN", fn: testLimitN},
	{name: "ReleaseGivesBack", fn: testReleaseGivesBack},
	{name: "CommitIdempotent", fn: testCommitIdempotent},
	{name: "Unlimited", fn: testUnlimited},
	{name: "RevokeAfterRegister", fn: testRevokeAfterRegister},
	{name: "RevokeBeforeRegister", fn: testRevokeBeforeRegister},
	{name: "RevokeInFlight", fn: testRevokeInFlight},
	{name: "RaceSingleUse", fn: testRaceSingleUse},
	{name: "RaceLimitN", fn: testRaceLimitN},
	{name: "RaceWithReleases", fn: testRaceWithReleases},
	{name: "ReservationExpiry", fn: testReservationExpiry, shortTTL: true},
	{name: "RegistrationTTL", fn: testRegistrationTTL},
	{name: "RevokeKeepsTTL", fn: testRevokeKeepsTTL},
	{name: "CommitAfterRecordExpired", fn: testCommitAfterRecordExpired},
}

func runSuite(t *testing.T, setup func(t *testing.T, shortTTL bool) *env) {
	for _, c := range suite {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.fn(t, setup(t, c.shortTTL))
		})
	}
}

var bg = context.Background()

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantErr(t *testing.T, got, want error) {
	t.Helper()
	if !errors.Is(got, want) {
		t.Fatalf("got error %v, want %v", got, want)
	}
}

func reserve(t *testing.T, s Store, id string) Reservation {
	t.Helper()
	r, err := s.Reserve(bg, id)
	if err != nil {
		t.Fatalf("Reserve(%q): %v", id, err)
	}
	return r
}

func get(t *testing.T, s Store, id string) Invite {
	t.Helper()
	inv, err := s.Get(bg, id)
	if err != nil {
		t.Fatalf("Get(%q): %v", id, err)
	}
	return inv
}

// eventually polls cond for up to 5s (a store on a fake clock passes at
// once).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func testUnknown(t *testing.T, e *env) {
	_, err := e.s.Reserve(bg, "nope")
	wantErr(t, err, ErrUnknown)
	_, err = e.s.Get(bg, "nope")
	wantErr(t, err, ErrUnknown)
	_, err = e.s.Reserve(bg, "")
	wantErr(t, err, ErrUnknown)
}

func testRegisterGet(t *testing.T, e *env) {
	must(t, e.s.Register(bg, "a", 3, 0))
	inv := get(t, e.s, "a")
	if inv.ID != "a" || inv.Limit != 3 || inv.Used != 0 || inv.Reserved != 0 || inv.Revoked {
		t.Fatalf("Get = %+v", inv)
	}
	if inv.Created.IsZero() || !inv.Expires.IsZero() {
		t.Fatalf("Created/Expires = %v/%v", inv.Created, inv.Expires)
	}
	r1 := reserve(t, e.s, "a")
	reserve(t, e.peer(), "a")
	if inv := get(t, e.s, "a"); inv.Reserved != 2 || inv.Used != 0 {
		t.Fatalf("after 2 reservations: %+v", inv)
	}
	must(t, r1.Commit(bg))
	if inv := get(t, e.s, "a"); inv.Reserved != 1 || inv.Used != 1 {
		t.Fatalf("after a commit: %+v", inv)
	}

	must(t, e.s.Register(bg, "b", 1, time.Hour))
	inv = get(t, e.s, "b")
	if inv.Expires.IsZero() {
		t.Fatal("Expires is zero for a registration with a ttl")
	}
	if d := inv.Expires.Sub(inv.Created); d < time.Hour-time.Second || d > time.Hour+time.Second {
		t.Fatalf("Expires - Created = %v, want ~1h", d)
	}
}

func testRegisterTwice(t *testing.T, e *env) {
	must(t, e.s.Register(bg, "x", 1, 0))
	wantErr(t, e.s.Register(bg, "x", 5, 0), ErrExists)
	wantErr(t, e.peer().Register(bg, "x", 1, time.Minute), ErrExists)
	if inv := get(t, e.s, "x"); inv.Limit != 1 || !inv.Expires.IsZero() {
		t.Fatalf("second Register changed the record: %+v", inv)
	}
}

func testInvalid(t *testing.T, e *env) {
	long := make([]byte, MaxIDLength+1)
	for i := range long {
		long[i] = 'a'
	}
	for _, c := range []struct {
		id    string
		limit int64
		ttl   time.Duration
	}{
		{"", 1, 0},
		{string(long), 1, 0},
		{"i", 0, 0},
		{"i", -2, 0},
		{"i", 1, -time.Second},
	} {
		wantErr(t, e.s.Register(bg, c.id, c.limit, c.ttl), ErrInvalid)
	}
	wantErr(t, e.s.Revoke(bg, ""), ErrInvalid)
	_, err := e.s.Get(bg, "i")
	wantErr(t, err, ErrUnknown)
}

func testSingleUse(t *testing.T, e *env) {
	must(t, e.s.Register(bg, "one", 1, 0))
	r := reserve(t, e.s, "one")
	_, err := e.peer().Reserve(bg, "one")
	wantErr(t, err, ErrUsedUp)
	must(t, r.Commit(bg))
	_, err = e.s.Reserve(bg, "one")
	wantErr(t, err, ErrUsedUp)
	if inv := get(t, e.s, "one"); inv.Used != 1 || inv.Reserved != 0 {
		t.Fatalf("Get = %+v", inv)
	}
}

func testLimitN(t *testing.T, e *env) {
	const n = 4
	must(t, e.s.Register(bg, "n", n, 0))
	for i := 0; i < n; i++ {
		must(t, reserve(t, e.s, "n").Commit(bg))
	}
	_, err := e.s.Reserve(bg, "n")
	wantErr(t, err, ErrUsedUp)
	if inv := get(t, e.s, "n"); inv.Used != n {
		t.Fatalf("Used = %d, want %d", inv.Used, n)
	}
}

func testReleaseGivesBack(t *testing.T, e *env) {
	must(t, e.s.Register(bg, "r", 1, 0))
	r := reserve(t, e.s, "r")
	must(t, r.Release(bg))
	must(t, r.Release(bg)) // idempotent
	r2 := reserve(t, e.peer(), "r")
	must(t, r2.Commit(bg))
	_, err := e.s.Reserve(bg, "r")
	wantErr(t, err, ErrUsedUp)
	if inv := get(t, e.s, "r"); inv.Used != 1 || inv.Reserved != 0 {
		t.Fatalf("Get = %+v", inv)
	}
	// Commit after Release is refused and counts nothing.
	must(t, e.s.Register(bg, "r2", 2, 0))
	r3 := reserve(t, e.s, "r2")
	must(t, r3.Release(bg))
	wantErr(t, r3.Commit(bg), ErrReleased)
	if inv := get(t, e.s, "r2"); inv.Used != 0 {
		t.Fatalf("Commit after Release counted: %+v", inv)
	}
}

func testCommitIdempotent(t *testing.T, e *env) {
	must(t, e.s.Register(bg, "c", 3, 0))
	r := reserve(t, e.s, "c")
	must(t, r.Commit(bg))
	must(t, r.Commit(bg))
	must(t, r.Release(bg)) // no-op after Commit
	if inv := get(t, e.s, "c"); inv.Used != 1 || inv.Reserved != 0 {
		t.Fatalf("Get = %+v", inv)
	}
}

func testUnlimited(t *testing.T, e *env) {
	must(t, e.s.Register(bg, "u", Unlimited, 0))
	var open []Reservation
	for i := 0; i < 50; i++ {
		open = append(open, reserve(t, e.s, "u"))
	}
	for _, r := range open {
		must(t, r.Commit(bg))
	}
	for i := 0; i < 50; i++ {
		must(t, reserve(t, e.peer(), "u").Commit(bg))
	}
	if inv := get(t, e.s, "u"); inv.Limit != Unlimited || inv.Used != 100 {
		t.Fatalf("Get = %+v", inv)
	}
}

func testRevokeAfterRegister(t *testing.T, e *env) {
	must(t, e.s.Register(bg, "v", 5, 0))
	must(t, reserve(t, e.s, "v").Commit(bg))
	must(t, e.peer().Revoke(bg, "v"))
	_, err := e.s.Reserve(bg, "v")
	wantErr(t, err, ErrRevoked)
	must(t, e.s.Revoke(bg, "v")) // idempotent
	inv := get(t, e.s, "v")
	if !inv.Revoked || inv.Limit != 5 || inv.Used != 1 {
		t.Fatalf("Get = %+v", inv)
	}
	wantErr(t, e.s.Register(bg, "v", 5, 0), ErrExists)
	_, err = e.s.Reserve(bg, "v")
	wantErr(t, err, ErrRevoked)
}

func testRevokeBeforeRegister(t *testing.T, e *env) {
	must(t, e.s.Revoke(bg, "leaked"))
	inv := get(t, e.s, "leaked")
	if !inv.Revoked || inv.Limit != 0 || inv.Used != 0 || !inv.Expires.IsZero() {
		t.Fatalf("Get = %+v", inv)
	}
	wantErr(t, e.s.Register(bg, "leaked", 1, 0), ErrExists)
	_, err := e.peer().Reserve(bg, "leaked")
	wantErr(t, err, ErrRevoked)
}

func testRevokeInFlight(t *testing.T, e *env) {
	must(t, e.s.Register(bg, "f", 2, 0))
	r := reserve(t, e.s, "f")
	must(t, e.s.Revoke(bg, "f"))
	must(t, r.Commit(bg)) // the backend already admitted the member
	if inv := get(t, e.s, "f"); inv.Used != 1 || !inv.Revoked {
		t.Fatalf("Get = %+v", inv)
	}
	_, err := e.s.Reserve(bg, "f")
	wantErr(t, err, ErrRevoked)
}

// race has goroutines (spread over several store handles) reserve and
// commit id once each, and returns how many got a reservation.
func race(t *testing.T, e *env, id string, goroutines int) int {
	t.Helper()
	stores := []Store{e.s, e.peer(), e.peer(), e.peer()}
	var ok, usedUp atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, goroutines)
	for i := 0; i < goroutines; i++ {
		wg.Add(1)
		go func(s Store) {
			defer wg.Done()
			<-start
			r, err := s.Reserve(bg, id)
			switch {
			case err == nil:
				ok.Add(1)
				if err := r.Commit(bg); err != nil {
					errs <- err
				}
			case errors.Is(err, ErrUsedUp):
				usedUp.Add(1)
			default:
				errs <- err
			}
		}(stores[i%len(stores)])
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("unexpected error: %v", err)
	}
	if ok.Load()+usedUp.Load() != int64(goroutines) {
		t.Fatalf("ok %d + used up %d != %d", ok.Load(), usedUp.Load(), goroutines)
	}
	return int(ok.Load())
}

func testRaceSingleUse(t *testing.T, e *env) {
	for round := 0; round < 5; round++ {
		id := "race" + strconv.Itoa(round)
		must(t, e.s.Register(bg, id, 1, 0))
		if n := race(t, e, id, 64); n != 1 {
			t.Fatalf("round %d: %d goroutines got the single use", round, n)
		}
		if inv := get(t, e.s, id); inv.Used != 1 || inv.Reserved != 0 {
			t.Fatalf("round %d: Get = %+v", round, inv)
		}
	}
}

func testRaceLimitN(t *testing.T, e *env) {
	const limit = 7
	must(t, e.s.Register(bg, "raceN", limit, 0))
	if n := race(t, e, "raceN", 64); n != limit {
		t.Fatalf("%d goroutines got a use, want %d", n, limit)
	}
	if inv := get(t, e.s, "raceN"); inv.Used != limit {
		t.Fatalf("Get = %+v", inv)
	}
}

// testRaceWithReleases: goroutines reserve and randomly release or commit
// until the invite is used up; exactly limit commits must have happened.
func testRaceWithReleases(t *testing.T, e *env) {
	const limit = 5
	must(t, e.s.Register(bg, "churn", limit, 0))
	stores := []Store{e.s, e.peer(), e.peer()}
	var commits, releases atomic.Int64
	var wg sync.WaitGroup
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; i < 32; i++ {
		wg.Add(1)
		go func(s Store, seed uint64) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, 1))
			for time.Now().Before(deadline) {
				r, err := s.Reserve(bg, "churn")
				if errors.Is(err, ErrUsedUp) {
					inv, err := s.Get(bg, "churn")
					if err != nil {
						t.Error(err)
						return
					}
					if inv.Used >= limit {
						return
					}
					continue // uses are in flight; they may come back
				}
				if err != nil {
					t.Error(err)
					return
				}
				if rng.IntN(3) == 0 {
					if err := r.Commit(bg); err != nil {
						t.Error(err)
						return
					}
					commits.Add(1)
				} else {
					if err := r.Release(bg); err != nil {
						t.Error(err)
						return
					}
					releases.Add(1)
				}
			}
			t.Error("deadline passed")
		}(stores[i%len(stores)], uint64(i))
	}
	wg.Wait()
	if commits.Load() != limit {
		t.Fatalf("%d commits (%d releases), want %d", commits.Load(), releases.Load(), limit)
	}
	if inv := get(t, e.s, "churn"); inv.Used != limit || inv.Reserved != 0 {
		t.Fatalf("Get = %+v", inv)
	}
}

func testReservationExpiry(t *testing.T, e *env) {
	if e.lapsedCounts {
		testReservationLapse(t, e)
		return
	}
	must(t, e.s.Register(bg, "exp", 1, 0))
	r1 := reserve(t, e.s, "exp")
	_, err := e.s.Reserve(bg, "exp")
	wantErr(t, err, ErrUsedUp)
	e.wait(e.resTTL)
	var r2 Reservation
	eventually(t, "the expired reservation to free the use", func() bool {
		r, err := e.peer().Reserve(bg, "exp")
		if errors.Is(err, ErrUsedUp) {
			return false
		}
		if err != nil {
			t.Fatal(err)
		}
		r2 = r
		return true
	})
	// The request behind r1 finally completes: its use still counts.
	wantErr(t, r1.Commit(bg), ErrReservationExpired)
	wantErr(t, r1.Commit(bg), ErrReservationExpired) // same answer, counted once
	if inv := get(t, e.s, "exp"); inv.Used != 1 || inv.Reserved != 1 {
		t.Fatalf("Get = %+v", inv)
	}
	must(t, r2.Release(bg))
	_, err = e.s.Reserve(bg, "exp")
	wantErr(t, err, ErrUsedUp)

	// Release after expiry is a harmless no-op.
	must(t, e.s.Register(bg, "exp2", 1, 0))
	r3 := reserve(t, e.s, "exp2")
	e.wait(e.resTTL)
	eventually(t, "reservation expiry", func() bool { return get(t, e.s, "exp2").Reserved == 0 })
	must(t, r3.Release(bg))
	must(t, reserve(t, e.s, "exp2").Commit(bg))
	if inv := get(t, e.s, "exp2"); inv.Used != 1 {
		t.Fatalf("Get = %+v", inv)
	}
}

func testRegistrationTTL(t *testing.T, e *env) {
	ttl := e.resTTL
	must(t, e.s.Register(bg, "ttl", 1, ttl))
	if inv := get(t, e.s, "ttl"); inv.Expires.IsZero() {
		t.Fatalf("Get = %+v", inv)
	}
	e.wait(ttl)
	eventually(t, "the registration to expire", func() bool {
		_, err := e.s.Get(bg, "ttl")
		if err != nil && !errors.Is(err, ErrUnknown) {
			t.Fatal(err)
		}
		return err != nil
	})
	_, err := e.peer().Reserve(bg, "ttl")
	wantErr(t, err, ErrUnknown)
	// An expired record is gone: the id can be registered anew.
	must(t, e.s.Register(bg, "ttl", 2, 0))
	if inv := get(t, e.s, "ttl"); inv.Limit != 2 || inv.Used != 0 {
		t.Fatalf("Get = %+v", inv)
	}
}

func testRevokeKeepsTTL(t *testing.T, e *env) {
	must(t, e.s.Register(bg, "rk", 1, e.resTTL))
	must(t, e.s.Revoke(bg, "rk"))
	inv := get(t, e.s, "rk")
	if !inv.Revoked || inv.Expires.IsZero() {
		t.Fatalf("Get = %+v", inv)
	}
	e.wait(e.resTTL)
	eventually(t, "the revoked registration to expire", func() bool {
		_, err := e.s.Get(bg, "rk")
		return errors.Is(err, ErrUnknown)
	})
}

func testCommitAfterRecordExpired(t *testing.T, e *env) {
	must(t, e.s.Register(bg, "gone", 1, e.resTTL/4))
	r := reserve(t, e.s, "gone")
	e.wait(e.resTTL / 4)
	eventually(t, "the registration to expire", func() bool {
		_, err := e.s.Get(bg, "gone")
		return errors.Is(err, ErrUnknown)
	})
	wantErr(t, r.Commit(bg), ErrUnknown)
	_, err := e.s.Get(bg, "gone")
	wantErr(t, err, ErrUnknown) // Commit did not resurrect the record
}

// testReservationLapse: in a store where a lapsed reservation counts as
// used, its use never comes back, and a late Commit does not count twice.
func testReservationLapse(t *testing.T, e *env) {
	must(t, e.s.Register(bg, "exp", 2, 0))
	r1 := reserve(t, e.s, "exp")
	e.wait(e.resTTL)
	eventually(t, "the reservation to lapse", func() bool { return get(t, e.s, "exp").Reserved == 0 })
	if inv := get(t, e.s, "exp"); inv.Used != 1 {
		t.Fatalf("after the lapse Get = %+v, want Used 1", inv)
	}
	r2 := reserve(t, e.peer(), "exp") // folds the lapsed one into used
	_, err := e.s.Reserve(bg, "exp")
	wantErr(t, err, ErrUsedUp)
	// The request behind r1 finally completes: counted once, already.
	wantErr(t, r1.Commit(bg), ErrReservationExpired)
	wantErr(t, r1.Commit(bg), ErrReservationExpired)
	if inv := get(t, e.s, "exp"); inv.Used != 1 || inv.Reserved != 1 {
		t.Fatalf("Get = %+v", inv)
	}
	must(t, r2.Release(bg))
	must(t, reserve(t, e.s, "exp").Commit(bg))
	if inv := get(t, e.s, "exp"); inv.Used != 2 {
		t.Fatalf("Get = %+v", inv)
	}

	// A Commit after the lapse, before any Reserve folded it: counted once.
	must(t, e.s.Register(bg, "exp2", 1, 0))
	r3 := reserve(t, e.s, "exp2")
	e.wait(e.resTTL)
	eventually(t, "the reservation to lapse", func() bool { return get(t, e.s, "exp2").Reserved == 0 })
	wantErr(t, r3.Commit(bg), ErrReservationExpired)
	if inv := get(t, e.s, "exp2"); inv.Used != 1 {
		t.Fatalf("Get = %+v", inv)
	}

	// Release after the lapse does not give the use back.
	must(t, e.s.Register(bg, "exp3", 1, 0))
	r4 := reserve(t, e.s, "exp3")
	e.wait(e.resTTL)
	eventually(t, "the reservation to lapse", func() bool { return get(t, e.s, "exp3").Reserved == 0 })
	must(t, r4.Release(bg))
	_, err = e.s.Reserve(bg, "exp3")
	wantErr(t, err, ErrUsedUp)
}
