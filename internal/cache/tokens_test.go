package cache

import (
	"crypto/sha256"
	"errors"
	"strconv"
	"testing"
	"time"
	"unsafe"

	"github.com/caddy-groupjoin/caddy-groupjoin/tokens"
)

func TestAccessCacheBounded(t *testing.T) {
	const size = 64
	c := newTokenCache(size, time.Hour)
	now := time.Unix(1_900_000_000, 0)
	key := func(i int) [sha256.Size]byte { return tokenKey("token-" + strconv.Itoa(i)) }
	for i := range 5000 {
		k := key(i)
		c.put(&k, cacheEntry{tok: &tokens.Token{}}, now)
		if e, _, _ := c.Stats(); e > size {
			t.Fatalf("%d entries after %d puts, bound %d", e, i+1, size)
		}
		if _, ok := c.get(&k, now); !ok {
			t.Fatalf("entry %d missing right after put", i)
		}
	}
	// A full shard drops expired entries first.
	var sh cacheShard
	sh.m = make(map[[sha256.Size]byte]cacheEntry)
	const full = 8
	for i := range full {
		until := now.Add(time.Hour).UnixNano()
		if i == 3 {
			until = now.UnixNano()
		}
		sh.m[key(i)] = cacheEntry{tok: &tokens.Token{}, until: until}
	}
	sh.evict(now.UnixNano())
	if _, ok := sh.m[key(3)]; ok || len(sh.m) != full-1 {
		t.Fatalf("eviction kept the expired entry or dropped a live one: %d left", len(sh.m))
	}
	later := now.Add(2 * time.Second)
	exp := &tokens.Token{Expires: now.Add(time.Second)}
	// An entry whose token has already expired is not added.
	k := key(1000)
	c.put(&k, cacheEntry{tok: exp}, later)
	if _, ok := c.get(&k, later); ok {
		t.Fatal("expired token cached")
	}
}

// BenchmarkTokenCachePutFull measures an insertion into a full cache, the
// eviction included: what a flood of distinct junk tokens costs the
// refused cache.
func BenchmarkTokenCachePutFull(b *testing.B) {
	c := newTokenCache(TokenCacheSize, time.Hour)
	now := time.Unix(1_900_000_000, 0)
	keys := make([][sha256.Size]byte, 4*TokenCacheSize)
	for i := range keys {
		keys[i] = tokenKey("junk-" + strconv.Itoa(i))
	}
	for i := range TokenCacheSize {
		c.put(&keys[i], cacheEntry{err: errors.New("junk")}, now)
	}
	e := cacheEntry{err: errors.New("junk")}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		c.put(&keys[i%len(keys)], e, now)
	}
}

// TestShardSizes: each shard of the sharded caches fills one 64-byte cache
// line, so that two shards' locks never share one.
func TestShardSizes(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("the padding is sized for 64-bit platforms")
	}
	if n := unsafe.Sizeof(cacheShard{}); n != 64 {
		t.Errorf("cacheShard is %d bytes, want 64", n)
	}
	if n := unsafe.Sizeof(geoShard{}); n != 64 {
		t.Errorf("geoShard is %d bytes, want 64", n)
	}
}
