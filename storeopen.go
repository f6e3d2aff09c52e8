package groupjoin

import (
	"crypto/tls"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/caddy-groupjoin/caddy-groupjoin/store"
	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
)

// Resolving a store's configuration and opening it from storePool, where
// handlers with the same configuration share one store across reloads.

// storeHandle is a store as storePool keeps it.
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
