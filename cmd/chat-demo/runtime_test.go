package main

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/sockauth/sockauth/internal/idlememory"
)

// TestIdleReleaseReturnsHeartbeatGarbage runs the chat demo's idle release
// on a scripted heap like that of 10,000 idle 4.x sockets. The first
// release returns a burst and leaves 200 MB live. The sockets' first
// heartbeats then add 13 MB of garbage, 2.5 MB per check, and a second
// release must return it.
func TestIdleReleaseReturnsHeartbeatGarbage(t *testing.T) {
	const (
		mb        = 1 << 20
		live      = 200 * mb
		heartbeat = 13 * mb
		perCheck  = 5 * mb / 2
	)
	heap := idlememory.Sample{Objects: 300 * mb, Live: 250 * mb, Free: 50 * mb}
	releases := 0
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()

	read := func() idlememory.Sample {
		sample := heap
		// Heartbeat garbage accumulates once the burst was returned, and
		// stops at what one round of heartbeats leaves.
		if releases > 0 && heap.Objects < live+heartbeat {
			heap.Allocated += perCheck
			heap.Objects = min(heap.Objects+perCheck, live+heartbeat)
		}
		return sample
	}
	release := func() {
		releases++
		heap.Objects, heap.Live, heap.Free = live, live, 0
		if releases == 2 {
			cancel()
		}
	}

	config := socketIdleMemory
	config.Interval = time.Millisecond
	config.Run(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)), read, release)

	if releases != 2 {
		t.Fatalf("%d releases, expected one for the burst and one for 13 MB of heartbeat garbage on 200 MB live", releases)
	}
}
