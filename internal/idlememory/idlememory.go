// Package idlememory returns the Go heap's unused memory to the operating
// system once a process has gone quiet.
//
// The Go runtime keeps the heap that a burst of work grew, such as a bulk
// login, Badger's compactions after it, or thousands of sockets connecting
// at once. A quiet process allocates too little to start a collection, so
// the garbage stays until the runtime's periodic collection two minutes
// later, and the scavenger then keeps part of the freed heap. After a
// million logins the authority held 100 to 111 MiB of anonymous memory, and
// 27 MiB once a forced collection had returned the rest (docs/BENCHMARKS.md).
package idlememory

import (
	"context"
	"log/slog"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Config is the setting that decides when a process counts as quiet and when
// a release is worth a forced collection.
type Config struct {
	// Interval is how often the loop looks at the heap.
	Interval time.Duration
	// QuietBytes is how much the process may allocate in one interval and
	// still count as quiet. A busy process needs no help: its collections
	// run often, and a forced one would only cost CPU.
	QuietBytes uint64
	// QuietLiveFraction raises QuietBytes to this fraction of the live heap
	// when that is more. Idle connections allocate in proportion to their
	// number, for their heartbeats, and a server holding many of them still
	// counts as quiet. Zero keeps QuietBytes fixed.
	QuietLiveFraction float64
	// MinReclaimBytes is how far the heap must have grown beyond the live
	// heap that the last release left for a release to be worth a forced
	// collection.
	MinReclaimBytes uint64
	// MinReclaimLiveFraction raises MinReclaimBytes to this fraction of the
	// live heap that the last release left, when that is more. Without it,
	// a server with a large heap would force a full collection each time the
	// garbage of its idle connections reached MinReclaimBytes, which can be
	// every few seconds. Zero keeps MinReclaimBytes fixed.
	MinReclaimLiveFraction float64
}

// Sample is a reading of the runtime's heap metrics, in bytes.
type Sample struct {
	// Allocated counts every byte allocated since the process started.
	Allocated uint64
	// Objects is the memory of heap objects, dead ones that no collection
	// has freed yet included.
	Objects uint64
	// Live is the memory of the objects that the last collection found
	// live. Garbage that was still in use at that collection counts until
	// the next one.
	Live uint64
	// Free is heap memory that holds no object and is not yet returned to
	// the operating system.
	Free uint64
}

// heapMetrics are the runtime/metrics names of Sample's fields, in order.
var heapMetrics = []string{
	"/gc/heap/allocs:bytes",
	"/memory/classes/heap/objects:bytes",
	"/gc/heap/live:bytes",
	"/memory/classes/heap/free:bytes",
}

// ReadSample reads the heap metrics of this process.
func ReadSample() Sample {
	samples := make([]metrics.Sample, len(heapMetrics))
	for i, name := range heapMetrics {
		samples[i].Name = name
	}
	metrics.Read(samples)
	value := func(i int) uint64 {
		if samples[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return samples[i].Value.Uint64()
	}
	return Sample{Allocated: value(0), Objects: value(1), Live: value(2), Free: value(3)}
}

// held returns the heap memory that the process holds: its objects, live
// or dead, and the free heap not yet returned.
func (s Sample) held() uint64 {
	return s.Objects + s.Free
}

// quietLimit returns how much the process may allocate in one interval and
// still count as quiet, given the live heap that the last collection found.
func (c Config) quietLimit(live uint64) uint64 {
	return max(c.QuietBytes, uint64(c.QuietLiveFraction*float64(live)))
}

// reclaimLimit returns how far the heap must have grown beyond baseline, the
// live heap that the last release left, for a release.
func (c Config) reclaimLimit(baseline uint64) uint64 {
	return max(c.MinReclaimBytes, uint64(c.MinReclaimLiveFraction*float64(baseline)))
}

// shouldRelease reports whether the process was quiet between before and
// after, and the heap it holds has grown by at least reclaimLimit beyond
// baseline, the live heap that the last release left. The runtime's own
// live figure cannot tell: it dates from the last collection, which in a
// burst ran while much of the later garbage was still in use.
func (c Config) shouldRelease(before, after Sample, baseline uint64) bool {
	allocated := after.Allocated - min(before.Allocated, after.Allocated)
	return allocated <= c.quietLimit(after.Live) && after.held() >= baseline+c.reclaimLimit(baseline)
}

// Run looks at the heap every interval until ctx is done, and calls release
// once the process has been quiet for an interval and holds enough memory
// beyond the live heap of the last release. read reads the heap, and release
// collects garbage and returns free memory; Start passes ReadSample and
// debug.FreeOSMemory.
//
// Under a light, steady load every interval is quiet, so a release runs
// each time the process has allocated about MinReclaimBytes more: a full
// collection of the live heap, which took about 10 ms with 23 MB live.
func (c Config) Run(ctx context.Context, logger *slog.Logger, read func() Sample, release func()) {
	ticker := time.NewTicker(c.Interval)
	defer ticker.Stop()

	before := read()
	var baseline uint64
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		after := read()
		if c.shouldRelease(before, after, baseline) {
			started := time.Now()
			release()
			released := read()
			baseline = released.Live
			logger.Debug("idle heap memory returned to the system", "held_bytes", after.held(),
				"held_after_bytes", released.held(), "live_bytes", released.Live, "took", time.Since(started))
			after = released
		}
		before = after
	}
}

// Start runs c with the runtime's own heap on a goroutine of its own until
// ctx is done.
func (c Config) Start(ctx context.Context, logger *slog.Logger) {
	go c.Run(ctx, logger, ReadSample, debug.FreeOSMemory)
}
