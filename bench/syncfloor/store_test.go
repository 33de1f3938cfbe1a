//go:build linux

package main

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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
	checkStoredValue(t, b.db, key, b.value)
}

// checkStoredValue fails unless db holds want under key.
func checkStoredValue(t *testing.T, db *badger.DB, key, want []byte) {
	t.Helper()
	err := db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(key)
		if err != nil {
			return err
		}
		return item.Value(func(value []byte) error {
			if !bytes.Equal(value, want) {
				t.Errorf("stored %d bytes under %s, want the %d-byte record", len(value), key, len(want))
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

	// Each phase must write once to its own database and to no other one.
	writes := func() map[string]uint64 {
		return map[string]uint64{
			"store":        health.store.store.Stats().Writes,
			"group-commit": health.store.group.stats().writes,
			"log":          l.stats().writes,
			"Badger key":   keyVersion(),
		}
	}
	for _, test := range []struct {
		kind phaseKind
		own  string
	}{
		{storePhase, "store"},
		{groupPhase, "group-commit"},
		{rawPhase, "Badger key"},
	} {
		before := writes()
		check(test.kind)
		after := writes()
		for name, count := range after {
			switch {
			case name == test.own && count <= before[name]:
				t.Errorf("phase %q did not write to the %s database (count %d before and %d after)",
					test.kind.label, name, before[name], count)
			case name == test.own && name != "Badger key" && count != before[name]+1:
				t.Errorf("phase %q made %d %s writes, want 1", test.kind.label, count-before[name], name)
			case name != test.own && count != before[name]:
				t.Errorf("phase %q wrote to the %s database (count %d before and %d after)",
					test.kind.label, name, before[name], count)
			}
		}
	}
}

func TestGroupBadgerSharesSyncs(t *testing.T) {
	g := openTestStore(t, 32).group
	if g.db.Opts().SyncWrites {
		t.Error("the group-commit database syncs each write itself")
	}
	rotateConcurrently(t, g, 32, 10)

	stats := g.stats()
	if stats.writes != 320 {
		t.Errorf("%d writes counted, want 320", stats.writes)
	}
	if stats.syncs == 0 || stats.syncs >= stats.writes {
		t.Errorf("%d syncs for %d writes, want at least one and fewer than the writes", stats.syncs, stats.writes)
	}
	key := <-g.keys
	g.keys <- key
	checkStoredValue(t, g.db, key, g.value)
}

// TestGroupBadgerFollowsNewLogs checks that a sync moves on to the memtable
// logs that Badger created since the last one, after syncing each older log
// and the name of each newer one.
func TestGroupBadgerFollowsNewLogs(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"00003.mem", "00004.mem", "00005.mem", "00001.vlog"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("log"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var synced []string
	g := &groupBadger{dir: dir,
		syncFile: func(f *os.File) error {
			synced = append(synced, "data "+filepath.Base(f.Name()))
			return nil
		},
		syncName: func(path string) error {
			synced = append(synced, "name "+filepath.Base(path))
			return nil
		},
	}
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
	want := []string{"data 00005.mem", "name 00006.mem", "data 00006.mem", "name 00007.mem", "data 00007.mem"}
	if !slices.Equal(synced, want) {
		t.Errorf("synced %q, want %q", synced, want)
	}
	if err := g.wal.Close(); err != nil {
		t.Error(err)
	}
}

// TestGroupBadgerWaitsForSync checks that a write returns only after a sync
// of the memtable's log has ended.
func TestGroupBadgerWaitsForSync(t *testing.T) {
	g := openTestStore(t, 1).group
	syncing, blocked := make(chan string, 1), make(chan struct{})
	// The sync must end before the store closes, also when the test fails.
	release := sync.OnceFunc(func() { close(blocked) })
	t.Cleanup(release)
	g.syncFile = func(f *os.File) error {
		syncing <- f.Name()
		<-blocked
		return fdatasync(f)
	}

	returned := make(chan error, 1)
	go func() { returned <- g.rotate(context.Background()) }()
	select {
	case name := <-syncing:
		if filepath.Ext(name) != ".mem" {
			t.Errorf("synced %s, want a memtable log", name)
		}
	case err := <-returned:
		t.Fatalf("the write returned (%v) without a sync", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no sync started within 10 s of the write")
	}
	select {
	case err := <-returned:
		t.Fatalf("the write returned (%v) while its sync was still running", err)
	case <-time.After(50 * time.Millisecond):
	}
	release()
	if err := <-returned; err != nil {
		t.Fatal(err)
	}
}

// TestGroupBadgerRejectsWritesAfterFailedSync checks that the writes of a
// failed sync and every later write fail.
func TestGroupBadgerRejectsWritesAfterFailedSync(t *testing.T) {
	g := openTestStore(t, 1).group
	diskGone := errors.New("disk gone")
	syncs := 0
	g.syncFile = func(*os.File) error {
		syncs++
		return diskGone
	}

	if err := g.rotate(context.Background()); !errors.Is(err, diskGone) {
		t.Errorf("write during a failed sync returned %v, want %v", err, diskGone)
	}
	if err := g.rotate(context.Background()); !errors.Is(err, diskGone) {
		t.Errorf("write after a failed sync returned %v, want %v", err, diskGone)
	}
	if syncs != 1 {
		t.Errorf("%d syncs, want 1: a write after a failed sync must not start another", syncs)
	}
	if stats := g.stats(); stats.syncs != 0 || stats.writes != 1 {
		t.Errorf("counters %+v, want 1 write and no successful sync", stats)
	}
}

func TestGroupBadgerFailsWaitingWrites(t *testing.T) {
	g := openTestStore(t, 2).group
	diskGone := errors.New("disk gone")
	entered := make(chan struct{})
	release := make(chan struct{})
	var syncs atomic.Int32
	g.syncFile = func(*os.File) error {
		if syncs.Add(1) > 1 {
			return nil
		}
		close(entered)
		<-release
		return diskGone
	}

	first := make(chan error, 1)
	go func() { first <- g.rotate(context.Background()) }()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("no sync started within 10 s of the first write")
	}
	second := make(chan error, 1)
	go func() { second <- g.rotate(context.Background()) }()
	waitForOpenWrites(t, g, 1)
	close(release)

	if err := <-first; !errors.Is(err, diskGone) {
		t.Errorf("write of the failed sync returned %v, want %v", err, diskGone)
	}
	if err := <-second; !errors.Is(err, diskGone) {
		t.Errorf("write applied during the failed sync returned %v, want %v", err, diskGone)
	}
	if n := syncs.Load(); n != 1 {
		t.Errorf("%d syncs, want 1: writes after a failed sync must not be synced", n)
	}
}

// waitForOpenWrites waits until the open transaction of g holds count writes.
func waitForOpenWrites(t *testing.T, g *groupBadger, count int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		g.mu.Lock()
		open := len(g.open)
		g.mu.Unlock()
		if open >= count {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d writes in the open transaction after 10 s, want %d", open, count)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestGroupBadgerMovesToNewMemtableLog fills a memtable of a real Badger
// database, so that Badger starts a new log, and checks that the syncs
// follow it.
func TestGroupBadgerMovesToNewMemtableLog(t *testing.T) {
	const callers = 32
	g := openTestStore(t, callers).group
	// Records just below the value threshold stay in the memtable's log and
	// fill a 4 MiB memtable in about 4,400 writes.
	g.value = bytes.Repeat([]byte{'v'}, 1000)
	first := g.walID

	rotateConcurrently(t, g, callers, 250)
	// The last writes' sync looked for newer logs, so the open log is the
	// newest one.
	if g.walID <= first {
		t.Fatalf("8,000 writes of 1 KB left the syncs on memtable log %d", first)
	}
	if _, err := os.Lstat(g.walPath(g.walID + 1)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the syncs stayed on log %d although log %d exists (%v)", g.walID, g.walID+1, err)
	}
}

// rotateConcurrently runs callers goroutines that each call g.rotate count
// times, and reports every error.
func rotateConcurrently(t *testing.T, g *groupBadger, callers, count int) {
	t.Helper()
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			for range count {
				if err := g.rotate(context.Background()); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}
