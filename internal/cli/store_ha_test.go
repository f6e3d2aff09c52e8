package cli_test

import (
	"context"
	"strings"
	"testing"

	"github.com/caddy-groupjoin/caddy-groupjoin/internal/cli"
	"github.com/caddy-groupjoin/caddy-groupjoin/store"
	"github.com/caddy-groupjoin/caddy-groupjoin/store/redistest"
)

func TestStoreFlagErrorsHA(t *testing.T) {
	base := []string{"mint", "invite", "--group", "g1", "--inviter", "bob", "--persistence", "nmd", "--register"}
	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--redis", "redis://a", "--redis-cluster", "a:1"}, "exclude each other"},
		{[]string{"--redis-sentinels", "a:1", "--redis-cluster", "b:1", "--redis-master", "m"}, "exclude each other"},
		{[]string{"--redis-sentinels", "a:1"}, "go together"},
		{[]string{"--redis-master", "m"}, "go together"},
		{[]string{"--redis", "redis://a", "--redis-db", "1"}, "--redis-db needs --redis-sentinels"},
		{[]string{"--redis-sentinels", ",", "--redis-master", "m"}, "needs host:port"},
		{[]string{"--redis-cluster", "a:1", "--min-replicas", "x"}, `--min-replicas: "x"`},
		{[]string{"--admin", "localhost:2019", "--min-replicas", "1"}, "--min-replicas needs"},
	} {
		res := mustCLI(t, 2, append(base, c.args...)...)
		if !strings.Contains(res.stderr, c.msg) || res.stdout != "" {
			t.Errorf("%q: stdout %q, stderr %q, want %q", c.args, res.stdout, res.stderr, c.msg)
		}
	}
}

// The CLI registers and revokes directly through sentinels and in a
// cluster, as the handler's store reads them.
func TestRegisterAndRevokeHA(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a replica set with sentinels and a Redis Cluster (skipped with -short)")
	}
	ctx := context.Background()
	rs := redistest.StartReplicaSet(t, 1, 1)
	sentinels := strings.Join(rs.SentinelAddrs(), ",")
	c := redistest.StartCluster(t, 3)
	nodes := strings.Join(c.Addrs(), ",")
	for _, tc := range []struct {
		name  string
		flags []string
		opts  store.RedisOptions
	}{
		{"sentinel", []string{"--redis-sentinels", sentinels, "--redis-master", rs.Master, "--redis-db", "2", "--min-replicas", "1"},
			store.RedisOptions{Sentinels: rs.SentinelAddrs(), MasterName: rs.Master, DB: 2}},
		{"cluster", []string{"--redis-cluster", nodes, "--min-replicas", "1"}, store.RedisOptions{Cluster: c.Addrs()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := store.NewRedis(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			m := mintJSON(t, append([]string{"--persistence", "nmd", "--register", "--uses", "3"}, tc.flags...)...)
			if inv, err := st.Get(ctx, m.TokenID); err != nil || inv.Limit != 3 {
				t.Fatalf("registered: %+v, %v", inv, err)
			}
			if res := mustCLI(t, 0, append([]string{"revoke", m.TokenID}, tc.flags...)...); res.stdout != "revoked "+m.TokenID+"\n" {
				t.Fatalf("revoke printed %q", res.stdout)
			}
			if inv, err := st.Get(ctx, m.TokenID); err != nil || !inv.Revoked {
				t.Fatalf("after revoke: %+v, %v", inv, err)
			}
		})
	}
	// Unmet min_replicas: the store refuses, exit 3, nothing printed.
	res := mustCLI(t, cli.ExitStore, "mint", "invite", "--group", "g1", "--inviter", "bob", "--persistence", "nmd", "--register",
		"--redis-sentinels", sentinels, "--redis-master", rs.Master, "--min-replicas", "5")
	if res.stdout != "" || !strings.Contains(res.stderr, "replicas") {
		t.Fatalf("min-replicas unmet: stdout %q stderr %q", res.stdout, res.stderr)
	}
}
