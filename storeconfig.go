package groupjoin

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/caddy-groupjoin/caddy-groupjoin/store"
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

type storeHandle struct {
	store.Store
	// name identifies the store's data for the admin API; it never holds
	// secrets. Handles with the same name share their data.
	name string
}

func (s storeHandle) Destruct() error { return s.Close() }

// activeStores returns the stores of the loaded group_join handlers by
// name, for the admin API. During a reload the old and the new config's
// stores are both listed.
func activeStores() map[string]store.Store {
	out := make(map[string]store.Store)
	storePool.Range(func(_, v any) bool {
		if h, ok := v.(storeHandle); ok {
			out[h.name] = h.Store
		}
		return true
	})
	return out
}

// resolvedStore is a Redis store configuration with its placeholders
// resolved.
type resolvedStore struct {
	url, password, sentinelPassword, master string
	sentinels, cluster                      []string
}

// storeName names a store by what selects its data: the memory store by
// its reservation TTL (each TTL is a separate store), a Redis store by
// server(s), database and key prefix — without user, password or options:
//
//	redis://127.0.0.1:6379/0,key_prefix=groupjoin:
//	sentinel://mymaster@10.0.0.1:26379,10.0.0.2:26379/db=0,key_prefix=groupjoin:
//	cluster://10.0.0.1:7000,10.0.0.2:7000/key_prefix=groupjoin:
func (c *StoreConfig) storeName(r resolvedStore) string {
	if c.Type == "memory" {
		if c.ReservationTTL == 0 {
			return "memory"
		}
		return "memory,reservation_ttl=" + time.Duration(c.ReservationTTL).String()
	}
	prefix := c.KeyPrefix
	if prefix == "" {
		prefix = store.DefaultKeyPrefix
	}
	switch {
	case len(r.sentinels) > 0:
		return fmt.Sprintf("sentinel://%s@%s/db=%d,key_prefix=%s", r.master, strings.Join(r.sentinels, ","), c.DB, prefix)
	case len(r.cluster) > 0:
		return "cluster://" + strings.Join(r.cluster, ",") + "/key_prefix=" + prefix
	}
	name := "redis"
	if u, err := url.Parse(r.url); err == nil {
		db := u.Query().Get("db")
		u.User, u.RawQuery, u.Fragment, u.RawFragment = nil, "", "", ""
		name = u.String()
		if db != "" {
			name += ",db=" + db
		}
	}
	return name + ",key_prefix=" + prefix
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

// resolve replaces the placeholders of a Redis store configuration.
func (c *StoreConfig) resolve() (resolvedStore, error) {
	var r resolvedStore
	repl := caddy.NewReplacer()
	one := func(what, v string, required bool) (string, error) {
		out, err := repl.ReplaceOrErr(v, true, true)
		if err != nil || (required && out == "") {
			return "", fmt.Errorf("store redis: %s is empty or its placeholder cannot be resolved%s", what, placeholderHint(v))
		}
		return out, nil
	}
	list := func(what string, in []string) ([]string, error) {
		var out []string
		for _, v := range in {
			a, err := one(what, v, true)
			if err != nil {
				return nil, err
			}
			out = append(out, a)
		}
		return out, nil
	}
	var err error
	if c.URL != "" {
		if r.url, err = one("URL", c.URL, true); err != nil {
			return r, err
		}
	}
	if r.sentinels, err = list("a sentinel address", c.Sentinels); err != nil {
		return r, err
	}
	if r.cluster, err = list("a cluster node address", c.Cluster); err != nil {
		return r, err
	}
	if c.Master != "" {
		if r.master, err = one("master", c.Master, true); err != nil {
			return r, err
		}
	}
	if r.password, err = repl.ReplaceOrErr(c.Password, true, false); err != nil {
		return r, fmt.Errorf("store redis: password placeholder cannot be resolved%s", placeholderHint(c.Password))
	}
	if r.sentinelPassword, err = repl.ReplaceOrErr(c.SentinelPassword, true, false); err != nil {
		return r, fmt.Errorf("store redis: sentinel_password placeholder cannot be resolved%s", placeholderHint(c.SentinelPassword))
	}
	return r, nil
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

func (c *StoreConfig) open() (store.Store, string, error) {
	if err := c.check(); err != nil {
		return nil, "", err
	}
	opts := store.Options{ReservationTTL: time.Duration(c.ReservationTTL)}
	key := c.key()
	if c.Type == "memory" {
		v, _, err := storePool.LoadOrNew(key, func() (caddy.Destructor, error) {
			return storeHandle{store.NewMemory(opts), c.storeName(resolvedStore{})}, nil
		})
		if err != nil {
			return nil, "", err
		}
		return v.(storeHandle).Store, key, nil
	}
	// redis: check allows nothing else.
	r, err := c.resolve()
	if err != nil {
		return nil, "", err
	}
	store.RouteRedisLogs(func() *zap.Logger { return caddy.Log().Named("group_join.redis") })
	key = fmt.Sprintf("%s|%s|%q|%q|%s|%s|%s", key, r.url, r.sentinels, r.cluster, r.master, r.password, r.sentinelPassword)
	v, _, err := storePool.LoadOrNew(key, func() (caddy.Destructor, error) {
		ro := store.RedisOptions{Options: opts, URL: r.url, Password: r.password, KeyPrefix: c.KeyPrefix,
			Sentinels: r.sentinels, MasterName: r.master, SentinelPassword: r.sentinelPassword, DB: c.DB,
			Cluster:     r.cluster,
			MinReplicas: c.MinReplicas, ReplicaTimeout: time.Duration(c.ReplicaTimeout),
			DialTimeout: time.Duration(c.Timeout), ReadTimeout: time.Duration(c.Timeout), WriteTimeout: time.Duration(c.Timeout)}
		if c.TLS {
			ro.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		s, err := store.NewRedis(ro)
		if err != nil {
			return nil, err
		}
		return storeHandle{s, c.storeName(r)}, nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("store redis: %w", err)
	}
	return v.(storeHandle).Store, key, nil
}

// unmarshalStore parses:
//
//	store memory [{
//	    reservation_ttl <duration>
//	}]
//	store redis <url> [{
//	    password <password>
//	    key_prefix <prefix>
//	    timeout <duration>
//	    reservation_ttl <duration>
//	    tls
//	    min_replicas <n> [<timeout>]
//	}]
//	store redis {
//	    sentinels <host:port> [<host:port>…]
//	    master <name>
//	    sentinel_password <password>
//	    db <n>
//	    password <password>
//	    key_prefix <prefix>
//	    timeout <duration>
//	    reservation_ttl <duration>
//	    tls
//	    min_replicas <n> [<timeout>]
//	}
//	store redis {
//	    cluster <host:port> [<host:port>…]
//	    password <password>
//	    key_prefix <prefix>
//	    timeout <duration>
//	    reservation_ttl <duration>
//	    tls
//	    min_replicas <n> [<timeout>]
//	}
//
// Each option may be given once.
func unmarshalStore(d *caddyfile.Dispenser) (*StoreConfig, error) {
	c := new(StoreConfig)
	// A store without any server is reported at its own line.
	file, line := d.File(), d.Line()
	if !d.NextArg() {
		return nil, d.Err("store needs a type: memory or redis <url> (or a block with sentinels or cluster)")
	}
	c.Type = d.Val()
	switch c.Type {
	case "memory":
	case "redis":
		if d.NextArg() {
			c.URL = d.Val()
		}
	default:
		return nil, d.Errf("unknown store type %q (want memory or redis)", c.Type)
	}
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	seen := make(map[string]bool)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if seen[opt] {
			return nil, d.Errf("store option %q given twice", opt)
		}
		seen[opt] = true
		args := d.RemainingArgs()
		nargs := func(min, max int) error {
			if len(args) < min || len(args) > max {
				return d.ArgErr()
			}
			return nil
		}
		var err error
		switch opt {
		case "tls":
			err = nargs(0, 0)
			c.TLS = true
		case "password", "sentinel_password", "key_prefix", "master":
			if err = nargs(1, 1); err == nil {
				*map[string]*string{"password": &c.Password, "sentinel_password": &c.SentinelPassword,
					"key_prefix": &c.KeyPrefix, "master": &c.Master}[opt] = args[0]
			}
		case "sentinels", "cluster":
			if len(args) == 0 {
				return nil, d.Errf("%s needs at least one <host:port>", opt)
			}
			if opt == "sentinels" {
				c.Sentinels = args
			} else {
				c.Cluster = args
			}
		case "db":
			if c.URL != "" {
				return nil, d.Errf("unknown store option %q with a URL: the URL names its database (db is for sentinels)", opt)
			}
			if err = nargs(1, 1); err == nil {
				n, perr := strconv.Atoi(args[0])
				if perr != nil || n < 0 {
					return nil, d.Errf("db: %q is not a database number (0, 1, …)", args[0])
				}
				c.DB = n
			}
		case "timeout", "reservation_ttl":
			if err = nargs(1, 1); err == nil {
				dur, perr := caddy.ParseDuration(args[0])
				if perr != nil || dur <= 0 {
					return nil, d.Errf("%s: %q is not a positive duration", opt, args[0])
				}
				if opt == "timeout" {
					c.Timeout = caddy.Duration(dur)
				} else {
					c.ReservationTTL = caddy.Duration(dur)
				}
			}
		case "min_replicas":
			if err = nargs(1, 2); err == nil {
				n, perr := strconv.Atoi(args[0])
				if perr != nil || n < 1 {
					return nil, d.Errf("min_replicas: %q is not a number of replicas (>= 1)", args[0])
				}
				c.MinReplicas = n
				if len(args) == 2 {
					dur, perr := caddy.ParseDuration(args[1])
					if perr != nil || dur <= 0 {
						return nil, d.Errf("min_replicas: timeout %q is not a positive duration", args[1])
					}
					c.ReplicaTimeout = caddy.Duration(dur)
				}
			}
		default:
			return nil, d.Errf("unknown store option %q", opt)
		}
		if err != nil {
			return nil, err
		}
	}
	if err := c.check(); err != nil {
		if errors.Is(err, errNoRedisServer) {
			return nil, fmt.Errorf("%w, at %s:%d", err, file, line)
		}
		return nil, d.Err(err.Error())
	}
	return c, nil
}
