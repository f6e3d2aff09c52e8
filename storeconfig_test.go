package groupjoin

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func parseStore(t *testing.T, src string) (*StoreConfig, error) {
	t.Helper()
	d := caddyfile.NewTestDispenser(src)
	d.Next() // "store"
	return unmarshalStore(d)
}

func TestUnmarshalStoreHA(t *testing.T) {
	for _, c := range []struct {
		name, src string
		want      StoreConfig
	}{
		{"sentinel", `store redis {
			sentinels 10.0.0.1:26379 10.0.0.2:26379 {env.S3}
			master mymaster
			sentinel_password {env.SP}
			db 2
			password {env.P}
			key_prefix gj:
			timeout 2s
			reservation_ttl 30s
			tls
			min_replicas 1 250ms
		}`, StoreConfig{Type: "redis", Sentinels: []string{"10.0.0.1:26379", "10.0.0.2:26379", "{env.S3}"}, Master: "mymaster",
			SentinelPassword: "{env.SP}", DB: 2, Password: "{env.P}", KeyPrefix: "gj:", Timeout: caddy.Duration(2 * time.Second),
			ReservationTTL: caddy.Duration(30 * time.Second), TLS: true, MinReplicas: 1, ReplicaTimeout: caddy.Duration(250 * time.Millisecond)}},
		{"cluster", `store redis {
			cluster 10.0.0.1:7000 10.0.0.2:7000
			min_replicas 2
		}`, StoreConfig{Type: "redis", Cluster: []string{"10.0.0.1:7000", "10.0.0.2:7000"}, MinReplicas: 2}},
		{"url with min_replicas", `store redis redis://h:6379/0 {
			min_replicas 1
		}`, StoreConfig{Type: "redis", URL: "redis://h:6379/0", MinReplicas: 1}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseStore(t, c.src)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*got, c.want) {
				t.Fatalf("got  %+v\nwant %+v", *got, c.want)
			}
			// JSON mirrors the Caddyfile.
			b, _ := json.Marshal(got)
			var back StoreConfig
			if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, c.want) {
				t.Fatalf("JSON round trip: %s → %+v (%v)", b, back, err)
			}
		})
	}
}

func TestUnmarshalStoreHAErrors(t *testing.T) {
	for _, c := range []struct {
		name, src string
		line      int
		want      string
	}{
		{"url and sentinels", "store redis redis://a {\n sentinels a:1\n master m\n}", 4, "exclude each other"},
		{"url and cluster", "store redis redis://a {\n cluster a:1\n}", 3, "exclude each other"},
		{"sentinels and cluster", "store redis {\n sentinels a:1\n master m\n cluster b:1\n}", 5, "exclude each other"},
		{"sentinels without master", "store redis {\n sentinels a:1\n}", 3, "sentinels need master"},
		{"master without sentinels", "store redis {\n master m\n}", 3, "master needs sentinels"},
		{"sentinel_password without sentinels", "store redis {\n cluster a:1\n sentinel_password x\n}", 4, "sentinel_password needs sentinels"},
		{"db with cluster", "store redis {\n cluster a:1\n db 1\n}", 4, "db is for sentinels"},
		{"db with url", "store redis redis://a {\n db 1\n}", 2, `unknown store option "db" with a URL`},
		{"bad db", "store redis {\n sentinels a:1\n master m\n db x\n}", 4, `db: "x"`},
		{"empty sentinels", "store redis {\n sentinels\n master m\n}", 2, "sentinels needs at least one"},
		{"empty cluster", "store redis {\n cluster\n}", 2, "cluster needs at least one"},
		{"repeated master", "store redis {\n sentinels a:1\n master m\n master n\n}", 4, `store option "master" given twice`},
		{"repeated sentinels", "store redis {\n sentinels a:1\n sentinels b:1\n master m\n}", 3, `"sentinels" given twice`},
		{"repeated password", "store redis redis://a {\n password a\n password b\n}", 3, `"password" given twice`},
		{"repeated tls", "store redis redis://a {\n tls\n tls\n}", 3, `"tls" given twice`},
		{"min_replicas zero", "store redis redis://a {\n min_replicas 0\n}", 2, "min_replicas"},
		{"min_replicas word", "store redis redis://a {\n min_replicas some\n}", 2, `"some"`},
		{"min_replicas bad timeout", "store redis redis://a {\n min_replicas 1 soon\n}", 2, `timeout "soon"`},
		{"min_replicas three args", "store redis redis://a {\n min_replicas 1 1s 2\n}", 2, "wrong argument count"},
		{"min_replicas on memory", "store memory {\n min_replicas 1\n}", 3, "store memory only takes reservation_ttl"},
		{"tls with argument", "store redis redis://a {\n tls yes\n}", 2, "wrong argument count"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := parseStore(t, c.src)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not contain %q", err, c.want)
			}
			if at := "Testfile:" + itoa(c.line); !strings.Contains(err.Error(), at) {
				t.Errorf("error %q does not name %s", err, at)
			}
		})
	}
}

// TestStoreNameHasNoSecrets: the admin name of every kind of Redis store
// says where the data is and never carries a password.
func TestStoreNameHasNoSecrets(t *testing.T) {
	for _, c := range []struct {
		cfg  StoreConfig
		r    resolvedStore
		want string
	}{
		{StoreConfig{Type: "redis", URL: "x"}, resolvedStore{url: "redis://u:hunter22@127.0.0.1:6379/3?dial_timeout=1s", password: "hunter22"},
			"redis://127.0.0.1:6379/3,key_prefix=groupjoin:"},
		{StoreConfig{Type: "redis", Sentinels: []string{"x"}, Master: "m1", DB: 1, KeyPrefix: "p:", SentinelPassword: "x", Password: "x"},
			resolvedStore{sentinels: []string{"127.0.0.1:26379", "127.0.0.1:26380"}, master: "m1", password: "hunter22", sentinelPassword: "hunter33"},
			"sentinel://m1@127.0.0.1:26379,127.0.0.1:26380/db=1,key_prefix=p:"},
		{StoreConfig{Type: "redis", Cluster: []string{"x"}, Password: "x"},
			resolvedStore{cluster: []string{"127.0.0.1:7000", "127.0.0.1:7001"}, password: "hunter22"},
			"cluster://127.0.0.1:7000,127.0.0.1:7001/key_prefix=groupjoin:"},
	} {
		got := c.cfg.storeName(c.r)
		if got != c.want {
			t.Errorf("storeName = %q, want %q", got, c.want)
		}
		if strings.Contains(got, "hunter") {
			t.Errorf("storeName %q carries a secret", got)
		}
	}
}

// TestStoreCheckJSON: JSON configs get the same refusals as the Caddyfile.
func TestStoreCheckJSON(t *testing.T) {
	for _, c := range []struct {
		cfg  StoreConfig
		want string
	}{
		{StoreConfig{Type: "redis"}, "needs a URL, sentinels with master, or cluster"},
		{StoreConfig{Type: "redis", URL: "redis://a", Cluster: []string{"b:1"}}, "exclude each other"},
		{StoreConfig{Type: "redis", Cluster: []string{"b:1"}, MinReplicas: -1}, "min_replicas must not be negative"},
		{StoreConfig{Type: "redis", Cluster: []string{"b:1"}, ReplicaTimeout: caddy.Duration(time.Second)}, "needs min_replicas"},
		{StoreConfig{Type: "redis", Sentinels: []string{"a:1"}, Master: "m", DB: -1}, "db must not be negative"},
		{StoreConfig{Type: "memory", Sentinels: []string{"a:1"}}, "only takes reservation_ttl"},
	} {
		err := c.cfg.check()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("check(%+v) = %v, want %q", c.cfg, err, c.want)
		}
	}
	// Addresses that are not host:port are refused at open, without
	// echoing a secret.
	c := StoreConfig{Type: "redis", Cluster: []string{"nohostport"}, Password: "hunter22"}
	if _, _, err := c.open(); err == nil || !strings.Contains(err.Error(), "not host:port") || strings.Contains(err.Error(), "hunter22") {
		t.Errorf("open = %v", err)
	}
}
