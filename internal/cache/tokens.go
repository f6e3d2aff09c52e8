// Package cache holds what the group_join handler remembers between
// requests to make them cheaper, none of which changes an answer: the
// caches of authenticated tokens (Tokens) with the doorkeeper that admits
// a token to them on its second sight (Doorkeeper), the cache of geo
// lookups by client address (Geo), and the pooled Token a request
// authenticates into (Slot). Nothing here knows about HTTP or Caddy.
package cache

import (
	"crypto/sha256"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/caddy-groupjoin/caddy-groupjoin/tokens"
)

// Tokens remember what became of tokens already seen, so that a token
// presented again skips decoding and the signature chain: the bulk of the
// cost of checking it. A Handler has one pair for access tokens (a user
// sends the same one with every request) and one for invites (a group's
// invite is usually shared with many people, clients retry, and a bot
// replays the same junk).
//
// What is cached is the result of Keyring.Authenticate only, which depends
// on nothing but the token and the keyring. Everything that depends on the
// request, the caveats (time, ip, asn, geo.*, service, api, interface,
// consumer), is checked again on every request against the cached Token,
// and so are an invite's uses and revocation in the store: a cache hit
// answers exactly what a miss would. A cache belongs to one Handler, that
// is to one keyring: a config reload provisions a new Handler with empty
// caches, so a removed key (a revoked generation) takes effect at once.
//
//   - passed holds tokens that passed every check once. An entry never
//     outlives the token's time caveat (Token.Expires) nor TokenTTL.
//   - refused holds tokens that were refused: the Authenticate error, or the
//     authenticated Token when a caveat failed (its caveats are checked again
//     on every hit, so it admits the token once a caveat that depends on the
//     request holds). An entry lives TokenTTL. It is a cache of its own
//     so that junk, which anyone can send, never evicts a good token.
//
// Keys are SHA-256 digests of the token: token strings are not kept. Each
// cache holds at most TokenCacheSize entries (a full shard drops its
// expired entries, or else a sixteenth of them at random). With a
// Doorkeeper (doorkeeper.go), a token is looked up and cached only when it
// comes back.
type Tokens struct {
	Passed, Refused *TokenCache
	Door            *Doorkeeper // nil: every token is looked up and cached
}

func NewTokens(door *Doorkeeper) *Tokens {
	return &Tokens{
		Passed:  newTokenCache(TokenCacheSize, TokenTTL),
		Refused: newTokenCache(TokenCacheSize, TokenTTL),
		Door:    door,
	}
}

// verify is authenticate then check, with the caches in front of
// authenticate. The Token is returned with a check's error, so that the
// decision log can name it. A token is authenticated into the slot's
// pooled Token (slot.go), so that one refused costs no allocation; one
// that is not cached is returned there, valid until the slot is released,
// and one the caches keep gets a Token of its own.
func (c *Tokens) Verify(raw string, env *tokens.Env, slot *Slot,
	authenticate func(*tokens.Token, string) error,
	check func(*tokens.Token, *tokens.Env) error,
) (*tokens.Token, error) {
	// A token the Doorkeeper has not seen recently is verified without the
	// caches, and not cached.
	if c == nil || len(raw) > maxCachedToken || c.Door.FirstSight(raw) {
		tok := slot.Token()
		if err := authenticate(tok, raw); err != nil {
			return nil, err
		}
		return tok, check(tok, env)
	}
	k := tokenKey(raw)
	if e, ok := c.Passed.get(&k, env.Now); ok {
		return e.tok, check(e.tok, env)
	}
	if e, ok := c.Refused.get(&k, env.Now); ok {
		if e.tok == nil {
			return nil, e.err
		}
		return e.tok, check(e.tok, env)
	}
	tok := slot.Token()
	if err := authenticate(tok, raw); err != nil {
		c.Refused.put(&k, cacheEntry{err: err}, env.Now)
		return nil, err
	}
	tok = ownToken(tok) // cached from here on
	if err := check(tok, env); err != nil {
		c.Refused.put(&k, cacheEntry{tok: tok}, env.Now)
		return tok, err
	}
	c.Passed.put(&k, cacheEntry{tok: tok}, env.Now)
	return tok, nil
}

// TokenCache is one bounded, sharded map from token digests to entries.
type TokenCache struct {
	shards [cacheShards]cacheShard
	// perShard bounds each shard's map.
	perShard int
	ttl      time.Duration
}

const (
	cacheShards    = 16
	TokenCacheSize = 8192
	TokenTTL       = 5 * time.Minute
	maxCachedToken = 8 << 10 // longer tokens are verified every time
)

type cacheShard struct {
	mu sync.RWMutex
	m  map[[sha256.Size]byte]cacheEntry
	// hits and misses, for tests and debugging: on the line the read lock
	// already writes to.
	hits, misses atomic.Uint64
	_            [16]byte // one shard per 64-byte cache line (TestShardSizes)
}

type cacheEntry struct {
	tok   *tokens.Token // authenticated; nil when err is set
	err   error         // Authenticate's error (refused entries)
	until int64         // unix nanoseconds; the entry is dead from then on
}

func newTokenCache(size int, ttl time.Duration) *TokenCache {
	c := &TokenCache{perShard: max(1, size/cacheShards), ttl: ttl}
	for i := range c.shards {
		c.shards[i].m = make(map[[sha256.Size]byte]cacheEntry)
	}
	return c
}

// tokenKey is the cache key of a token: its SHA-256 digest.
func tokenKey(raw string) [sha256.Size]byte {
	// A read-only view of the string's bytes: hashing does not write.
	return sha256.Sum256(unsafe.Slice(unsafe.StringData(raw), len(raw)))
}

func (c *TokenCache) shard(k *[sha256.Size]byte) *cacheShard {
	return &c.shards[k[0]%cacheShards]
}

// get returns the live entry for k.
func (c *TokenCache) get(k *[sha256.Size]byte, now time.Time) (cacheEntry, bool) {
	s := c.shard(k)
	s.mu.RLock()
	e, ok := s.m[*k]
	s.mu.RUnlock()
	if !ok || now.UnixNano() >= e.until {
		s.misses.Add(1)
		return cacheEntry{}, false
	}
	s.hits.Add(1)
	return e, true
}

// Holds reports whether the cache has a live entry for the token raw at
// now (counted as a lookup, like any other).
func (c *TokenCache) Holds(raw string, now time.Time) bool {
	k := tokenKey(raw)
	_, ok := c.get(&k, now)
	return ok
}

// put caches e under k for the TTL, and never past the time caveat of a
// Token that passed.
func (c *TokenCache) put(k *[sha256.Size]byte, e cacheEntry, now time.Time) {
	e.until = now.Add(c.ttl).UnixNano()
	if e.err == nil && !e.tok.Expires.IsZero() {
		e.until = min(e.until, e.tok.Expires.UnixNano())
	}
	if e.until <= now.UnixNano() {
		return
	}
	s := c.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[*k]; !ok && len(s.m) >= c.perShard {
		s.evict(now.UnixNano())
	}
	s.m[*k] = e
}

// evict makes room in a full shard: expired entries go first, then live
// ones at random.
func (s *cacheShard) evict(now int64) {
	makeRoom(s.m, evictionBatch(len(s.m)), func(e cacheEntry) bool { return now >= e.until })
}

// Stats reports the number of entries (live or not yet evicted), hits
// and misses.
func (c *TokenCache) Stats() (entries int, hits, misses uint64) {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		entries += len(s.m)
		s.mu.RUnlock()
		hits += s.hits.Load()
		misses += s.misses.Load()
	}
	return entries, hits, misses
}
