package groupjoin

import (
	"bytes"
	"net/http"
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

func newCapture() *capture { return &capture{header: make(http.Header)} }

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
