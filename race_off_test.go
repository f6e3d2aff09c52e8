//go:build !race

package groupjoin

// raceDetector: see race_on_test.go.
const raceDetector = false
