package main

import (
	"bytes"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

func TestSelected(t *testing.T) {
	for _, tc := range []struct {
		only, key string
		want      bool
	}{
		{"abcd", "a", true}, {"abcd", "e", false},
		{"ab", "g", true}, {"ab", "h", false}, // (g) mirrors (b)
		{"ad", "h", true}, {"ad", "g", false}, // (h) mirrors (d)
		{"ag", "g", true}, {"a", "g", false},
	} {
		if got := selected(tc.only, tc.key); got != tc.want {
			t.Errorf("selected(%q, %q) = %v, want %v", tc.only, tc.key, got, tc.want)
		}
	}
}

// rounds makes a setup whose rounds cost cpu µs per request each, 1,000
// requests a second for a second.
func rounds(key string, cpu ...float64) *setup {
	s := &setup{key: key}
	for _, c := range cpu {
		s.rounds = append(s.rounds, result{requests: 1000, duration: time.Second, cpu: time.Duration(c * 1000 * float64(time.Microsecond)), p99: c})
	}
	return s
}

func TestPairedFigures(t *testing.T) {
	b, g := rounds("b", 300, 250, 340), rounds("g", 310, 255, 330)
	ds := pairedDiffs(b, g, func(r result) float64 { return r.cpuPerReq() })
	if len(ds) != 3 || ds[0] != -10 || ds[1] != -5 || ds[2] != 10 {
		t.Fatalf("pairedDiffs = %v, want [-10 -5 10]", ds)
	}
	if m := median(ds); m != -5 {
		t.Fatalf("median = %v, want -5", m)
	}
	if m := median([]float64{4, 1, 3, 2}); m != 2.5 {
		t.Fatalf("median of an even count = %v, want 2.5", m)
	}
}

// The baseline table names this build against the baseline, with the
// same-round median and range.
func TestCompareBaseline(t *testing.T) {
	a, b, g := rounds("a", 200, 210, 205), rounds("b", 240, 250, 246), rounds("g", 250, 262, 250)
	b.rss, g.rss = 70<<20, 72<<20
	out := capture(t, func() { compareBaseline(options{pace: 25}, a, b, nil, g, nil) })
	for _, want := range []string{
		"CPU added, this build (b − a)", "40.00 µs/req",
		"Caddy CPU, this build − baseline (b − g)", "-10.00 µs/req", "-12.00 … -4.00",
		"peak RSS b − g", "-2.00 MiB",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "throughput b/g") {
		t.Errorf("paced: throughput is set by the pacing and must not be compared:\n%s", out)
	}
}

func capture(t *testing.T, f func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout := os.Stdout
	os.Stdout = w
	done := make(chan []byte)
	go func() { b, _ := io.ReadAll(r); done <- b }()
	f()
	os.Stdout = stdout
	w.Close()
	return string(bytes.TrimSpace(<-done))
}
