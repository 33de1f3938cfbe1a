package main

import (
	"context"
	"io"
	"log/slog"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
	"testing"
	"time"
)

func TestIdleMemoryShouldRelease(t *testing.T) {
	m := idleMemory{quietBytes: 4 << 20, minReclaimBytes: 16 << 20}
	tests := []struct {
		name          string
		before, after heapSample
		baseline      uint64
		want          bool
	}{
		{
			name:   "quiet with a grown heap",
			before: heapSample{allocated: 100 << 20},
			after:  heapSample{allocated: 101 << 20, objects: 90 << 20, live: 30 << 20},
			want:   true,
		},
		{
			// The last collection ran while the garbage was in use.
			name:   "quiet with garbage counted as live",
			before: heapSample{allocated: 100 << 20},
			after:  heapSample{allocated: 100 << 20, objects: 90 << 20, live: 90 << 20},
			want:   true,
		},
		{
			name:     "quiet with free heap",
			before:   heapSample{allocated: 100 << 20},
			after:    heapSample{allocated: 100 << 20, objects: 30 << 20, live: 30 << 20, free: 20 << 20},
			baseline: 30 << 20,
			want:     true,
		},
		{
			name:   "busy",
			before: heapSample{allocated: 100 << 20},
			after:  heapSample{allocated: 110 << 20, objects: 90 << 20, live: 30 << 20},
		},
		{
			name:   "allocated just over quiet",
			before: heapSample{allocated: 100 << 20},
			after:  heapSample{allocated: 104<<20 + 1, objects: 90 << 20},
		},
		{
			name:   "allocated exactly quiet",
			before: heapSample{allocated: 100 << 20},
			after:  heapSample{allocated: 104 << 20, objects: 90 << 20},
			want:   true,
		},
		{
			name:     "quiet, grown less than the minimum since the last release",
			before:   heapSample{allocated: 100 << 20},
			after:    heapSample{allocated: 100 << 20, objects: 40 << 20, live: 30 << 20, free: 1 << 20},
			baseline: 30 << 20,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := m.shouldRelease(tt.before, tt.after, tt.baseline); got != tt.want {
				t.Errorf("shouldRelease = %v, want %v", got, tt.want)
			}
		})
	}
}

// heapReleased reads how much heap memory the runtime has returned to the
// operating system.
func heapReleased() uint64 {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(sample)
	return sample[0].Value.Uint64()
}

// burst keeps the burst's memory in use until the test drops it.
var burst [][]byte

func TestIdleMemoryReleasesAfterBurst(t *testing.T) {
	// With the collector off, the burst stays on the heap until the loop
	// releases it, as it does in an authority that has gone quiet.
	// debug.FreeOSMemory collects all the same.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	debug.FreeOSMemory()

	for range 64 {
		burst = append(burst, make([]byte, 1<<20))
	}
	// The last collection of a burst runs while its memory is in use, so
	// the runtime's live figure counts it.
	runtime.GC()
	burst = nil
	before := heapReleased()

	var releases atomic.Int32
	releasedAfter := make(chan uint64, 1)
	release := func() {
		debug.FreeOSMemory()
		if releases.Add(1) == 1 {
			releasedAfter <- heapReleased()
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := idleMemory{interval: 20 * time.Millisecond, quietBytes: 4 << 20, minReclaimBytes: 32 << 20}
	go m.run(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)), readHeapSample, release)

	select {
	case after := <-releasedAfter:
		if after < before+32<<20 {
			t.Errorf("the runtime returned %d MiB after the release, want at least the 32 MiB of the burst",
				(after-min(before, after))>>20)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no release within 5 s of a 64 MiB burst")
	}

	// Once the burst is returned, a quiet process has nothing left to
	// release.
	time.Sleep(10 * m.interval)
	runtime.Gosched()
	if got := releases.Load(); got != 1 {
		t.Errorf("%d releases after one burst, want 1", got)
	}
}
