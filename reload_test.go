package groupjoin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-groupjoin/caddy-groupjoin/internal/testcaddy"
	"github.com/caddy-groupjoin/caddy-groupjoin/tokens"
)

// Config reloads and key rotation while valid joins flow. A join whose keys
// are in both the old and the new config is answered 201, never anything
// else (no 4xx, no 5xx), and no request that Caddy handled loses its
// connection. A generation removed by a reload is refused by the first
// answer after the reload returns.
//
// What the edge cannot promise: during the listener swap, Caddy's old
// server closes a few connections, unanswered, before any handler runs
// (see loadResult.check). Those requests reached neither the edge nor the
// backend; the test proves that for each of them and counts them.

// genSecret is the test secret of generation g.
func genSecret(g uint64) string { return fmt.Sprintf("rotation-secret-of-generation-%d", g) }

// rotationOptions: the default key and the keys of gens.
func rotationOptions(gens ...uint64) edgeOpts {
	var b strings.Builder
	b.WriteString("key " + testSecret)
	for _, g := range gens {
		fmt.Fprintf(&b, "\n\t\tkey %d %s", g, genSecret(g))
	}
	// The access log stays on: it tells which requests Caddy handled.
	return edgeOpts{options: b.String()}
}

func tmpInviteOf(t testing.TB, g uint64) string {
	return joinBody(mintT(t, genSecret(g), tokens.InviteID(tokens.Persistence{Generation: g}, "bob", "g1", tokens.NewTokenID())))
}

// loadResult is what the load saw.
type loadResult struct {
	ok atomic.Int64
	mu sync.Mutex
	// answers: HTTP answers other than 201, by status and body.
	answers map[string]int
	// dropped: connection errors, with the request's X-Load-Id.
	dropped []droppedConn
}

type droppedConn struct {
	id  string
	err string
}

func (r *loadResult) answer(what string) {
	r.mu.Lock()
	if r.answers == nil {
		r.answers = make(map[string]int)
	}
	r.answers[what]++
	r.mu.Unlock()
}

func (r *loadResult) drop(id string, err error) {
	r.mu.Lock()
	r.dropped = append(r.dropped, droppedConn{id, err.Error()})
	r.mu.Unlock()
}

// check fails the test for every answer that is not 201, and for every
// connection error of a request that Caddy handled (its X-Load-Id is in
// the access log) or that reached the backend. Connections closed before Caddy read a request
// are the server's to lose during a reload, not the edge's: on Linux
// Caddy opens the new listener with SO_REUSEPORT next to the old one, the
// kernel spreads new connections over both, and net/http's Shutdown of the
// old server closes, unanswered, a connection whose request it reads after
// the shutdown began (golang/go#65802: so that the client may retry). They
// are counted and logged.
func (r *loadResult) check(t *testing.T, e *edge) (dropped int) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, n := range r.answers {
		t.Errorf("%d valid joins answered %s", n, k)
	}
	handled := accessLogIDs(e.logText())
	reached := make(map[string]bool)
	for _, req := range e.backend.requests() {
		reached[req.header.Get("X-Load-Id")] = true
	}
	for _, d := range r.dropped {
		switch {
		case handled[d.id]:
			t.Errorf("request %s failed after Caddy handled it: %s", d.id, d.err)
		case reached[d.id]:
			t.Errorf("request %s reached the backend, but its client got: %s", d.id, d.err)
		default:
			t.Logf("request %s closed by the old server before any handler ran: %s", d.id, d.err)
			dropped++
		}
	}
	return dropped
}

// accessLogIDs returns the X-Load-Id of the requests in Caddy's access log.
func accessLogIDs(logs string) map[string]bool {
	ids := make(map[string]bool)
	for _, line := range strings.Split(logs, "\n") {
		if !strings.Contains(line, `"logger":"http.log.access`) {
			continue
		}
		var entry struct {
			Request struct {
				Headers http.Header `json:"headers"`
			} `json:"request"`
		}
		if json.Unmarshal([]byte(line), &entry) == nil {
			if id := entry.Request.Headers.Get("X-Load-Id"); id != "" {
				ids[id] = true
			}
		}
	}
	return ids
}

// runLoad sends valid joins from workers until stop is closed or max
// requests were sent; body and user make each request.
func runLoad(url string, workers, max int, stop <-chan struct{}, body func() string, user string) (*loadResult, func()) {
	res := new(loadResult)
	client := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	var sent, ids atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for sent.Add(1) <= int64(max) {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("load-%d", ids.Add(1))
				req, err := http.NewRequest(http.MethodPost, url+"/user/groups/join", strings.NewReader(body()))
				if err != nil {
					res.answer(err.Error())
					continue
				}
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-Auth-Token", user)
				req.Header.Set("X-Load-Id", id)
				resp, err := client.Do(req)
				if err != nil {
					res.drop(id, err)
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					res.answer(fmt.Sprintf("%d %s", resp.StatusCode, b))
					continue
				}
				res.ok.Add(1)
			}
		}()
	}
	return res, wg.Wait
}

// probeJoin sends one join right after a reload (edge.reload has waited
// for the old listener to close). Should a connection still be closed
// unanswered during the swap, it is retried: it was never handled. The
// first answer is what counts.
func probeJoin(t *testing.T, e *edge, body, user string) *http.Response {
	t.Helper()
	for attempt := 1; ; attempt++ {
		req, err := http.NewRequest(http.MethodPost, e.url+"/user/groups/join", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Auth-Token", user)
		resp, err := e.client.Do(req)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			resp.Body = io.NopCloser(bytes.NewReader(b))
			return resp
		}
		if attempt == 5 {
			t.Fatalf("probe: no answer after %d attempts: %v", attempt, err)
		}
		t.Logf("probe: connection closed during the listener swap, retrying: %v", err)
		time.Sleep(20 * time.Millisecond)
	}
}

func TestReloadRotationUnderLoad(t *testing.T) {
	e := startEdge(t, rotationOptions(5, 6))
	user := access(t, "alice") // default key: present in every config
	// Sanity before the load: both generations verify.
	for _, g := range []uint64{5, 6} {
		if resp := e.join(tmpInviteOf(t, g), "X-Auth-Token", user); resp.StatusCode != http.StatusCreated {
			t.Fatalf("tmp-%d before any reload: %d %s", g, resp.StatusCode, bodyOf(resp))
		}
	}
	stop := make(chan struct{})
	res, wait := runLoad(e.url, 4, 3000, stop, func() string { return tmpInviteOf(t, 6) }, user)

	type probe struct {
		gen    uint64
		status int
		desc   string
	}
	steps := []struct {
		gens   []uint64
		probes []probe
	}{
		// Rotate: add 7, remove 5 (now below the lowest: revoked).
		{[]uint64{6, 7}, []probe{{5, 400, "revoked"}, {7, 201, ""}}},
		// New key only.
		{[]uint64{6, 7, 8}, []probe{{8, 201, ""}, {7, 201, ""}}},
		// Remove 7 from the middle: no key (not below the lowest).
		{[]uint64{6, 8}, []probe{{7, 400, "could not be validated"}, {5, 400, "revoked"}}},
		// New key only, then the same config again.
		{[]uint64{6, 8, 9}, []probe{{9, 201, ""}}},
		{[]uint64{6, 8, 9}, []probe{{9, 201, ""}, {8, 201, ""}}},
	}
	probes201 := 2
	for _, s := range steps {
		time.Sleep(400 * time.Millisecond)
		e.reload(t, testcaddy.Adapt(t, e.config(rotationOptions(s.gens...))))
		// The reload has returned: the new keys decide at once.
		for _, p := range s.probes {
			resp := probeJoin(t, e, tmpInviteOf(t, p.gen), user)
			if p.status == 201 {
				if resp.StatusCode != 201 {
					t.Errorf("keys %v: tmp-%d got %d %s", s.gens, p.gen, resp.StatusCode, bodyOf(resp))
				}
				probes201++
				continue
			}
			expectError(t, resp, p.status, "invalid_token")
			if !strings.Contains(bodyOf(resp), p.desc) {
				t.Errorf("keys %v: tmp-%d: %s, want %q", s.gens, p.gen, bodyOf(resp), p.desc)
			}
		}
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wait()
	dropped := res.check(t, e)
	if res.ok.Load() < 20 {
		t.Errorf("only %d joins went through: the load did not overlap the reloads", res.ok.Load())
	}
	// No dropped connection reached the backend, and no join was counted
	// twice.
	if got, want := len(e.backend.requests()), int(res.ok.Load())+probes201; got != want {
		t.Errorf("backend saw %d joins, the clients %d", got, want)
	}
	t.Logf("%d valid joins across %d reloads answered 201; %d connections closed by the old server before any handler", res.ok.Load(), len(steps), dropped)
}

// TestReloadNewKeysUnderLoad: a reload that only adds keys (the first step
// of a rotation) loses no request, whichever key the request's tokens use.
func TestReloadNewKeysUnderLoad(t *testing.T) {
	e := startEdge(t, rotationOptions(3))
	user := mintT(t, genSecret(3), tokens.AccessID(tokens.Persistence{Generation: 3}, "alice", "", "a-tmp3"))
	var n atomic.Int64
	body := func() string {
		if n.Add(1)%2 == 0 {
			return joinBody(invite(t, "g1")) // named: default key
		}
		return tmpInviteOf(t, 3)
	}
	stop := make(chan struct{})
	res, wait := runLoad(e.url, 4, 3000, stop, body, user)
	gens := []uint64{3}
	for g := uint64(4); g <= 7; g++ {
		time.Sleep(400 * time.Millisecond)
		gens = append(gens, g)
		e.reload(t, testcaddy.Adapt(t, e.config(rotationOptions(gens...))))
		if resp := probeJoin(t, e, tmpInviteOf(t, g), user); resp.StatusCode != 201 {
			t.Errorf("tmp-%d right after its key was added: %d %s", g, resp.StatusCode, bodyOf(resp))
		}
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wait()
	dropped := res.check(t, e)
	if res.ok.Load() < 20 {
		t.Errorf("only %d joins went through: the load did not overlap the reloads", res.ok.Load())
	}
	if got, want := len(e.backend.requests()), int(res.ok.Load())+4; got != want {
		t.Errorf("backend saw %d joins, the clients %d", got, want)
	}
	t.Logf("%d valid joins across 4 key additions answered 201; %d connections closed by the old server before any handler", res.ok.Load(), dropped)
}
