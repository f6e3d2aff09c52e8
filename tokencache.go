package groupjoin

import (
	"crypto/sha256"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/caddy-groupjoin/caddy-groupjoin/tokens"
)

// tokenCache remembers tokens that authenticated, so that a token
// presented again skips decoding and the signature chain: the bulk of the
// cost of checking it. A Handler has two, one for access tokens (a user
// sends the same one with every request) and one for invites (a group's
// invite is usually shared with many people, and a client may retry).
//
// What is cached is the result of Keyring.Authenticate only, which depends
// on nothing but the token and the keyring. Everything that depends on the
// request, the caveats (time, ip, asn, geo.*, service, api, interface,
// consumer), is checked again on every request against the cached Token,
// and so are an invite's uses and revocation in the store. A cache belongs
// to one Handler, that is to one keyring: a config reload provisions a new
// Handler with empty caches, so a removed key (a revoked generation) takes
// effect at once.
//
// Keys are SHA-256 digests of the token: token strings are not kept. Only
// tokens that passed every check once are added, so invalid tokens cannot
// fill the cache. An entry never outlives the token's time caveat
// (Token.Expires) nor tokenCacheTTL, and the cache holds at most
// tokenCacheSize entries (a full shard drops an entry, expired ones
// first).
type tokenCache struct {
	shards [cacheShards]cacheShard
	// perShard bounds each shard's map.
	perShard int
	ttl      time.Duration
}

const (
	cacheShards      = 16
	tokenCacheSize   = 8192
	tokenCacheTTL    = 5 * time.Minute
	maxCachedToken   = 8 << 10 // longer tokens are verified every time
	evictionSampling = 8
)

type cacheShard struct {
	mu sync.RWMutex
	m  map[[sha256.Size]byte]cacheEntry
	// hits and misses, for tests and debugging: on the line the read lock
	// already writes to.
	hits, misses atomic.Uint64
	_            [16]byte // one shard per cache line
}

type cacheEntry struct {
	tok   *tokens.Token
	until int64 // unix nanoseconds; the entry is dead from then on
}

func newTokenCache(size int, ttl time.Duration) *tokenCache {
	c := &tokenCache{perShard: max(1, size/cacheShards), ttl: ttl}
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

func (c *tokenCache) shard(k *[sha256.Size]byte) *cacheShard {
	return &c.shards[k[0]%cacheShards]
}

// get returns the cached Token for k, or nil.
func (c *tokenCache) get(k *[sha256.Size]byte, now time.Time) *tokens.Token {
	s := c.shard(k)
	s.mu.RLock()
	e, ok := s.m[*k]
	s.mu.RUnlock()
	if !ok || now.UnixNano() >= e.until {
		s.misses.Add(1)
		return nil
	}
	s.hits.Add(1)
	return e.tok
}

// put caches tok under k until its time caveat or the TTL, whichever
// comes first.
func (c *tokenCache) put(k *[sha256.Size]byte, tok *tokens.Token, now time.Time) {
	until := now.Add(c.ttl).UnixNano()
	if !tok.Expires.IsZero() {
		until = min(until, tok.Expires.UnixNano())
	}
	if until <= now.UnixNano() {
		return
	}
	s := c.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[*k]; !ok && len(s.m) >= c.perShard {
		s.evict(now.UnixNano())
	}
	s.m[*k] = cacheEntry{tok: tok, until: until}
}

// evict drops the expired entries among a few (map order is random), or
// else the first of them.
func (s *cacheShard) evict(now int64) {
	var first [sha256.Size]byte
	n, dropped := 0, false
	for k, e := range s.m {
		if n == 0 {
			first = k
		}
		if now >= e.until {
			delete(s.m, k)
			dropped = true
		}
		if n++; n == evictionSampling {
			break
		}
	}
	if !dropped {
		delete(s.m, first)
	}
}

// stats reports the number of entries (live or not yet evicted), hits
// and misses.
func (c *tokenCache) stats() (entries int, hits, misses uint64) {
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

// verifyAccess is Verifier.VerifyAccess with the cache in front of
// Authenticate: the caveats are checked on every request.
func (h *Handler) verifyAccess(raw string, env *tokens.Env) (*tokens.Token, error) {
	if h.access == nil || len(raw) > maxCachedToken {
		return h.verifier.VerifyAccess(raw, env)
	}
	k := tokenKey(raw)
	if tok := h.access.get(&k, env.Now); tok != nil {
		return tok, tok.CheckAccess(env)
	}
	tok, err := h.verifier.VerifyAccess(raw, env)
	if err != nil {
		return tok, err
	}
	h.access.put(&k, tok, env.Now)
	return tok, nil
}

// verifyInvite is Keyring.Authenticate + Token.CheckInvite with the cache
// in front of Authenticate: the caveats are checked on every request. The
// Token is returned with the error when it authenticated, so that the
// decision log can name the invite and its group.
func (h *Handler) verifyInvite(raw string, env *tokens.Env) (*tokens.Token, error) {
	if h.invites == nil || len(raw) > maxCachedToken {
		return h.authenticateInvite(raw, env)
	}
	k := tokenKey(raw)
	if tok := h.invites.get(&k, env.Now); tok != nil {
		return tok, tok.CheckInvite(env)
	}
	tok, err := h.authenticateInvite(raw, env)
	if err != nil {
		return tok, err
	}
	h.invites.put(&k, tok, env.Now)
	return tok, nil
}

func (h *Handler) authenticateInvite(raw string, env *tokens.Env) (*tokens.Token, error) {
	tok, err := h.verifier.Keys.Authenticate(raw)
	if err != nil {
		return nil, err
	}
	return tok, tok.CheckInvite(env)
}
