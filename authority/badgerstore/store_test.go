package badgerstore_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sockauth/sockauth/authority"
	"github.com/sockauth/sockauth/authority/badgerstore"
	"github.com/sockauth/sockauth/authority/storetest"
)

func quietOptions() badgerstore.Options {
	return badgerstore.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

func TestConformanceOnDisk(t *testing.T) {
	storetest.Run(t, func(t *testing.T) authority.Store {
		store, err := badgerstore.Open(t.TempDir(), quietOptions())
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() { store.Close() })
		return store
	})
}

func TestConformanceInMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T) authority.Store {
		opts := quietOptions()
		opts.InMemory = true
		store, err := badgerstore.Open("", opts)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() { store.Close() })
		return store
	})
}

func TestSessionSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	store, err := badgerstore.Open(dir, quietOptions())
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	session := storetest.NewSession()
	if err := store.Create(context.Background(), session); err != nil {
		t.Fatalf("Create: %v", err)
	}
	next := *session
	next.Version = 2
	next.RevokedReason = authority.RevokedReused
	if err := store.CompareAndSwap(context.Background(), 1, &next); err != nil {
		t.Fatalf("CompareAndSwap: %v", err)
	}
	if err := store.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	reopened, err := badgerstore.Open(dir, quietOptions())
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer reopened.Close()
	got, err := reopened.Get(context.Background(), session.ID)
	if err != nil {
		t.Fatalf("Get after reopen: %v", err)
	}
	if got.RevokedReason != authority.RevokedReused || got.Version != 2 {
		t.Fatalf("after reopen: reason %q version %d, expected reused and 2", got.RevokedReason, got.Version)
	}
}

func TestOpenLockedFolderFails(t *testing.T) {
	dir := t.TempDir()
	store, err := badgerstore.Open(dir, quietOptions())
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer store.Close()

	_, err = badgerstore.Open(dir, quietOptions())
	if err == nil {
		t.Fatal("second Open of a folder in use succeeded")
	}
	if !strings.Contains(err.Error(), dir) {
		t.Fatalf("error %q does not name the folder %q", err, dir)
	}
}

func TestOpenCorruptFolderFails(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "MANIFEST"), []byte("not a manifest"), 0o600); err != nil {
		t.Fatal(err)
	}

	_, err := badgerstore.Open(dir, quietOptions())
	if err == nil {
		t.Fatal("Open of a corrupt folder succeeded")
	}
	if !strings.Contains(err.Error(), dir) {
		t.Fatalf("error %q does not name the folder %q", err, dir)
	}
}

func TestCloseTwice(t *testing.T) {
	store, err := badgerstore.Open(t.TempDir(), quietOptions())
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := store.Close(); err != nil {
		t.Fatalf("first Close: %v", err)
	}
	if err := store.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
}

func TestWriteAfterClose(t *testing.T) {
	store, err := badgerstore.Open(t.TempDir(), quietOptions())
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	store.Close()
	if err := store.Create(context.Background(), storetest.NewSession()); err == nil {
		t.Fatal("Create after Close succeeded")
	}
}

// TestCloseDuringWrites closes the store while 50 writers create sessions:
// every write must return, and every acknowledged one must be stored.
func TestCloseDuringWrites(t *testing.T) {
	dir := t.TempDir()
	store, err := badgerstore.Open(dir, quietOptions())
	if err != nil {
		t.Fatalf("Open: %v", err)
	}

	var (
		wg      sync.WaitGroup
		mu      sync.Mutex // guards written
		written []string
	)
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				session := storetest.NewSession()
				if err := store.Create(context.Background(), session); err != nil {
					return
				}
				mu.Lock()
				written = append(written, session.ID)
				mu.Unlock()
			}
		}()
	}
	time.Sleep(20 * time.Millisecond)
	store.Close()

	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(10 * time.Second):
		t.Fatal("writers still blocked 10 s after Close")
	}

	reopened, err := badgerstore.Open(dir, quietOptions())
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer reopened.Close()
	for _, id := range written {
		if _, err := reopened.Get(context.Background(), id); err != nil {
			t.Fatalf("acknowledged session %s missing after Close: %v", id, err)
		}
	}
	t.Logf("%d acknowledged writes checked", len(written))
}
