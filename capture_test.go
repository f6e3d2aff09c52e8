package groupjoin

import (
	"bytes"
	"net/http"
	"testing"
)

// A capture from the pool starts clean whatever the previous request left
// in it, and one that held a large answer is not kept.
func TestCapturePoolStartsClean(t *testing.T) {
	for range 50 {
		c := newCapture()
		if c.status != 0 || len(c.header) != 0 || c.body.Len() != 0 || c.overflow {
			t.Fatalf("reused capture not clean: status %d, header %v, %d body bytes, overflow %v",
				c.status, c.header, c.body.Len(), c.overflow)
		}
		c.Header().Set("X-Backend", "v")
		c.WriteHeader(http.StatusTeapot)
		_, _ = c.Write(bytes.Repeat([]byte("x"), maxCapture+10))
		if !c.overflow {
			t.Fatal("no overflow")
		}
		c.release()
		small := newCapture()
		small.Header().Set("X-Other", "w")
		_, _ = small.Write([]byte(`{"error":"x"}`))
		small.release()
	}
}
