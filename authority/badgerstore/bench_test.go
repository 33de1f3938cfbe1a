package badgerstore

import (
	"context"
	"io"
	"log/slog"
	"runtime"
	"testing"

	"github.com/sockauth/sockauth/authority"
	"github.com/sockauth/sockauth/authority/storetest"
)

// benchWriters is the number of parallel writers in the write benchmarks,
// as many as the callers of the gRPC load in docs/BENCHMARKS.md.
const benchWriters = 64

// benchStore opens a store on disk with synced writes, as the authority
// runs it. cacheSessions is Options.CacheSessions.
func benchStore(b *testing.B, cacheSessions int) *Store {
	b.Helper()
	store, err := Open(b.TempDir(), Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		CacheSessions: cacheSessions})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	return store
}

// reportWritesPerSync reports the writes per sync and the mean time of a
// sync since before.
func reportWritesPerSync(b *testing.B, store *Store, before SyncStats) {
	after := store.Stats()
	if syncs := after.Syncs - before.Syncs; syncs > 0 {
		b.ReportMetric(float64(after.Writes-before.Writes)/float64(syncs), "writes/sync")
		b.ReportMetric(float64((after.SyncTime-before.SyncTime).Microseconds())/float64(syncs), "µs/sync")
	}
}

// createdSessions creates n sessions and returns them.
func createdSessions(b *testing.B, store *Store, n int) []*authority.Session {
	b.Helper()
	sessions := make([]*authority.Session, n)
	for i := range sessions {
		sessions[i] = storetest.NewSession()
		if err := store.Create(context.Background(), sessions[i]); err != nil {
			b.Fatal(err)
		}
	}
	return sessions
}

// BenchmarkStoreCreate measures the creation of new sessions by parallel
// writers, each waiting for the sync that covers its write.
func BenchmarkStoreCreate(b *testing.B) {
	store := benchStore(b, 0)
	b.ReportAllocs()
	b.SetParallelism(benchWriters / runtime.GOMAXPROCS(0))
	before := store.Stats()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := store.Create(context.Background(), storetest.NewSession()); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	reportWritesPerSync(b, store, before)
}

// BenchmarkStoreCompareAndSwap measures the write of a rotation: parallel
// writers each replace their own session's record, version after version.
func BenchmarkStoreCompareAndSwap(b *testing.B) {
	store := benchStore(b, 0)
	b.SetParallelism(benchWriters / runtime.GOMAXPROCS(0))
	sessions := make(chan *authority.Session, benchWriters)
	for _, session := range createdSessions(b, store, benchWriters) {
		sessions <- session
	}
	b.ReportAllocs()
	before := store.Stats()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		session := <-sessions
		for pb.Next() {
			next := *session
			next.Version++
			next.PreviousTokenID, next.CurrentTokenID = session.CurrentTokenID, session.CurrentTokenID+"'"
			if err := store.CompareAndSwap(context.Background(), session.Version, &next); err != nil {
				b.Error(err)
				return
			}
			session = &next
		}
	})
	b.StopTimer()
	reportWritesPerSync(b, store, before)
}

// BenchmarkStoreGet measures parallel reads of synced sessions, served by
// the cache of recently written sessions or, with it off, by Badger.
func BenchmarkStoreGet(b *testing.B) {
	for _, bench := range []struct {
		name          string
		cacheSessions int
	}{{"cached", 0}, {"uncached", -1}} {
		b.Run(bench.name, func(b *testing.B) {
			store := benchStore(b, bench.cacheSessions)
			sessions := createdSessions(b, store, 1024)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					if _, err := store.Get(context.Background(), sessions[i%len(sessions)].ID); err != nil {
						b.Error(err)
						return
					}
					i++
				}
			})
		})
	}
}
