package groupjoin

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-groupjoin/caddy-groupjoin/store"
)

// StoreConfig selects where the usage limits and revocations of named
// invites live. With a store, an nmd invite must be registered before use.
type StoreConfig struct {
	// "memory" (one instance) or "redis" (a fleet).
	Type string `json:"type"`
	// Redis URL: redis://[:password@]host:port/db, or rediss:// for TLS.
	// Placeholders such as {env.REDIS_URL} are resolved at provision.
	URL string `json:"url,omitempty"`
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
	// Use TLS even with a redis:// URL.
	TLS bool `json:"tls,omitempty"`
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

// storeName names a store by what selects its data: the memory store by
// its reservation TTL (each TTL is a separate store), a Redis store by
// server, database and key prefix — without user, password or options.
func (c *StoreConfig) storeName(redisURL string) string {
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
	name := "redis"
	if u, err := url.Parse(redisURL); err == nil {
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
	return fmt.Sprintf("%s|%s|%s|%d|%d|%t", c.Type, c.URL, c.KeyPrefix, c.Timeout, c.ReservationTTL, c.TLS)
}

// check refuses what the Caddyfile cannot express either: an unknown type,
// or Redis-only fields on the memory store (they would select a second
// memory store under the same admin name, splitting the counts).
func (c *StoreConfig) check() error {
	switch c.Type {
	case "memory":
		if c.URL != "" || c.Password != "" || c.KeyPrefix != "" || c.Timeout != 0 || c.TLS {
			return errors.New("store memory only takes reservation_ttl")
		}
	case "redis":
	default:
		return fmt.Errorf("unknown store type %q (want memory or redis)", c.Type)
	}
	if c.Timeout < 0 || c.ReservationTTL < 0 {
		return errors.New("store: timeout and reservation_ttl must be positive")
	}
	return nil
}

func (c *StoreConfig) open() (store.Store, string, error) {
	if err := c.check(); err != nil {
		return nil, "", err
	}
	opts := store.Options{ReservationTTL: time.Duration(c.ReservationTTL)}
	key := c.key()
	if c.Type == "memory" {
		v, _, err := storePool.LoadOrNew(key, func() (caddy.Destructor, error) {
			return storeHandle{store.NewMemory(opts), c.storeName("")}, nil
		})
		if err != nil {
			return nil, "", err
		}
		return v.(storeHandle).Store, key, nil
	}
	// redis: check allows nothing else.
	repl := caddy.NewReplacer()
	url, err := repl.ReplaceOrErr(c.URL, true, true)
	if err != nil || url == "" {
		return nil, "", fmt.Errorf("store redis: URL is empty or its placeholder cannot be resolved%s", placeholderHint(c.URL))
	}
	pass, err := repl.ReplaceOrErr(c.Password, true, false)
	if err != nil {
		return nil, "", fmt.Errorf("store redis: password placeholder cannot be resolved%s", placeholderHint(c.Password))
	}
	key = key + "|" + url + "|" + pass
	v, _, err := storePool.LoadOrNew(key, func() (caddy.Destructor, error) {
		ro := store.RedisOptions{Options: opts, URL: url, Password: pass, KeyPrefix: c.KeyPrefix,
			DialTimeout: time.Duration(c.Timeout), ReadTimeout: time.Duration(c.Timeout), WriteTimeout: time.Duration(c.Timeout)}
		if c.TLS {
			ro.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		s, err := store.NewRedis(ro)
		if err != nil {
			return nil, err
		}
		return storeHandle{s, c.storeName(url)}, nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("store redis: %w", err)
	}
	return v.(storeHandle).Store, key, nil
}

// unmarshalStore parses:
//
//	store memory
//	store redis <url> {
//	    password <password>
//	    key_prefix <prefix>
//	    timeout <duration>
//	    reservation_ttl <duration>
//	    tls
//	}
//
// (reservation_ttl also applies to memory).
func unmarshalStore(d *caddyfile.Dispenser) (*StoreConfig, error) {
	c := new(StoreConfig)
	if !d.NextArg() {
		return nil, d.Err("store needs a type: memory or redis <url>")
	}
	c.Type = d.Val()
	switch c.Type {
	case "memory":
	case "redis":
		if !d.NextArg() {
			return nil, d.Err("store redis needs a URL, e.g. redis://127.0.0.1:6379/0")
		}
		c.URL = d.Val()
	default:
		return nil, d.Errf("unknown store type %q (want memory or redis)", c.Type)
	}
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		switch opt {
		case "tls":
			c.TLS = true
			continue
		case "password", "key_prefix", "timeout", "reservation_ttl":
		default:
			return nil, d.Errf("unknown store option %q", opt)
		}
		var val string
		if !d.AllArgs(&val) {
			return nil, d.ArgErr()
		}
		switch opt {
		case "password":
			c.Password = val
		case "key_prefix":
			c.KeyPrefix = val
		case "timeout", "reservation_ttl":
			dur, err := caddy.ParseDuration(val)
			if err != nil || dur <= 0 {
				return nil, d.Errf("%s: %q is not a positive duration", opt, val)
			}
			if opt == "timeout" {
				c.Timeout = caddy.Duration(dur)
			} else {
				c.ReservationTTL = caddy.Duration(dur)
			}
		}
	}
	if err := c.check(); err != nil {
		return nil, d.Err(err.Error())
	}
	return c, nil
}
