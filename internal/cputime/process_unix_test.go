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
	for start := time.Now(); time.Since(start) < 50*time.Millisecond; {
	}
	after, ok := Process()
	if !ok {
		t.Fatal("the CPU time is not available")
	}
	if used := after - before; used < 25*time.Millisecond {
		t.Errorf("a 50 ms busy loop used %s of CPU time, want at least 25 ms", used)
	}
}
