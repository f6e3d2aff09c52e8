//go:build unix

package groupjoin

import (
	"context"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-groupjoin/caddy-groupjoin/store/redistest"
)

// BenchmarkJoinStoreHA compares, in one run, what one admitted join of a
// named invite costs per store: none, memory, one Redis, Sentinel and
// Cluster, each Redis kind without and with min_replicas 1. It runs
// (*Handler).ServeHTTP in this process (no HTTP) against real
// redis-server processes on loopback, and reports the p50 and p99 of one
// join and the CPU this process spent per join (user+system; the Redis
// servers' CPU is not included).
//
//	go test -run='^$' -bench=JoinStoreHA -benchtime=3000x -count=3 .
func BenchmarkJoinStoreHA(b *testing.B) {
	if testing.Short() {
		b.Skip("starts replica sets and a cluster (skipped with -short)")
	}
	single := redistest.StartReplicaSet(b, 1, 0) // one primary with one replica, no sentinel
	rs := redistest.StartReplicaSet(b, 1, 3)
	c := redistest.StartCluster(b, 3)
	primary := single.Servers[0].URL()
	// The unit of the comparison: one PING round trip to the primary.
	b.Run("ping-rtt", func(b *testing.B) {
		c := redis.NewClient(&redis.Options{Addr: single.Servers[0].Addr()})
		defer c.Close()
		lat := make([]time.Duration, 0, b.N)
		for range 50 {
			c.Ping(context.Background())
		}
		b.ResetTimer()
		for range b.N {
			t0 := time.Now()
			if err := c.Ping(context.Background()).Err(); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(t0))
		}
		b.StopTimer()
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	})
	for _, v := range []struct {
		name string
		cfg  *StoreConfig
	}{
		{"none", nil},
		{"memory", &StoreConfig{Type: "memory"}},
		{"redis", &StoreConfig{Type: "redis", URL: primary}},
		{"redis+min_replicas=1", &StoreConfig{Type: "redis", URL: primary, MinReplicas: 1}},
		{"sentinel", &StoreConfig{Type: "redis", Sentinels: rs.SentinelAddrs(), Master: rs.Master}},
		{"sentinel+min_replicas=1", &StoreConfig{Type: "redis", Sentinels: rs.SentinelAddrs(), Master: rs.Master, MinReplicas: 1}},
		{"cluster", &StoreConfig{Type: "redis", Cluster: c.Addrs()}},
		{"cluster+min_replicas=1", &StoreConfig{Type: "redis", Cluster: c.Addrs(), MinReplicas: 1}},
	} {
		b.Run(v.name, func(b *testing.B) { benchJoinLatency(b, v.cfg) })
	}
}

func benchJoinLatency(b *testing.B, sc *StoreConfig) {
	_, _, serve := newJoinBench(b, sc)
	for range 50 { // warm the pools and script caches
		serve()
	}
	lat := make([]time.Duration, 0, b.N)
	cpu0 := cpuTime()
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		serve()
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	cpu := cpuTime() - cpu0
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/join")
}

// cpuTime is this process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
