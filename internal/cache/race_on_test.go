//go:build race

package cache

// raceDetector is whether the tests run under -race, which makes
// sync.Pool drop a share of what is put back: allocation counts that rely
// on a pool are then not exact.
const raceDetector = true
