package groupjoin

import (
	"errors"
	"fmt"
	"net/url"

	"github.com/caddyserver/caddy/v2"
)

// StoreConfig selects where the usage limits and revocations of named
// invites live. With a store, an nmd invite must be registered before use.
// A Redis store is one of: a URL (one server), Sentinels with Master (a
// primary with automatic failover), or Cluster (a Redis Cluster).
type StoreConfig struct {
	// "memory" (one instance) or "redis" (a fleet).
	Type string `json:"type"`
	// Redis URL: redis://[:password@]host:port/db, or rediss:// for TLS.
	// Placeholders such as {env.REDIS_URL} are resolved at provision.
	URL string `json:"url,omitempty"`
	// Redis Sentinel addresses (host:port) and the name of the primary
	// they watch; the store follows their failovers without a reload.
	Sentinels []string `json:"sentinels,omitempty"`
	Master    string   `json:"master,omitempty"`
	// Password of the sentinels themselves; placeholders allowed.
	SentinelPassword string `json:"sentinel_password,omitempty"`
	// Database number with Sentinel (a URL names its own).
	DB int `json:"db,omitempty"`
	// Redis Cluster seed nodes (host:port).
	Cluster []string `json:"cluster,omitempty"`
	// Password, overriding the URL's; placeholders allowed.
	Password string `json:"password,omitempty"`
	// Prefix of every Redis key. Default "groupjoin:".
	KeyPrefix string `json:"key_prefix,omitempty"`
	// Dial, read and write timeout towards Redis. Default 1s: the edge
	// fails closed fast.
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// How long a use stays reserved when its request never completes.
	// Default 1m; keep it above the longest upstream request.
	ReservationTTL caddy.Duration `json:"reservation_ttl,omitempty"`
	// Use TLS even with a redis:// URL (with Sentinel: towards the
	// sentinels and the primary; with Cluster: every node).
	TLS bool `json:"tls,omitempty"`
	// Number of replicas that must hold each write deciding admission
	// before it counts (WAIT), and how long to wait for them (default
	// 500ms). See docs/high-availability.md.
	MinReplicas    int            `json:"min_replicas,omitempty"`
	ReplicaTimeout caddy.Duration `json:"replica_timeout,omitempty"`
}

// key identifies a store's configuration (secrets resolved elsewhere are
// not part of it; the password only selects the same connection pool).
func (c *StoreConfig) key() string {
	return fmt.Sprintf("%s|%s|%q|%s|%d|%q|%s|%d|%d|%t|%d|%d", c.Type, c.URL, c.Sentinels, c.Master, c.DB, c.Cluster,
		c.KeyPrefix, c.Timeout, c.ReservationTTL, c.TLS, c.MinReplicas, c.ReplicaTimeout)
}

var errNoRedisServer = errors.New("store redis needs a URL, sentinels with master, or cluster nodes")

// check refuses what the Caddyfile cannot express either: an unknown type,
// Redis-only fields on the memory store (they would select a second memory
// store under the same admin name, splitting the counts), or a Redis store
// that is not exactly one of URL, Sentinel or Cluster.
func (c *StoreConfig) check() error {
	sentinel := len(c.Sentinels) > 0 || c.Master != ""
	cluster := len(c.Cluster) > 0
	switch c.Type {
	case "memory":
		if c.URL != "" || sentinel || cluster || c.SentinelPassword != "" || c.DB != 0 || c.Password != "" ||
			c.KeyPrefix != "" || c.Timeout != 0 || c.TLS || c.MinReplicas != 0 || c.ReplicaTimeout != 0 {
			return errors.New("store memory only takes reservation_ttl")
		}
	case "redis":
		n := 0
		for _, set := range []bool{c.URL != "", sentinel, cluster} {
			if set {
				n++
			}
		}
		switch {
		case n == 0:
			return errNoRedisServer
		case n > 1:
			return errors.New("store redis: a URL, sentinels/master and cluster exclude each other; use one")
		case sentinel && len(c.Sentinels) == 0:
			return errors.New("store redis: master needs sentinels <host:port>…")
		case sentinel && c.Master == "":
			return errors.New("store redis: sentinels need master <name>")
		case !sentinel && c.SentinelPassword != "":
			return errors.New("store redis: sentinel_password needs sentinels")
		case !sentinel && c.DB != 0:
			return errors.New("store redis: db is for sentinels (a URL names its database; a cluster has only db 0)")
		case c.DB < 0:
			return errors.New("store redis: db must not be negative")
		case c.MinReplicas < 0:
			return errors.New("store redis: min_replicas must not be negative")
		case c.ReplicaTimeout != 0 && c.MinReplicas == 0:
			return errors.New("store redis: a replica timeout needs min_replicas >= 1")
		}
	default:
		return fmt.Errorf("unknown store type %q (want memory or redis)", c.Type)
	}
	if c.Timeout < 0 || c.ReservationTTL < 0 {
		return errors.New("store: timeout and reservation_ttl must be positive")
	}
	if c.ReplicaTimeout < 0 {
		return errors.New("store: the replica timeout must be positive")
	}
	return nil
}

// literalSecrets names the store's options that hold a password written
// in the config itself (see Handler.literalSecrets).
func (c *StoreConfig) literalSecrets() []string {
	var names []string
	if u, err := url.Parse(c.URL); err == nil && u.User != nil && isLiteral(c.URL) {
		if _, ok := u.User.Password(); ok {
			names = append(names, "store redis URL (its password)")
		}
	}
	if isLiteral(c.Password) {
		names = append(names, "store redis password")
	}
	if isLiteral(c.SentinelPassword) {
		names = append(names, "store redis sentinel_password")
	}
	return names
}
