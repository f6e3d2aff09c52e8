package groupjoin

import (
	"net/http"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/caddy-groupjoin/caddy-groupjoin/tokens"
)

// Benchmarks of the traffic an edge really gets: nearly every join brings
// an invite it has never seen, so no bounded cache can hide the work.
// neverSeenInvites distinct invites (6 caveats each, bound to one of
// neverSeenUsers users) are rotated, each coming back only after all the
// others, far more than the invite cache holds; "shared" rotates
// sharedInvites, the case of a group's invite link shared with many
// people, where the cache helps. "forged" is the same stream signed with
// another key, answered 400.
//
// Besides time and allocations, each reports cached-invites (entries in
// the invite caches at the end) and live-KiB (the heap after a GC), the
// memory that invites which never come back still hold.
//
//	go test -run='^$' -bench=NeverSeen -benchmem -count=5 .

const (
	neverSeenUsers   = 200
	neverSeenInvites = 30000
	sharedInvites    = 2000
)

// neverSeenTraffic mints users' access tokens and n invites, each bound
// by its consumer caveat to the user who presents it and signed with
// secret.
func neverSeenTraffic(b *testing.B, n int, secret string) []benchPair {
	b.Helper()
	exp := time.Now().Add(time.Hour)
	users := make([]string, neverSeenUsers)
	for i := range users {
		id := tokens.AccessID(tokens.Persistence{Named: true}, "u"+strconv.Itoa(i), "", tokens.NewTokenID())
		users[i] = mintT(b, testSecret, id, benchAccessCaveats(exp)...)
	}
	pairs := make([]benchPair, n)
	for i := range pairs {
		u := i % neverSeenUsers
		id := tokens.InviteID(tokens.Persistence{Named: true}, "bob", "grp"+strconv.Itoa(i%499), tokens.NewTokenID())
		inv := mintT(b, secret, id, benchInviteCaveats(exp, "u"+strconv.Itoa(u))...)
		pairs[i] = benchPair{access: users[u], body: []byte(joinBody(inv))}
	}
	return pairs
}

func BenchmarkServeHTTPNeverSeen(b *testing.B) {
	for _, tc := range []struct {
		name   string
		n      int
		secret string
		want   int
	}{
		{"valid", neverSeenInvites, testSecret, http.StatusCreated},
		{"forged", neverSeenInvites, "not the configured secret", http.StatusBadRequest},
		{"shared", sharedInvites, testSecret, http.StatusCreated},
	} {
		b.Run(tc.name, func(b *testing.B) {
			h := benchHandler(b)
			pairs := neverSeenTraffic(b, tc.n, tc.secret)
			runBench(b, h, pairs, tc.want)
			b.StopTimer()
			passed, _, _ := h.invites.Passed.Stats()
			refused, _, _ := h.invites.Refused.Stats()
			b.ReportMetric(float64(passed+refused), "cached-invites")
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			b.ReportMetric(float64(ms.HeapAlloc)/1024, "live-KiB")
			runtime.KeepAlive(pairs)
			runtime.KeepAlive(h)
		})
	}
}
