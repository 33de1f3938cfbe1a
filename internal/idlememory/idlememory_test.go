package idlememory

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
	c := Config{QuietBytes: 4 << 20, MinReclaimBytes: 16 << 20}
	tests := []struct {
		name          string
		before, after Sample
		baseline      uint64
		want          bool
	}{
		{
			name:   "quiet with a grown heap",
			before: Sample{Allocated: 100 << 20},
			after:  Sample{Allocated: 101 << 20, Objects: 90 << 20, Live: 30 << 20},
			want:   true,
		},
		{
			// The last collection ran while the garbage was in use.
			name:   "quiet with garbage counted as live",
			before: Sample{Allocated: 100 << 20},
			after:  Sample{Allocated: 100 << 20, Objects: 90 << 20, Live: 90 << 20},
			want:   true,
		},
		{
			name:     "quiet with free heap",
			before:   Sample{Allocated: 100 << 20},
			after:    Sample{Allocated: 100 << 20, Objects: 30 << 20, Live: 30 << 20, Free: 20 << 20},
			baseline: 30 << 20,
			want:     true,
		},
		{
			name:   "busy",
			before: Sample{Allocated: 100 << 20},
			after:  Sample{Allocated: 110 << 20, Objects: 90 << 20, Live: 30 << 20},
		},
		{
			name:   "allocated just over quiet",
			before: Sample{Allocated: 100 << 20},
			after:  Sample{Allocated: 104<<20 + 1, Objects: 90 << 20},
		},
		{
			name:   "allocated exactly quiet",
			before: Sample{Allocated: 100 << 20},
			after:  Sample{Allocated: 104 << 20, Objects: 90 << 20},
			want:   true,
		},
		{
			name:     "quiet, grown less than the minimum since the last release",
			before:   Sample{Allocated: 100 << 20},
			after:    Sample{Allocated: 100 << 20, Objects: 40 << 20, Live: 30 << 20, Free: 1 << 20},
			baseline: 30 << 20,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := c.shouldRelease(tt.before, tt.after, tt.baseline); got != tt.want {
				t.Errorf("shouldRelease = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestShouldReleaseScalesQuietWithLiveHeap(t *testing.T) {
	fixed := Config{QuietBytes: 4 << 20, MinReclaimBytes: 16 << 20}
	scaled := fixed
	scaled.QuietLiveFraction = 0.05
	// 8 MiB in one interval is the heartbeats of many idle sockets on a
	// 200 MiB live heap: 4% of it.
	before := Sample{Allocated: 100 << 20}
	after := Sample{Allocated: 108 << 20, Objects: 230 << 20, Live: 200 << 20}
	baseline := uint64(200 << 20)

	if fixed.shouldRelease(before, after, baseline) {
		t.Error("a fixed 4 MiB limit counted 8 MiB in one interval as quiet")
	}
	if !scaled.shouldRelease(before, after, baseline) {
		t.Error("5% of a 200 MiB live heap did not count 8 MiB in one interval as quiet")
	}
	busy := Sample{Allocated: 111 << 20, Objects: 230 << 20, Live: 200 << 20}
	if scaled.shouldRelease(before, busy, baseline) {
		t.Error("5% of a 200 MiB live heap counted 11 MiB in one interval as quiet")
	}
	// Before the first release the baseline is zero, and the live heap of
	// the last collection sets the limit.
	if !scaled.shouldRelease(before, after, 0) {
		t.Error("5% of a 200 MiB live heap did not count 8 MiB as quiet before the first release")
	}
}

func TestShouldReleaseScalesReclaimWithLiveHeap(t *testing.T) {
	c := Config{QuietBytes: 4 << 20, MinReclaimBytes: 16 << 20, MinReclaimLiveFraction: 0.25}
	before := Sample{Allocated: 100 << 20}
	baseline := uint64(400 << 20)

	// 40 MiB beyond a 400 MiB live heap is garbage that a collection at a
	// GC percent of 25 would reach first.
	grown := Sample{Allocated: 101 << 20, Objects: 440 << 20, Live: 400 << 20}
	if c.shouldRelease(before, grown, baseline) {
		t.Error("a heap 40 MiB beyond a 400 MiB live heap released with a quarter as the limit")
	}
	burst := Sample{Allocated: 101 << 20, Objects: 520 << 20, Live: 400 << 20}
	if !c.shouldRelease(before, burst, baseline) {
		t.Error("a heap 120 MiB beyond a 400 MiB live heap did not release")
	}
	// A small live heap keeps the fixed minimum.
	small := Sample{Allocated: 101 << 20, Objects: 30 << 20, Live: 10 << 20}
	if !c.shouldRelease(before, small, 10<<20) {
		t.Error("a heap 20 MiB beyond a 10 MiB live heap did not release")
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
	c := Config{Interval: 20 * time.Millisecond, QuietBytes: 4 << 20, MinReclaimBytes: 32 << 20}
	go c.Run(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)), ReadSample, release)

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
	time.Sleep(10 * c.Interval)
	runtime.Gosched()
	if got := releases.Load(); got != 1 {
		t.Errorf("%d releases after one burst, want 1", got)
	}
}
