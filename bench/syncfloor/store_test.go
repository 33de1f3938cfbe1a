//go:build linux

package main

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
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

	logWrites, storeWrites := l.stats().writes, health.store.stats().writes
	check(storePhase)
	if got := health.store.stats().writes; got != storeWrites+1 {
		t.Errorf("the store phase made %d store writes, want 1", got-storeWrites)
	}
	if got := l.stats().writes; got != logWrites {
		t.Errorf("the store phase made %d log writes, want none", got-logWrites)
	}

	version := keyVersion()
	check(rawPhase)
	if got := keyVersion(); got <= version {
		t.Errorf("the Badger phase left its key at version %d, want a version above %d", got, version)
	}
	if got := health.store.stats().writes; got != storeWrites+1 {
		t.Errorf("the Badger phase made %d store writes, want none", got-storeWrites-1)
	}
	if got := l.stats().writes; got != logWrites {
		t.Errorf("the Badger phase made %d log writes, want none", got-logWrites)
	}
}
