//go:build linux

package main

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// durableLog returns a started log whose sync copies the file's contents, so
// that the copy holds what a real sync would have made durable.
func durableLog(t *testing.T, config logConfig) (*groupLog, func() []byte) {
	t.Helper()
	l, err := createGroupLog(filepath.Join(t.TempDir(), "floor.log"), config)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu      sync.Mutex
		durable []byte
	)
	l.sync = func(time.Time) error {
		contents := make([]byte, l.config.size)
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
	l.start()
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
	for _, config := range []logConfig{
		{size: 1 << 20, mode: writeMapped, syncers: 1},
		{size: 1 << 20, mode: writePwrite, syncers: 1},
		{size: 1 << 20, mode: writeMapped, syncers: 3},
		{size: 1 << 20, mode: writePwrite, syncers: 2, overlapAfter: 50 * time.Microsecond},
	} {
		t.Run(fmt.Sprintf("%s/%d/%s", config.mode, config.syncers, config.overlapAfter), func(t *testing.T) {
			l, durable := durableLog(t, config)
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
	l, err := createGroupLog(filepath.Join(t.TempDir(), "floor.log"), logConfig{size: 4096, mode: writePwrite, syncers: 1})
	if err != nil {
		t.Fatal(err)
	}
	failure := errors.New("disk gone")
	l.sync = func(time.Time) error { return failure }
	l.start()
	defer l.close()

	if err := l.appendRecord([]byte("record")); !errors.Is(err, failure) {
		t.Errorf("append returned %v, want the sync's error", err)
	}
}

func TestAppendWrapsAroundLog(t *testing.T) {
	l, err := openGroupLog(filepath.Join(t.TempDir(), "floor.log"), logConfig{size: 100, mode: writeMapped, syncers: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer l.close()

	// Three records of 30 bytes fit, and the fourth goes to the start.
	for i := range 4 {
		if err := l.appendRecord(bytes.Repeat([]byte{byte('a' + i)}, 30)); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	contents := make([]byte, 100)
	if _, err := l.file.ReadAt(contents, 0); err != nil {
		t.Fatal(err)
	}
	if want := bytes.Repeat([]byte{'d'}, 30); !bytes.Equal(contents[:30], want) {
		t.Errorf("the log starts with %q after the wrap, want the fourth record %q", contents[:30], want)
	}
	if want := bytes.Repeat([]byte{'b'}, 30); !bytes.Equal(contents[30:60], want) {
		t.Errorf("the second record was overwritten: %q", contents[30:60])
	}
	if l.offset != 30 {
		t.Errorf("offset %d after the wrap, want 30", l.offset)
	}
	if err := l.appendRecord(make([]byte, 101)); err == nil {
		t.Error("a record larger than the log was accepted")
	}
}

func TestCreateGroupLogRejectsMode(t *testing.T) {
	dir := t.TempDir()
	for name, config := range map[string]logConfig{
		"write mode fsync": {size: 4096, mode: "fsync", syncers: 1},
		"no sync loop":     {size: 4096, mode: writePwrite},
		"empty log":        {mode: writePwrite, syncers: 1},
	} {
		if _, err := createGroupLog(filepath.Join(dir, name), config); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestCloseReleasesWaitingAppends(t *testing.T) {
	l, err := createGroupLog(filepath.Join(t.TempDir(), "floor.log"), logConfig{size: 1 << 20, mode: writeMapped, syncers: 1})
	if err != nil {
		t.Fatal(err)
	}
	// The first sync holds until close has started, so appends wait in it
	// and in the pending list when the log closes.
	syncing, release := make(chan struct{}, 1), make(chan struct{})
	l.sync = func(time.Time) error {
		select {
		case syncing <- struct{}{}:
			<-release
		default:
		}
		return nil
	}
	l.start()

	results := make(chan error, 20)
	for range 20 {
		go func() { results <- l.appendRecord([]byte("record")) }()
	}
	<-syncing
	closed := make(chan error, 1)
	go func() { closed <- l.close() }()
	time.Sleep(10 * time.Millisecond)
	close(release)

	if err := <-closed; err != nil {
		t.Errorf("close: %v", err)
	}
	for range 20 {
		if err := <-results; err != nil && !errors.Is(err, errLogClosed) {
			t.Errorf("an append returned %v, want nil or errLogClosed", err)
		}
	}
	if err := l.appendRecord([]byte("late")); !errors.Is(err, errLogClosed) {
		t.Errorf("an append after close returned %v, want errLogClosed", err)
	}
}

func TestOverlapAfterHoldsSecondSync(t *testing.T) {
	const overlapAfter = 2 * time.Millisecond
	l, err := createGroupLog(filepath.Join(t.TempDir(), "floor.log"),
		logConfig{size: 1 << 20, mode: writePwrite, syncers: 2, overlapAfter: overlapAfter})
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu       sync.Mutex
		running  = map[int]time.Time{}
		next     int
		overlaps int
	)
	l.sync = func(claimed time.Time) error {
		mu.Lock()
		id := next
		next++
		// A loop can be delayed between its claim and its sync, so the
		// gap is taken between claims, in either order.
		for _, other := range running {
			overlaps++
			if gap := claimed.Sub(other).Abs(); gap < overlapAfter {
				t.Errorf("two syncs overlapped with claims %s apart, want at least %s", gap, overlapAfter)
			}
		}
		running[id] = claimed
		mu.Unlock()

		time.Sleep(5 * time.Millisecond)
		mu.Lock()
		delete(running, id)
		mu.Unlock()
		return nil
	}
	l.start()
	defer l.close()

	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for range 20 {
				if err := l.appendRecord([]byte("record")); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if overlaps == 0 {
		t.Error("no two syncs overlapped, so the test checked nothing")
	}
}

func TestSparseLogHasNoBlocks(t *testing.T) {
	dir := t.TempDir()
	for _, sparse := range []bool{false, true} {
		path := filepath.Join(dir, fmt.Sprintf("sparse-%v.log", sparse))
		l, err := openGroupLog(path, logConfig{size: 1 << 20, mode: writeMapped, syncers: 1, sparse: sparse})
		if err != nil {
			t.Fatal(err)
		}
		var stat unix.Stat_t
		if err := unix.Stat(path, &stat); err != nil {
			t.Fatal(err)
		}
		if stat.Size != 1<<20 {
			t.Errorf("sparse=%v: size %d, want 1 MiB", sparse, stat.Size)
		}
		// Blocks counts 512-byte units.
		if allocated := stat.Blocks * 512; sparse && allocated != 0 || !sparse && allocated < 1<<20 {
			t.Errorf("sparse=%v: %d bytes allocated", sparse, allocated)
		}
		if err := l.appendRecord([]byte("record")); err != nil {
			t.Errorf("sparse=%v: %v", sparse, err)
		}
		if err := l.close(); err != nil {
			t.Error(err)
		}
	}
}
