package groupjoin

import (
	"strings"
	"testing"
)

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
