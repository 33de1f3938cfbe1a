//go:build race

package gosocketio

// raceEnabled reports whether the tests run with the race detector.
const raceEnabled = true
