package badgerstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/sockauth/sockauth/authority"
	"github.com/sockauth/sockauth/authority/storetest"
	"github.com/sockauth/sockauth/internal/logtest"
)

// syncGate holds each sync round until the test releases it.
type syncGate struct {
	// started receives one value when a round starts.
	started chan struct{}
	// release takes the outcome of the held round: nil runs the real sync,
	// an error fails the round without syncing.
	release chan error
	// open, once closed, lets every round sync without waiting.
	open     chan struct{}
	openOnce sync.Once
}

func newSyncGate() *syncGate {
	return &syncGate{started: make(chan struct{}), release: make(chan error), open: make(chan struct{})}
}

func (g *syncGate) wrap(sync func() error) error {
	select {
	case g.started <- struct{}{}:
	case <-g.open:
		return sync()
	}
	select {
	case err := <-g.release:
		if err != nil {
			return err
		}
	case <-g.open:
	}
	return sync()
}

func (g *syncGate) openAll() { g.openOnce.Do(func() { close(g.open) }) }

// openGated opens an on-disk store in dir whose syncs wait for gate. The
// store is closed at cleanup, with the gate open.
func openGated(t *testing.T, dir string, logger *slog.Logger) (*Store, *syncGate) {
	t.Helper()
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	gate := newSyncGate()
	store, err := Open(dir, Options{Logger: logger, wrapSync: gate.wrap})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		gate.openAll()
		store.Close()
	})
	return store, gate
}

// queueCreate applies the creation of session to the open transaction and
// returns without waiting for the sync; the outcome arrives on the op's done
// channel.
func queueCreate(t *testing.T, store *Store, session *authority.Session) *writeOp {
	t.Helper()
	op, err := newWriteOp(session, true, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.submit(op); err != nil {
		t.Fatalf("submit the creation of session %s: %v", session.ID, err)
	}
	return op
}

// requirePending fails the test if op already has an outcome.
func requirePending(t *testing.T, op *writeOp, when string) {
	t.Helper()
	select {
	case err := <-op.done:
		t.Fatalf("write of session %s returned %v %s, before the sync that covers it", op.session.ID, err, when)
	default:
	}
}

func TestWriteWaitsForItsSync(t *testing.T) {
	store, gate := openGated(t, t.TempDir(), nil)
	canceled, cancel := context.WithCancel(context.Background())
	cancel()

	first := queueCreate(t, store, storetest.NewSession())
	<-gate.started
	second := queueCreate(t, store, storetest.NewSession())
	requirePending(t, first, "while its sync was held")
	gate.release <- nil
	if err := <-first.done; err != nil {
		t.Fatalf("first write: %v", err)
	}

	// The second write queued while the first round ran, so only the second
	// round covers it.
	<-gate.started
	requirePending(t, second, "while the second sync was held")

	// Its record is committed but not synced: a read waits for the sync and
	// gives up only when its context ends.
	if _, err := store.Get(canceled, second.session.ID); !errors.Is(err, context.Canceled) {
		t.Fatalf("Get of the unsynced session: %v, expected it to wait until its context was canceled", err)
	}
	if _, err := store.Get(canceled, first.session.ID); err != nil {
		t.Fatalf("Get of the synced session: %v, expected it without waiting", err)
	}

	gate.release <- nil
	if err := <-second.done; err != nil {
		t.Fatalf("second write: %v", err)
	}
	if _, err := store.Get(canceled, second.session.ID); err != nil {
		t.Fatalf("Get after the second sync: %v", err)
	}
}

func TestFailedCheckReturnsAfterSync(t *testing.T) {
	store, gate := openGated(t, t.TempDir(), nil)

	created := queueCreate(t, store, storetest.NewSession())
	<-gate.started

	// The swap expects a version that the session never had. Its check runs
	// against the creation, which is not synced yet.
	next := *created.session
	next.Version = 3
	swap, err := newWriteOp(&next, false, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.submit(swap); err != nil {
		t.Fatalf("submit the swap: %v", err)
	}
	requirePending(t, swap, "while the creation it was checked against was not synced")

	gate.release <- nil
	if err := <-created.done; err != nil {
		t.Fatalf("creation: %v", err)
	}
	<-gate.started
	requirePending(t, swap, "before the sync after its check")
	gate.release <- nil
	if err := <-swap.done; !errors.Is(err, authority.ErrConflict) {
		t.Fatalf("swap with a wrong version returned %v, expected ErrConflict", err)
	}
}

func TestFailedSyncFailsItsWaiters(t *testing.T) {
	recorder := &logtest.Recorder{}
	store, gate := openGated(t, t.TempDir(), slog.New(recorder))
	ctx := context.Background()
	injected := errors.New("injected sync failure")

	synced := queueCreate(t, store, storetest.NewSession())
	<-gate.started
	covered := []*writeOp{
		queueCreate(t, store, storetest.NewSession()),
		queueCreate(t, store, storetest.NewSession()),
		queueCreate(t, store, storetest.NewSession()),
	}
	gate.release <- nil
	if err := <-synced.done; err != nil {
		t.Fatalf("write before the failure: %v", err)
	}
	if err := store.Err(); err != nil {
		t.Errorf("Err before any sync failed = %v, expected nil", err)
	}

	// The three writes queued during the first round; the second covers them
	// all, and it fails. Any later round would sync for real.
	<-gate.started
	gate.release <- injected
	gate.openAll()
	for i, op := range covered {
		if err := <-op.done; !errors.Is(err, injected) {
			t.Errorf("write %d covered by the failed sync returned %v, expected the sync's error", i, err)
		}
		if _, err := store.Get(ctx, op.session.ID); !errors.Is(err, injected) {
			t.Errorf("Get of session %d written before the failed sync returned %v, expected the sync's error", i, err)
		}
	}

	logged := recorder.Records(slog.LevelError)
	if len(logged) != 1 {
		t.Fatalf("%d error records logged, expected 1 for the failed sync", len(logged))
	}
	var loggedErr error
	logged[0].Attrs(func(a slog.Attr) bool {
		if a.Key == "error" {
			loggedErr, _ = a.Value.Any().(error)
		}
		return true
	})
	if !errors.Is(loggedErr, injected) {
		t.Errorf("logged error attribute %v, expected the sync's error", loggedErr)
	}

	// The kernel may have dropped the pages that failed to sync, so a later
	// sync would prove nothing: the store rejects writes from now on.
	if err := store.Create(ctx, storetest.NewSession()); !errors.Is(err, injected) {
		t.Errorf("Create after the failed sync returned %v, expected the sync's error", err)
	}
	if err := store.Err(); !errors.Is(err, injected) {
		t.Errorf("Err after the failed sync = %v, expected the sync's error", err)
	}
	if _, err := store.Get(ctx, synced.session.ID); err != nil {
		t.Errorf("Get of a session synced before the failure: %v", err)
	}
}

func TestCloseWaitsForRunningSync(t *testing.T) {
	dir := t.TempDir()
	store, gate := openGated(t, dir, nil)

	first := queueCreate(t, store, storetest.NewSession())
	<-gate.started
	second := queueCreate(t, store, storetest.NewSession())

	closed := make(chan error, 1)
	go func() { closed <- store.Close() }()
	gate.release <- nil
	if err := <-first.done; err != nil {
		t.Fatalf("write synced when Close started: %v", err)
	}

	// The write queued before Close gets a round of its own.
	<-gate.started
	requirePending(t, second, "while Close held its sync")
	select {
	case err := <-closed:
		t.Fatalf("Close returned %v while a sync was held", err)
	default:
	}
	gate.release <- nil
	if err := <-second.done; err != nil {
		t.Fatalf("write queued before Close: %v", err)
	}
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}

	reopened, err := Open(dir, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer reopened.Close()
	for _, op := range []*writeOp{first, second} {
		if _, err := reopened.Get(context.Background(), op.session.ID); err != nil {
			t.Errorf("session %s acknowledged before Close is missing after reopen: %v", op.session.ID, err)
		}
	}
}

func TestSealedLogsSyncedOnce(t *testing.T) {
	dir := t.TempDir()
	touch := func(name string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var synced []string
	listings := 0
	logs := newSealedLogs(dir)
	logs.syncFile = func(path string) error {
		synced = append(synced, filepath.Base(path))
		return nil
	}
	logs.listDir = func(dir string) ([]string, error) {
		listings++
		return readDirNames(dir)
	}
	sorted := func(names ...string) []string {
		slices.Sort(names)
		return names
	}
	syncRound := func() []string {
		t.Helper()
		synced = nil
		if err := logs.sync(); err != nil {
			t.Fatalf("sync: %v", err)
		}
		slices.Sort(synced)
		return synced
	}

	for _, name := range []string{"00001.mem", "00002.mem", "000001.vlog", "MANIFEST", "000003.sst"} {
		touch(name)
	}
	base := filepath.Base(dir)
	if got, want := syncRound(), sorted("00001.mem", base, base); !slices.Equal(got, want) {
		t.Fatalf("first round synced %q, expected the sealed memtable log and the folder for each kind: %q", got, want)
	}
	if got := syncRound(); len(got) != 0 {
		t.Fatalf("round without new files synced %q, expected nothing", got)
	}

	// Badger switched memtables and rotated the value log: the files it left
	// are sealed now, and the folder holds new entries.
	touch("00003.mem")
	touch("000002.vlog")
	if got, want := syncRound(), sorted("00002.mem", "000001.vlog", base, base); !slices.Equal(got, want) {
		t.Fatalf("round after the switch synced %q, expected %q", got, want)
	}

	// A sealed file that disappears was flushed into a table.
	if err := os.Remove(filepath.Join(dir, "00001.mem")); err != nil {
		t.Fatal(err)
	}
	if got := syncRound(); len(got) != 0 {
		t.Fatalf("round after a flush synced %q, expected nothing", got)
	}

	// Two switches between rounds seal two files, the second of which was
	// flushed already.
	touch("00004.mem")
	touch("00005.mem")
	if got, want := syncRound(), sorted("00003.mem", "00004.mem", base, base); !slices.Equal(got, want) {
		t.Fatalf("round after two switches synced %q, expected %q", got, want)
	}

	if listings != 1 {
		t.Errorf("the folder was listed %d times, expected once, in the first round", listings)
	}
}

// TestSealedLogsNumberGrowsPastPadding checks that the file after 99999.mem
// is found under the longer name Badger gives it.
func TestSealedLogsNumberGrowsPastPadding(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"99999.mem", "000001.vlog"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	logs, synced := recordingSealedLogs(dir)
	if err := logs.sync(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "100000.mem"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	*synced = nil
	if err := logs.sync(); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(*synced, "99999.mem") {
		t.Errorf("synced %q after 100000.mem appeared, expected 99999.mem among them", *synced)
	}
}

// TestSealedLogsFollowBadger writes through Badger until it has switched
// memtables and rotated its value log several times, and checks after each
// round that every log file Badger left behind was synced. It fails when
// Badger numbers or names its log files in a way that sealedLogs does not
// expect.
func TestSealedLogsFollowBadger(t *testing.T) {
	dir := t.TempDir()
	opts := badgerOptions(dir, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}).
		WithMemTableSize(1 << 20).
		WithValueLogFileSize(1 << 20).
		WithValueThreshold(256)
	db, err := badger.Open(opts)
	if err != nil {
		t.Fatalf("open badger: %v", err)
	}
	defer db.Close()

	synced := map[string]bool{}
	logs := newSealedLogs(dir)
	logs.syncFile = func(path string) error {
		synced[filepath.Base(path)] = true
		return syncPath(path)
	}

	small, large := make([]byte, 100), make([]byte, 1000)
	for round := range 300 {
		err := db.Update(func(txn *badger.Txn) error {
			for i := range 100 {
				key := []byte(fmt.Sprintf("key-%d-%d", round, i))
				value := small
				if i%4 == 0 {
					value = large
				}
				if err := txn.Set(key, value); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("write round %d: %v", round, err)
		}
		if err := logs.sync(); err != nil {
			t.Fatalf("sync round %d: %v", round, err)
		}

		names, err := readDirNames(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, ext := range logExtensions {
			_, sealed, _ := splitLogs(dir, names, ext)
			for _, f := range sealed {
				if name := filepath.Base(f.path()); !synced[name] {
					t.Fatalf("after round %d, sealed log %s was not synced (synced: %v)", round, name, synced)
				}
			}
		}
	}

	for _, ext := range logExtensions {
		count := 0
		for name := range synced {
			if strings.HasSuffix(name, ext) {
				count++
			}
		}
		if count < 2 {
			t.Errorf("synced %d sealed %s files, expected Badger to have sealed at least two; write more", count, ext)
		}
	}
}

// TestNewestLogFlushedBeforeSync checks that the sync of the newest memtable
// log succeeds when Badger sealed the log, flushed it into a table and
// deleted it between the look for new files and the sync.
func TestNewestLogFlushedBeforeSync(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"00001.mem", "000001.vlog"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	logs := newSealedLogs(dir)
	if err := logs.sync(); err != nil {
		t.Fatalf("first sync: %v", err)
	}
	if err := os.Remove(filepath.Join(dir, "00001.mem")); err != nil {
		t.Fatal(err)
	}
	if err := logs.syncNewest(memtableLog); err != nil {
		t.Fatalf("sync of a newest log that was flushed and deleted: %v, expected no error", err)
	}

	// Any other failure still fails the sync.
	diskGone := errors.New("input/output error")
	logs.syncData = func(string) error { return diskGone }
	if err := logs.syncNewest(memtableLog); !errors.Is(err, diskGone) {
		t.Fatalf("sync with a failing disk returned %v, expected %v", err, diskGone)
	}
}

// syncRecorder records which logs a store syncs by name, and counts its
// calls of db.Sync.
type syncRecorder struct {
	mu      sync.Mutex // guards the fields below
	paths   []string
	dbSyncs int
}

// recordSyncs makes store report its syncs to a new recorder. It must run
// before the store's first write.
func recordSyncs(store *Store) *syncRecorder {
	r := &syncRecorder{}
	syncData, syncDB := store.sealed.syncData, store.syncDB
	store.sealed.syncData = func(path string) error {
		r.mu.Lock()
		r.paths = append(r.paths, filepath.Base(path))
		r.mu.Unlock()
		return syncData(path)
	}
	store.syncDB = func() error {
		r.mu.Lock()
		r.dbSyncs++
		r.mu.Unlock()
		return syncDB()
	}
	return r
}

// count returns how many syncs by name went to logs whose names end in ext.
func (r *syncRecorder) count(ext string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, path := range r.paths {
		if strings.HasSuffix(path, ext) {
			n++
		}
	}
	return n
}

// last returns the names of the last n logs synced by name, oldest first.
func (r *syncRecorder) last(n int) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.paths[max(len(r.paths)-n, 0):])
}

// dbSyncCount returns the number of db.Sync calls.
func (r *syncRecorder) dbSyncCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.dbSyncs
}

// TestSealedValueLogsSyncFirst checks that when Badger has sealed a value
// log and a memtable log since the last round, the value log is synced
// first, because the memtable log may hold pointers into it.
func TestSealedValueLogsSyncFirst(t *testing.T) {
	dir := t.TempDir()
	touch := func(name string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	touch("00001.mem")
	touch("000001.vlog")
	logs, synced := recordingSealedLogs(dir)
	if err := logs.sync(); err != nil {
		t.Fatalf("first sync: %v", err)
	}

	touch("00002.mem")
	touch("000002.vlog")
	*synced = nil
	if err := logs.sync(); err != nil {
		t.Fatalf("sync after the switch: %v", err)
	}
	valueLog, memtable := slices.Index(*synced, "000001.vlog"), slices.Index(*synced, "00001.mem")
	if valueLog < 0 || memtable < 0 || valueLog > memtable {
		t.Errorf("synced %q, expected the sealed value log before the sealed memtable log", *synced)
	}
}

// recordingSealedLogs returns the sealed logs of dir with a sync that only
// records the base name of each path it is given, in order.
func recordingSealedLogs(dir string) (*sealedLogs, *[]string) {
	var synced []string
	logs := newSealedLogs(dir)
	logs.syncFile = func(path string) error {
		synced = append(synced, filepath.Base(path))
		return nil
	}
	return logs, &synced
}

// openGatedAfterFirstRound opens a gated store in dir that reports its syncs
// to the returned recorder, and lets its first round, which lists the
// folder and syncs everything, run one write.
func openGatedAfterFirstRound(t *testing.T, dir string) (*Store, *syncGate, *syncRecorder) {
	t.Helper()
	store, gate := openGated(t, dir, nil)
	syncs := recordSyncs(store)
	first := queueCreate(t, store, storetest.NewSession())
	<-gate.started
	gate.release <- nil
	if err := <-first.done; err != nil {
		t.Fatalf("first write: %v", err)
	}
	return store, gate, syncs
}

func TestStatsAddUpSyncTime(t *testing.T) {
	store, gate := openGated(t, t.TempDir(), nil)
	before := store.Stats()

	op := queueCreate(t, store, storetest.NewSession())
	<-gate.started
	const holdTime = 20 * time.Millisecond
	time.Sleep(holdTime)
	gate.release <- nil
	if err := <-op.done; err != nil {
		t.Fatalf("write: %v", err)
	}

	after := store.Stats()
	if after.Syncs-before.Syncs != 1 || after.Writes-before.Writes != 1 {
		t.Fatalf("stats went from %+v to %+v, expected one more sync and write", before, after)
	}
	if took := after.SyncTime - before.SyncTime; took < holdTime {
		t.Errorf("SyncTime grew by %v for a sync held for %v", took, holdTime)
	}
}
