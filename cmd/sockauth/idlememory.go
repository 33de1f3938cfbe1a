package main

import (
	"context"
	"log/slog"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// idleMemory configures the return of the Go heap's unused memory to the
// operating system once the authority has gone quiet.
//
// The Go runtime keeps the heap that a burst of work grew, such as a bulk
// login or Badger's compactions after it. An idle authority allocates too
// little to start a collection, so the garbage stays until the runtime's
// periodic collection two minutes later, and the scavenger then keeps part
// of the freed heap. After a million logins the authority held 100 to
// 111 MiB of anonymous memory, and 27 MiB once a forced collection had
// returned the rest (docs/BENCHMARKS.md).
type idleMemory struct {
	// interval is how often the loop looks at the heap.
	interval time.Duration
	// quietBytes is how much the process may allocate in one interval and
	// still count as quiet. A busy authority needs no help: its collections
	// run often, and a forced one would only cost CPU.
	quietBytes uint64
	// minReclaimBytes is how far the heap must have grown beyond the live
	// heap that the last release left for a release to be worth a forced
	// collection.
	minReclaimBytes uint64
}

// defaultIdleMemory is the setting of `sockauth serve`. An idle authority
// allocated 0.6 MB in 30 s, one scrape of /metrics included, so 4 MiB in 5 s
// leaves room for the store's background work.
var defaultIdleMemory = idleMemory{interval: 5 * time.Second, quietBytes: 4 << 20, minReclaimBytes: 16 << 20}

// heapSample is a reading of the runtime's heap metrics, in bytes.
type heapSample struct {
	// allocated counts every byte allocated since the process started.
	allocated uint64
	// objects is the memory of heap objects, dead ones that no collection
	// has freed yet included.
	objects uint64
	// live is the memory of the objects that the last collection found
	// live. Garbage that was still in use at that collection counts until
	// the next one.
	live uint64
	// free is heap memory that holds no object and is not yet returned to
	// the operating system.
	free uint64
}

// heapMetrics are the runtime/metrics names of heapSample's fields, in order.
var heapMetrics = []string{
	"/gc/heap/allocs:bytes",
	"/memory/classes/heap/objects:bytes",
	"/gc/heap/live:bytes",
	"/memory/classes/heap/free:bytes",
}

// readHeapSample reads the heap metrics of this process.
func readHeapSample() heapSample {
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
	return heapSample{allocated: value(0), objects: value(1), live: value(2), free: value(3)}
}

// held returns the heap memory that the process holds: its objects, live
// or dead, and the free heap not yet returned.
func (s heapSample) held() uint64 {
	return s.objects + s.free
}

// shouldRelease reports whether the process was quiet between before and
// after, and the heap it holds has grown by at least minReclaimBytes beyond
// baseline, the live heap that the last release left. The runtime's own
// live figure cannot tell: it dates from the last collection, which in a
// burst ran while much of the later garbage was still in use.
func (m idleMemory) shouldRelease(before, after heapSample, baseline uint64) bool {
	allocated := after.allocated - min(before.allocated, after.allocated)
	return allocated <= m.quietBytes && after.held() >= baseline+m.minReclaimBytes
}

// run looks at the heap every interval until ctx is done, and calls release
// once the process has been quiet for an interval and holds enough memory
// beyond the live heap of the last release. read reads the heap, and release
// collects garbage and returns free memory. `sockauth serve` passes
// readHeapSample and debug.FreeOSMemory.
//
// Under a light, steady load every interval is quiet, so a release runs
// each time the process has allocated about minReclaimBytes more: a full
// collection of the live heap, which took about 10 ms with 23 MB live.
func (m idleMemory) run(ctx context.Context, logger *slog.Logger, read func() heapSample, release func()) {
	ticker := time.NewTicker(m.interval)
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
		if m.shouldRelease(before, after, baseline) {
			started := time.Now()
			release()
			released := read()
			baseline = released.live
			logger.Debug("idle heap memory returned to the system", "held_bytes", after.held(),
				"held_after_bytes", released.held(), "live_bytes", released.live, "took", time.Since(started))
			after = released
		}
		before = after
	}
}

// returnIdleMemory runs defaultIdleMemory with the runtime's own heap until
// ctx is done.
func returnIdleMemory(ctx context.Context, logger *slog.Logger) {
	defaultIdleMemory.run(ctx, logger, readHeapSample, debug.FreeOSMemory)
}
