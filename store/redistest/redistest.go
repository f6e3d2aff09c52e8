// Package redistest runs throw-away redis-server processes for tests.
//
// Tests that need Redis call Start (or StartServer for fault injection);
// when redis-server is not on PATH the test is skipped with a hint. Each
// server listens on a free 127.0.0.1 port, keeps nothing on disk and is
// killed when the test ends.
package redistest

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// SkipMessage is the reason given when redis-server is missing.
const SkipMessage = "redis-server not found on PATH; install it (apt-get install redis-server) to run the Redis store tests"

// ReadyTimeout bounds the wait for a server to answer PING.
var ReadyTimeout = 10 * time.Second

// Server is a redis-server child process on a fixed 127.0.0.1 port.
type Server struct {
	tb   testing.TB
	bin  string
	port int
	dir  string

	// extra are more redis-server arguments; sentinelConf, if set, runs
	// the server as a sentinel with that config file.
	extra        []string
	sentinelConf string
	maxPort      int // 0: any

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
	log  *syncBuffer
}

// Start starts a redis-server for the test and returns its address
// (host:port) and a function that kills it (also called at cleanup).
func Start(tb testing.TB) (addr string, stop func()) {
	tb.Helper()
	s := StartServer(tb)
	return s.Addr(), s.Kill
}

// StartServer is Start returning the Server, for tests that kill, freeze
// or restart it.
func StartServer(tb testing.TB) *Server {
	tb.Helper()
	return StartServerArgs(tb)
}

// StartServerArgs is StartServer with more redis-server arguments, e.g.
// "--replicaof", "127.0.0.1", "6379".
func StartServerArgs(tb testing.TB, extra ...string) *Server {
	tb.Helper()
	return startServer(tb, &Server{extra: extra})
}

func startServer(tb testing.TB, s *Server) *Server {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		tb.Skip(SkipMessage)
	}
	s.tb, s.bin, s.dir = tb, bin, tb.TempDir()
	tb.Cleanup(s.Kill)
	var lastErr error
	for attempt := 0; attempt < 10; attempt++ {
		port, err := freePort()
		if err != nil {
			tb.Fatalf("redistest: free port: %v", err)
		}
		if s.maxPort > 0 && port > s.maxPort {
			continue
		}
		s.port = port
		if lastErr = s.start(); lastErr == nil {
			return s
		}
		s.Kill()
	}
	tb.Fatalf("redistest: %v", lastErr)
	return nil
}

// Addr is host:port of the server.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Port is the server's TCP port, stable across Restart.
func (s *Server) Port() int { return s.port }

// URL is a redis:// URL for database 0.
func (s *Server) URL() string { return "redis://" + s.Addr() + "/0" }

// Log returns what the server printed so far (all runs).
func (s *Server) Log() string { return s.log.String() }

// Kill kills the server (SIGKILL) and waits for it to exit; its data is
// lost. Safe to call when it is not running.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd, s.done = nil, nil
}

// Restart kills the server if it is running and starts an empty one on the
// same port, returning once it answers PING.
func (s *Server) Restart() {
	s.tb.Helper()
	s.RestartArgs(s.extra...)
}

// RestartArgs is Restart with new extra arguments (e.g. to come back as
// the replica of a new primary).
func (s *Server) RestartArgs(extra ...string) {
	s.tb.Helper()
	s.Kill()
	s.mu.Lock()
	s.extra = extra
	s.mu.Unlock()
	deadline := time.Now().Add(ReadyTimeout)
	for {
		err := s.start()
		if err == nil {
			return
		}
		s.Kill()
		if time.Now().After(deadline) {
			s.tb.Fatalf("redistest: restart on port %d: %v", s.port, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Freeze stops the server process (SIGSTOP): connections stay open but
// nothing is answered, as with a hung server. Thaw resumes it.
func (s *Server) Freeze() { s.signal(stopSignal) }

// Thaw resumes a frozen server (SIGCONT).
func (s *Server) Thaw() { s.signal(contSignal) }

func (s *Server) signal(sig os.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sig == nil {
		s.tb.Skip("redistest: Freeze/Thaw need a Unix system")
	}
	if s.cmd == nil {
		s.tb.Fatalf("redistest: server not running")
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.tb.Fatalf("redistest: signal %v: %v", sig, err)
	}
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.log == nil {
		s.log = new(syncBuffer)
	}
	args := []string{
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
		"--daemonize", "no",
		"--loglevel", "warning",
		// A new replica would otherwise wait 5s before its first sync.
		"--repl-diskless-sync-delay", "0",
	}
	if s.sentinelConf != "" {
		args = []string{s.sentinelConf, "--sentinel", "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
			"--dir", s.dir, "--daemonize", "no", "--loglevel", "warning"}
	}
	cmd := exec.Command(s.bin, append(args, s.extra...)...)
	cmd.Stdout = s.log
	cmd.Stderr = s.log
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %v", s.bin, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.cmd, s.done = cmd, done

	deadline := time.Now().Add(ReadyTimeout)
	for {
		if ping(s.Addr()) == nil {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("redis-server on port %d exited: %s", s.port, lastLines(s.log.String(), 5))
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server on port %d did not answer PING within %v", s.port, ReadyTimeout)
		}
	}
}

func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
