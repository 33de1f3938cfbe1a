//go:build linux

package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/dgraph-io/badger/v4"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/sockauth/sockauth/authority"
)

// openTestStore opens the databases of the store phases with the given
// number of sessions, and closes them when the test ends.
func openTestStore(t *testing.T, sessions int) *sessionStore {
	t.Helper()
	s, err := openSessionStore(filepath.Join(t.TempDir(), "badger"), sessions)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

func TestSessionStoreRotatesEachSession(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, 2)

	before := map[string]*authority.Session{}
	for range 2 {
		id := <-s.ids
		session, err := s.store.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		before[id] = session
		s.ids <- id
	}
	// Each rotation takes the session that waited longest, so four
	// rotations rotate each session twice.
	for range 4 {
		if err := s.rotate(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for id, old := range before {
		got, err := s.store.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if got.Version != old.Version+2 || got.Generation != old.Generation+2 {
			t.Errorf("session %s: version %d and generation %d, want %d and %d",
				id, got.Version, got.Generation, old.Version+2, old.Generation+2)
		}
		if got.CurrentTokenID == old.CurrentTokenID || got.PreviousTokenID == old.CurrentTokenID || got.PreviousTokenID == "" {
			t.Errorf("session %s kept its token ids after two rotations: %+v", id, got)
		}
	}
	if stats := s.stats(); stats.writes != 6 || stats.syncs == 0 {
		t.Errorf("store counters %+v, want 6 writes (2 creations, 4 rotations) and some syncs", stats)
	}
}

func TestSyncedBadgerWritesRecord(t *testing.T) {
	b := openTestStore(t, 1).badger
	if !b.db.Opts().SyncWrites {
		t.Error("the database does not sync its writes")
	}
	key := <-b.keys
	b.keys <- key
	if err := b.rotate(context.Background()); err != nil {
		t.Fatal(err)
	}
	err := b.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(key)
		if err != nil {
			return err
		}
		return item.Value(func(value []byte) error {
			if !bytes.Equal(value, b.value) {
				t.Errorf("stored %d bytes, want the %d-byte record", len(value), len(b.value))
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestStorePhasesWriteOwnDatabase checks that each store phase writes to
// its own database and to nothing else.
func TestStorePhasesWriteOwnDatabase(t *testing.T) {
	health, l := newTestHealth(t)
	health.store = openTestStore(t, 1)
	key := <-health.store.badger.keys
	health.store.badger.keys <- key
	keyVersion := func() uint64 {
		var version uint64
		err := health.store.badger.db.View(func(txn *badger.Txn) error {
			item, err := txn.Get(key)
			if errors.Is(err, badger.ErrKeyNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			version = item.Version()
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return version
	}
	check := func(kind phaseKind) {
		t.Helper()
		if _, err := health.Check(context.Background(), &healthpb.HealthCheckRequest{Service: kind.service}); err != nil {
			t.Fatalf("service %q: %v", kind.service, err)
		}
	}

	storeWrites := func() uint64 { return health.store.store.Stats().Writes }
	groupWrites := func() uint64 { return health.store.group.stats().writes }
	logWrites, storeBefore, groupBefore := l.stats().writes, storeWrites(), groupWrites()
	check(storePhase)
	if got := storeWrites(); got != storeBefore+1 {
		t.Errorf("the store phase made %d store writes, want 1", got-storeBefore)
	}
	if got := groupWrites(); got != groupBefore {
		t.Errorf("the store phase made %d group-commit writes, want none", got-groupBefore)
	}
	if got := l.stats().writes; got != logWrites {
		t.Errorf("the store phase made %d log writes, want none", got-logWrites)
	}

	check(groupPhase)
	if got := groupWrites(); got != groupBefore+1 {
		t.Errorf("the group-commit phase made %d group-commit writes, want 1", got-groupBefore)
	}
	if got := storeWrites(); got != storeBefore+1 {
		t.Errorf("the group-commit phase made %d store writes, want none", got-storeBefore-1)
	}

	version := keyVersion()
	check(rawPhase)
	if got := keyVersion(); got <= version {
		t.Errorf("the Badger phase left its key at version %d, want a version above %d", got, version)
	}
	if got := storeWrites(); got != storeBefore+1 {
		t.Errorf("the Badger phase made %d store writes, want none", got-storeBefore-1)
	}
	if got := groupWrites(); got != groupBefore+1 {
		t.Errorf("the Badger phase made %d group-commit writes, want none", got-groupBefore-1)
	}
	if got := l.stats().writes; got != logWrites {
		t.Errorf("the Badger phase made %d log writes, want none", got-logWrites)
	}
}

func TestGroupBadgerSharesSyncs(t *testing.T) {
	g := openTestStore(t, 32).group
	if g.db.Opts().SyncWrites {
		t.Error("the group-commit database syncs each write itself")
	}
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for range 10 {
				if err := g.rotate(context.Background()); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()

	stats := g.stats()
	if stats.writes != 320 {
		t.Errorf("%d writes counted, want 320", stats.writes)
	}
	if stats.syncs == 0 || stats.syncs >= stats.writes {
		t.Errorf("%d syncs for %d writes, want at least one and fewer than the writes", stats.syncs, stats.writes)
	}
	key := <-g.keys
	g.keys <- key
	err := g.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(key)
		if err != nil {
			return err
		}
		return item.Value(func(value []byte) error {
			if !bytes.Equal(value, g.value) {
				t.Errorf("stored %d bytes, want the %d-byte record", len(value), len(g.value))
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestGroupBadgerFollowsNewLogs checks that a sync moves on to the memtable
// logs that Badger created since the last one.
func TestGroupBadgerFollowsNewLogs(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"00003.mem", "00004.mem", "00005.mem", "00001.vlog"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("log"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	g := &groupBadger{dir: dir}
	if err := g.openNewestWAL(); err != nil {
		t.Fatal(err)
	}
	if g.walID != 5 {
		t.Errorf("opened memtable log %d, want the newest, 5", g.walID)
	}

	for _, id := range []uint64{6, 7} {
		if err := os.WriteFile(g.walPath(id), []byte("log"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := g.syncWAL(); err != nil {
		t.Fatal(err)
	}
	if g.walID != 7 || g.wal.Name() != filepath.Join(dir, "00007.mem") {
		t.Errorf("after a sync the open log is %d (%s), want 7", g.walID, g.wal.Name())
	}
	if err := g.wal.Close(); err != nil {
		t.Error(err)
	}
}
