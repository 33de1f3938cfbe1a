package badgerstore

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/sockauth/sockauth/authority/storetest"
	"github.com/sockauth/sockauth/internal/logtest"
)

// tableResidentKiB returns the resident kilobytes of each mapped table file
// of dir, by table id, from /proc/self/smaps.
func tableResidentKiB(t *testing.T, dir string) map[uint64]int {
	t.Helper()
	resident := map[uint64]int{}
	for id, mapping := range tableMappingKiB(t, dir) {
		resident[id] = mapping.resident
	}
	return resident
}

// mappingKiB is the size of a mapping and the part of it that is resident,
// in kilobytes.
type mappingKiB struct {
	size, resident int
}

// kernelDirName returns the path of the folder dir as the kernel prints it
// in /proc/self/smaps, read back from an open descriptor of the folder.
func kernelDirName(t *testing.T, dir string) string {
	t.Helper()
	f, err := os.Open(dir)
	if err != nil {
		t.Fatalf("open data folder %q: %v", dir, err)
	}
	defer f.Close()
	name, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", f.Fd()))
	if err != nil {
		t.Fatalf("read the kernel's name of %q: %v", dir, err)
	}
	return name
}

// tableMappingKiB returns the size and resident part of each mapped table
// file of dir, by table id, from /proc/self/smaps. dir may be relative or
// pass through symbolic links.
func tableMappingKiB(t *testing.T, dir string) map[uint64]mappingKiB {
	t.Helper()
	dir = kernelDirName(t, dir)
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatalf("read the memory map: %v", err)
	}
	defer f.Close()

	mappings := map[uint64]mappingKiB{}
	current, inTable := uint64(0), false
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		fields := strings.Fields(scanner.Text())
		if len(fields) == 0 {
			continue
		}
		if !strings.HasSuffix(fields[0], ":") {
			// The path starts at the first slash and may contain spaces.
			line := scanner.Text()
			path := ""
			if slash := strings.IndexByte(line, '/'); slash >= 0 {
				path = line[slash:]
			}
			inTable = false
			if len(fields) >= 6 && filepath.Dir(path) == dir {
				current, inTable = tableFileID(filepath.Base(path))
			}
			continue
		}
		if !inTable || (fields[0] != "Size:" && fields[0] != "Rss:") {
			continue
		}
		kib, err := strconv.Atoi(fields[1])
		if err != nil {
			t.Fatalf("parse %q: %v", scanner.Text(), err)
		}
		mapping := mappings[current]
		if fields[0] == "Size:" {
			mapping.size += kib
		} else {
			mapping.resident += kib
		}
		mappings[current] = mapping
	}
	if err := scanner.Err(); err != nil {
		t.Fatalf("read the memory map: %v", err)
	}
	return mappings
}

// openForRelease opens a store in dir with 1 MiB memtables, no session cache,
// so that reads go to Badger, and the given release interval.
func openForRelease(t *testing.T, dir string, interval time.Duration) *Store {
	t.Helper()
	store, err := Open(dir, Options{
		Logger:          slog.New(slog.NewTextHandler(io.Discard, nil)),
		CacheSessions:   -1,
		releaseInterval: interval,
		tuneBadger: func(o badger.Options) badger.Options {
			return o.WithMemTableSize(1 << 20)
		},
	})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return store
}

// fillTables creates sessions from 32 callers until Badger has written at
// least two tables, and returns their ids.
func fillTables(t *testing.T, store *Store) []string {
	t.Helper()
	const callers, perCaller = 32, 100
	var (
		mu  sync.Mutex
		ids []string
	)
	for batch := 0; len(store.db.Tables()) < 2; batch++ {
		if batch == 100 {
			t.Fatalf("Badger wrote %d tables after %d sessions, expected 2", len(store.db.Tables()), len(ids))
		}
		var wg sync.WaitGroup
		errs := make(chan error, callers)
		for range callers {
			wg.Go(func() {
				for range perCaller {
					session := storetest.NewSession()
					if err := store.Create(t.Context(), session); err != nil {
						errs <- err
						return
					}
					mu.Lock()
					ids = append(ids, session.ID)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("Create in batch %d: %v", batch, err)
		}
	}
	return ids
}

// fillQuietTables fills store as fillTables does and then flattens its
// tables. Flattening writes the data into new tables and leaves no
// compaction to do, so that nothing reads the tables while a test measures
// them.
func fillQuietTables(t *testing.T, store *Store) []string {
	t.Helper()
	ids := fillTables(t, store)
	if err := store.db.Flatten(1); err != nil {
		t.Fatalf("Flatten: %v", err)
	}
	waitForSteadyTables(t, store)
	return ids
}

// releaseUntilSteady runs up to five passes of the release of written
// tables, each after steady tables, until none of dir's table pages stays
// resident, and returns the resident pages after the last pass. A
// compaction during a pass reads its tables back in, and the tables that it
// writes wait for the next pass. The caller waits before the first pass.
func releaseUntilSteady(t *testing.T, store *Store, dir string) map[uint64]int {
	t.Helper()
	var resident map[uint64]int
	for pass := range 5 {
		if pass > 0 {
			waitForSteadyTables(t, store)
		}
		if err := store.releaseWrittenTables(); err != nil {
			t.Fatalf("releaseWrittenTables: %v", err)
		}
		if resident = tableResidentKiB(t, dir); sumKiB(resident) == 0 {
			return resident
		}
	}
	return resident
}

// waitForSteadyTables waits until Badger's set of tables has stayed the
// same for 2.5 s. Flatten leaves two level-0 tables alone, because their
// score is exactly 1, and the compactors that it restarts compact them only
// after a random wait of up to 1 s (badger v4.9.6, runCompactor).
func waitForSteadyTables(t *testing.T, store *Store) {
	t.Helper()
	const steadyFor = 2500 * time.Millisecond
	tableSet := func() string {
		var ids []uint64
		for _, table := range store.db.Tables() {
			ids = append(ids, table.ID)
		}
		slices.Sort(ids)
		return fmt.Sprint(ids)
	}
	deadline := time.Now().Add(20 * time.Second)
	last, since := tableSet(), time.Now()
	for time.Since(since) < steadyFor {
		if time.Now().After(deadline) {
			t.Fatalf("Badger's tables kept changing for 20 s; the last set was %s", last)
		}
		time.Sleep(50 * time.Millisecond)
		if current := tableSet(); current != last {
			last, since = current, time.Now()
		}
	}
}

// readAll checks that every session in ids reads back.
func readAll(t *testing.T, store *Store, ids []string) {
	t.Helper()
	for _, id := range ids {
		session, err := store.Get(context.Background(), id)
		if err != nil {
			t.Fatalf("Get %s: %v", id, err)
		}
		if session.ID != id {
			t.Fatalf("Get %s returned session %s", id, session.ID)
		}
	}
}

// sumKiB returns the sum of the values of resident.
func sumKiB(resident map[uint64]int) int {
	total := 0
	for _, kib := range resident {
		total += kib
	}
	return total
}

// TestReleaseDropsWrittenTablePages checks that a pass drops the resident
// pages of the tables that Badger wrote, and that reads still find every
// session and map the pages they need back in.
func TestReleaseDropsWrittenTablePages(t *testing.T) {
	dir := t.TempDir()
	store := openForRelease(t, dir, time.Hour)
	defer store.Close()
	ids := fillQuietTables(t, store)

	before := tableResidentKiB(t, dir)
	if sumKiB(before) == 0 {
		t.Fatalf("the written tables have no resident page before the release (%v); the test cannot tell whether it dropped any", before)
	}
	after := releaseUntilSteady(t, store, dir)
	for id, kib := range after {
		if kib != 0 {
			t.Errorf("table %d has %d KiB resident after the release, %d KiB before", id, kib, before[id])
		}
	}
	for id := range after {
		if !store.released[id] {
			t.Errorf("table %d is not recorded as released", id)
		}
	}

	readAll(t, store, ids)
	if sumKiB(tableResidentKiB(t, dir)) == 0 {
		t.Error("reading every session mapped no table page back in")
	}
}

// TestReleaseLeavesOpenedTables checks that the tables present at Open,
// which the process only read, keep their resident pages.
func TestReleaseLeavesOpenedTables(t *testing.T) {
	dir := t.TempDir()
	store := openForRelease(t, dir, time.Hour)
	ids := fillTables(t, store)
	if err := store.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	store = openForRelease(t, dir, time.Hour)
	defer store.Close()
	readAll(t, store, ids)
	before := tableResidentKiB(t, dir)
	if sumKiB(before) == 0 {
		t.Fatalf("reading every session left no table page resident (%v)", before)
	}
	if err := store.releaseWrittenTables(); err != nil {
		t.Fatalf("releaseWrittenTables: %v", err)
	}
	after := tableResidentKiB(t, dir)
	for id, kib := range before {
		if kib > 0 && after[id] == 0 {
			t.Errorf("table %d, opened at start, lost its %d resident KiB", id, kib)
		}
	}
}

// TestReleaseLoopRunsDuringWrites checks that the store releases the pages
// of the tables that Badger writes, on its own and while writes and
// compactions go on. The writes go to Badger directly, because the store's
// own writes read the tables to check that a session is new.
func TestReleaseLoopRunsDuringWrites(t *testing.T) {
	dir := t.TempDir()
	store := openForRelease(t, dir, 20*time.Millisecond)
	defer store.Close()

	value := make([]byte, 100)
	for round := 0; len(store.db.Tables()) < 4; round++ {
		if round == 100 {
			t.Fatalf("Badger wrote %d tables after %d rounds of writes, expected 4", len(store.db.Tables()), round)
		}
		batch := store.db.NewWriteBatch()
		for i := range 2000 {
			key := []byte(fmt.Sprintf("release-test/%04d/%05d", round, i))
			// Random values keep the tables near their full size after
			// compression, so that the pages of their indexes are few.
			if _, err := rand.Read(value); err != nil {
				t.Fatalf("random value: %v", err)
			}
			if err := batch.Set(key, value); err != nil {
				t.Fatalf("Set: %v", err)
			}
		}
		if err := batch.Flush(); err != nil {
			t.Fatalf("Flush: %v", err)
		}
	}

	// Each pass lists the tables through Badger, which reads each table's
	// index, and the kernel maps up to 64 KiB around a page that a read
	// faults in. Tables here are about 100 KiB, so about half of each comes
	// back; a table written and not released is resident whole.
	deadline := time.Now().Add(10 * time.Second)
	for {
		size, resident, whole := 0, 0, 0
		mappings := tableMappingKiB(t, dir)
		if len(mappings) == 0 {
			t.Fatalf("found no mapped table of %s in /proc/self/smaps", dir)
		}
		for _, mapping := range mappings {
			size += mapping.size
			resident += mapping.resident
			if mapping.resident == mapping.size {
				whole++
			}
		}
		if whole == 0 && resident <= size*3/4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of the tables' %d KiB are still resident 10 s after the last write, %d tables whole", resident, size, whole)
		}
		time.Sleep(20 * time.Millisecond)
	}

	session := storetest.NewSession()
	if err := store.Create(t.Context(), session); err != nil {
		t.Fatalf("Create after the release: %v", err)
	}
	readAll(t, store, []string{session.ID})
}

// TestReleaseFindsTablesThroughDataPaths checks that a pass finds the
// mappings of a store's tables when the path the store was opened with is
// not the kernel's name of the folder.
func TestReleaseFindsTablesThroughDataPaths(t *testing.T) {
	cases := []struct {
		name string
		// prepare creates folders under base and returns the path to open.
		prepare func(t *testing.T, base string) string
	}{
		{"space in name", func(t *testing.T, base string) string {
			return filepath.Join(base, "sock auth")
		}},
		{"symbolic link", func(t *testing.T, base string) string {
			target := filepath.Join(base, "target")
			if err := os.Mkdir(target, 0o755); err != nil {
				t.Fatal(err)
			}
			link := filepath.Join(base, "link")
			if err := os.Symlink(target, link); err != nil {
				t.Fatal(err)
			}
			return link
		}},
		{"relative path", func(t *testing.T, base string) string {
			t.Chdir(base)
			return "data"
		}},
		// A shell that changed into a symbolic link keeps the link's path in
		// $PWD, which os.Getwd returns, while the kernel resolves "../data"
		// from the folder the link points to. Badger v4.9.6 writes its pid
		// file at filepath.Abs of the path it gets, so the store must give it
		// the resolved path, or Open fails for want of base/data.
		{"relative parent from a symbolic link", func(t *testing.T, base string) string {
			work := filepath.Join(base, "real", "work")
			if err := os.MkdirAll(work, 0o755); err != nil {
				t.Fatal(err)
			}
			link := filepath.Join(base, "work")
			if err := os.Symlink(work, link); err != nil {
				t.Fatal(err)
			}
			t.Chdir(link)
			return filepath.Join("..", "data")
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := c.prepare(t, t.TempDir())
			store := openForRelease(t, dir, time.Hour)
			defer store.Close()
			fillQuietTables(t, store)

			before := tableResidentKiB(t, dir)
			if sumKiB(before) == 0 {
				t.Fatalf("the written tables of %q have no resident page before the release (%v)", dir, before)
			}
			if after := releaseUntilSteady(t, store, dir); sumKiB(after) != 0 {
				t.Errorf("the tables of %q have resident pages after the release: %v KiB by table id, %v before", dir, after, before)
			}
		})
	}
}

// TestReleaseLeavesOtherStoresTables checks that a pass of one store leaves
// the tables of another store in the same process, whose table ids are the
// same, resident.
func TestReleaseLeavesOtherStoresTables(t *testing.T) {
	base := t.TempDir()
	first := openForRelease(t, filepath.Join(base, "first"), time.Hour)
	defer first.Close()
	second := openForRelease(t, filepath.Join(base, "second"), time.Hour)
	defer second.Close()
	fillQuietTables(t, first)
	fillQuietTables(t, second)

	before := tableResidentKiB(t, filepath.Join(base, "second"))
	if sumKiB(before) == 0 {
		t.Fatalf("the second store's tables have no resident page before the release (%v)", before)
	}
	if resident := releaseUntilSteady(t, first, filepath.Join(base, "first")); sumKiB(resident) != 0 {
		t.Errorf("the first store's tables have resident pages after its release: %v KiB by table id", resident)
	}
	// A compaction of the second store may replace a table meanwhile, so
	// only the tables that are still there count.
	for id, kib := range tableResidentKiB(t, filepath.Join(base, "second")) {
		if before[id] > 0 && kib == 0 {
			t.Errorf("table %d of the second store lost its %d resident KiB to the first store's release", id, before[id])
		}
	}
}

// TestCountSessionsReleasesScannedTables checks that counting the sessions,
// which reads every table, leaves no table page resident.
func TestCountSessionsReleasesScannedTables(t *testing.T) {
	dir := t.TempDir()
	store := openForRelease(t, dir, time.Hour)
	defer store.Close()
	ids := fillQuietTables(t, store)
	if err := store.releaseWrittenTables(); err != nil {
		t.Fatalf("releaseWrittenTables: %v", err)
	}

	count, err := store.CountSessions(t.Context())
	if err != nil {
		t.Fatalf("CountSessions: %v", err)
	}
	if count != len(ids) {
		t.Errorf("CountSessions = %d, expected %d", count, len(ids))
	}
	if resident := tableResidentKiB(t, dir); sumKiB(resident) != 0 {
		t.Errorf("tables have resident pages after the count: %v KiB by table id", resident)
	}
}

// TestReleaseHoldsTablesItReleases checks that a pass keeps the tables it
// releases mapped while it works, even when a compaction replaces them:
// madvise on the addresses of an unmapped table could reach memory that the
// kernel handed out again.
func TestReleaseHoldsTablesItReleases(t *testing.T) {
	dir := t.TempDir()
	store := openForRelease(t, dir, time.Hour)
	defer store.Close()
	ids := fillTables(t, store)

	var (
		heldIDs map[uint64]bool
		missing []uint64
	)
	store.beforeRelease = func(ids map[uint64]bool) {
		heldIDs = ids
		// Dropping every session rewrites or deletes each table that holds
		// one, and Badger unmaps a replaced table when its last reference
		// goes.
		if err := store.db.DropPrefix(sessionKey("")); err != nil {
			t.Errorf("DropPrefix: %v", err)
		}
		mapped := tableResidentKiB(t, dir)
		for id := range ids {
			if _, ok := mapped[id]; !ok {
				missing = append(missing, id)
			}
		}
	}
	if err := store.releaseWrittenTables(); err != nil {
		t.Fatalf("releaseWrittenTables: %v", err)
	}
	if len(heldIDs) == 0 {
		t.Fatal("the pass held no table to release")
	}
	if len(missing) > 0 {
		t.Errorf("tables %v were unmapped while the pass held them", missing)
	}

	// Once the pass is over, Badger deletes the replaced tables.
	remaining := store.tableIDs()
	replaced := 0
	for id := range heldIDs {
		if !remaining[id] {
			replaced++
		}
	}
	if replaced == 0 {
		t.Errorf("dropping %d sessions replaced none of the held tables %v; the test cannot tell whether the pass held them", len(ids), heldIDs)
	}
}

// TestReleaseWarnsWhenTablesNotFound checks that a pass that finds none of
// its tables in the memory map, as with a folder name that differs from the
// kernel's, logs a warning instead of doing nothing in silence.
func TestReleaseWarnsWhenTablesNotFound(t *testing.T) {
	dir := t.TempDir()
	recorder := &logtest.Recorder{}
	store, err := Open(dir, Options{
		Logger:          slog.New(recorder),
		releaseInterval: time.Hour,
		tuneBadger: func(o badger.Options) badger.Options {
			return o.WithMemTableSize(1 << 20)
		},
	})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer store.Close()
	store.tableDir = filepath.Join(dir, "elsewhere")
	fillTables(t, store)

	if err := store.releaseWrittenTables(); err != nil {
		t.Fatalf("releaseWrittenTables: %v", err)
	}
	warnings := recorder.Messages(slog.LevelWarn)
	if len(warnings) != 1 {
		t.Fatalf("logged warnings %q, expected one", warnings)
	}
	if !strings.Contains(warnings[0], "found none of its tables") {
		t.Errorf("warning %q does not say that no table was found", warnings[0])
	}
}

// TestCloseWaitsForCount checks that Close does not close Badger, which
// unmaps every table, while a count of the sessions may still release their
// pages, and that a count after Close fails.
func TestCloseWaitsForCount(t *testing.T) {
	store := openForRelease(t, t.TempDir(), time.Hour)
	fillTables(t, store)

	// A count in progress holds countMu for reading.
	store.countMu.RLock()
	closed := make(chan error, 1)
	go func() { closed <- store.Close() }()
	select {
	case err := <-closed:
		store.countMu.RUnlock()
		t.Fatalf("Close returned %v while a count was in progress", err)
	case <-time.After(200 * time.Millisecond):
	}
	if store.db.IsClosed() {
		t.Error("Badger was closed while a count was in progress")
	}
	store.countMu.RUnlock()
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}

	if _, err := store.CountSessions(t.Context()); !errors.Is(err, badger.ErrDBClosed) {
		t.Errorf("CountSessions after Close returned %v, expected badger.ErrDBClosed", err)
	}
}
