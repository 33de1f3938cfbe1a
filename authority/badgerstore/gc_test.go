package badgerstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/sockauth/sockauth/authority"
	"github.com/sockauth/sockauth/authority/storetest"
)

// bigClaims returns claims that make a session record larger than the
// value threshold, so that Badger keeps it in the value log.
func bigClaims(version int) map[string]string {
	claims := make(map[string]string, authority.MaxClaims)
	for i := range authority.MaxClaims {
		claims[fmt.Sprintf("claim-%02d", i)] = fmt.Sprintf("%d-%s", version, strings.Repeat("v", authority.MaxClaimValueBytes-8))
	}
	return claims
}

// valueLogFiles returns the names of the value-log files in dir.
func valueLogFiles(t *testing.T, dir string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*.vlog"))
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range names {
		names[i] = filepath.Base(name)
	}
	return names
}

// gcTestOptions are store options with 1 MiB value-log files and memtables,
// and a collection interval long enough that only the test collects. The
// release of table pages is held off as well, because its pass opens an
// iterator, and while one is open Badger defers deleting a rewritten
// value-log file.
func gcTestOptions() Options {
	return Options{
		Logger:          slog.New(slog.NewTextHandler(io.Discard, nil)),
		GCInterval:      time.Hour,
		releaseInterval: time.Hour,
		tuneBadger: func(o badger.Options) badger.Options {
			return o.WithValueLogFileSize(1 << 20).WithMemTableSize(1 << 20)
		},
	}
}

// openWithGarbage creates 600 sessions with large claims in a store in dir,
// replaces those for which replace returns true, and reopens the store with
// its tables flattened, so that the value log counts the replaced records as
// garbage. It returns the store and the session ids.
func openWithGarbage(t *testing.T, dir string, opts Options, replace func(i int) bool) (*Store, []string) {
	t.Helper()
	store, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	ctx := context.Background()

	const sessions = 600
	ids := make([]string, sessions)
	for i := range sessions {
		session := storetest.NewSession()
		session.Claims = bigClaims(1)
		ids[i] = session.ID
		if err := store.Create(ctx, session); err != nil {
			t.Fatalf("Create %d: %v", i, err)
		}
	}
	for i, id := range ids {
		if !replace(i) {
			continue
		}
		session, err := store.Get(ctx, id)
		if err != nil {
			t.Fatalf("Get %s: %v", id, err)
		}
		next := *session
		next.Version++
		next.Claims = bigClaims(2)
		if err := store.CompareAndSwap(ctx, session.Version, &next); err != nil {
			t.Fatalf("CompareAndSwap %s: %v", id, err)
		}
	}

	// Closing flushes the memtable to a table, and flattening the tables
	// drops the replaced versions, which updates the value log's count of
	// garbage in each file.
	if err := store.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	store, err = Open(dir, opts)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	if err := store.db.Flatten(1); err != nil {
		t.Fatalf("Flatten: %v", err)
	}
	return store, ids
}

// TestValueLogGCKeepsSessions fills value-log files with
// session records, replaces every record, and runs the store's value-log
// garbage collection. It must rewrite at least one file, delete it, and
// keep every session's newest record readable after a reopen.
func TestValueLogGCKeepsSessions(t *testing.T) {
	dir := t.TempDir()
	opts := gcTestOptions()
	store, ids := openWithGarbage(t, dir, opts, func(int) bool { return true })
	ctx := context.Background()
	before := valueLogFiles(t, dir)

	rewrites := 0
	for {
		err := store.runValueLogGC()
		if errors.Is(err, badger.ErrNoRewrite) || errors.Is(err, badger.ErrRejected) {
			break
		}
		if err != nil {
			t.Fatalf("runValueLogGC: %v", err)
		}
		rewrites++
	}
	if rewrites == 0 {
		t.Fatalf("no value-log file was rewritten; files %v", before)
	}
	after := valueLogFiles(t, dir)
	deleted := 0
	for _, name := range before {
		if !slices.Contains(after, name) {
			deleted++
		}
	}
	if deleted == 0 {
		t.Errorf("%d rewrites deleted no value-log file: before %v, after %v", rewrites, before, after)
	}
	t.Logf("%d rewrites; value-log files before %v, after %v", rewrites, before, after)

	if err := store.Close(); err != nil {
		t.Fatalf("Close after collection: %v", err)
	}
	store, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("reopen after collection: %v", err)
	}
	defer store.Close()
	want := bigClaims(2)
	for _, id := range ids {
		got, err := store.Get(ctx, id)
		if err != nil {
			t.Fatalf("Get %s after collection: %v", id, err)
		}
		if got.Version != 2 || got.Claims["claim-00"] != want["claim-00"] || len(got.Claims) != len(want) {
			t.Fatalf("session %s after collection: version %d, %d claims, expected version 2 and the replaced claims",
				id, got.Version, len(got.Claims))
		}
	}
}

// TestCollectionWaitsForEarlierRound holds a round of one small write, which
// syncs the memtable's log alone, and starts a value-log collection. The
// collection must not move values before that round has ended, because the
// round's sync would make pointers to the moved values durable without them.
func TestCollectionWaitsForEarlierRound(t *testing.T) {
	store, gate, syncs := openGatedAfterFirstRound(t, t.TempDir())

	pending := queueCreate(t, store, storetest.NewSession())
	<-gate.started
	rewriting := make(chan struct{})
	store.beforeRewrite = func() { close(rewriting) }
	collected := make(chan error, 1)
	go func() { collected <- store.runValueLogGC() }()

	// Wait until the collection either queued its barrier or began to move
	// values.
	for queued := false; !queued; {
		select {
		case <-rewriting:
			t.Fatal("the collection began to move values while a round that syncs only the memtable's log was under way")
		default:
		}
		store.batch.mu.Lock()
		queued = slices.ContainsFunc(store.batch.applied, func(op *writeOp) bool { return op.barrier })
		store.batch.mu.Unlock()
		time.Sleep(time.Millisecond)
	}

	gate.release <- nil
	if err := <-pending.done; err != nil {
		t.Fatalf("pending write: %v", err)
	}
	if got := syncs.count(valueLogExt); got != 0 {
		t.Fatalf("the held round of a small write synced the value log %d times, expected the memtable's log alone", got)
	}

	<-gate.started
	gate.release <- nil
	<-rewriting
	gate.openAll()
	if err := <-collected; err != nil && !errors.Is(err, badger.ErrNoRewrite) && !errors.Is(err, badger.ErrRejected) {
		t.Fatalf("runValueLogGC: %v", err)
	}
}
