package groupjoin

import (
	"os"
	"testing"

	"github.com/caddy-groupjoin/caddy-groupjoin/internal/testcaddy"
)

// TestMain removes the Caddy binary some tests build (testcaddy.Binary).
func TestMain(m *testing.M) {
	code := m.Run()
	testcaddy.RemoveBinary()
	os.Exit(code)
}
