// Package testcaddy runs real Caddy servers for tests: the in-process Caddy
// (one per test binary, reconfigured per test) and, for tests that need
// several instances, the binary built from ./cmd/caddy.
package testcaddy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"

	// The Caddyfile adapter and the standard modules, as in cmd/caddy.
	_ "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Adapt turns a Caddyfile into JSON, failing the test on errors or
// warnings.
func Adapt(t testing.TB, caddyfile string) []byte {
	t.Helper()
	cfg, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		t.Fatalf("adapting Caddyfile: %v\n%s", err, caddyfile)
	}
	for _, w := range warnings {
		if strings.Contains(w.Message, "not formatted") {
			continue
		}
		t.Logf("Caddyfile warning: %s", w.String())
	}
	return cfg
}

var loadMu sync.Mutex

// SkipShort skips the test under -short. Every helper here that starts a
// Caddy (Load, LoadCaddyfile, Binary, StartProcess) calls it: the short
// loop runs only tests that need no server.
func SkipShort(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a real Caddy; runs without -short")
	}
}

// Load runs cfg (JSON) in the in-process Caddy, replacing whatever runs,
// and stops Caddy when the test ends.
func Load(t testing.TB, cfg []byte) {
	t.Helper()
	SkipShort(t)
	loadMu.Lock()
	err := caddy.Load(cfg, true)
	loadMu.Unlock()
	if err != nil {
		t.Fatalf("loading config: %v", err)
	}
	t.Cleanup(func() {
		loadMu.Lock()
		defer loadMu.Unlock()
		_ = caddy.Stop()
	})
}

// Reload replaces the running config without stopping in between, the way
// `caddy reload` does.
func Reload(t testing.TB, cfg []byte) error {
	t.Helper()
	loadMu.Lock()
	defer loadMu.Unlock()
	return caddy.Load(cfg, true)
}

// WaitOneListener waits (bounded) until one socket listens on port. On
// Linux Caddy opens a reloaded server's listener with SO_REUSEPORT next to
// the old one, and closes the old one only after caddy.Load returned; a
// connection the kernel queued on the old socket meanwhile is reset. Tests
// that are not about reloads wait for the swap to finish. Without
// /proc/net (not Linux), it waits a moment instead.
func WaitOneListener(t testing.TB, port int) {
	t.Helper()
	hexPort := fmt.Sprintf(":%04X ", port)
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, ok := 0, false
		for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
			b, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			ok = true
			for _, line := range strings.Split(string(b), "\n") {
				fields := strings.Fields(line)
				// local_address is the second field, st (0A: LISTEN) the fourth.
				if len(fields) > 3 && strings.HasSuffix(fields[1]+" ", hexPort) && fields[3] == "0A" {
					n++
				}
			}
		}
		if !ok {
			time.Sleep(200 * time.Millisecond)
			return
		}
		if n <= 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d sockets still listen on port %d after the reload", n, port)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// LoadCaddyfile adapts and loads a Caddyfile.
func LoadCaddyfile(t testing.TB, caddyfile string) {
	t.Helper()
	Load(t, Adapt(t, caddyfile))
}

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// Binary builds ./cmd/caddy once per test binary and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	SkipShort(t)
	buildOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		dir, err := os.MkdirTemp("", "groupjoin-caddy-")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "caddy")
		cmd := exec.Command("go", "build", "-o", buildPath, "./cmd/caddy")
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ./cmd/caddy: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

// RemoveBinary deletes what Binary built; a package that calls Binary
// calls it from TestMain after m.Run.
func RemoveBinary() {
	if buildPath != "" {
		_ = os.RemoveAll(filepath.Dir(buildPath))
	}
}

// Process is a Caddy binary running a Caddyfile.
type Process struct {
	Cmd       *exec.Cmd
	AdminAddr string
	Log       *bytes.Buffer
	mu        sync.Mutex
}

// lockedWriter serializes writes from the child's stdout and stderr.
type lockedWriter struct{ p *Process }

func (w lockedWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.p.Log.Write(b)
}

// Output returns what the process logged so far.
func (p *Process) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.Log.String()
}

// StartProcess runs the built binary with caddyfile (which must set
// `admin 127.0.0.1:<adminPort>` in its global options) and waits until the
// admin endpoint answers. It is killed when the test ends.
func StartProcess(t testing.TB, caddyfile string, adminPort int, env ...string) *Process {
	t.Helper()
	bin := Binary(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &Process{AdminAddr: fmt.Sprintf("127.0.0.1:%d", adminPort), Log: new(bytes.Buffer)}
	ctx, cancel := context.WithCancel(context.Background())
	p.Cmd = exec.CommandContext(ctx, bin, "run", "--config", path, "--adapter", "caddyfile")
	p.Cmd.Env = append(append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir), env...)
	p.Cmd.Stdout, p.Cmd.Stderr = lockedWriter{p}, lockedWriter{p}
	if err := p.Cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = p.Cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		if t.Failed() {
			t.Logf("caddy output:\n%s", p.Output())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + p.AdminAddr + "/config/")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return p
		}
		select {
		case <-done:
			t.Fatalf("caddy exited early:\n%s", p.Output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("caddy did not start within 20s:\n%s", p.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Kill stops the process at once.
func (p *Process) Kill() { _ = p.Cmd.Process.Kill() }

// Contains reports whether the process log contains s.
func (p *Process) Contains(s string) bool { return strings.Contains(p.Output(), s) }

// Client returns an HTTP client for tests against a Caddy that may be
// reloaded on the same port: a fresh connection per request (an idle one
// would belong to the old server), and a connect that the kernel resets is
// tried again. Caddy reloads by opening a new SO_REUSEPORT socket and closing
// the old one; without net.ipv4.tcp_migrate_req=1 a SYN queued on the old
// socket is reset. Such a request was never sent, so retrying the dial is
// safe; nothing after the dial is retried.
func Client(timeout time.Duration) *http.Client {
	d := &net.Dialer{Timeout: timeout}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		for attempt := 0; ; attempt++ {
			c, err := d.DialContext(ctx, network, addr)
			if err == nil || attempt == 4 || !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.ECONNREFUSED) {
				return c, err
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true, DialContext: dial}}
}
