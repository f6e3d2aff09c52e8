package groupjoin

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-groupjoin/caddy-groupjoin/internal/cache"
	"github.com/caddy-groupjoin/caddy-groupjoin/internal/mmdbtest"
	"github.com/caddy-groupjoin/caddy-groupjoin/tokens"
)

// Benchmarks of the handler's hot path: whole requests through
// (*Handler).ServeHTTP with a next handler that drains the body and answers
// 204, as reverse_proxy to a fast backend would. Traffic rotates over
// benchUsers access tokens and benchInvites invites (each with the 6 caveats
// below, bound to one user), so the token caches see many users, each
// presenting their own token again and again, and thousands of invites, each
// seen again only after all the others. "valid/uncached-invite" runs
// without the invite cache: the cost of an invite seen for the first time.
//
//	go test -run='^$' -bench=ServeHTTP -benchmem -count=5 .
//
// The budget of a valid request is 8 µs of CPU and 70 allocations; BENCHMARKS.md has
// the current figures.

const (
	benchUsers   = 300
	benchInvites = 3000
)

var benchClientIP = "192.0.2.1"

// benchInviteCaveats returns the 6 caveats of a benchmarked invite: one of
// each kind an invite can carry.
func benchInviteCaveats(exp time.Time, user string) []string {
	return []string{
		tokens.TimeCaveat(exp),
		"ip = 198.51.100.0/24|192.0.2.0/24",
		"asn = 64500|64501",
		"geo.country = PL|FR",
		"geo.region = EU",
		"consumer = usr-" + user,
	}
}

// benchAccessCaveats are what a Onezone REST access token typically carries.
func benchAccessCaveats(exp time.Time) []string {
	return []string{
		tokens.TimeCaveat(exp),
		"interface = rest",
		"service = ozw-onezone",
		"api = ozw/create/group.*.join:*",
	}
}

// benchPair is one request's credentials: the caller's access token (none
// when empty) and the body.
type benchPair struct {
	access string
	body   []byte
	path   string // default /user/groups/join
}

// benchSlot is a request object re-armed for each use with the next
// pair's credentials, so that the loop measures the handler, not the
// construction of requests. A few slots in turn stand for the fresh
// request objects of a server: the data of the request is hot, as after
// reading it from the network, while credentials rotate.
type benchSlot struct {
	r     *http.Request
	buf   []byte // the body as read from the network
	rd    bytes.Reader
	repl  *caddy.Replacer
	tmpl  caddy.Replacer // the replacer as Caddy's server hands it over
	token []string       // X-Auth-Token's value
	ae    []string       // Accept-Encoding's value (the handler drops it)
	ct    []string       // Content-Type's value
	ua    []string       // User-Agent's value
}

const benchSlots = 8

type benchBody struct{ *bytes.Reader }

func (benchBody) Close() error { return nil }

func newBenchSlot() *benchSlot {
	r := handlerRequest(benchClientIP, "", "")
	r.Header.Set("User-Agent", "bench")
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	return &benchSlot{r: r, buf: make([]byte, 0, 2048), repl: repl, tmpl: *repl,
		token: make([]string, 1), ae: []string{"gzip"}, ct: []string{"application/json"}, ua: []string{"bench"}}
}

func (s *benchSlot) arm(p benchPair) *http.Request {
	*s.repl = s.tmpl // the placeholders provider the handler added is gone
	s.buf = append(s.buf[:0], p.body...)
	s.rd.Reset(s.buf)
	s.r.Body, s.r.GetBody, s.r.ContentLength = benchBody{&s.rd}, nil, int64(len(s.buf))
	// The client's headers only, as net/http hands a server each request
	// (the map is reused: its table stays allocated).
	clear(s.r.Header)
	s.r.Header["Content-Type"], s.r.Header["User-Agent"] = s.ct, s.ua
	s.r.Header["Accept-Encoding"] = s.ae
	s.r.URL.Path = p.path
	if p.path == "" {
		s.r.URL.Path = "/user/groups/join"
	}
	if p.access == "" {
		delete(s.r.Header, "X-Auth-Token")
	} else {
		s.token[0] = p.access
		s.r.Header["X-Auth-Token"] = s.token
	}
	return s.r
}

// benchWriter is a ResponseWriter that keeps only the status.
type benchWriter struct {
	h      http.Header
	status int
}

func (w *benchWriter) Header() http.Header         { return w.h }
func (w *benchWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *benchWriter) WriteHeader(s int)           { w.status = s }

func (w *benchWriter) reset() {
	clear(w.h)
	w.status = 0
}

// benchNext stands for reverse_proxy to a fast backend: it reads the body
// and answers 204.
var benchNext = caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
	_, _ = io.Copy(io.Discard, r.Body)
	w.WriteHeader(http.StatusNoContent)
	return nil
})

// benchHandler provisions a Handler the way Caddy does, with country and
// ASN mmdbs that place 192.0.2.0/24 in PL, AS64500.
func benchHandler(b *testing.B) *Handler {
	b.Helper()
	dir := b.TempDir()
	country, err := mmdbtest.WriteCountryDB(dir, map[string]string{"192.0.2.0/24": "PL", "198.51.100.0/24": "US"})
	if err != nil {
		b.Fatal(err)
	}
	asn, err := mmdbtest.WriteASNDB(dir, map[string]uint32{"192.0.2.0/24": 64500, "198.51.100.0/24": 64501})
	if err != nil {
		b.Fatal(err)
	}
	h := provisionHandler(b, &Handler{Shared: Shared{Keys: []Key{{Secret: testSecret}}, GeoIPDB: country, ASNDB: asn}})
	// A deployment logs at info or above: benchmark with the level check
	// only (logs off); BenchmarkServeHTTP/logged shows an info line's cost.
	h.logger = zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()),
		zapcore.AddSync(io.Discard), zapcore.WarnLevel))
	return h
}

// benchTraffic mints users' access tokens and invites (each bound by its
// consumer caveat to one user) and pairs them into requests. badInvites
// signs the invites with another key.
func benchTraffic(b *testing.B, badInvites bool) []benchPair {
	b.Helper()
	return benchTrafficOf(b, tokens.UserJoinGroup, badInvites)
}

// benchTrafficOf is benchTraffic with invites of type typ: on a route
// where a group joins, the request's path names one of 97 groups.
func benchTrafficOf(b *testing.B, typ tokens.InviteType, badInvites bool) []benchPair {
	b.Helper()
	exp := time.Now().Add(time.Hour)
	users := make([]string, benchUsers)
	for i := range users {
		id := tokens.AccessID(tokens.Persistence{Named: true}, "u"+strconv.Itoa(i), "", tokens.NewTokenID())
		users[i] = mintT(b, testSecret, id, benchAccessCaveats(exp)...)
	}
	secret := testSecret
	if badInvites {
		secret = "not the configured secret"
	}
	pairs := make([]benchPair, benchInvites)
	for i := range pairs {
		u := i % benchUsers
		id := tokens.InviteIDOf(tokens.Persistence{Named: true}, typ, "bob", "grp"+strconv.Itoa(i%97), tokens.NewTokenID())
		inv := mintT(b, secret, id, benchInviteCaveats(exp, "u"+strconv.Itoa(u))...)
		pairs[i] = benchPair{access: users[u], body: []byte(joinBody(inv))}
		if typ.Joiner == tokens.EntityGroup {
			pairs[i].path = "/groups/child" + strconv.Itoa(i%89) + "/parents/join"
		}
	}
	return pairs
}

// runBench sends the pairs round robin and checks every answer.
func runBench(b *testing.B, h *Handler, pairs []benchPair, want int) {
	b.Helper()
	w := &benchWriter{h: make(http.Header)}
	var slots [benchSlots]*benchSlot
	for i := range slots {
		slots[i] = newBenchSlot()
	}
	// One pass first: fail loudly when the fixture is wrong, and warm the
	// caches as a running edge has them.
	for i, p := range pairs {
		w.reset()
		if err := h.ServeHTTP(w, slots[i%benchSlots].arm(p), benchNext); err != nil || w.status != want {
			b.Fatalf("status %d (err %v), want %d", w.status, err, want)
		}
	}
	b.ReportAllocs()
	i := 0
	cpu := processCPU()
	for b.Loop() {
		r := slots[i%benchSlots].arm(pairs[i%len(pairs)])
		i++
		w.reset()
		_ = h.ServeHTTP(w, r, benchNext)
		if w.status != want {
			b.Fatalf("status %d, want %d", w.status, want)
		}
	}
	// ns/op is wall time, which on a shared 2-core machine mostly measures
	// the neighbours; the process's CPU time per request (GC included) is
	// the steadier figure.
	reportCPU(b, cpu)
}

// BenchmarkServeHTTP is the hot path: a valid access token and a valid
// invite with 6 caveats, forwarded, answered 201.
func BenchmarkServeHTTP(b *testing.B) {
	h := benchHandler(b)
	reqs := benchTraffic(b, false)
	b.Run("valid", func(b *testing.B) { runBench(b, h, reqs, http.StatusCreated) })
	b.Run("valid/uncached-invite", func(b *testing.B) {
		withoutCache(&h.invites, func() { runBench(b, h, reqs, http.StatusCreated) })
	})
	// A route where a group joins a group: the same work plus the path's
	// {id}, two more headers' worth of values, and the Location's three
	// parts.
	gjg, _ := tokens.InviteTypeByName("groupJoinGroup")
	parents := sibling(b, h, gjg.Name)
	parentReqs := benchTrafficOf(b, gjg, false)
	b.Run("group-route", func(b *testing.B) { runBench(b, parents, parentReqs, http.StatusCreated) })
	b.Run("logged", func(b *testing.B) {
		saved := h.logger
		defer func() { h.logger = saved }()
		h.logger = zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()),
			zapcore.AddSync(io.Discard), zapcore.InfoLevel))
		runBench(b, h, reqs, http.StatusCreated)
	})
}

// BenchmarkServeHTTPRejected: a valid user presenting invites signed with
// another key, answered 400 invalid_token without calling the next handler.
// "uncached-invite": each forged invite as if seen for the first time.
func BenchmarkServeHTTPRejected(b *testing.B) {
	h := benchHandler(b)
	reqs := benchTraffic(b, true)
	b.Run("seen", func(b *testing.B) { runBench(b, h, reqs, http.StatusBadRequest) })
	b.Run("uncached-invite", func(b *testing.B) {
		withoutCache(&h.invites, func() { runBench(b, h, reqs, http.StatusBadRequest) })
	})
	// The same refusals written in Onezone's model (tokenInvalid).
	b.Run("onezone", func(b *testing.B) {
		h.onezone = true
		defer func() { h.onezone = false }()
		runBench(b, h, reqs, http.StatusBadRequest)
	})
}

// withoutCache runs f with the caches *c off: every token as if seen for
// the first time.
func withoutCache(c **cache.Tokens, f func()) {
	saved := *c
	defer func() { *c = saved }()
	*c = nil
	f()
}

// BenchmarkServeHTTPUnauthorized: no credentials (401 unauthorized), and
// an access token signed with another key (401 invalid_token).
func BenchmarkServeHTTPUnauthorized(b *testing.B) {
	h := benchHandler(b)
	exp := time.Now().Add(time.Hour)
	inv := invite(b, "g1", benchInviteCaveats(exp, "alice")...)
	b.Run("none", func(b *testing.B) {
		runBench(b, h, []benchPair{{body: []byte(joinBody(inv))}}, http.StatusUnauthorized)
	})
	pairs := make([]benchPair, benchUsers)
	for i := range pairs {
		id := tokens.AccessID(tokens.Persistence{Named: true}, "u"+strconv.Itoa(i), "", tokens.NewTokenID())
		pairs[i] = benchPair{access: mintT(b, "not the configured secret", id, benchAccessCaveats(exp)...), body: []byte(joinBody(inv))}
	}
	b.Run("forged", func(b *testing.B) { runBench(b, h, pairs, http.StatusUnauthorized) })
	b.Run("forged/uncached", func(b *testing.B) {
		withoutCache(&h.access, func() { runBench(b, h, pairs, http.StatusUnauthorized) })
	})
}

// BenchmarkServeHTTPParallel is BenchmarkServeHTTP/valid from every CPU at
// once, as a server runs it: shared state (caches, geo cache, metrics,
// pools) must not make a request dearer when others run beside it.
// Compare its cpu-ns/op with BenchmarkServeHTTP/valid's.
func BenchmarkServeHTTPParallel(b *testing.B) {
	h := benchHandler(b)
	pairs := benchTraffic(b, false)
	b.ReportAllocs()
	var next atomic.Int64
	cpu := processCPU()
	b.RunParallel(func(pb *testing.PB) {
		w := &benchWriter{h: make(http.Header)}
		var slots [benchSlots]*benchSlot
		for i := range slots {
			slots[i] = newBenchSlot()
		}
		i := int(next.Add(int64(len(pairs) / 2))) // goroutines start apart in the traffic
		for pb.Next() {
			r := slots[i%benchSlots].arm(pairs[i%len(pairs)])
			i++
			w.reset()
			_ = h.ServeHTTP(w, r, benchNext)
			if w.status != http.StatusCreated {
				b.Errorf("status %d, want %d", w.status, http.StatusCreated)
				return
			}
		}
	})
	reportCPU(b, cpu)
}
