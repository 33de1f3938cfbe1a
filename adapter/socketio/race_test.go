//go:build race

package socketio

// raceEnabled reports whether the tests run with the race detector.
const raceEnabled = true
