package cache

import (
	"hash/maphash"
	"net/netip"
	"sync"

	"github.com/caddy-groupjoin/caddy-groupjoin/tokens"
)

// Geo remembers the country and ASN of client addresses across
// requests: a client sends many requests from one address, and an mmdb
// lookup costs about as much as the rest of a cached token check. A
// Handler has one in front of its databases, which do not change under it
// (a changed file is opened anew by the next Provision, with a new cache),
// so a remembered answer, an error included, is what the database would
// say again. It holds at most GeoCacheSize addresses; a full shard drops a
// sixteenth of them at random.
type Geo struct {
	geo      tokens.Geo
	seed     maphash.Seed
	perShard int
	shards   [geoShards]geoShard
}

const (
	geoShards    = 16
	GeoCacheSize = 16384
)

type geoShard struct {
	mu sync.RWMutex
	m  map[netip.Addr]geoEntry
	_  [32]byte // one shard per 64-byte cache line (TestShardSizes)
}

// geoEntry holds what is known of one address so far.
type geoEntry struct {
	country    string
	countryErr error
	asn        uint32
	asnErr     error
	have       uint8 // haveCountry | haveASN
}

const (
	haveCountry uint8 = 1 << iota
	haveASN
)

func NewGeo(geo tokens.Geo) *Geo {
	c := &Geo{geo: geo, seed: maphash.MakeSeed(), perShard: GeoCacheSize / geoShards}
	for i := range c.shards {
		c.shards[i].m = make(map[netip.Addr]geoEntry)
	}
	return c
}

var _ tokens.Geo = (*Geo)(nil)

func (c *Geo) shard(ip netip.Addr) *geoShard {
	return &c.shards[maphash.Comparable(c.seed, ip)%geoShards]
}

func (c *Geo) Country(ip netip.Addr) (string, error) {
	e := c.entry(ip, haveCountry)
	return e.country, e.countryErr
}

func (c *Geo) ASN(ip netip.Addr) (uint32, error) {
	e := c.entry(ip, haveASN)
	return e.asn, e.asnErr
}

// entry returns ip's entry once it holds want (haveCountry or haveASN),
// asking the database, at most once per address and kind, when it does not
// yet.
func (c *Geo) entry(ip netip.Addr, want uint8) geoEntry {
	s := c.shard(ip)
	s.mu.RLock()
	e := s.m[ip]
	s.mu.RUnlock()
	if e.have&want != 0 {
		return e
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[ip] // another request may have filled it meanwhile
	if e.have&want == 0 {
		if !ok && len(s.m) >= c.perShard {
			makeRoom(s.m, evictionBatch(len(s.m)), nil)
		}
		if want == haveCountry {
			e.country, e.countryErr = c.geo.Country(ip)
		} else {
			e.asn, e.asnErr = c.geo.ASN(ip)
		}
		e.have |= want
		s.m[ip] = e
	}
	return e
}

// len reports the number of addresses held, for tests.
func (c *Geo) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}
