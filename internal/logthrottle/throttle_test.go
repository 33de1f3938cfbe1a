package logthrottle

import (
	"testing"
	"time"
)

func TestThrottleHoldsBackAndCounts(t *testing.T) {
	throttle := New(3, time.Hour)
	var lines []int64
	for range 10 {
		throttle.Log(func(suppressed int64) { lines = append(lines, suppressed) })
	}
	if len(lines) != 3 {
		t.Fatalf("%d lines passed, expected the burst of 3", len(lines))
	}
	for i, suppressed := range lines {
		if suppressed != 0 {
			t.Errorf("line %d reports %d suppressed, expected 0 within the burst", i, suppressed)
		}
	}
}

func TestThrottlePassesAfterInterval(t *testing.T) {
	throttle := New(1, 20*time.Millisecond)
	var lines []int64
	for range 5 {
		throttle.Log(func(suppressed int64) { lines = append(lines, suppressed) })
	}
	time.Sleep(30 * time.Millisecond)
	throttle.Log(func(suppressed int64) { lines = append(lines, suppressed) })
	if len(lines) != 2 {
		t.Fatalf("%d lines passed, expected the first one and one after the interval", len(lines))
	}
	if lines[1] != 4 {
		t.Errorf("the line after the interval reports %d suppressed, expected 4", lines[1])
	}
}
