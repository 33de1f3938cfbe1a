package logthrottle

import (
	"sync"
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

func TestThrottleCountsUnderConcurrency(t *testing.T) {
	throttle := New(1000, time.Hour)
	var mu sync.Mutex
	var suppressed []int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				throttle.Log(func(n int64) {
					mu.Lock()
					suppressed = append(suppressed, n)
					mu.Unlock()
				})
			}
		})
	}
	wg.Wait()
	if len(suppressed) != 800 {
		t.Fatalf("%d lines passed, expected all 800 within the burst", len(suppressed))
	}
	for i, n := range suppressed {
		if n != 0 {
			t.Fatalf("line %d reports %d suppressed, expected 0 within the burst", i, n)
		}
	}
}
