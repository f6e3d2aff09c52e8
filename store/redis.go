package store

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// DefaultKeyPrefix is the key prefix of the Redis store.
const DefaultKeyPrefix = "groupjoin:"

// DefaultRedisTimeout is the default dial, read and write timeout: short,
// so that the edge fails closed fast when Redis is away.
const DefaultRedisTimeout = time.Second

// DefaultReplicaTimeout bounds the wait for replicas (RedisOptions.MinReplicas)
// when RedisOptions.ReplicaTimeout is not set.
const DefaultReplicaTimeout = 500 * time.Millisecond

// ErrNotReplicated: a write that decides admission was applied by the
// primary but fewer than RedisOptions.MinReplicas replicas confirmed it in
// time. Returned errors wrap both ErrUnavailable and ErrNotReplicated.
var ErrNotReplicated = errors.New("write not confirmed by enough replicas")

// RedisOptions configure NewRedis. Exactly one of URL, Sentinels (with
// MasterName) or Cluster selects the deployment.
type RedisOptions struct {
	Options
	// URL is redis://[[user]:password@]host[:port][/db][?options] or
	// rediss://... for TLS (see redis.ParseURL; unix:// also works): one
	// Redis server.
	URL string
	// Sentinels are host:port addresses of Redis Sentinels that watch the
	// primary named MasterName; the store follows their failovers.
	Sentinels  []string
	MasterName string
	// SentinelPassword authenticates to the sentinels (not to Redis).
	SentinelPassword string
	// Cluster are host:port seed nodes of a Redis Cluster.
	Cluster []string
	// DB is the database number with Sentinels (a URL carries its own;
	// a cluster has only database 0).
	DB int
	// Password, if set, overrides the URL's.
	Password string
	// KeyPrefix prefixes every key; default DefaultKeyPrefix.
	KeyPrefix string
	// Timeouts; zero takes the URL's query option (dial_timeout, ...) if
	// any, else DefaultRedisTimeout.
	DialTimeout, ReadTimeout, WriteTimeout time.Duration
	// TLS, if set, enables TLS with this configuration (also for a
	// redis:// URL). An empty ServerName is filled from the URL's host.
	TLS *tls.Config
	// MinReplicas > 0 makes every write that decides admission (Reserve,
	// Commit, Register, Revoke) wait, on the connection that wrote it, until
	// that many replicas hold it (WAIT), for at most ReplicaTimeout
	// (default DefaultReplicaTimeout). See the package documentation.
	MinReplicas    int
	ReplicaTimeout time.Duration
}

// Redis is a Store shared by a fleet of instances through one Redis, a
// Sentinel-managed primary or a Redis Cluster. Every check-and-mutate step
// is a Lua script, so it is atomic across instances. See the package
// documentation for the key schema, the clock and durability.
type Redis struct {
	client  redis.UniversalClient
	single  *redis.Client        // plain or Sentinel (failover) client; nil with a cluster
	cluster *redis.ClusterClient // nil unless Cluster
	prefix  string
	resTTL  int64 // ms

	minReplicas int
	replTimeout time.Duration
}

var _ Store = (*Redis)(nil)

// NewRedis returns a Redis store. It does not contact Redis; use Ping for a
// provisioning check. Errors never contain the URL or a password.
func NewRedis(opts RedisOptions) (*Redis, error) {
	o := opts.Options.withDefaults()
	modes := 0
	for _, set := range []bool{opts.URL != "", len(opts.Sentinels) > 0 || opts.MasterName != "", len(opts.Cluster) > 0} {
		if set {
			modes++
		}
	}
	switch {
	case modes == 0:
		return nil, errors.New("store: a redis URL, sentinels with a master name, or cluster nodes are required")
	case modes > 1:
		return nil, errors.New("store: a redis URL, sentinels and cluster nodes exclude each other")
	case opts.MinReplicas < 0:
		return nil, errors.New("store: min_replicas must not be negative")
	case opts.ReplicaTimeout < 0:
		return nil, errors.New("store: the replica timeout must be positive")
	case opts.DB < 0:
		return nil, errors.New("store: db must not be negative")
	}
	s := &Redis{prefix: opts.KeyPrefix, minReplicas: opts.MinReplicas, replTimeout: opts.ReplicaTimeout}
	if s.prefix == "" {
		s.prefix = DefaultKeyPrefix
	}
	if s.replTimeout == 0 {
		s.replTimeout = DefaultReplicaTimeout
	}
	s.resTTL = o.ReservationTTL.Milliseconds()
	if s.resTTL < 1 {
		s.resTTL = 1
	}
	dial := pickTimeout(opts.DialTimeout, 0)
	// A WAIT pipelined with a script is read with the connection's read
	// timeout, so that timeout must also cover the wait for replicas.
	extra := time.Duration(0)
	if opts.MinReplicas > 0 {
		extra = s.replTimeout
	}
	read := pickTimeout(opts.ReadTimeout, 0) + extra
	write := pickTimeout(opts.WriteTimeout, 0)
	switch {
	case opts.URL != "":
		ro, err := redis.ParseURL(opts.URL)
		if err != nil {
			var ue *url.Error
			if errors.As(err, &ue) {
				// url.Error repeats the URL, password included.
				return nil, errors.New("store: invalid redis URL: malformed")
			}
			return nil, fmt.Errorf("store: invalid redis URL: %v", err)
		}
		if opts.Password != "" {
			ro.Password = opts.Password
		}
		ro.DialTimeout = pickTimeout(opts.DialTimeout, ro.DialTimeout)
		ro.ReadTimeout = pickTimeout(opts.ReadTimeout, ro.ReadTimeout) + extra
		ro.WriteTimeout = pickTimeout(opts.WriteTimeout, ro.WriteTimeout)
		ro.PoolTimeout = ro.ReadTimeout
		// Fail fast and predictably: one dial attempt, no command retries
		// (a retried Reserve or Register is not idempotent).
		ro.DialerRetries = 1
		ro.MaxRetries = -1
		ro.ContextTimeoutEnabled = true
		ro.MaintNotificationsConfig = noMaintNotifications()
		if opts.TLS != nil {
			ro.TLSConfig = tlsFor(opts.TLS, ro.Network, ro.Addr)
		}
		s.single = redis.NewClient(ro)
		s.client = s.single
	case len(opts.Cluster) > 0:
		if err := checkAddrs("cluster", opts.Cluster); err != nil {
			return nil, err
		}
		if opts.DB != 0 {
			return nil, errors.New("store: a Redis Cluster has only db 0")
		}
		co := &redis.ClusterOptions{
			Addrs:    append([]string(nil), opts.Cluster...),
			Password: opts.Password,
			// The cluster client follows MOVED and ASK redirections on
			// its own (up to 3); a redirected command did not run.
			DialTimeout: dial, ReadTimeout: read, WriteTimeout: write, PoolTimeout: read,
			DialerRetries: 1, MaxRetries: -1, ContextTimeoutEnabled: true,
			MaintNotificationsConfig: noMaintNotifications(),
		}
		if opts.TLS != nil {
			co.TLSConfig = tlsFor(opts.TLS, "tcp", opts.Cluster[0])
		}
		s.cluster = redis.NewClusterClient(co)
		s.client = s.cluster
	default:
		if opts.MasterName == "" {
			return nil, errors.New("store: sentinels need a master name")
		}
		if err := checkAddrs("sentinel", opts.Sentinels); err != nil {
			return nil, err
		}
		fo := &redis.FailoverOptions{
			MasterName:       opts.MasterName,
			SentinelAddrs:    append([]string(nil), opts.Sentinels...),
			SentinelPassword: opts.SentinelPassword,
			Password:         opts.Password,
			DB:               opts.DB,
			DialTimeout:      dial, ReadTimeout: read, WriteTimeout: write, PoolTimeout: read,
			DialerRetries: 1, MaxRetries: -1, ContextTimeoutEnabled: true,
		}
		if opts.TLS != nil {
			fo.TLSConfig = tlsFor(opts.TLS, "tcp", opts.Sentinels[0])
		}
		s.single = redis.NewFailoverClient(fo)
		s.client = s.single
	}
	return s, nil
}

// noMaintNotifications turns off go-redis's maintenance notifications
// (a Redis Enterprise feature). In their default "auto" mode every new
// connection tries a handshake that other servers refuse, and a Cluster
// client's nodes then switch the mode off in one Config that they share,
// each under its own lock: a data race inside go-redis.
func noMaintNotifications() *maintnotifications.Config {
	return &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
}

func checkAddrs(what string, addrs []string) error {
	for _, a := range addrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("store: %s address %q is not host:port", what, a)
		}
	}
	return nil
}

func tlsFor(c *tls.Config, network, addr string) *tls.Config {
	cfg := c.Clone()
	if cfg.ServerName == "" && network != "unix" {
		if host, _, err := net.SplitHostPort(addr); err == nil {
			cfg.ServerName = host
		}
	}
	return cfg
}

func pickTimeout(explicit, fromURL time.Duration) time.Duration {
	switch {
	case explicit != 0:
		return explicit
	case fromURL != 0:
		return fromURL
	}
	return DefaultRedisTimeout
}

func unavailable(err error) error {
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// failed wraps err in ErrUnavailable. With a cluster it also asks for a
// fresh slot map: the cluster client only refreshes it on redirections,
// so without this it would keep dialing a dead primary after its replica
// took over.
func (s *Redis) failed(err error) error {
	if s.cluster != nil {
		s.cluster.ReloadState(context.Background())
	}
	return unavailable(err)
}

// Ping checks that Redis answers (with a cluster: one of its nodes).
func (s *Redis) Ping(ctx context.Context) error {
	if err := s.client.Ping(ctx).Err(); err != nil {
		return s.failed(err)
	}
	return nil
}

// Close closes the connection pools.
func (s *Redis) Close() error { return s.client.Close() }

// Destruct is Close, so that a *Redis can be held in a caddy.UsagePool
// (which wants a caddy.Destructor) without wrapping.
func (s *Redis) Destruct() error { return s.Close() }

// MinReplicas reports the configured durability (0: none).
func (s *Redis) MinReplicas() int { return s.minReplicas }

// Keys returns the Redis keys of an invite: its hash and its reservation
// sorted set (see the package documentation).
func (s *Redis) Keys(id string) (invite, reservations string) {
	invite = s.prefix + "invite:{" + id + "}"
	return invite, invite + ":res"
}

// Lua prelude shared by the scripts. Time is the Redis server's clock, in
// milliseconds. replicate_commands makes Redis 3.2–4.x replicate the
// effects (not the script, which calls TIME); it is a no-op on 5+.
const luaPrelude = `
if redis.replicate_commands then redis.replicate_commands() end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function revoked(v)
  return v and v ~= '' and v ~= '0' and v ~= 'false'
end
`

// KEYS[1] invite hash, KEYS[2] reservation zset.
// ARGV[1] limit, ARGV[2] ttl ms (0: none).
// Returns 1 registered, 0 exists.
var registerScript = redis.NewScript(luaPrelude + `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'limit', ARGV[1], 'used', 0, 'revoked', 0, 'created', now_ms())
local ttl = tonumber(ARGV[2])
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
redis.call('DEL', KEYS[2])
return 1
`)

// ARGV[1] reservation id, ARGV[2] reservation ttl ms.
// Returns {code, expiry ms}: 1 reserved, -1 unknown, -2 revoked, -3 used up.
// Reservations that lapsed (score <= now) count as used: their outcome is
// unknown, and giving their use back could admit one member too many.
var reserveScript = redis.NewScript(luaPrelude + `
local now = now_ms()
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1, now} end
local h = redis.call('HMGET', KEYS[1], 'limit', 'used', 'revoked')
if revoked(h[3]) then return {-2, now} end
local used = 0
if h[2] then used = tonumber(h[2]) end
local lapsed = redis.call('ZCOUNT', KEYS[2], '-inf', now)
if lapsed > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  redis.call('HINCRBY', KEYS[1], 'used', lapsed)
  if used then used = used + lapsed end
end
local limit = tonumber(h[1])
if limit ~= -1 then
  if limit == nil or used == nil or limit < 1 or used + redis.call('ZCARD', KEYS[2]) >= limit then
    return {-3, now}
  end
end
local ttl = tonumber(ARGV[2])
local exp = now + ttl
redis.call('ZADD', KEYS[2], exp, ARGV[1])
-- The set lives as long as the record: a lapsed member must stay to be
-- counted.
local rttl = redis.call('PTTL', KEYS[1])
if rttl > 0 then redis.call('PEXPIRE', KEYS[2], rttl) else redis.call('PERSIST', KEYS[2]) end
return {1, exp}
`)

// ARGV[1] reservation id, ARGV[2] its expiry ms.
// Returns 1 counted, 2 counted as lapsed (now or by an earlier Reserve),
// 0 not present and not lapsed (already committed or released: nothing
// done), -1 invite record gone.
var commitScript = redis.NewScript(luaPrelude + `
local removed = redis.call('ZREM', KEYS[2], ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local expired = now_ms() >= tonumber(ARGV[2])
if removed == 1 then redis.call('HINCRBY', KEYS[1], 'used', 1) end
if expired then return 2 end
return removed
`)

// ARGV[1] reservation id. Gives the use back unless the reservation has
// lapsed (then it counts as used). Returns 1 given back, 0 nothing done.
var releaseScript = redis.NewScript(luaPrelude + `
local score = redis.call('ZSCORE', KEYS[2], ARGV[1])
if score and tonumber(score) > now_ms() then return redis.call('ZREM', KEYS[2], ARGV[1]) end
return 0
`)

var revokeScript = redis.NewScript(luaPrelude + `
local now = now_ms()
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('HSET', KEYS[1], 'created', now) end
redis.call('HSET', KEYS[1], 'revoked', 1)
redis.call('HSETNX', KEYS[1], 'revoked_at', now)
return 1
`)

// Returns {0} if absent, else
// {1, limit, used, revoked(0/1), created, pttl, now, live reservations,
// lapsed reservations}.
var getScript = redis.NewScript(luaPrelude + `
local now = now_ms()
if redis.call('EXISTS', KEYS[1]) == 0 then return {0} end
local h = redis.call('HMGET', KEYS[1], 'limit', 'used', 'revoked', 'created')
local r = 0
if revoked(h[3]) then r = 1 end
return {1, h[1] or '', h[2] or '', r, h[4] or '', redis.call('PTTL', KEYS[1]), now,
  redis.call('ZCOUNT', KEYS[2], '(' .. now, '+inf'), redis.call('ZCOUNT', KEYS[2], '-inf', now)}
`)

// write runs one admission-deciding script and, with MinReplicas, waits
// for the replicas when changed says the script wrote something. WAIT only
// counts the writes of its own connection, so the script and WAIT share one
// connection to the primary that owns key; they are pipelined, so the wait
// costs no extra round trip to the primary. undo, if not nil, runs on that
// connection when the wait falls short.
func (s *Redis) write(ctx context.Context, key string, sc *redis.Script, keys []string, args []any,
	changed func(*redis.Cmd) bool, undo func(*redis.Conn)) (*redis.Cmd, error) {
	if s.minReplicas == 0 {
		cmd := sc.Run(ctx, s.client, keys, args...)
		return cmd, cmd.Err()
	}
	for attempt := 0; ; attempt++ {
		node := s.single
		if s.cluster != nil {
			var err error
			if node, err = s.cluster.MasterForKey(ctx, key); err != nil {
				return nil, err
			}
		}
		conn := node.Conn()
		var (
			cmd  *redis.Cmd
			wait *redis.Cmd
		)
		_, _ = conn.Pipelined(ctx, func(p redis.Pipeliner) error {
			cmd = sc.EvalSha(ctx, p, keys, args...)
			wait = p.Do(ctx, "WAIT", s.minReplicas, s.replTimeout.Milliseconds())
			return nil
		})
		if redis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
			// First use on this node: Run loads the script.
			cmd = sc.Run(ctx, conn, keys, args...)
			wait = nil
		}
		err := cmd.Err()
		if err == nil && changed(cmd) {
			if wait == nil {
				wait = conn.Do(ctx, "WAIT", s.minReplicas, s.replTimeout.Milliseconds())
			}
			err = s.replicated(wait)
			if err != nil && undo != nil {
				undo(conn)
			}
		}
		_ = conn.Close()
		// Routed by hand: a MOVED (failover, resharding) means the script
		// did not run; refresh the slot map and try the new owner.
		if _, moved := redis.IsMovedError(err); moved && s.cluster != nil && attempt < 3 {
			s.cluster.ReloadState(ctx)
			if !sleepCtx(ctx, 50*time.Millisecond) {
				return cmd, err
			}
			continue
		}
		return cmd, err
	}
}

func (s *Redis) replicated(wait *redis.Cmd) error {
	n, err := wait.Int64()
	if err != nil {
		return err
	}
	if n < int64(s.minReplicas) {
		return fmt.Errorf("%w (%d of %d within %v)", ErrNotReplicated, n, s.minReplicas, s.replTimeout)
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Register implements Store. With MinReplicas, a registration that is not
// replicated in time returns ErrNotReplicated (wrapped in ErrUnavailable);
// it may still exist on the primary, so a repeated Register can answer
// ErrExists.
func (s *Redis) Register(ctx context.Context, id string, limit int64, ttl time.Duration) error {
	if err := validRegistration(id, limit, ttl); err != nil {
		return err
	}
	// Round up, so that a sub-millisecond ttl does not mean "never".
	ttlMS := int64((ttl + time.Millisecond - 1) / time.Millisecond)
	inv, res := s.Keys(id)
	cmd, err := s.write(ctx, inv, registerScript, []string{inv, res}, []any{limit, ttlMS},
		func(c *redis.Cmd) bool { n, _ := c.Int64(); return n == 1 }, nil)
	if err != nil {
		return s.failed(err)
	}
	n, err := cmd.Int64()
	if err != nil {
		return unavailable(err)
	}
	if n == 0 {
		return ErrExists
	}
	return nil
}

// Reserve implements Store. With MinReplicas, a reservation that is not
// replicated in time is given back and ErrNotReplicated (wrapped in
// ErrUnavailable) is returned: the edge answers 503 and forwards nothing.
func (s *Redis) Reserve(ctx context.Context, id string) (Reservation, error) {
	if validID(id) != nil {
		return nil, ErrUnknown
	}
	var b [12]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand, Go >= 1.24)
	rid := hex.EncodeToString(b[:])
	inv, res := s.Keys(id)
	keys := []string{inv, res}
	reserved := func(c *redis.Cmd) bool { v, _ := c.Int64Slice(); return len(v) == 2 && v[0] == 1 }
	cmd, err := s.write(ctx, inv, reserveScript, keys, []any{rid, s.resTTL}, reserved, func(c *redis.Conn) {
		// The caller's context may be spent by the wait.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.replTimeout)
		defer cancel()
		_ = releaseScript.Run(ctx, c, keys, rid).Err()
	})
	if err != nil {
		return nil, s.failed(err)
	}
	v, err := cmd.Int64Slice()
	if err != nil || len(v) != 2 {
		return nil, unavailable(fmt.Errorf("unexpected reply %v", v))
	}
	switch v[0] {
	case 1:
		return &redisReservation{s: s, keys: keys, rid: rid, expiry: v[1]}, nil
	case -1:
		return nil, ErrUnknown
	case -2:
		return nil, ErrRevoked
	case -3:
		return nil, ErrUsedUp
	}
	return nil, unavailable(fmt.Errorf("unexpected reply %v", v))
}

// Revoke implements Store. With MinReplicas, a revocation that is not
// replicated in time returns ErrNotReplicated (wrapped in ErrUnavailable);
// Revoke is idempotent, so retry it.
func (s *Redis) Revoke(ctx context.Context, id string) error {
	if err := validID(id); err != nil {
		return err
	}
	inv, res := s.Keys(id)
	_, err := s.write(ctx, inv, revokeScript, []string{inv, res}, nil, func(*redis.Cmd) bool { return true }, nil)
	if err != nil {
		return s.failed(err)
	}
	return nil
}

// Get implements Store. Lapsed reservations are reported as used.
func (s *Redis) Get(ctx context.Context, id string) (Invite, error) {
	if validID(id) != nil {
		return Invite{}, ErrUnknown
	}
	inv, res := s.Keys(id)
	v, err := getScript.Run(ctx, s.client, []string{inv, res}).Slice()
	if err != nil {
		return Invite{}, s.failed(err)
	}
	if len(v) == 1 && asInt(v[0]) == 0 {
		return Invite{}, ErrUnknown
	}
	if len(v) != 9 {
		return Invite{}, unavailable(fmt.Errorf("unexpected reply of %d elements", len(v)))
	}
	now := asInt(v[6])
	out := Invite{
		ID:       id,
		Limit:    asInt(v[1]),
		Used:     asInt(v[2]) + asInt(v[8]),
		Revoked:  asInt(v[3]) == 1,
		Reserved: asInt(v[7]),
	}
	if out.Limit < 1 && out.Limit != Unlimited {
		out.Limit = 0
	}
	if c := asInt(v[4]); c > 0 {
		out.Created = time.UnixMilli(c)
	}
	if pttl := asInt(v[5]); pttl >= 0 {
		out.Expires = time.UnixMilli(now + pttl)
	}
	return out, nil
}

// asInt reads an integer or a decimal string reply; anything else is 0.
func asInt(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case string:
		n, err := strconv.ParseInt(x, 10, 64)
		if err != nil {
			return 0
		}
		return n
	}
	return 0
}

type redisReservation struct {
	s      *Redis
	keys   []string
	rid    string
	expiry int64 // unix ms, Redis server clock

	mu     sync.Mutex
	state  int
	result error
}

// Commit implements Reservation. With MinReplicas, a commit that is not
// replicated in time is still counted on the primary and returns
// ErrNotReplicated (wrapped in ErrUnavailable) for the log; should that
// primary be lost, the replicated reservation lapses on the new one and
// counts as used then.
func (r *redisReservation) Commit(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch r.state {
	case resCommitted:
		return r.result
	case resReleased:
		return ErrReleased
	}
	counted := func(c *redis.Cmd) bool { n, _ := c.Int64(); return n == 1 || n == 2 }
	cmd, err := r.s.write(ctx, r.keys[0], commitScript, r.keys, []any{r.rid, r.expiry}, counted, nil)
	if err != nil {
		if errors.Is(err, ErrNotReplicated) {
			r.state = resCommitted // counted on the primary; do not count again
			return r.s.failed(err)
		}
		return r.s.failed(err) // state unchanged: may be retried
	}
	n, err := cmd.Int64()
	if err != nil {
		return unavailable(err)
	}
	r.state = resCommitted
	switch n {
	case 2:
		r.result = ErrReservationExpired
	case -1:
		r.result = ErrUnknown
	}
	return r.result
}

// Release implements Reservation. It does not wait for replicas: a lost
// release leaves a reservation that lapses and counts as used (a lost use,
// never an extra admission).
func (r *redisReservation) Release(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state != resActive {
		return nil
	}
	if err := releaseScript.Run(ctx, r.s.client, r.keys, r.rid).Err(); err != nil {
		return r.s.failed(err) // it lapses anyway
	}
	r.state = resReleased
	return nil
}
