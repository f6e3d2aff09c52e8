package groupjoin

import (
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

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
