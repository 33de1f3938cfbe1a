//go:build linux

package main

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
)

// durableLog returns a started log whose sync copies the file's contents, so
// that the copy holds what a real sync would have made durable.
func durableLog(t *testing.T, mode writeMode, syncers int) (*groupLog, func() []byte) {
	t.Helper()
	l, err := createGroupLog(filepath.Join(t.TempDir(), "floor.log"), 1<<20, mode)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu      sync.Mutex
		durable []byte
	)
	l.sync = func() error {
		contents := make([]byte, l.size)
		if _, err := l.file.ReadAt(contents, 0); err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		// With several sync loops a later sync may end first, and must not
		// lose what it already covered.
		if bytes.Count(contents, []byte("record")) >= bytes.Count(durable, []byte("record")) {
			durable = contents
		}
		return nil
	}
	l.start(syncers)
	t.Cleanup(func() {
		if err := l.close(); err != nil {
			t.Error(err)
		}
	})
	read := func() []byte {
		mu.Lock()
		defer mu.Unlock()
		return durable
	}
	return l, read
}

func TestAppendReturnsAfterCoveringSync(t *testing.T) {
	for _, tc := range []struct {
		mode    writeMode
		syncers int
	}{{writeMapped, 1}, {writePwrite, 1}, {writeMapped, 3}} {
		t.Run(fmt.Sprintf("%s/%d", tc.mode, tc.syncers), func(t *testing.T) {
			l, durable := durableLog(t, tc.mode, tc.syncers)
			var wg sync.WaitGroup
			for writer := range 16 {
				wg.Go(func() {
					for i := range 50 {
						record := fmt.Appendf(nil, "record %02d-%02d;", writer, i)
						if err := l.appendRecord(record); err != nil {
							t.Error(err)
							return
						}
						if !bytes.Contains(durable(), record) {
							t.Errorf("append of %q returned before a sync covered it", record)
							return
						}
					}
				})
			}
			wg.Wait()

			stats := l.stats()
			if stats.writes != 16*50 {
				t.Errorf("the syncs released %d writes, want %d", stats.writes, 16*50)
			}
			if stats.syncs == 0 || stats.syncs > stats.writes {
				t.Errorf("%d syncs for %d writes", stats.syncs, stats.writes)
			}
		})
	}
}

func TestAppendReturnsSyncError(t *testing.T) {
	l, err := createGroupLog(filepath.Join(t.TempDir(), "floor.log"), 4096, writePwrite)
	if err != nil {
		t.Fatal(err)
	}
	failure := errors.New("disk gone")
	l.sync = func() error { return failure }
	l.start(1)
	defer l.close()

	if err := l.appendRecord([]byte("record")); !errors.Is(err, failure) {
		t.Errorf("append returned %v, want the sync's error", err)
	}
}

func TestAppendWrapsAroundLog(t *testing.T) {
	l, err := openGroupLog(filepath.Join(t.TempDir(), "floor.log"), 100, writeMapped, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer l.close()

	for i := range 10 {
		if err := l.appendRecord(bytes.Repeat([]byte{byte('a' + i)}, 30)); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	if l.offset > l.size {
		t.Errorf("offset %d is past the end of the %d-byte log", l.offset, l.size)
	}
	if err := l.appendRecord(make([]byte, 101)); err == nil {
		t.Error("a record larger than the log was accepted")
	}
}

func TestCreateGroupLogRejectsMode(t *testing.T) {
	if _, err := createGroupLog(filepath.Join(t.TempDir(), "floor.log"), 4096, "fsync"); err == nil {
		t.Error("write mode fsync was accepted")
	}
}
