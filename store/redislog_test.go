package store

import (
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestRedactLine(t *testing.T) {
	for _, c := range []struct{ in, secret string }{
		{"dial redis://alice:s3cr3t@10.0.0.1:6379/0 failed", "s3cr3t"},
		{"dial rediss://:s3cr3t@host:6380 failed", "s3cr3t"},
		{"options password=s3cr3t db=0", "s3cr3t"},
		{`{"sentinel_password": "s3cr3t"}`, "s3cr3t"},
		{"sent AUTH default s3cr3t", "s3cr3t"},
		{"sent auth s3cr3t", "s3cr3t"},
	} {
		got := redactLine(c.in)
		if strings.Contains(got, c.secret) {
			t.Errorf("redactLine(%q) = %q: secret kept", c.in, got)
		}
		if !strings.Contains(got, "***") {
			t.Errorf("redactLine(%q) = %q: nothing masked", c.in, got)
		}
	}
	plain := "redis: connection pool: failed to dial after 1 attempts: dial tcp 127.0.0.1:1: connect: connection refused"
	if got := redactLine(plain + "\n"); got != plain {
		t.Errorf("redactLine changed a line without secrets: %q", got)
	}
}

// TestZapLogging: lines go to the logger current at the time of the line,
// at warn level, redacted.
func TestZapLogging(t *testing.T) {
	core1, logs1 := observer.New(zapcore.DebugLevel)
	core2, logs2 := observer.New(zapcore.DebugLevel)
	cur := zap.New(core1)
	f := func() *zap.Logger { return cur }
	logTarget.Store(&f)
	defer logTarget.Store(nil)
	zapLogging{}.Printf(bg, "redis: dial %s: connection refused\n", "redis://u:pw123456@h:1")
	cur = zap.New(core2)
	zapLogging{}.Printf(bg, "sentinel: new master=%q", "m1")
	if logs1.Len() != 1 || logs2.Len() != 1 {
		t.Fatalf("lines: %d and %d, want 1 and 1", logs1.Len(), logs2.Len())
	}
	if e := logs2.All()[0]; e.Level != zapcore.InfoLevel {
		t.Fatalf("state change logged at %v", e.Level)
	}
	e := logs1.All()[0]
	if e.Level != zapcore.WarnLevel || strings.Contains(e.Message, "pw123456") || !strings.Contains(e.Message, "redis: dial") {
		t.Fatalf("entry = %v %q", e.Level, e.Message)
	}
}
