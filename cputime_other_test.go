//go:build !unix

package groupjoin

import (
	"testing"
	"time"
)

// processCPU is not measured here: getrusage is a Unix call.
func processCPU() time.Duration { return 0 }

// reportCPU reports nothing where processCPU measures nothing.
func reportCPU(*testing.B, time.Duration) {}
