package groupjoin

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-groupjoin/caddy-groupjoin/internal/testcaddy"
	"github.com/caddy-groupjoin/caddy-groupjoin/store"
	"github.com/caddy-groupjoin/caddy-groupjoin/tokens"
)

// Slow and broken clients and backends. Each fault is repeated a few times
// so that a per-request goroutine leak shows above the slack of the
// goroutine count; every exchange is bounded by client deadlines.

// faultClient is bounded; it opens a connection per request.
var faultClient = testcaddy.Client(15 * time.Second)

func faultJoin(url, body, user string) (*http.Response, []byte, error) {
	req, err := http.NewRequest(http.MethodPost, url+"/user/groups/join", strings.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Auth-Token", user)
	resp, err := faultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

// faultBackend is a server whose handler is f; it is closed when the test
// ends.
func faultBackend(t *testing.T, f http.HandlerFunc) string {
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// garbageBackend answers every connection with bytes that are not HTTP.
func garbageBackend(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				_, _ = bufio.NewReader(c).ReadString('\n')
				_, _ = io.WriteString(c, "SSH-2.0-OpenSSH_9.9\r\n\x00\xff\xfe garbage \r\n\r\n")
			}()
		}
	}()
	return l.Addr().String()
}

// repeat runs f n times concurrently and waits.
func repeat(n int, f func(i int)) {
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); f(i) }()
	}
	wg.Wait()
}

func TestFaultBackends(t *testing.T) {
	user := access(t, "alice")
	release := make(chan struct{})
	var releaseOnce sync.Once
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })

	hang := faultBackend(t, func(w http.ResponseWriter, r *http.Request) {
		// Reading the body lets net/http notice the proxy hanging up.
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	reset := faultBackend(t, func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // RST, not FIN
		}
		conn.Close()
	})
	const huge = 50 << 20
	chunk := []byte(strings.Repeat("<p>lorem ipsum backend internals</p>\n", 1800))
	hugeBody := func(status int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(status)
			for sent := 0; sent < huge; sent += len(chunk) {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		}
	}
	huge404 := faultBackend(t, hugeBody(http.StatusNotFound))
	huge200 := faultBackend(t, hugeBody(http.StatusOK))
	garbage := garbageBackend(t)
	switching := faultBackend(t, func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nhello")
		_ = brw.Flush()
	})

	cases := []struct {
		name     string
		upstream string
		status   int
		code     string
		n        int
		memory   bool // check the allocation bound
	}{
		{"backend resets the connection", reset, 502, "bad_gateway", 5, false},
		{"backend hangs past response_header_timeout", hang, 504, "gateway_timeout", 4, false},
		{"backend answers garbage", garbage, 502, "bad_gateway", 5, false},
		// The edge never asks for an upgrade (it drops Connection), so
		// reverse_proxy refuses the 101 and writes nothing: "no answer",
		// 500, never a success.
		{"backend switches protocols unasked", switching, 500, "internal_error", 3, false},
		{"backend sends a 50 MB 404", huge404, 404, "not_found", 2, true},
		{"backend sends a 50 MB 200", huge200, 201, "", 2, true},
	}
	e := startEdge(t, edgeOpts{options: "key " + testSecret, proxy: "transport http {\n\t\t\tresponse_header_timeout 500ms\n\t\t}"})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e.reload(t, testcaddy.Adapt(t, e.config(edgeOpts{options: "key " + testSecret, upstream: c.upstream,
				proxy: "transport http {\n\t\t\tresponse_header_timeout 500ms\n\t\t}"})))
			check := func() {
				resp, body, err := faultJoin(e.url, joinBody(invite(t, "g1")), user)
				if err != nil {
					t.Errorf("no answer: %v", err)
					return
				}
				if c.status == 201 {
					if resp.StatusCode != 201 || len(body) != 0 || resp.Header.Get("Content-Type") != "" {
						t.Errorf("status %d, Content-Type %q, %d body bytes", resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
					}
					return
				}
				checkDocumented(t, resp, body, c.status, c.code, "")
				if strings.Contains(string(body), "lorem") || strings.Contains(string(body), "SSH") {
					t.Errorf("backend bytes leaked: %s", body)
				}
			}
			check() // warm up: the proxy's connection pool, Caddy's buffers
			settled := leakCheck(t, 2)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			if c.memory {
				for i := 0; i < c.n; i++ {
					check()
				}
			} else {
				repeat(c.n, func(int) { check() })
			}
			runtime.ReadMemStats(&after)
			if c.memory {
				// Each answer streamed 50 MB through the edge; what the
				// edge keeps of it is capped at 64 KiB.
				alloc := after.TotalAlloc - before.TotalAlloc
				if alloc > 24<<20 {
					t.Errorf("%d MB allocated for %d answers of 50 MB", alloc>>20, c.n)
				}
				t.Logf("%.1f MB allocated for %d answers of 50 MB", float64(alloc)/(1<<20), c.n)
			}
			settled()
		})
	}
	releaseOnce.Do(func() { close(release) })
	if n := len(e.backend.requests()); n != 0 {
		t.Errorf("the default backend saw %d requests", n)
	}
	e.checkNoPanic(t)
}

// TestFaultSlowClients: slowloris-style bodies and headers are cut off by
// Caddy's timeouts (read_body 1s, read_header 1s). A slow body gets the
// documented 400 invalid_request ("could not be read"), a slow header a
// closed connection; the backend never hears of either.
func TestFaultSlowClients(t *testing.T) {
	e := startEdge(t, edgeOpts{options: "key " + testSecret, servers: "timeouts {\n\t\t\tread_body 1s\n\t\t\tread_header 1s\n\t\t}"})
	user := access(t, "alice")
	body := joinBody(invite(t, "g1"))
	settled := leakCheck(t, 2)
	var answered400 atomic.Int32

	slowBody := func() {
		conn, err := net.DialTimeout("tcp", e.addr(), 5*time.Second)
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(15 * time.Second))
		head := fmt.Sprintf("POST /user/groups/join HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nX-Auth-Token: %s\r\nContent-Length: %d\r\n\r\n", e.addr(), user, len(body))
		if _, err := io.WriteString(conn, head); err != nil {
			t.Error(err)
			return
		}
		answered := make(chan struct{})
		go func() {
			defer close(answered)
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				// Closed without an answer is acceptable; hanging is not
				// (the deadline would report a timeout).
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					t.Errorf("slow body: no answer and no close: %v", err)
				}
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			checkDocumented(t, resp, b, 400, "invalid_request", "could not be read")
			answered400.Add(1)
		}()
		// One byte every 200 ms: the body would take minutes.
		for i := 0; i < len(body); i++ {
			select {
			case <-answered:
				return
			case <-time.After(200 * time.Millisecond):
			}
			if _, err := conn.Write([]byte{body[i]}); err != nil {
				break
			}
		}
		<-answered
	}
	slowHeader := func() {
		conn, err := net.DialTimeout("tcp", e.addr(), 5*time.Second)
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(15 * time.Second))
		head := "POST /user/groups/join HTTP/1.1\r\nHost: x\r\nX-Auth-Token: " + user
		for i := 0; i < len(head); i++ {
			if _, err := conn.Write([]byte{head[i]}); err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					t.Errorf("slow header: not closed by the server: %v", err)
				}
				return // closed by the server: what we want
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Errorf("slow header: still accepted after %d bytes", len(head))
	}
	repeat(6, func(i int) {
		if i%2 == 0 {
			slowBody()
		} else {
			slowHeader()
		}
	})
	if n := len(e.backend.requests()); n != 0 {
		t.Errorf("backend saw %d slow requests", n)
	}
	// read_body bounds the whole request, and the answer still goes out.
	if n := answered400.Load(); n != 3 {
		t.Errorf("%d of 3 slow bodies got the documented 400", n)
	}
	settled()
	e.checkNoPanic(t)
}

// TestFaultClientGone: clients that disconnect mid-body or while the
// backend is thinking leave nothing behind, and with `store memory` the
// use their reservation took is given back.
func TestFaultClientGone(t *testing.T) {
	arrived := make(chan struct{}, 16)
	hold := make(chan struct{})
	var holdOnce sync.Once
	t.Cleanup(func() { holdOnce.Do(func() { close(hold) }) })
	b := faultBackend(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-hold:
			w.WriteHeader(http.StatusNoContent)
			return
		default:
		}
		arrived <- struct{}{}
		select {
		case <-r.Context().Done():
		case <-hold:
			w.WriteHeader(http.StatusNoContent)
		}
	})
	const ttl = 17 * time.Minute // far longer than the test: only release can give the use back
	e := startEdge(t, edgeOpts{upstream: b, options: "key " + testSecret + "\n\t\tstore memory {\n\t\t\treservation_ttl 17m\n\t\t}"})
	st := memoryStore(t, ttl)
	user := access(t, "alice")
	ctx := context.Background()

	join := func(tokenID string) string {
		return joinBody(mintT(t, testSecret, tokens.InviteID(tokens.Persistence{Named: true}, "bob", "g1", tokenID)))
	}
	// disconnect sends whole joins, waits until the backend holds all of
	// them, and hangs up.
	disconnect := func(bodies ...string) {
		var conns []net.Conn
		for _, body := range bodies {
			conn, err := net.DialTimeout("tcp", e.addr(), 5*time.Second)
			if err != nil {
				t.Error(err)
				continue
			}
			conns = append(conns, conn)
			_, _ = io.WriteString(conn, fmt.Sprintf("POST /user/groups/join HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nX-Auth-Token: %s\r\nContent-Length: %d\r\n\r\n%s", e.addr(), user, len(body), body))
		}
		for range conns {
			select {
			case <-arrived:
			case <-time.After(10 * time.Second):
				t.Error("a join never reached the backend")
			}
		}
		for _, c := range conns {
			c.Close()
		}
	}
	// Warm up, then count.
	if err := st.Register(ctx, "warm", store.Unlimited, 0); err != nil {
		t.Fatal(err)
	}
	disconnect(join("warm"))
	waitReserved(t, st, "warm")
	settled := leakCheck(t, 2)

	ids := []string{"single-1", "single-2", "single-3", "single-4"}
	for _, id := range ids {
		if err := st.Register(ctx, id, 1, 0); err != nil {
			t.Fatal(err)
		}
	}
	bodies := make([]string, len(ids))
	for i, id := range ids {
		bodies[i] = join(id)
	}
	disconnect(bodies...)
	// Mid-body disconnects never get as far as the store.
	repeat(4, func(int) {
		conn, err := net.DialTimeout("tcp", e.addr(), 5*time.Second)
		if err != nil {
			t.Error(err)
			return
		}
		body := join("single-1")
		_, _ = io.WriteString(conn, fmt.Sprintf("POST /user/groups/join HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Auth-Token: %s\r\nContent-Length: %d\r\n\r\n%s", user, len(body), body[:len(body)/2]))
		time.Sleep(100 * time.Millisecond)
		conn.Close()
	})
	for _, id := range ids {
		waitReserved(t, st, id)
	}
	settled()

	// The uses are available again: each single-use invite admits once.
	holdOnce.Do(func() { close(hold) })
	for _, id := range ids {
		resp, body, err := faultJoin(e.url, join(id), user)
		if err != nil || resp.StatusCode != http.StatusCreated {
			t.Fatalf("%s after the client left: %v %v %s", id, err, resp, body)
		}
		inv, err := st.Get(ctx, id)
		if err != nil || inv.Used != 1 || inv.Reserved != 0 {
			t.Fatalf("%s: %+v %v", id, inv, err)
		}
		resp, body, err = faultJoin(e.url, join(id), user)
		if err != nil {
			t.Fatal(err)
		}
		checkDocumented(t, resp, body, 400, "invalid_token", "usage limit")
	}
	e.checkNoPanic(t)
}
