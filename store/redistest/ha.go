package redistest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// HATimeout bounds every wait for a replication, sentinel or cluster state.
var HATimeout = 60 * time.Second

// Do sends one command to addr on a fresh connection and returns the reply.
func Do(ctx context.Context, addr string, args ...any) (any, error) {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialerRetries: 1,
		DialTimeout: time.Second, ReadTimeout: 2 * time.Second, Protocol: 2})
	defer c.Close()
	return c.Do(ctx, args...).Result()
}

// Info returns the INFO section of addr as a field map ("" on error).
func Info(addr, section string) map[string]string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	v, err := Do(ctx, addr, "INFO", section)
	out := map[string]string{}
	if err != nil {
		return out
	}
	s, _ := v.(string)
	for _, line := range strings.Split(s, "\n") {
		if k, val, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			out[k] = val
		}
	}
	return out
}

// Eventually polls cond every 50ms until it holds, failing the test after
// HATimeout.
func Eventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(HATimeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("redistest: timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ReplicaSet is a primary with replicas and the sentinels that watch it,
// each a redis-server process on loopback.
type ReplicaSet struct {
	tb        testing.TB
	Master    string    // the name the sentinels know the primary by
	Servers   []*Server // data servers; Servers[0] started as the primary
	Sentinels []*Server
}

// SkipSentinelMessage is the reason given when sentinels cannot run.
const SkipSentinelMessage = "redis-server cannot run as a sentinel here (install redis-server and redis-sentinel) to run the Sentinel tests"

// StartReplicaSet starts one primary, replicas replicas and sentinels
// sentinels (quorum: a majority), with a 1s down-after period, and
// returns once the replicas are online and every sentinel knows them.
func StartReplicaSet(tb testing.TB, replicas, sentinels int) *ReplicaSet {
	tb.Helper()
	rs := &ReplicaSet{tb: tb, Master: "gjmaster"}
	primary := StartServer(tb)
	rs.Servers = append(rs.Servers, primary)
	for range replicas {
		rs.Servers = append(rs.Servers, StartServerArgs(tb, "--replicaof", "127.0.0.1", strconv.Itoa(primary.Port())))
	}
	rs.WaitReplicas(primary.Addr(), replicas)
	quorum := sentinels/2 + 1
	for i := range sentinels {
		conf := filepath.Join(tb.TempDir(), fmt.Sprintf("sentinel%d.conf", i))
		text := fmt.Sprintf("sentinel monitor %[1]s 127.0.0.1 %[2]d %[3]d\n"+
			"sentinel down-after-milliseconds %[1]s 1000\n"+
			"sentinel failover-timeout %[1]s 5000\n"+
			"sentinel parallel-syncs %[1]s 2\n", rs.Master, primary.Port(), quorum)
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			tb.Fatal(err)
		}
		rs.Sentinels = append(rs.Sentinels, startServer(tb, &Server{sentinelConf: conf}))
	}
	if sentinels > 0 {
		rs.WaitStable(primary.Addr(), replicas)
	}
	return rs
}

// SentinelAddrs are the sentinels' host:port addresses.
func (rs *ReplicaSet) SentinelAddrs() []string {
	out := make([]string, len(rs.Sentinels))
	for i, s := range rs.Sentinels {
		out[i] = s.Addr()
	}
	return out
}

// ServerAt returns the data server listening on addr.
func (rs *ReplicaSet) ServerAt(addr string) *Server {
	for _, s := range rs.Servers {
		if s.Addr() == addr {
			return s
		}
	}
	rs.tb.Fatalf("redistest: no server at %s", addr)
	return nil
}

// SentinelPrimary is the primary address every sentinel names, or "" when
// they disagree or one does not answer.
func (rs *ReplicaSet) SentinelPrimary() string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	agreed := ""
	for _, s := range rs.Sentinels {
		v, err := Do(ctx, s.Addr(), "SENTINEL", "GET-MASTER-ADDR-BY-NAME", rs.Master)
		l, ok := v.([]any)
		if err != nil || !ok || len(l) != 2 {
			return ""
		}
		addr := fmt.Sprintf("%v:%v", l[0], l[1])
		if agreed != "" && addr != agreed {
			return ""
		}
		agreed = addr
	}
	return agreed
}

// WaitReplicas waits until primary reports n replicas online.
func (rs *ReplicaSet) WaitReplicas(primary string, n int) {
	rs.tb.Helper()
	Eventually(rs.tb, fmt.Sprintf("%d replicas online at %s", n, primary), func() bool {
		return rs.replicasOnline(primary, n)
	})
}

// replicasOnline reports whether primary answers role:master with at
// least n replicas online.
func (rs *ReplicaSet) replicasOnline(primary string, n int) bool {
	info := Info(primary, "replication")
	if info["role"] != "master" {
		return false
	}
	online := 0
	for k, v := range info {
		if strings.HasPrefix(k, "slave") && strings.Contains(v, "state=online") {
			online++
		}
	}
	return online >= n
}

// WaitStable waits until every sentinel names the same primary, it answers
// role:master with n replicas online, and the sentinels see n replicas;
// it returns that primary. It is normally want; on a loaded machine the
// sentinels may have failed over once more meanwhile, and then the
// primary they agree on is the one to go on with.
func (rs *ReplicaSet) WaitStable(want string, n int) string {
	rs.tb.Helper()
	var agreed string
	stable := func() bool {
		agreed = rs.SentinelPrimary()
		if agreed == "" || !rs.replicasOnline(agreed, n) {
			return false
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		for _, s := range rs.Sentinels {
			v, err := Do(ctx, s.Addr(), "SENTINEL", "REPLICAS", rs.Master)
			l, _ := v.([]any)
			if err != nil || len(l) < n {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(HATimeout)
	for !stable() {
		if time.Now().After(deadline) {
			rs.tb.Fatalf("redistest: timed out waiting for the sentinels to agree on a primary with %d replicas (wanted %s; they say %s)", n, want, rs.sentinelViews())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if agreed != want {
		rs.tb.Logf("redistest: the sentinels moved on from %s to %s", want, agreed)
	}
	return agreed
}

// sentinelViews is what each sentinel names as the primary, for a
// failure message.
func (rs *ReplicaSet) sentinelViews() string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var views []string
	for _, s := range rs.Sentinels {
		v, err := Do(ctx, s.Addr(), "SENTINEL", "GET-MASTER-ADDR-BY-NAME", rs.Master)
		views = append(views, fmt.Sprintf("%s: %v %v", s.Addr(), v, err))
	}
	return strings.Join(views, "; ")
}

// WaitFailover waits until the sentinels agree on a primary other than
// old that answers role:master, and returns it.
func (rs *ReplicaSet) WaitFailover(old string) string {
	rs.tb.Helper()
	var now string
	Eventually(rs.tb, "a failover away from "+old, func() bool {
		now = rs.SentinelPrimary()
		return now != "" && now != old && Info(now, "replication")["role"] == "master"
	})
	return now
}

// Follow points every running data server other than primary at primary
// (REPLICAOF), as an operator would after a failover that Sentinel did
// not finish reconfiguring.
func (rs *ReplicaSet) Follow(primary string) {
	rs.tb.Helper()
	host, port, _ := strings.Cut(primary, ":")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, s := range rs.Servers {
		if s.Addr() == primary || !s.Running() {
			continue
		}
		info := Info(s.Addr(), "replication")
		if info["role"] == "slave" && info["master_port"] == port {
			continue
		}
		if _, err := Do(ctx, s.Addr(), "REPLICAOF", host, port); err != nil {
			rs.tb.Fatalf("redistest: REPLICAOF on %s: %v", s.Addr(), err)
		}
	}
}

// CutReplication makes the replicas of the set stop receiving writes
// until RestoreReplication: a wrong masterauth makes their resync fail
// after the link is killed (a killed link alone comes back at once).
func (rs *ReplicaSet) CutReplication(primary string) {
	rs.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, s := range rs.Servers {
		if s.Addr() == primary || !s.Running() {
			continue
		}
		if _, err := Do(ctx, s.Addr(), "CONFIG", "SET", "masterauth", "redistest-wrong-password"); err != nil {
			rs.tb.Fatalf("redistest: cut %s: %v", s.Addr(), err)
		}
		if _, err := Do(ctx, s.Addr(), "CLIENT", "KILL", "TYPE", "master"); err != nil {
			rs.tb.Fatalf("redistest: cut %s: %v", s.Addr(), err)
		}
	}
}

// RestoreReplication undoes CutReplication on the running servers.
func (rs *ReplicaSet) RestoreReplication() {
	rs.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, s := range rs.Servers {
		if !s.Running() {
			continue
		}
		if _, err := Do(ctx, s.Addr(), "CONFIG", "SET", "masterauth", ""); err != nil {
			rs.tb.Fatalf("redistest: restore %s: %v", s.Addr(), err)
		}
	}
}

// Running reports whether the server process is up.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd != nil
}

// Cluster is a Redis Cluster of redis-server processes on loopback.
type Cluster struct {
	tb    testing.TB
	Nodes []*Server
}

// StartCluster starts 2*primaries nodes (one replica each), creates the
// cluster with redis-cli and returns once every slot is served and every
// replica's link is up.
func StartCluster(tb testing.TB, primaries int) *Cluster {
	tb.Helper()
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		tb.Skip("redis-cli not found on PATH; install redis-tools to run the Cluster tests")
	}
	c := &Cluster{tb: tb}
	var addrs []string
	for range 2 * primaries {
		// The cluster bus listens on port+10000, which must stay <= 65535.
		n := startServer(tb, &Server{maxPort: 55000, extra: []string{"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "1000"}})
		c.Nodes = append(c.Nodes, n)
		addrs = append(addrs, n.Addr())
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "1", "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), HATimeout)
	defer cancel()
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		tb.Fatalf("redistest: redis-cli --cluster create: %v: %s", err, lastLines(string(out), 5))
	}
	c.WaitHealthy()
	return c
}

// Addrs are the nodes' host:port addresses.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.Addr()
	}
	return out
}

// WaitHealthy waits until every running node reports cluster_state:ok,
// every replica's link is up and each running primary of a slot range has
// a replica.
func (c *Cluster) WaitHealthy() {
	c.tb.Helper()
	Eventually(c.tb, "cluster_state:ok with all replica links up", func() bool {
		replicas := 0
		for _, n := range c.Nodes {
			if !n.Running() {
				continue
			}
			if Info(n.Addr(), "cluster")["cluster_enabled"] != "1" {
				return false
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			v, err := Do(ctx, n.Addr(), "CLUSTER", "INFO")
			cancel()
			if s, _ := v.(string); err != nil || !strings.Contains(s, "cluster_state:ok") {
				return false
			}
			r := Info(n.Addr(), "replication")
			if r["role"] == "slave" {
				if r["master_link_status"] != "up" {
					return false
				}
				replicas++
			}
		}
		running := 0
		for _, n := range c.Nodes {
			if n.Running() {
				running++
			}
		}
		return replicas >= running/2
	})
}

// PrimaryFor returns the node that currently serves key's slot as primary.
func (c *Cluster) PrimaryFor(key string) *Server {
	c.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, n := range c.Nodes {
		if !n.Running() {
			continue
		}
		if Info(n.Addr(), "replication")["role"] != "master" {
			continue
		}
		// A primary answers MOVED for a key whose slot it does not own.
		if _, err := Do(ctx, n.Addr(), "EXISTS", key); err == nil {
			return n
		}
	}
	c.tb.Fatalf("redistest: no running primary owns %q", key)
	return nil
}
