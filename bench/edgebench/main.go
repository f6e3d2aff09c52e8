// Command edgebench is the load benchmark of group_join: in one
// run on 127.0.0.1 it starts a fast backend, an external validation
// service, and the same Caddy binary in four setups:
//
//	(a) reverse_proxy to the backend
//	(b) group_join + reverse_proxy
//	(c) forward_auth to the validation service + reverse_proxy
//	(d) group_join facing invalid invites
//	(e) as (b), with reverse_proxy's request_buffers (only with -only …e…)
//	(f) as (a), with reverse_proxy's request_buffers (only with -only …f…)
//
// then drives them with wrk in alternating rounds (a, b, c, d, a, b, …),
// rotating over pre-minted tokens request by request, and prints requests/s,
// p50/p99 latency, Caddy's CPU time per request (from /proc/<pid>/stat) and
// its peak RSS per setup, with the ratios that group_join is held to
// (BENCHMARKS.md, "Load").
//
// Run it through bench/run.sh, which builds ./cmd/caddy and this command.
// It stops by itself, kills what it started and talks only to 127.0.0.1.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

const secretEnv = "GROUP_JOIN_KEY"

type options struct {
	caddy       string
	rounds      int
	duration    time.Duration
	warmup      time.Duration
	threads     int
	connections int
	users       int
	invites     int
	logs        string
	only        string
	options     string
	keep        bool
	markdown    bool
	profile     bool
	pin         bool
	pace        int
	baseline    string
	together    bool
}

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "backend", "authsvc":
			// A child: exit when the parent goes away (stdin closes).
			go func() { _, _ = io.Copy(io.Discard, os.Stdin); os.Exit(0) }()
			var err error
			if os.Args[1] == "backend" {
				err = serveBackend()
			} else {
				err = serveAuth()
			}
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	var o options
	flag.StringVar(&o.caddy, "caddy", "", "Caddy binary built from ./cmd/caddy (required)")
	flag.IntVar(&o.rounds, "rounds", 4, "rounds; each round runs every setup once")
	flag.DurationVar(&o.duration, "duration", 8*time.Second, "length of one setup's run in a round (whole seconds)")
	flag.DurationVar(&o.warmup, "warmup", 3*time.Second, "warm-up run per setup before the rounds, not counted")
	long := flag.Bool("long", false, "longer, steadier run: 10 rounds of 15s (about 11 minutes)")
	flag.IntVar(&o.threads, "threads", 1, "wrk threads")
	flag.IntVar(&o.connections, "connections", 32, "wrk connections")
	flag.IntVar(&o.users, "users", 200, "users, each with an access token of their own")
	flag.IntVar(&o.invites, "invites", 30000, "distinct invites per kind (valid, invalid), rotated: far more than the invite cache holds, so that nearly every invite is one the edge has not seen recently")
	shared := flag.Bool("shared", false, "the shared-link case: 2,000 invites per kind rotated (sets -invites), few enough for the invite cache to hold them all")
	flag.StringVar(&o.logs, "logs", "off", "Caddy logs: off (level ERROR, discarded) or info (Caddy's default level, to a file)")
	flag.StringVar(&o.only, "only", "abcd", "setups to run, e.g. ab; e and f are (b) and (a) with reverse_proxy's request_buffers")
	flag.StringVar(&o.options, "options", "", "more group_join options for (b), (d) and (e), one per line, e.g. 'upstream_headers off'")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (Caddyfiles, logs, Lua scripts)")
	flag.BoolVar(&o.markdown, "markdown", false, "also print the results as Markdown tables")
	flag.BoolVar(&o.pin, "pin", false, "run Caddy on CPU 0 and wrk, the backend and the validation service on the other CPUs (taskset), so that Caddy's CPU per request is not inflated by sharing a CPU with them")
	flag.BoolVar(&o.profile, "profile", false, "save a CPU profile and allocation snapshots (before, after) of each Caddy in round 1 into the work directory (implies -keep)")
	flag.IntVar(&o.pace, "pace", 0, "paced load: each wrk connection waits this many ms before each request, so every setup gets about the same rate (connections ÷ (pace + latency)) and CPU per request is compared at equal load rather than at saturation; throughput ratios are then not targets")
	flag.StringVar(&o.baseline, "baseline", "", "another Caddy build (e.g. of an earlier commit) to run (b) and (d) on as well, as setups (g) and (h), in the same alternating rounds: the fairest before/after comparison on a noisy machine")
	flag.BoolVar(&o.together, "together", false, "run the setups of a round at the same time, each with its own wrk, rather than one after another: every setup then sees the same machine at the same moment, which takes the host's swings out of the same-round differences (best with -pace, so that each gets the same rate; the backend's CPU is then not shown)")
	flag.Parse()
	if o.together && o.profile {
		fmt.Fprintln(os.Stderr, "edgebench: -profile needs the setups one at a time; leave out -together")
		os.Exit(2)
	}
	if o.profile {
		o.keep = true
	}
	if o.pin {
		if err := checkPin(); err != nil {
			fmt.Fprintln(os.Stderr, "edgebench:", err)
			os.Exit(2)
		}
	}
	if *long {
		o.rounds, o.duration = 10, 15*time.Second
	}
	if *shared {
		o.invites = 2000
	}
	if o.caddy == "" || o.rounds < 1 || o.duration < time.Second || o.users < 1 || o.invites < 1 ||
		(o.logs != "off" && o.logs != "info") {
		flag.Usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, o)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "edgebench:", err)
		os.Exit(1)
	}
}

// child is a process edgebench started and must stop.
type child struct {
	name  string
	cmd   *exec.Cmd
	stdin io.Closer
	addr  string
	admin string // Caddy's admin endpoint, with -profile
	done  chan struct{}
}

func (c *child) pid() int { return c.cmd.Process.Pid }

func (c *child) stop() {
	if c.stdin != nil {
		c.stdin.Close()
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

func (c *child) alive() bool {
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

func start(name string, cmd *exec.Cmd) (*child, error) {
	// Killed with edgebench even if it dies without cleaning up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(c.done) }()
	return c, nil
}

// startHelper runs edgebench itself as a helper server and reads its
// address.
func startHelper(self, kind string, env []string, pin bool) (*child, error) {
	cmd := command(pin, otherCPUs, self, kind)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	c, err := start(kind, cmd)
	if err != nil {
		return nil, err
	}
	c.stdin = in
	line := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(out)
		if s.Scan() {
			line <- s.Text()
		}
		close(line)
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case l := <-line:
		if addr, ok := strings.CutPrefix(l, "LISTEN "); ok {
			c.addr = addr
			return c, nil
		}
	case <-time.After(10 * time.Second):
	}
	c.stop()
	return nil, fmt.Errorf("%s did not start", kind)
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// startCaddy writes a Caddyfile with one site on a free loopback port and
// waits until it accepts connections.
func startCaddy(bin, dir, name, site, logs string, profile, pin bool, env []string) (*child, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	admin, adminOpt := "", "off"
	if profile {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		admin = fmt.Sprintf("127.0.0.1:%d", p)
		adminOpt = admin
	}
	logOpt := "output discard\n\t\tlevel ERROR"
	if logs == "info" {
		logOpt = "output file " + filepath.Join(dir, name+".log") + "\n\t\tlevel INFO"
	}
	cfg := fmt.Sprintf(`{
	admin %s
	auto_https off
	persist_config off
	log {
		%s
	}
}
:%d {
	bind 127.0.0.1
%s
}
`, adminOpt, logOpt, port, site)
	path := filepath.Join(dir, name+".Caddyfile")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	cmd := command(pin, caddyCPU, bin, "run", "--config", path, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), append(env, "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)...)
	logf, err := os.Create(filepath.Join(dir, name+".out"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	c, err := start("caddy "+name, cmd)
	if err != nil {
		return nil, err
	}
	c.addr = fmt.Sprintf("127.0.0.1:%d", port)
	c.admin = admin
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if !c.alive() {
			out, _ := os.ReadFile(logf.Name())
			return nil, fmt.Errorf("caddy %s exited:\n%s", name, out)
		}
		if conn, err := net.DialTimeout("tcp", c.addr, time.Second); err == nil {
			conn.Close()
			return c, nil
		}
	}
	c.stop()
	return nil, fmt.Errorf("caddy %s did not start", name)
}

// setup is one of the four configurations and what it is measured with.
type setup struct {
	key, title string
	script     string
	wantStatus string // "ok": no status ≥ 400; "rejected": every status ≥ 400
	bin        string // Caddy binary when not -caddy's (the baseline)
	caddy      *child
	ext        *child // the validation service of (c)
	rounds     []result
	rss        int64
}

func run(ctx context.Context, o options) error {
	if _, err := exec.LookPath("wrk"); err != nil {
		return errors.New("wrk not found (Debian: apt-get install -y wrk)")
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "edgebench-")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Println("work directory:", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	fmt.Printf("edgebench: %d rounds × %s per setup, wrk -t%d -c%d, %d users, %d invites per kind, logs %s\n",
		o.rounds, o.duration, o.threads, o.connections, o.users, o.invites, o.logs)
	fmt.Printf("load average at start: %s (%d CPUs)\n", loadavg(), runtime.NumCPU())
	if o.pace > 0 {
		fmt.Printf("paced: each connection waits %d ms before each request (at most %d req/s); throughput ratios are not targets\n",
			o.pace, o.connections*1000/o.pace)
	}
	if o.pin {
		fmt.Printf("pinned: Caddy on CPU %s; wrk, backend and validation service on CPUs %s\n", caddyCPU, otherCPUs)
	}

	secret := newSecret()
	tr, err := mintTraffic(secret, o.users, o.invites)
	if err != nil {
		return err
	}
	fmt.Printf("minted %d access tokens, %d valid invites, %d invalid invites %v\n",
		o.users, len(tr.valid), len(tr.invalid), tr.counts)
	validLua, invalidLua := filepath.Join(dir, "valid.lua"), filepath.Join(dir, "invalid.lua")
	if err := writeLua(validLua, tr.valid, o.pace); err != nil {
		return err
	}
	if err := writeLua(invalidLua, tr.invalid, o.pace); err != nil {
		return err
	}
	country, asn, err := writeGeo(dir)
	if err != nil {
		return err
	}

	var children []*child
	defer func() {
		for i := len(children) - 1; i >= 0; i-- {
			children[i].stop()
		}
	}()
	env := []string{secretEnv + "=" + secret}
	backend, err := startHelper(self, "backend", nil, o.pin)
	if err != nil {
		return err
	}
	children = append(children, backend)
	auth, err := startHelper(self, "authsvc", env, o.pin)
	if err != nil {
		return err
	}
	children = append(children, auth)

	groupJoin := fmt.Sprintf(`	group_join /user/groups/join {
		key {env.%s}
		geoip_db %s
		asn_db %s
%s	}
	reverse_proxy %s`, secretEnv, country, asn, indent(o.options, "\t\t"), backend.addr)
	all := []*setup{
		{key: "a", title: "reverse_proxy", script: validLua, wantStatus: "ok"},
		{key: "b", title: "group_join + reverse_proxy", script: validLua, wantStatus: "ok"},
		{key: "c", title: "forward_auth + reverse_proxy", script: validLua, wantStatus: "ok"},
		{key: "d", title: "group_join, invalid invites", script: invalidLua, wantStatus: "rejected"},
		{key: "e", title: "(b) + request_buffers", script: validLua, wantStatus: "ok"},
		{key: "f", title: "(a) + request_buffers", script: validLua, wantStatus: "ok"},
	}
	if o.baseline != "" {
		fmt.Printf("baseline: (g) and (h) are (b) and (d) on %s\n", o.baseline)
		all = append(all,
			&setup{key: "g", title: "(b) on the baseline", script: validLua, wantStatus: "ok", bin: o.baseline},
			&setup{key: "h", title: "(d) on the baseline", script: invalidLua, wantStatus: "rejected", bin: o.baseline})
	}
	sites := map[string]string{
		"a": "\treverse_proxy " + backend.addr,
		"b": groupJoin,
		"c": fmt.Sprintf(`	forward_auth /user/groups/join %s {
		uri /validate
		copy_headers X-User-Id
	}
	reverse_proxy %s`, auth.addr, backend.addr),
		"d": groupJoin,
		// group_join has the whole body in memory already; buffering it
		// again hands net/http a bytes.Reader, so the upstream request
		// goes out in one write instead of headers, then body.
		"e": groupJoin + " {\n\t\trequest_buffers 64KiB\n\t}",
		"f": "\treverse_proxy " + backend.addr + " {\n\t\trequest_buffers 64KiB\n\t}",
		"g": groupJoin,
		"h": groupJoin,
	}
	var setups []*setup
	for _, s := range all {
		if !selected(o.only, s.key) {
			continue
		}
		bin := o.caddy
		if s.bin != "" {
			bin = s.bin
		}
		c, err := startCaddy(bin, dir, s.key, sites[s.key], o.logs, o.profile, o.pin, env)
		if err != nil {
			return err
		}
		children = append(children, c)
		s.caddy = c
		if s.key == "c" {
			s.ext = auth
		}
		setups = append(setups, s)
	}
	if len(setups) == 0 {
		return errors.New("no setup selected")
	}

	if o.warmup > 0 {
		for _, s := range setups {
			if _, err := measure(ctx, o, s, o.warmup, backend); err != nil {
				return fmt.Errorf("warm-up (%s): %w", s.key, err)
			}
		}
	}
	for r := 1; r <= o.rounds; r++ {
		if o.together {
			if err := roundTogether(ctx, o, r, setups); err != nil {
				return err
			}
			continue
		}
		for _, s := range setups {
			var saved chan error
			if o.profile && r == 1 {
				// Allocations are cumulative: snapshots around the run give
				// the run's own with pprof -diff_base.
				if err := saveProfile(s.caddy.admin, "allocs", filepath.Join(dir, s.key+".allocs-before.pprof"), 0); err != nil {
					return fmt.Errorf("profile (%s): %w", s.key, err)
				}
				saved = make(chan error, 1)
				go func() { saved <- saveProfile(s.caddy.admin, "profile", filepath.Join(dir, s.key+".pprof"), o.duration) }()
			}
			res, err := measure(ctx, o, s, o.duration, backend)
			if saved != nil {
				if err := <-saved; err != nil {
					return fmt.Errorf("profile (%s): %w", s.key, err)
				}
				if err := saveProfile(s.caddy.admin, "allocs", filepath.Join(dir, s.key+".allocs-after.pprof"), 0); err != nil {
					return fmt.Errorf("profile (%s): %w", s.key, err)
				}
			}
			if err != nil {
				return fmt.Errorf("round %d (%s): %w", r, s.key, err)
			}
			s.rounds = append(s.rounds, res)
			printRound(r, s, res)
		}
	}
	for _, s := range setups {
		if s.rss, err = peakRSS(s.caddy.pid()); err != nil {
			return err
		}
	}
	report(o, setups)
	fmt.Printf("load average at end: %s\n", loadavg())
	return nil
}

// selected reports whether -only selects the setup key; the baseline's
// (g) and (h) follow the setups they mirror, (b) and (d).
func selected(only, key string) bool {
	mirrors := map[string]string{"g": "b", "h": "d"}[key]
	return strings.Contains(only, key) || mirrors != "" && strings.Contains(only, mirrors)
}

func printRound(r int, s *setup, res result) {
	fmt.Printf("round %d (%s) %-30s %8.0f req/s  p50 %6.0f µs  p99 %6.0f µs  caddy %6.1f µs/req%s  wrk %5.1f µs/req  load %s\n",
		r, s.key, s.title, res.rps(), res.p50, res.p99, res.cpuPerReq(), res.extText(), perReq(res.client, res.requests), loadavg())
}

// roundTogether runs round r of every setup at once, each with its own
// wrk.
func roundTogether(ctx context.Context, o options, r int, setups []*setup) error {
	results := make([]result, len(setups))
	errs := make([]error, len(setups))
	var wg sync.WaitGroup
	for i, s := range setups {
		wg.Go(func() { results[i], errs[i] = measure(ctx, o, s, o.duration, nil) })
	}
	wg.Wait()
	for i, s := range setups {
		if errs[i] != nil {
			return fmt.Errorf("round %d (%s): %w", r, s.key, errs[i])
		}
		s.rounds = append(s.rounds, results[i])
		printRound(r, s, results[i])
	}
	return nil
}

// indent puts each line of s on a line of its own after prefix.
func indent(s, prefix string) string {
	var b strings.Builder
	for line := range strings.Lines(s) {
		if line = strings.TrimSpace(line); line != "" {
			b.WriteString(prefix + line + "\n")
		}
	}
	return b.String()
}

// saveProfile saves a profile of a Caddy taken through its admin
// endpoint: kind "profile" is CPU over most of a run of length d, other
// kinds (e.g. "allocs") are snapshots.
func saveProfile(admin, kind, path string, d time.Duration) error {
	url := fmt.Sprintf("http://%s/debug/pprof/%s", admin, kind)
	if kind == "profile" {
		url += fmt.Sprintf("?seconds=%d", max(1, int(d/time.Second)-1))
	}
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("admin answered %s", resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
