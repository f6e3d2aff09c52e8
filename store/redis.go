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
)

// DefaultKeyPrefix is the key prefix of the Redis store.
const DefaultKeyPrefix = "groupjoin:"

// DefaultRedisTimeout is the default dial, read and write timeout: short,
// so that the edge fails closed fast when Redis is away.
const DefaultRedisTimeout = time.Second

// RedisOptions configure NewRedis.
type RedisOptions struct {
	Options
	// URL is redis://[[user]:password@]host[:port][/db][?options] or
	// rediss://... for TLS (see redis.ParseURL; unix:// also works).
	URL string
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
}

// Redis is a Store shared by a fleet of instances through one Redis
// (or one Redis Cluster slot per invite). Every check-and-mutate step is a
// Lua script, so it is atomic across instances. See the package
// documentation for the key schema and the clock.
type Redis struct {
	client *redis.Client
	prefix string
	resTTL int64 // ms
}

var _ Store = (*Redis)(nil)

// NewRedis returns a Redis store. It does not contact Redis; use Ping for a
// provisioning check. Errors never contain the URL or password.
func NewRedis(opts RedisOptions) (*Redis, error) {
	o := opts.Options.withDefaults()
	if opts.URL == "" {
		return nil, errors.New("store: redis URL is required")
	}
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
	ro.ReadTimeout = pickTimeout(opts.ReadTimeout, ro.ReadTimeout)
	ro.WriteTimeout = pickTimeout(opts.WriteTimeout, ro.WriteTimeout)
	ro.PoolTimeout = ro.ReadTimeout
	// Fail fast and predictably: one dial attempt, no command retries
	// (a retried Reserve or Register is not idempotent).
	ro.DialerRetries = 1
	ro.MaxRetries = -1
	ro.ContextTimeoutEnabled = true
	if opts.TLS != nil {
		cfg := opts.TLS.Clone()
		if cfg.ServerName == "" && ro.Network != "unix" {
			if host, _, err := net.SplitHostPort(ro.Addr); err == nil {
				cfg.ServerName = host
			}
		}
		ro.TLSConfig = cfg
	}
	prefix := opts.KeyPrefix
	if prefix == "" {
		prefix = DefaultKeyPrefix
	}
	ttl := o.ReservationTTL.Milliseconds()
	if ttl < 1 {
		ttl = 1
	}
	return &Redis{client: redis.NewClient(ro), prefix: prefix, resTTL: ttl}, nil
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

// Ping checks that Redis answers.
func (s *Redis) Ping(ctx context.Context) error {
	if err := s.client.Ping(ctx).Err(); err != nil {
		return unavailable(err)
	}
	return nil
}

// Close closes the connection pool.
func (s *Redis) Close() error { return s.client.Close() }

// Destruct is Close, so that a *Redis can be held in a caddy.UsagePool
// (which wants a caddy.Destructor) without wrapping.
func (s *Redis) Destruct() error { return s.Close() }

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
var reserveScript = redis.NewScript(luaPrelude + `
local now = now_ms()
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1, now} end
local h = redis.call('HMGET', KEYS[1], 'limit', 'used', 'revoked')
if revoked(h[3]) then return {-2, now} end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local limit = tonumber(h[1])
if limit ~= -1 then
  local used = 0
  if h[2] then used = tonumber(h[2]) end
  if limit == nil or used == nil or limit < 1 or used + redis.call('ZCARD', KEYS[2]) >= limit then
    return {-3, now}
  end
end
local ttl = tonumber(ARGV[2])
local exp = now + ttl
redis.call('ZADD', KEYS[2], exp, ARGV[1])
if redis.call('PTTL', KEYS[2]) < ttl then redis.call('PEXPIRE', KEYS[2], ttl) end
return {1, exp}
`)

// ARGV[1] reservation id, ARGV[2] its expiry ms.
// Returns 1 counted, 2 counted but the reservation had expired,
// 0 not present and not expired (already committed or released: nothing
// done), -1 invite record gone.
var commitScript = redis.NewScript(luaPrelude + `
local removed = redis.call('ZREM', KEYS[2], ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local expired = now_ms() >= tonumber(ARGV[2])
if removed == 0 and not expired then return 0 end
redis.call('HINCRBY', KEYS[1], 'used', 1)
if expired then return 2 end
return 1
`)

var revokeScript = redis.NewScript(luaPrelude + `
local now = now_ms()
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('HSET', KEYS[1], 'created', now) end
redis.call('HSET', KEYS[1], 'revoked', 1)
redis.call('HSETNX', KEYS[1], 'revoked_at', now)
return 1
`)

// Returns {0} if absent, else
// {1, limit, used, revoked(0/1), created, pttl, now, live reservations}.
var getScript = redis.NewScript(luaPrelude + `
local now = now_ms()
if redis.call('EXISTS', KEYS[1]) == 0 then return {0} end
local h = redis.call('HMGET', KEYS[1], 'limit', 'used', 'revoked', 'created')
local r = 0
if revoked(h[3]) then r = 1 end
return {1, h[1] or '', h[2] or '', r, h[4] or '', redis.call('PTTL', KEYS[1]), now,
  redis.call('ZCOUNT', KEYS[2], '(' .. now, '+inf')}
`)

// Register implements Store.
func (s *Redis) Register(ctx context.Context, id string, limit int64, ttl time.Duration) error {
	if err := validRegistration(id, limit, ttl); err != nil {
		return err
	}
	// Round up, so that a sub-millisecond ttl does not mean "never".
	ttlMS := int64((ttl + time.Millisecond - 1) / time.Millisecond)
	inv, res := s.Keys(id)
	n, err := registerScript.Run(ctx, s.client, []string{inv, res}, limit, ttlMS).Int64()
	if err != nil {
		return unavailable(err)
	}
	if n == 0 {
		return ErrExists
	}
	return nil
}

// Reserve implements Store.
func (s *Redis) Reserve(ctx context.Context, id string) (Reservation, error) {
	if validID(id) != nil {
		return nil, ErrUnknown
	}
	var b [12]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand, Go >= 1.24)
	rid := hex.EncodeToString(b[:])
	inv, res := s.Keys(id)
	v, err := reserveScript.Run(ctx, s.client, []string{inv, res}, rid, s.resTTL).Int64Slice()
	if err != nil {
		return nil, unavailable(err)
	}
	if len(v) != 2 {
		return nil, unavailable(fmt.Errorf("unexpected reply %v", v))
	}
	switch v[0] {
	case 1:
		return &redisReservation{s: s, keys: []string{inv, res}, rid: rid, expiry: v[1]}, nil
	case -1:
		return nil, ErrUnknown
	case -2:
		return nil, ErrRevoked
	case -3:
		return nil, ErrUsedUp
	}
	return nil, unavailable(fmt.Errorf("unexpected reply %v", v))
}

// Revoke implements Store.
func (s *Redis) Revoke(ctx context.Context, id string) error {
	if err := validID(id); err != nil {
		return err
	}
	inv, res := s.Keys(id)
	if err := revokeScript.Run(ctx, s.client, []string{inv, res}).Err(); err != nil {
		return unavailable(err)
	}
	return nil
}

// Get implements Store.
func (s *Redis) Get(ctx context.Context, id string) (Invite, error) {
	if validID(id) != nil {
		return Invite{}, ErrUnknown
	}
	inv, res := s.Keys(id)
	v, err := getScript.Run(ctx, s.client, []string{inv, res}).Slice()
	if err != nil {
		return Invite{}, unavailable(err)
	}
	if len(v) == 1 && asInt(v[0]) == 0 {
		return Invite{}, ErrUnknown
	}
	if len(v) != 8 {
		return Invite{}, unavailable(fmt.Errorf("unexpected reply of %d elements", len(v)))
	}
	now := asInt(v[6])
	out := Invite{
		ID:       id,
		Limit:    asInt(v[1]),
		Used:     asInt(v[2]),
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

func (r *redisReservation) Commit(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch r.state {
	case resCommitted:
		return r.result
	case resReleased:
		return ErrReleased
	}
	n, err := commitScript.Run(ctx, r.s.client, r.keys, r.rid, r.expiry).Int64()
	if err != nil {
		return unavailable(err) // state unchanged: may be retried
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

func (r *redisReservation) Release(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state != resActive {
		return nil
	}
	if err := r.s.client.ZRem(ctx, r.keys[1], r.rid).Err(); err != nil {
		return unavailable(err) // it will expire anyway
	}
	r.state = resReleased
	return nil
}
