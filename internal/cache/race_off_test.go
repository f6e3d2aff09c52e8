//go:build !race

package cache

// raceDetector: see race_on_test.go.
const raceDetector = false
