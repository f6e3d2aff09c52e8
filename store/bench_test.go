package store

import (
	"testing"

	"github.com/caddy-groupjoin/caddy-groupjoin/store/redistest"
)

// BenchmarkReserveCommit measures one admitted join: Reserve + Commit.
func BenchmarkReserveCommit(b *testing.B) {
	b.Run("memory", func(b *testing.B) {
		benchReserveCommit(b, NewMemory(Options{}))
	})
	b.Run("redis", func(b *testing.B) {
		srv := redistest.StartServer(b)
		s, err := NewRedis(RedisOptions{URL: srv.URL()})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		benchReserveCommit(b, s)
	})
}

func benchReserveCommit(b *testing.B, s Store) {
	if err := s.Register(bg, "bench", Unlimited, 0); err != nil {
		b.Fatal(err)
	}
	run := func(b *testing.B, parallel bool) {
		b.ReportAllocs()
		op := func() {
			r, err := s.Reserve(bg, "bench")
			if err != nil {
				b.Fatal(err)
			}
			if err := r.Commit(bg); err != nil {
				b.Fatal(err)
			}
		}
		if !parallel {
			for b.Loop() {
				op()
			}
			return
		}
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				op()
			}
		})
	}
	b.Run("serial", func(b *testing.B) { run(b, false) })
	b.Run("parallel", func(b *testing.B) { run(b, true) })
}
