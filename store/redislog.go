package store

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// go-redis has one process-wide logger. It is installed once and asks for
// the current zap logger at every line, so config reloads (which replace
// Caddy's loggers) need not touch it again.
var (
	logOnce   sync.Once
	logTarget atomic.Pointer[func() *zap.Logger]
)

// RouteRedisLogs sends go-redis's own log lines (failed dials, sentinel
// and cluster state changes) to the zap logger that current returns, at
// warn level (failures) or info level (state changes), with credentials
// removed, instead of raw to stderr. Later
// calls only replace current.
func RouteRedisLogs(current func() *zap.Logger) {
	logTarget.Store(&current)
	logOnce.Do(func() { redis.SetLogger(zapLogging{}) })
}

// QuietRedisLogs drops go-redis's log lines unless RouteRedisLogs already
// routed them (a command-line tool reports its own errors).
func QuietRedisLogs() {
	none := func() *zap.Logger { return nil }
	logTarget.CompareAndSwap(nil, &none)
	logOnce.Do(func() { redis.SetLogger(zapLogging{}) })
}

type zapLogging struct{}

func (zapLogging) Printf(_ context.Context, format string, v ...any) {
	f := logTarget.Load()
	if f == nil {
		return
	}
	l := (*f)()
	if l == nil {
		return
	}
	line := redactLine(fmt.Sprintf(format, v...))
	// Failures are warnings; state changes (a new primary found through
	// the sentinels, a reloaded slot map) are information.
	if troubleRE.MatchString(line) {
		l.Warn(line)
	} else {
		l.Info(line)
	}
}

var troubleRE = regexp.MustCompile(`(?i)fail|error|refused|timeout|timed out|unreachable|closed|broken|reset|down`)

var (
	// scheme://user:password@ → scheme://***@
	userinfoRE = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]*@`)
	// password=..., "password": ..., AUTH <secret>
	passwordRE = regexp.MustCompile(`(?i)((?:sentinel_)?password["']?\s*[=:]\s*["']?)[^\s"',}&]+`)
	authRE     = regexp.MustCompile(`(?i)(\bauth\s+)\S+(\s+\S+)?`)
)

// redactLine removes URL userinfo and anything that looks like a password
// from a go-redis log line.
func redactLine(s string) string {
	s = strings.TrimRight(s, "\n")
	s = userinfoRE.ReplaceAllString(s, "${1}***@")
	s = passwordRE.ReplaceAllString(s, "${1}***")
	s = authRE.ReplaceAllString(s, "${1}***")
	return s
}
