package groupjoin

import (
	"bytes"
	"net/http"
	"sync"
)

// maxCapture bounds what is kept of a backend's answer: enough for any
// error document, never a whole download.
const maxCapture = 64 << 10

// capture is the ResponseWriter the next handler writes to. Headers and
// body stay here until the edge decides what the client gets, so nothing of
// the backend's answer goes out by accident.
type capture struct {
	header   http.Header
	status   int
	body     bytes.Buffer
	overflow bool
}

// Captures are reused: a request's capture goes back to the pool once
// its answer is written, with its header map and buffer, so the next
// request needs no allocation for them.
var capturePool = sync.Pool{New: func() any { return &capture{header: make(http.Header)} }}

// maxPooledCapture bounds the buffer a pooled capture keeps.
const maxPooledCapture = 4 << 10

func newCapture() *capture { return capturePool.Get().(*capture) }

// release returns c to the pool. Nothing may use c afterwards: the answer
// has been written (header values copied to the client's header map stay
// valid, clearing the map does not touch them), and the next handler has
// returned, so it no longer holds c either.
func (c *capture) release() {
	if c.body.Cap() > maxPooledCapture {
		return
	}
	clear(c.header)
	c.status = 0
	c.body.Reset()
	c.overflow = false
	capturePool.Put(c)
}

func (c *capture) Header() http.Header { return c.header }

func (c *capture) WriteHeader(status int) {
	if c.status != 0 {
		return
	}
	// Informational answers (100, 103) are not final; 101 is, and is no
	// answer to a join.
	if status >= 100 && status <= 199 && status != http.StatusSwitchingProtocols {
		return
	}
	c.status = status
}

func (c *capture) Write(p []byte) (int, error) {
	if c.status == 0 {
		c.WriteHeader(http.StatusOK)
	}
	if room := maxCapture - c.body.Len(); room < len(p) {
		c.overflow = true
		if room > 0 {
			c.body.Write(p[:room])
		}
		return len(p), nil // drain quietly; the edge answers in its own words
	}
	return c.body.Write(p)
}

// Flush is accepted and ignored: nothing reaches the client before the
// edge decides.
func (c *capture) Flush() {}

// FlushError is what http.ResponseController looks for.
func (c *capture) FlushError() error { return nil }
