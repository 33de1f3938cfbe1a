package badgerstore

import (
	"bufio"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/sys/unix"

	"github.com/sockauth/sockauth/authority"
	"github.com/sockauth/sockauth/authority/storetest"
)

// dirtyMemtableLogKiB returns the kilobytes of dirty pages that this process
// maps from the memtable logs in dir.
func dirtyMemtableLogKiB(t *testing.T, dir string) int {
	t.Helper()
	return dirtyLogKiB(t, dir, memtableLog)
}

// dirtyLogKiB returns the kilobytes of dirty pages that this process maps
// from the files in dir whose names end in ext, from /proc/self/smaps.
// Writing back a page of a shared file mapping cleans it in every mapping,
// so the figure drops to zero only when a sync reached the file that a write
// went to.
func dirtyLogKiB(t *testing.T, dir, ext string) int {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatalf("read the memory map: %v", err)
	}
	defer f.Close()

	dirty, mapped, inLog := 0, 0, false
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		fields := strings.Fields(scanner.Text())
		if len(fields) == 0 {
			continue
		}
		if !strings.HasSuffix(fields[0], ":") {
			// A mapping's first line: address range, permissions, offset,
			// device, inode and, for a file, its path.
			path := fields[len(fields)-1]
			inLog = len(fields) >= 6 && filepath.Dir(path) == dir && strings.HasSuffix(path, ext)
			if inLog {
				mapped++
			}
			continue
		}
		if inLog && (fields[0] == "Shared_Dirty:" || fields[0] == "Private_Dirty:") {
			kib, err := strconv.Atoi(fields[1])
			if err != nil {
				t.Fatalf("parse %q: %v", scanner.Text(), err)
			}
			dirty += kib
		}
	}
	if err := scanner.Err(); err != nil {
		t.Fatalf("read the memory map: %v", err)
	}
	if mapped == 0 {
		t.Fatalf("no %s file of %s is mapped; Badger no longer maps its logs, and the test needs another way to see dirty pages", ext, dir)
	}
	return dirty
}

// requireWriteback skips the test when dir is on a file system that keeps
// files in memory only, such as tmpfs, where a sync leaves pages dirty.
func requireWriteback(t *testing.T, dir string) {
	t.Helper()
	var stats unix.Statfs_t
	if err := unix.Statfs(dir, &stats); err != nil {
		t.Fatalf("statfs %s: %v", dir, err)
	}
	if stats.Type == unix.TMPFS_MAGIC || stats.Type == unix.RAMFS_MAGIC {
		t.Skipf("%s is in memory, where a sync writes nothing back; set TMPDIR to a folder on a disk", dir)
	}
}

// TestSmallWritesSkipValueLog checks that a round whose records stay
// below the value threshold skips the value log and still leaves no dirty
// page in the memtable's write-ahead log.
func TestSmallWritesSkipValueLog(t *testing.T) {
	dir := t.TempDir()
	requireWriteback(t, dir)
	store, gate, syncs := openGatedAfterFirstRound(t, dir)
	if got := syncs.dbSyncCount(); got != 1 {
		t.Fatalf("the first round called db.Sync %d times, expected once", got)
	}

	second := queueCreate(t, store, storetest.NewSession())
	<-gate.started
	if kib := dirtyMemtableLogKiB(t, dir); kib == 0 {
		t.Fatal("the committed write left no dirty page in the memtable log before its sync; the test cannot tell whether the sync wrote it back")
	}
	gate.release <- nil
	if err := <-second.done; err != nil {
		t.Fatalf("second write: %v", err)
	}
	if kib := dirtyMemtableLogKiB(t, dir); kib != 0 {
		t.Fatalf("%d KiB of the memtable log are still dirty after the sync of a small write", kib)
	}
	if got := syncs.count(valueLogExt); got != 0 {
		t.Errorf("the round of a small write synced the value log %d times, expected none", got)
	}
	if got := syncs.dbSyncCount(); got != 1 {
		t.Errorf("the round of a small write called db.Sync, which also syncs the value log (%d calls in all)", got)
	}
}

// TestLargeWritesSyncValueLog checks that a round holding a record at the
// value threshold, or a barrier, syncs the value log before the memtable's
// log.
func TestLargeWritesSyncValueLog(t *testing.T) {
	store, gate := openGated(t, t.TempDir(), nil)
	syncs := recordSyncs(store)
	gate.openAll()

	if err := store.Create(t.Context(), storetest.NewSession()); err != nil {
		t.Fatalf("first write: %v", err)
	}
	valueLogSyncs := syncs.count(valueLogExt)

	large, _ := sessionOfSize(t, store.valueLogFrom)
	if err := store.Create(t.Context(), large); err != nil {
		t.Fatalf("large write: %v", err)
	}
	if got := syncs.count(valueLogExt); got != valueLogSyncs+1 {
		t.Fatalf("the round of a record at the value threshold of %d bytes synced the value log %d times, expected once",
			store.valueLogFrom, got-valueLogSyncs)
	}
	last := syncs.last(2)
	if !strings.HasSuffix(last[0], valueLogExt) || !strings.HasSuffix(last[1], memtableLog) {
		t.Errorf("the round of a large record synced %q in this order, expected the value log before the memtable's log", last)
	}

	valueLogSyncs = syncs.count(valueLogExt)
	if err := store.write(t.Context(), newBarrier()); err != nil {
		t.Fatalf("barrier: %v", err)
	}
	if got := syncs.count(valueLogExt); got != valueLogSyncs+1 {
		t.Fatalf("the round of a barrier synced the value log %d times, expected once", got-valueLogSyncs)
	}
}

// TestSmallWritesAcrossMemtableSwitches writes small records from many
// callers into 1 MiB memtables until Badger has switched memtables several
// times. After each batch of writes, no memtable log may contain a dirty
// page, so a write that went to a log sealed meanwhile was synced as well.
func TestSmallWritesAcrossMemtableSwitches(t *testing.T) {
	dir := t.TempDir()
	requireWriteback(t, dir)
	store, err := Open(dir, Options{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		tuneBadger: func(o badger.Options) badger.Options {
			return o.WithMemTableSize(1 << 20)
		},
	})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer store.Close()
	syncs := recordSyncs(store)

	const callers, perCaller = 32, 50
	firstLog := newestMemtableLog(t, dir)
	for batch := 0; newestMemtableLog(t, dir)-firstLog < 3; batch++ {
		if batch == 100 {
			t.Fatalf("Badger switched memtables %d times in %d batches, expected 3", newestMemtableLog(t, dir)-firstLog, batch)
		}
		var wg sync.WaitGroup
		errs := make(chan error, callers)
		for range callers {
			wg.Go(func() {
				for range perCaller {
					if err := store.Create(t.Context(), storetest.NewSession()); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("Create in batch %d: %v", batch, err)
		}
		if kib := dirtyMemtableLogKiB(t, dir); kib != 0 {
			t.Fatalf("after batch %d, %d KiB of the memtable logs are dirty although every write returned", batch, kib)
		}
	}
	if got := syncs.count(valueLogExt); got != 0 {
		t.Errorf("small writes synced the value log %d times, expected never", got)
	}
}

// newestMemtableLog returns the number of the newest memtable log in dir.
func newestMemtableLog(t *testing.T, dir string) uint64 {
	t.Helper()
	names, err := readDirNames(dir)
	if err != nil {
		t.Fatal(err)
	}
	newest, _, found := splitLogs(dir, names, memtableLog)
	if !found {
		t.Fatalf("no memtable log in %s", dir)
	}
	return newest.id
}

// sessionOfSize returns a new session whose record has exactly size bytes,
// and the marker that its record contains.
func sessionOfSize(t *testing.T, size int) (*authority.Session, string) {
	t.Helper()
	session := storetest.NewSession()
	marker := "marker-" + session.ID
	base, err := authority.MarshalSession(session)
	if err != nil {
		t.Fatal(err)
	}
	for padding := max(size-len(base)-len(marker)-8, 0); padding <= size; padding++ {
		session.Claims = map[string]string{"pad": marker + strings.Repeat("x", padding)}
		value, err := authority.MarshalSession(session)
		if err != nil {
			t.Fatal(err)
		}
		if len(value) == size {
			return session, marker
		}
	}
	t.Fatalf("no padding gives a record of %d bytes", size)
	return nil, ""
}

// valueLogsContain reports whether a value-log file in dir contains marker.
// Badger writes its value log through a shared memory mapping, so a read
// returns a write at once.
func valueLogsContain(t *testing.T, dir, marker string) bool {
	t.Helper()
	names, err := readDirNames(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if !strings.HasSuffix(name, valueLogExt) {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(data), marker) {
			return true
		}
	}
	return false
}

// TestValueThresholdMatchesBadger checks the store's rule for which records
// reach the value log against Badger itself: a record one byte below the
// threshold stays out of the value log, and one at the threshold goes in.
func TestValueThresholdMatchesBadger(t *testing.T) {
	dir := t.TempDir()
	store, err := Open(dir, Options{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		// Small value-log files keep the reads of the test short.
		tuneBadger: func(o badger.Options) badger.Options { return o.WithValueLogFileSize(1 << 20) },
	})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer store.Close()
	if store.valueLogFrom == 0 {
		t.Fatal("the store does not know Badger's value threshold")
	}

	below, belowMarker := sessionOfSize(t, store.valueLogFrom-1)
	if err := store.Create(t.Context(), below); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if valueLogsContain(t, dir, belowMarker) {
		t.Errorf("a record of %d bytes went to the value log, whose sync the store skips for it", store.valueLogFrom-1)
	}

	at, atMarker := sessionOfSize(t, store.valueLogFrom)
	if err := store.Create(t.Context(), at); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if !valueLogsContain(t, dir, atMarker) {
		t.Errorf("a record of %d bytes did not go to the value log; the store's threshold no longer matches Badger's", store.valueLogFrom)
	}
}

// TestCollectionSyncsValueLog runs a value-log collection that moves live
// values and writes one small record between the move and the collection's
// closing barrier. The round of that write makes the memtable's log durable,
// and with it the pointers to the moved values, so it must leave the value
// log clean as well.
func TestCollectionSyncsValueLog(t *testing.T) {
	dir := t.TempDir()
	requireWriteback(t, dir)
	store, _ := openWithGarbage(t, dir, gcTestOptions(), func(i int) bool { return i%3 != 0 })
	defer store.Close()
	if err := store.Create(t.Context(), storetest.NewSession()); err != nil {
		t.Fatalf("first write: %v", err)
	}

	moved := false
	store.afterRewrite = func() {
		moved = true
		if kib := dirtyLogKiB(t, dir, valueLogExt); kib == 0 {
			t.Fatal("the collection left no dirty page in the value log; the test cannot tell whether a sync covers it")
		}
		if err := store.Create(t.Context(), storetest.NewSession()); err != nil {
			t.Fatalf("small write during the collection: %v", err)
		}
		if kib := dirtyLogKiB(t, dir, valueLogExt); kib != 0 {
			t.Errorf("%d KiB of the value log are dirty after the round of a small write during a collection", kib)
		}
	}
	if err := store.runValueLogGC(); err != nil {
		t.Fatalf("runValueLogGC: %v", err)
	}
	if !moved {
		t.Fatal("the collection moved no values")
	}
}
