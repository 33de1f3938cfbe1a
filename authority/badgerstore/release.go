package badgerstore

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// defaultReleaseInterval is how often the store looks for tables that Badger
// wrote since the last look.
const defaultReleaseInterval = 5 * time.Second

// Badger v4.9.6 writes each new table through a shared memory map of its
// file (table.CreateTable) and keeps the map for the life of the table. Every
// page of a table that the process wrote thus stays in its resident set,
// read or not, which came to 125 MiB for a million sessions. The store
// drops the page-table entries of each new table once, with
// madvise(MADV_DONTNEED).
// The pages stay in the kernel's page cache, and a later read of the table
// maps them back with a minor fault, or reads them from the disk when the
// kernel has evicted them. The resident set then holds the pages that reads
// touch, as it does in a process that opened the same tables at its start.
//
// madvise on an address range that Badger has unmapped, and the kernel
// reused for memory of another kind, would discard that memory. A pass
// therefore releases only tables that an open iterator keeps mapped: Badger
// unmaps a table when its last reference goes, and an iterator holds a
// reference to each table that was in the levels when it was created.

// releaseWrittenTablesOrStop runs one pass of releaseWrittenTables for the
// store's background loop. It returns false, which ends the loop, when the
// pass failed in a way that later passes would repeat.
func (s *Store) releaseWrittenTablesOrStop() bool {
	if err := s.releaseWrittenTables(); err != nil {
		s.log.Warn("badger store stopped releasing the pages of written tables", "error", err)
		return false
	}
	return true
}

// releaseWrittenTables drops this process's mappings of the pages of tables
// that Badger wrote since the last pass. It returns an error only when the
// process's memory map cannot be read, which later passes would repeat.
// Tables present at Open were opened, not written, and are left alone.
func (s *Store) releaseWrittenTables() error {
	before := s.tableIDs()
	fresh := map[uint64]bool{}
	for id := range before {
		if !s.released[id] {
			fresh[id] = true
		}
	}
	if len(fresh) == 0 {
		s.released = before
		return nil
	}

	txn := s.db.NewTransaction(false)
	defer txn.Discard()
	iter, heldIDs, after := s.holdTables(txn, before)
	defer iter.Close()
	pinned := map[uint64]bool{}
	for id := range fresh {
		if heldIDs[id] {
			pinned[id] = true
		}
	}
	if s.beforeRelease != nil {
		s.beforeRelease(pinned)
	}
	if err := s.releaseTables(pinned, "written"); err != nil {
		return err
	}

	// Tables that joined the levels during this pass wait for the next one.
	released := map[uint64]bool{}
	for id := range after {
		if s.released[id] || pinned[id] {
			released[id] = true
		}
	}
	s.released = released
	return nil
}

// holdTables opens an iterator on txn, which holds a reference to every
// table in Badger's levels until it is closed. before is the result of
// tableIDs just before the call. It returns the iterator, the ids of the
// tables that it holds for certain, and the ids of the tables in the levels
// after its creation. A table in the levels both before and after the
// creation was in them during it, and is held.
func (s *Store) holdTables(txn *badger.Txn, before map[uint64]bool) (iter *badger.Iterator, heldIDs, after map[uint64]bool) {
	iter = txn.NewIterator(badger.IteratorOptions{})
	after = s.tableIDs()
	heldIDs = map[uint64]bool{}
	for id := range before {
		if after[id] {
			heldIDs[id] = true
		}
	}
	return iter, heldIDs, after
}

// releaseTables drops this process's mappings of the pages of the tables
// whose ids are in heldIDs, which the caller must hold with holdTables. The
// cause names the tables in the log: "written" or "scanned".
func (s *Store) releaseTables(heldIDs map[uint64]bool, cause string) error {
	result, err := releaseTableMappings(s.tableDir, heldIDs)
	if err != nil {
		return err
	}
	for _, failure := range result.failures {
		s.log.Warn("badger store could not release the pages of a table", "error", failure)
	}
	if len(heldIDs) > 0 && result.tables == 0 && len(result.failures) == 0 && s.warnedUnmapped.CompareAndSwap(false, true) {
		s.log.Warn("badger store found none of its tables in /proc/self/maps, so their pages stay resident",
			"tables", len(heldIDs), "folder", s.tableDir)
	}
	if result.tables > 0 {
		s.log.Debug("badger store released the pages of "+cause+" tables", "tables", result.tables,
			"mapped_bytes", result.bytes)
	}
	return nil
}

// tableIDs returns the ids of the tables in Badger's levels.
func (s *Store) tableIDs() map[uint64]bool {
	ids := map[uint64]bool{}
	for _, info := range s.db.Tables() {
		ids[info.ID] = true
	}
	return ids
}

// releaseResult is the outcome of one pass over the memory map.
type releaseResult struct {
	tables   int
	bytes    uint64
	failures []error
}

// tableMapping is a shared mapping of a whole table file, from a line of
// /proc/self/maps.
type tableMapping struct {
	start, end uintptr
	id         uint64
}

// parseTableMappings returns the shared mappings of the table files in dir
// that the memory map r lists, in the format of /proc/PID/maps. It skips
// mappings of deleted files and mappings that start past a file's first
// byte.
func parseTableMappings(r io.Reader, dir string) ([]tableMapping, error) {
	var mappings []tableMapping
	scanner := bufio.NewScanner(r)
	for scanner.Scan() {
		line := scanner.Text()
		// Address range, permissions, offset, device and inode come before
		// the path, which starts with a slash and may contain spaces.
		fields := strings.Fields(line)
		slash := strings.IndexByte(line, '/')
		if len(fields) < 6 || slash < 0 {
			continue
		}
		path := line[slash:]
		if strings.HasSuffix(path, " (deleted)") || filepath.Dir(path) != dir {
			continue
		}
		id, ok := tableFileID(filepath.Base(path))
		if !ok {
			continue
		}
		permissions, offset := fields[1], fields[2]
		if len(permissions) != 4 || permissions[3] != 's' || strings.Trim(offset, "0") != "" {
			continue
		}

		startText, endText, found := strings.Cut(fields[0], "-")
		if !found {
			return nil, fmt.Errorf("parse memory map line %q: missing address range", line)
		}
		start, err := strconv.ParseUint(startText, 16, 64)
		if err != nil {
			return nil, fmt.Errorf("parse memory map line %q: %w", line, err)
		}
		end, err := strconv.ParseUint(endText, 16, 64)
		if err != nil {
			return nil, fmt.Errorf("parse memory map line %q: %w", line, err)
		}
		if end <= start {
			return nil, fmt.Errorf("parse memory map line %q: empty address range", line)
		}
		mappings = append(mappings, tableMapping{start: uintptr(start), end: uintptr(end), id: id})
	}
	if err := scanner.Err(); err != nil {
		return nil, fmt.Errorf("read memory map: %w", err)
	}
	return mappings, nil
}

// tableFileID returns the id in the name of a Badger table file, such as 7 for
// "000007.sst". Unlike table.ParseFileID, it returns false instead of ending
// the process for a name like "-7.sst".
func tableFileID(name string) (uint64, bool) {
	digits, found := strings.CutSuffix(name, ".sst")
	if !found || digits == "" || strings.Trim(digits, "0123456789") != "" {
		return 0, false
	}
	id, err := strconv.ParseUint(digits, 10, 64)
	return id, err == nil
}

// resolvedDir returns dir as the kernel names it in /proc/self/maps: absolute,
// with symbolic links resolved.
func resolvedDir(dir string) string {
	absolute := filepath.Clean(dir)
	if !filepath.IsAbs(dir) {
		// filepath.Abs joins dir to os.Getwd, which returns $PWD when it names
		// the working folder, possibly through a symbolic link. The kernel
		// resolves a leading ".." of dir from the folder itself.
		working, err := os.Getwd()
		if err != nil {
			return absolute
		}
		if resolved, err := filepath.EvalSymlinks(working); err == nil {
			working = resolved
		}
		absolute = filepath.Join(working, dir)
	}
	if resolved, err := filepath.EvalSymlinks(absolute); err == nil {
		return resolved
	}
	return absolute
}
