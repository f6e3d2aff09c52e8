package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-groupjoin/caddy-groupjoin/store/redistest"
)

func init() {
	// go-redis logs failed dials to stderr; the fault tests cause many.
	redis.SetLogger(quietLogger{})
}

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

func newRedis(t testing.TB, opts RedisOptions) *Redis {
	t.Helper()
	r, err := NewRedis(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func rawClient(t testing.TB, addr string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialerRetries: 1})
	t.Cleanup(func() { c.Close() })
	return c
}

// TestRedisFleetRace simulates several Caddy instances (independent
// clients, each with its own pool) racing for single-use invites.
func TestRedisFleetRace(t *testing.T) {
	t.Parallel()
	srv := redistest.StartServer(t)
	var fleet []*Redis
	for i := 0; i < 4; i++ {
		fleet = append(fleet, newRedis(t, RedisOptions{URL: srv.URL(), KeyPrefix: "fleet:"}))
	}
	for round := 0; round < 10; round++ {
		id := fmt.Sprintf("inv%d", round)
		must(t, fleet[round%len(fleet)].Register(bg, id, 1, 0))
		var mu sync.Mutex
		var winners []int
		var wg sync.WaitGroup
		start := make(chan struct{})
		for g := 0; g < 64; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				<-start
				r, err := fleet[g%len(fleet)].Reserve(bg, id)
				if errors.Is(err, ErrUsedUp) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				if err := r.Commit(bg); err != nil {
					t.Error(err)
				}
				mu.Lock()
				winners = append(winners, g)
				mu.Unlock()
			}(g)
		}
		close(start)
		wg.Wait()
		if len(winners) != 1 {
			t.Fatalf("round %d: winners %v, want exactly one", round, winners)
		}
		if inv := get(t, fleet[0], id); inv.Used != 1 {
			t.Fatalf("round %d: Get = %+v", round, inv)
		}
	}
}

// TestRedisKillRestart: a dead Redis fails fast with ErrUnavailable; the
// same store works again once Redis is back on the same port.
func TestRedisKillRestart(t *testing.T) {
	t.Parallel()
	srv := redistest.StartServer(t)
	const timeout = 300 * time.Millisecond
	s := newRedis(t, RedisOptions{URL: srv.URL(), DialTimeout: timeout, ReadTimeout: timeout, WriteTimeout: timeout})
	must(t, s.Ping(bg))
	must(t, s.Register(bg, "k", 5, 0))
	held := reserve(t, s, "k")

	srv.Kill()
	for i := 0; i < 3; i++ { // stale pooled connections, then refused dials
		start := time.Now()
		_, err := s.Reserve(bg, "k")
		wantErr(t, err, ErrUnavailable)
		if d := time.Since(start); d > 3*timeout {
			t.Fatalf("Reserve took %v with Redis down", d)
		}
	}
	wantErr(t, s.Ping(bg), ErrUnavailable)
	wantErr(t, held.Commit(bg), ErrUnavailable)
	wantErr(t, s.Register(bg, "k2", 1, 0), ErrUnavailable)
	wantErr(t, s.Revoke(bg, "k2"), ErrUnavailable)
	_, err := s.Get(bg, "k")
	wantErr(t, err, ErrUnavailable)

	srv.Restart() // empty: no persistence; the data is gone
	eventually(t, "the store to reconnect", func() bool { return s.Ping(bg) == nil })
	_, err = s.Reserve(bg, "k")
	wantErr(t, err, ErrUnknown) // the data went with the old process; scripts reload by EVAL
	must(t, s.Register(bg, "k", 1, 0))
	must(t, reserve(t, s, "k").Commit(bg))
	_, err = s.Reserve(bg, "k")
	wantErr(t, err, ErrUsedUp)
	// The reservation taken before the crash went with the data; its
	// Commit finds nothing to move and counts nothing.
	must(t, held.Commit(bg))
	if inv := get(t, s, "k"); inv.Used != 1 {
		t.Fatalf("Get = %+v", inv)
	}
}

// TestRedisFrozen: a hung Redis (accepts nothing, answers nothing) fails
// requests within the read timeout.
func TestRedisFrozen(t *testing.T) {
	t.Parallel()
	srv := redistest.StartServer(t)
	const timeout = 300 * time.Millisecond
	s := newRedis(t, RedisOptions{URL: srv.URL(), DialTimeout: timeout, ReadTimeout: timeout, WriteTimeout: timeout})
	must(t, s.Register(bg, "z", 1, 0))

	srv.Freeze()
	start := time.Now()
	_, err := s.Reserve(bg, "z")
	d := time.Since(start)
	srv.Thaw()
	wantErr(t, err, ErrUnavailable)
	if d > 3*timeout {
		t.Fatalf("Reserve took %v against a frozen Redis", d)
	}
	// A caller's shorter deadline wins too.
	srv.Freeze()
	ctx, cancel := context.WithTimeout(bg, 50*time.Millisecond)
	start = time.Now()
	_, err = s.Reserve(ctx, "z")
	d = time.Since(start)
	cancel()
	srv.Thaw()
	wantErr(t, err, ErrUnavailable)
	if d > timeout {
		t.Fatalf("Reserve took %v with a 50ms context deadline", d)
	}

	// The reservations the frozen server eventually executed were never
	// handed out; they hold the single use until they expire (1m) —
	// fail closed. Nothing is admitted twice.
	eventually(t, "Redis to answer again", func() bool { return s.Ping(bg) == nil })
	_, err = s.Reserve(bg, "z")
	if err != nil && !errors.Is(err, ErrUsedUp) {
		t.Fatal(err)
	}
}

func TestRedisNotUpAtConstruction(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	s := newRedis(t, RedisOptions{URL: "redis://:hunter2secret@" + addr + "/0"})
	start := time.Now()
	err = s.Ping(bg)
	wantErr(t, err, ErrUnavailable)
	if strings.Contains(err.Error(), "hunter2secret") {
		t.Fatalf("error leaks the password: %v", err)
	}
	_, err = s.Reserve(bg, "x")
	wantErr(t, err, ErrUnavailable)
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("took %v to fail", d)
	}
}

func TestRedisURLs(t *testing.T) {
	t.Parallel()
	for _, u := range []string{
		"",
		"http://127.0.0.1:6379",
		"redis://:hunter2secret@127.0.0.1:port/0",
		"redis://:hunter2secret@[::1/0",
		"redis://:hunter2secret@127.0.0.1:6379/notadb",
		"redis://:hunter2secret@127.0.0.1:6379/0?dial_timeout=soon",
	} {
		_, err := NewRedis(RedisOptions{URL: u})
		if err == nil {
			t.Errorf("NewRedis(%q) succeeded", u)
			continue
		}
		if strings.Contains(err.Error(), "hunter2secret") {
			t.Errorf("NewRedis(%q) error leaks the password: %v", u, err)
		}
	}

	s, err := NewRedis(RedisOptions{URL: "redis://:fromurl@example.invalid:6380/3?dial_timeout=3s"})
	if err != nil {
		t.Fatal(err)
	}
	o := s.single.Options()
	if o.DialTimeout != 3*time.Second || o.ReadTimeout != DefaultRedisTimeout || o.WriteTimeout != DefaultRedisTimeout {
		t.Errorf("timeouts %v/%v/%v", o.DialTimeout, o.ReadTimeout, o.WriteTimeout)
	}
	if o.Password != "fromurl" || o.DB != 3 || o.Addr != "example.invalid:6380" || o.TLSConfig != nil || o.MaxRetries != 0 {
		t.Errorf("options %+v", o)
	}
	s.Close()

	s, err = NewRedis(RedisOptions{URL: "rediss://:fromurl@cache.example:6380", Password: "override",
		ReadTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	o = s.single.Options()
	if o.Password != "override" || o.TLSConfig == nil || o.TLSConfig.ServerName != "cache.example" || o.ReadTimeout != 200*time.Millisecond {
		t.Errorf("options %+v", o)
	}
	s.Close()
}

func TestRedisPassword(t *testing.T) {
	t.Parallel()
	srv := redistest.StartServer(t)
	raw := rawClient(t, srv.Addr())
	must(t, raw.ConfigSet(bg, "requirepass", "s3cr3t-pass").Err())

	good := newRedis(t, RedisOptions{URL: "redis://:wrong@" + srv.Addr(), Password: "s3cr3t-pass"})
	must(t, good.Ping(bg))
	must(t, good.Register(bg, "p", 1, 0))

	bad := newRedis(t, RedisOptions{URL: "redis://:not-the-s3cr3t@" + srv.Addr()})
	_, err := bad.Reserve(bg, "p")
	wantErr(t, err, ErrUnavailable)
	if strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("error leaks the password: %v", err)
	}
}

// TestRedisKeySchema checks the documented keys and that a backend can
// manage invites by writing them directly.
func TestRedisKeySchema(t *testing.T) {
	t.Parallel()
	srv := redistest.StartServer(t)
	raw := rawClient(t, srv.Addr())
	s := newRedis(t, RedisOptions{URL: srv.URL()})

	inv, res := s.Keys("tok1")
	if inv != "groupjoin:invite:{tok1}" || res != "groupjoin:invite:{tok1}:res" {
		t.Fatalf("keys %q %q", inv, res)
	}
	for _, id := range []string{"tok1", "we}ird{id", "{x}"} {
		a, b := s.Keys(id)
		if hashTag(a) != hashTag(b) {
			t.Errorf("id %q: keys %q and %q hash to different slots", id, a, b)
		}
	}

	// Register writes the documented fields.
	must(t, s.Register(bg, "tok1", 3, time.Hour))
	r := reserve(t, s, "tok1")
	h, err := raw.HGetAll(bg, inv).Result()
	must(t, err)
	if h["limit"] != "3" || h["used"] != "0" || h["revoked"] != "0" || h["created"] == "" {
		t.Fatalf("hash %v", h)
	}
	if ttl := raw.PTTL(bg, inv).Val(); ttl <= 0 || ttl > time.Hour {
		t.Fatalf("PTTL %v", ttl)
	}
	if n := raw.ZCard(bg, res).Val(); n != 1 {
		t.Fatalf("ZCARD %d", n)
	}
	must(t, r.Commit(bg))
	if raw.HGet(bg, inv, "used").Val() != "1" || raw.ZCard(bg, res).Val() != 0 {
		t.Fatal("commit did not move the use from the zset to the hash")
	}

	// A backend registers by hand.
	must(t, raw.HSetNX(bg, "groupjoin:invite:{hand}", "limit", 1).Err())
	must(t, reserve(t, s, "hand").Commit(bg))
	_, err = s.Reserve(bg, "hand")
	wantErr(t, err, ErrUsedUp)
	if inv := get(t, s, "hand"); inv.Limit != 1 || inv.Used != 1 || !inv.Created.IsZero() || !inv.Expires.IsZero() {
		t.Fatalf("Get = %+v", inv)
	}

	// ... with the documented atomic one-liner.
	const oneLiner = `if redis.call('HSETNX',KEYS[1],'limit',ARGV[1])==0 then return 0 end
  if tonumber(ARGV[2])>0 then redis.call('PEXPIRE',KEYS[1],ARGV[2]) end
  redis.call('DEL',KEYS[2]) return 1`
	k1, k2 := "groupjoin:invite:{lua}", "groupjoin:invite:{lua}:res"
	if n := raw.Eval(bg, oneLiner, []string{k1, k2}, 2, 604800000).Val(); n != int64(1) {
		t.Fatalf("one-liner answered %v", n)
	}
	if n := raw.Eval(bg, oneLiner, []string{k1, k2}, 9, 0).Val(); n != int64(0) {
		t.Fatalf("one-liner on an existing id answered %v", n)
	}
	if inv := get(t, s, "lua"); inv.Limit != 2 || inv.Expires.IsZero() {
		t.Fatalf("Get = %+v", inv)
	}

	// Unlimited by hand.
	must(t, raw.HSetNX(bg, "groupjoin:invite:{many}", "limit", -1).Err())
	for i := 0; i < 3; i++ {
		must(t, reserve(t, s, "many").Commit(bg))
	}
	// Revocation by hand, of a registered and of an unknown id.
	must(t, raw.HSet(bg, "groupjoin:invite:{many}", "revoked", 1).Err())
	_, err = s.Reserve(bg, "many")
	wantErr(t, err, ErrRevoked)
	must(t, raw.HSet(bg, "groupjoin:invite:{never}", "revoked", 1).Err())
	_, err = s.Reserve(bg, "never")
	wantErr(t, err, ErrRevoked)
	wantErr(t, s.Register(bg, "never", 1, 0), ErrExists)

	// Records without a usable limit admit nobody.
	for id, limit := range map[string]string{"nolimit": "", "zero": "0", "neg": "-5", "junk": "many"} {
		key := "groupjoin:invite:{" + id + "}"
		if limit == "" {
			must(t, raw.HSet(bg, key, "used", 0).Err())
		} else {
			must(t, raw.HSet(bg, key, "limit", limit).Err())
		}
		_, err = s.Reserve(bg, id)
		wantErr(t, err, ErrUsedUp)
	}

	// Revoke through the store writes the documented field.
	must(t, s.Revoke(bg, "tok1"))
	if raw.HGet(bg, inv, "revoked").Val() != "1" || raw.HGet(bg, inv, "revoked_at").Val() == "" {
		t.Fatalf("hash after Revoke: %v", raw.HGetAll(bg, inv).Val())
	}
}

// hashTag is the part of a key Redis Cluster hashes.
func hashTag(key string) string {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			return key[i+1 : i+1+j]
		}
	}
	return key
}

// TestRedisStaleReservationsAfterReregistration: Register clears
// reservations left from an expired record of the same id.
func TestRedisStaleReservationsAfterReregistration(t *testing.T) {
	t.Parallel()
	srv := redistest.StartServer(t)
	s := newRedis(t, RedisOptions{URL: srv.URL()})
	must(t, s.Register(bg, "again", 1, 50*time.Millisecond))
	old := reserve(t, s, "again")
	eventually(t, "expiry", func() bool {
		_, err := s.Get(bg, "again")
		return errors.Is(err, ErrUnknown)
	})
	must(t, s.Register(bg, "again", 1, 0))
	r := reserve(t, s, "again") // the old reservation does not hold the use
	must(t, r.Commit(bg))
	must(t, old.Commit(bg)) // its member is gone from the new zset: not counted
	if inv := get(t, s, "again"); inv.Used != 1 {
		t.Fatalf("Get = %+v", inv)
	}
}
