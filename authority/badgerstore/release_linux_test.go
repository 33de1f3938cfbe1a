package badgerstore

import (
	"bufio"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/sockauth/sockauth/authority/storetest"
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

// tableMappingKiB returns the size and resident part of each mapped table
// file of dir, by table id, from /proc/self/smaps.
func tableMappingKiB(t *testing.T, dir string) map[uint64]mappingKiB {
	t.Helper()
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
			path := fields[len(fields)-1]
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
	ids := fillTables(t, store)
	// Flattening writes the data into new tables and leaves no compaction
	// to do, so that nothing reads the tables while the test measures them.
	if err := store.db.Flatten(1); err != nil {
		t.Fatalf("Flatten: %v", err)
	}

	before := tableResidentKiB(t, dir)
	if sumKiB(before) == 0 {
		t.Fatalf("the written tables have no resident page before the release (%v); the test cannot tell whether it dropped any", before)
	}
	if err := store.releaseWrittenTables(); err != nil {
		t.Fatalf("releaseWrittenTables: %v", err)
	}
	after := tableResidentKiB(t, dir)
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
		for _, mapping := range tableMappingKiB(t, dir) {
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
