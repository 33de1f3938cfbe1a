package main

import (
	"log/slog"
	"os"
	"runtime/debug"
	"time"

	"github.com/sockauth/sockauth/internal/idlememory"
)

// defaultGCPercent is the default of --gc-percent. Idle sockets keep most of
// their memory in long-lived objects, and with Go's default of 100 the heap
// grows to twice their size before a collection. With 50, RSS per idle
// socket was about 10% lower 3 s after 10,000 sockets connected, for each
// client generation, for about 5% (2.x) and 15% (4.x) more server CPU per
// handshake. With 25, the heap that 10,000 connecting 4.x sockets leave
// behind is less fragmented. 15 s after they connected, once the idle
// release had run, RSS per socket was 28.4 KiB against 30.4 KiB with 50
// (`socketbench -clients 200 -idle 10000 -idle-reads 3s,15s,30s`, one run
// each).
// Server CPU per handshake rose by about 10%, and handshakes per second
// fell by 3% to 4% (bench/socketbench, three rounds on a shared 2-core
// machine). Pass --gc-percent 50 to trade that memory for the CPU.
const defaultGCPercent = 25

// applyGCSettings sets the garbage collector's target percentage unless
// GOGC is set, and its soft memory limit in MiB unless GOMEMLIMIT is set or
// limitMiB is 0. The limit is soft: the process may exceed it, and the
// collector then runs more often, with at most about half of the CPU.
func applyGCSettings(gcPercent int, limitMiB int64, logger *slog.Logger) {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(gcPercent)
		logger.Debug("garbage collector target set", "percent", gcPercent)
	}
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set && limitMiB > 0 {
		debug.SetMemoryLimit(limitMiB << 20)
		logger.Debug("soft memory limit set", "mib", limitMiB)
	}
}

// socketIdleMemory is the setting that decides when the chat demo returns
// its idle heap to the system. A release follows a second in which the demo
// allocated at most 2 MiB, or 2.5% of its live heap when that is more. It
// waits until the heap has grown 8 MiB beyond what the last release left,
// or a twentieth of that live heap when that is more. Idle sockets keep
// allocating for their heartbeats, in proportion to their number, so the
// share keeps a server with many of them quiet. The first heartbeats of
// 10,000 idle 4.x sockets leave about 13 MB of garbage, which a release
// returns with these limits. 30 s after the sockets connected, RSS per
// socket was 28.9 and 29.3 KiB, against 30.1 and 30.2 KiB with 16 MiB
// (bench/socketbench, docs/BENCHMARKS.md). The share keeps a server with a
// large heap from forcing a full collection every few seconds.
// NOTE: with 100,000 idle 4.x sockets, about 1.9 GB live by the figures of
// 10,000, a release would follow every 15 to 25 s of heartbeats, each a
// full collection of that heap. That is an estimate, not measured at that
// size.
var socketIdleMemory = idlememory.Config{
	Interval:               time.Second,
	QuietBytes:             2 << 20,
	QuietLiveFraction:      0.025,
	MinReclaimBytes:        8 << 20,
	MinReclaimLiveFraction: 0.05,
}
