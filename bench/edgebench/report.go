package main

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// result is one wrk run against one setup.
type result struct {
	requests       int64
	duration       time.Duration
	statusErrors   int64 // answers ≥ 400
	socketErrors   int64
	p50, p99, mean float64 // µs
	cpu            time.Duration
	ext            time.Duration // CPU of the validation service, setup (c)
	backend        time.Duration // CPU of the backend
	client         time.Duration // CPU of wrk
}

func (r result) rps() float64 { return float64(r.requests) / r.duration.Seconds() }

func (r result) cpuPerReq() float64 { return perReq(r.cpu, r.requests) }

func perReq(d time.Duration, n int64) float64 {
	if n == 0 {
		return math.NaN()
	}
	return float64(d.Microseconds()) / float64(n)
}

func (r result) extText() string {
	if r.ext == 0 {
		return ""
	}
	return fmt.Sprintf(" + auth service %5.1f µs/req", perReq(r.ext, r.requests))
}

// measure runs wrk against s for d and reads Caddy's (and the helpers')
// CPU time before and after.
func measure(ctx context.Context, o options, s *setup, d time.Duration, backend *child) (result, error) {
	var res result
	before, err := cpuTime(s.caddy.pid())
	if err != nil {
		return res, err
	}
	var extBefore time.Duration
	if s.ext != nil {
		if extBefore, err = cpuTime(s.ext.pid()); err != nil {
			return res, err
		}
	}
	// With -together the setups share the backend: its CPU is nobody's.
	var backBefore time.Duration
	if backend != nil {
		if backBefore, err = cpuTime(backend.pid()); err != nil {
			return res, err
		}
	}
	secs := max(1, int(d.Round(time.Second)/time.Second))
	cmd := commandContext(ctx, o.pin, otherCPUs, "wrk", "-t", strconv.Itoa(o.threads), "-c", strconv.Itoa(o.connections),
		"-d", strconv.Itoa(secs)+"s", "--timeout", "5s", "-s", s.script, "http://"+s.caddy.addr+"/user/groups/join")
	out, err := cmd.Output()
	if err != nil {
		return res, fmt.Errorf("wrk: %w\n%s", err, out)
	}
	res.client = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	after, err := cpuTime(s.caddy.pid())
	if err != nil {
		return res, err
	}
	res.cpu = after - before
	if s.ext != nil {
		extAfter, err := cpuTime(s.ext.pid())
		if err != nil {
			return res, err
		}
		res.ext = extAfter - extBefore
	}
	if backend != nil {
		backAfter, err := cpuTime(backend.pid())
		if err != nil {
			return res, err
		}
		res.backend = backAfter - backBefore
	}
	if err := parseWrk(string(out), &res); err != nil {
		return res, err
	}
	if res.requests == 0 {
		return res, fmt.Errorf("no request completed:\n%s", out)
	}
	if res.socketErrors > res.requests/1000 {
		return res, fmt.Errorf("%d socket errors for %d requests:\n%s", res.socketErrors, res.requests, out)
	}
	switch s.wantStatus {
	case "ok":
		if res.statusErrors != 0 {
			return res, fmt.Errorf("%d of %d answers were errors (want none): check the setup", res.statusErrors, res.requests)
		}
	case "rejected":
		if res.statusErrors != res.requests {
			return res, fmt.Errorf("only %d of %d invalid invites were refused", res.statusErrors, res.requests)
		}
	}
	return res, nil
}

// parseWrk reads the RESULT line the generated script prints in done().
func parseWrk(out string, res *result) error {
	for _, line := range strings.Split(out, "\n") {
		rest, ok := strings.CutPrefix(line, "RESULT ")
		if !ok {
			continue
		}
		var f [10]float64
		for i, s := range strings.Fields(rest) {
			if i >= len(f) {
				break
			}
			v, err := strconv.ParseFloat(s, 64)
			if err != nil {
				return fmt.Errorf("wrk result %q: %w", line, err)
			}
			f[i] = v
		}
		res.requests = int64(f[0])
		res.duration = time.Duration(f[1]) * time.Microsecond
		res.socketErrors = int64(f[2] + f[3] + f[4] + f[6])
		res.statusErrors = int64(f[5])
		res.p50, res.p99, res.mean = f[7], f[8], f[9]
		return nil
	}
	return fmt.Errorf("no RESULT line in wrk output:\n%s", out)
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func each(s *setup, f func(result) float64) []float64 {
	out := make([]float64, len(s.rounds))
	for i, r := range s.rounds {
		out[i] = f(r)
	}
	return out
}

// cpuPerReq over all rounds: total CPU over total requests.
func (s *setup) cpuPerReq(f func(result) time.Duration) float64 {
	var cpu time.Duration
	var n int64
	for _, r := range s.rounds {
		cpu += f(r)
		n += r.requests
	}
	return perReq(cpu, n)
}

// pairedDiffs are x's figure minus y's in the same round, round by round:
// alternating rounds pair runs that saw the same neighbours.
func pairedDiffs(x, y *setup, f func(result) float64) []float64 {
	var ds []float64
	for i := range min(len(x.rounds), len(y.rounds)) {
		ds = append(ds, f(x.rounds[i])-f(y.rounds[i]))
	}
	return ds
}

// pairedRatios are x's figure over y's in the same round, round by round.
func pairedRatios(x, y *setup, f func(result) float64) []float64 {
	var rs []float64
	for i := range min(len(x.rounds), len(y.rounds)) {
		rs = append(rs, f(x.rounds[i])/f(y.rounds[i]))
	}
	return rs
}

func report(o options, setups []*setup) {
	by := map[string]*setup{}
	for _, s := range setups {
		by[s.key] = s
	}
	rps := func(r result) float64 { return r.rps() }
	p50 := func(r result) float64 { return r.p50 }
	p99 := func(r result) float64 { return r.p99 }
	caddyCPU := func(r result) time.Duration { return r.cpu }
	extCPU := func(r result) time.Duration { return r.ext }
	backCPU := func(r result) time.Duration { return r.backend }
	clientCPU := func(r result) time.Duration { return r.client }

	fmt.Println()
	fmt.Printf("Medians over %d rounds of %s (CPU: total over all rounds ÷ requests; RSS: VmHWM at the end)\n", o.rounds, o.duration)
	header := []string{"setup", "req/s", "p50 µs", "p99 µs", "Caddy CPU µs/req", "peak RSS MiB", "backend CPU µs/req", "auth service CPU µs/req", "wrk CPU µs/req"}
	var rows [][]string
	for _, s := range setups {
		backend := "–" // shared, with -together
		if !o.together {
			backend = fmt.Sprintf("%.1f", s.cpuPerReq(backCPU))
		}
		ext := "–"
		if s.key == "c" {
			ext = fmt.Sprintf("%.1f", s.cpuPerReq(extCPU))
		}
		rows = append(rows, []string{
			"(" + s.key + ") " + s.title,
			fmt.Sprintf("%.0f", median(each(s, rps))),
			fmt.Sprintf("%.0f", median(each(s, p50))),
			fmt.Sprintf("%.0f", median(each(s, p99))),
			fmt.Sprintf("%.1f", s.cpuPerReq(caddyCPU)),
			fmt.Sprintf("%.1f", float64(s.rss)/(1<<20)),
			backend,
			ext,
			fmt.Sprintf("%.1f", s.cpuPerReq(clientCPU)),
		})
	}
	table(header, rows, o.markdown)

	a, b, c, d, e, f, g, h := by["a"], by["b"], by["c"], by["d"], by["e"], by["f"], by["g"], by["h"]
	var checks [][]string
	// spread is the range of the same-round figures behind a median: how
	// far one round can be from another on this machine.
	check := func(name string, value float64, unit string, spread []float64, target string, ok bool) {
		verdict := "met"
		if !ok {
			verdict = "NOT met"
		}
		rng := "–"
		if len(spread) > 1 {
			rng = fmt.Sprintf("%.2f … %.2f", slices.Min(spread), slices.Max(spread))
		}
		// Ratios get a third decimal: 0.949 must not read as the 0.95 it misses.
		format := "%.2f"
		if unit == "" {
			format = "%.3f"
		}
		checks = append(checks, []string{name, fmt.Sprintf(format+"%s", value, unit), rng, target, verdict})
	}
	// Same-round figures: the median over rounds, with their range.
	cpuCheck := func(name string, x, y *setup) {
		ds := pairedDiffs(x, y, func(r result) float64 { return r.cpuPerReq() })
		v := median(ds)
		check(name, v, " µs/req", ds, "≤ 12 µs/req", v <= 12)
	}
	ratioCheck := func(name string, x, y *setup, f func(result) float64, target string, ok func(float64) bool) {
		rs := pairedRatios(x, y, f)
		v := median(rs)
		check(name, v, "", rs, target, ok(v))
	}
	atLeast := func(t float64) func(float64) bool { return func(v float64) bool { return v >= t } }
	throughputCheck := func(name string, x, y *setup, least float64) {
		target := fmt.Sprintf("≥ %g", least)
		if o.pace > 0 {
			// wrk's pacing sets the rate: the ratio says nothing.
			checks = append(checks, []string{name, fmt.Sprintf("%.3f", median(pairedRatios(x, y, rps))), "–", target, "n/a (paced)"})
			return
		}
		ratioCheck(name, x, y, rps, target, atLeast(least))
	}
	if a != nil && b != nil {
		added := b.cpuPerReq(caddyCPU) - a.cpuPerReq(caddyCPU)
		check("CPU added by group_join (b − a, totals)", added, " µs/req", nil, "≤ 12 µs/req", added <= 12)
		cpuCheck("CPU added by group_join (b − a, same round)", b, a)
		throughputCheck("throughput b/a", b, a, 0.95)
		ratioCheck("p99 b/a", b, a, p99, "≤ 1.10", func(v float64) bool { return v <= 1.10 })
		rss := float64(b.rss-a.rss) / (1 << 20)
		check("peak RSS b − a", rss, " MiB", nil, "≤ 10 MiB", rss <= 10)
	}
	if a != nil && e != nil {
		cpuCheck("CPU added, with request_buffers (e − a, same round)", e, a)
		throughputCheck("throughput e/a", e, a, 0.95)
	}
	if e != nil && f != nil {
		// Both with request_buffers: group_join's cost under that setting.
		cpuCheck("CPU added, both with request_buffers (e − f, same round)", e, f)
	}
	if b != nil && c != nil {
		throughputCheck("throughput b/c", b, c, 1.5)
	}
	if a != nil && d != nil {
		throughputCheck("throughput d/a", d, a, 3)
	}
	if len(checks) > 0 {
		fmt.Println()
		fmt.Println("Targets (same round: median over rounds of the same-round ratio or difference; rounds: their range)")
		table([]string{"measure", "value", "rounds", "target", "verdict"}, checks, o.markdown)
	}
	if b != nil && g != nil {
		compareBaseline(o, a, b, d, g, h)
	}
}

// compareBaseline prints this build against the baseline build, both
// measured in the same rounds: (b) against (g), (d) against (h). Lower is
// better for CPU, p99 and RSS; higher for throughput.
func compareBaseline(o options, a, b, d, g, h *setup) {
	cpu := func(r result) float64 { return r.cpuPerReq() }
	rps := func(r result) float64 { return r.rps() }
	p99 := func(r result) float64 { return r.p99 }
	spread := func(xs []float64) string {
		if len(xs) < 2 {
			return "–"
		}
		return fmt.Sprintf("%.2f … %.2f", slices.Min(xs), slices.Max(xs))
	}
	var rows [][]string
	diff := func(name string, x, y *setup, f func(result) float64, unit string) {
		ds := pairedDiffs(x, y, f)
		rows = append(rows, []string{name, fmt.Sprintf("%.2f%s", median(ds), unit), spread(ds)})
	}
	ratio := func(name string, x, y *setup, f func(result) float64) {
		rs := pairedRatios(x, y, f)
		rows = append(rows, []string{name, fmt.Sprintf("%.3f", median(rs)), spread(rs)})
	}
	if a != nil {
		diff("CPU added, this build (b − a)", b, a, cpu, " µs/req")
		diff("CPU added, baseline (g − a)", g, a, cpu, " µs/req")
	}
	diff("Caddy CPU, this build − baseline (b − g)", b, g, cpu, " µs/req")
	if o.pace == 0 {
		ratio("throughput b/g", b, g, rps)
	}
	ratio("p99 b/g", b, g, p99)
	rows = append(rows, []string{"peak RSS b − g", fmt.Sprintf("%.2f MiB", float64(b.rss-g.rss)/(1<<20)), "–"})
	if d != nil && h != nil {
		diff("Caddy CPU, refusals, this build − baseline (d − h)", d, h, cpu, " µs/req")
		if o.pace == 0 {
			ratio("throughput d/h", d, h, rps)
		}
	}
	fmt.Println()
	fmt.Println("This build against the baseline (same round: median over rounds, with their range)")
	table([]string{"measure", "value", "rounds"}, rows, o.markdown)
}

func table(header []string, rows [][]string, markdown bool) {
	w := make([]int, len(header))
	for i, h := range header {
		w[i] = len([]rune(h))
	}
	for _, r := range rows {
		for i, c := range r {
			w[i] = max(w[i], len([]rune(c)))
		}
	}
	line := func(cells []string) {
		for i, c := range cells {
			pad := strings.Repeat(" ", w[i]-len([]rune(c)))
			if i == 0 {
				fmt.Print(c + pad)
			} else {
				fmt.Print("  " + pad + c)
			}
		}
		fmt.Println()
	}
	line(header)
	for _, r := range rows {
		line(r)
	}
	if !markdown {
		return
	}
	fmt.Println()
	fmt.Println("| " + strings.Join(header, " | ") + " |")
	sep := make([]string, len(header))
	for i := range sep {
		sep[i] = "---"
		if i > 0 {
			sep[i] = "---:"
		}
	}
	fmt.Println("| " + strings.Join(sep, " | ") + " |")
	for _, r := range rows {
		fmt.Println("| " + strings.Join(r, " | ") + " |")
	}
}
