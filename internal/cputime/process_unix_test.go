//go:build unix

package cputime

import (
	"testing"
	"time"
)

func TestProcessCountsBusyLoop(t *testing.T) {
	before, ok := Process()
	if !ok {
		t.Fatal("the CPU time is not available")
	}
	// On a busy machine the loop gets the CPU only part of the time, so it
	// spins until the count grows, and fails only when it never does.
	const want = 25 * time.Millisecond
	deadline := time.Now().Add(10 * time.Second)
	for {
		after, ok := Process()
		if !ok {
			t.Fatal("the CPU time is not available")
		}
		if after-before >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("a busy loop of 10 s used %s of CPU time, want at least %s", after-before, want)
		}
	}
}
