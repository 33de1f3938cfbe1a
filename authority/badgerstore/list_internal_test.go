package badgerstore

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"testing"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/sockauth/sockauth/authority"
	"github.com/sockauth/sockauth/authority/storetest"
)

// newListStore opens an in-memory store with sessions of alice and drops the
// records of the sessions at the indexes in forgotten, as Badger does when
// their lifetime ends. It returns the store and the ids of the live sessions
// in listing order.
func newListStore(t *testing.T, sessions int, forgotten func(i int) bool) (*Store, []string) {
	t.Helper()

	store, err := Open("", Options{InMemory: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { store.Close() })

	ctx := context.Background()
	var live []string
	for i := range sessions {
		session := storetest.NewSession()
		if err := store.Create(ctx, session); err != nil {
			t.Fatalf("Create: %v", err)
		}
		if !forgotten(i) {
			live = append(live, session.ID)
			continue
		}
		err := store.db.Update(func(txn *badger.Txn) error { return txn.Delete(sessionKey(session.ID)) })
		if err != nil {
			t.Fatalf("drop the record of %s: %v", session.ID, err)
		}
	}
	slices.Sort(live)
	return store, live
}

// indexKeys returns how many index keys alice has.
func indexKeys(t *testing.T, store *Store) int {
	t.Helper()

	count := 0
	err := store.db.View(func(txn *badger.Txn) error {
		iter := txn.NewIterator(badger.IteratorOptions{Prefix: subjectPrefix("alice")})
		defer iter.Close()
		for iter.Rewind(); iter.Valid(); iter.Next() {
			count++
		}
		return nil
	})
	if err != nil {
		t.Fatalf("count index keys: %v", err)
	}
	return count
}

func TestListSkipsForgottenSessions(t *testing.T) {
	// Two of every three sessions are forgotten.
	store, live := newListStore(t, 30, func(i int) bool { return i%3 != 0 })

	sessions, next, err := store.ListBySubject(context.Background(), "alice", "", len(live))
	if err != nil {
		t.Fatalf("ListBySubject: %v", err)
	}
	var ids []string
	for _, session := range sessions {
		ids = append(ids, session.ID)
	}
	if !slices.Equal(ids, live) {
		t.Errorf("first page lists %q, expected every live session %q", ids, live)
	}
	if next == "" {
		// The page stops at the limit, before it reads the keys that follow.
		t.Error("first page has no next cursor, expected one after a full page")
	}

	// The page ends at its last live session, so the keys of sessions 28
	// and 29, after it, stay until a listing reads them.
	if got := indexKeys(t, store); got != len(live)+2 {
		t.Errorf("%d index keys left after the listing, expected the %d of live sessions and the 2 unread", got, len(live))
	}
}

func TestListDeletesForgottenIndexKeys(t *testing.T) {
	store, live := newListStore(t, 12, func(i int) bool { return i%2 == 0 })
	if got := indexKeys(t, store); got != 12 {
		t.Fatalf("%d index keys before the listing, expected 12", got)
	}

	sessions, next, err := store.ListBySubject(context.Background(), "alice", "", 100)
	if err != nil {
		t.Fatalf("ListBySubject: %v", err)
	}
	if len(sessions) != len(live) || next != "" {
		t.Errorf("listed %d sessions with next cursor %q, expected the %d live ones and no next page", len(sessions), next, len(live))
	}
	if got := indexKeys(t, store); got != len(live) {
		t.Errorf("%d index keys after the listing, expected the %d of live sessions", got, len(live))
	}
}

func TestListBoundsForgottenKeysPerPage(t *testing.T) {
	store, _ := newListStore(t, maxStaleIndexKeys+5, func(i int) bool { return i < maxStaleIndexKeys+3 })

	var (
		cursor string
		pages  int
		total  []*authority.Session
	)
	for {
		sessions, next, err := store.ListBySubject(context.Background(), "alice", cursor, 10)
		if err != nil {
			t.Fatalf("ListBySubject: %v", err)
		}
		pages++
		total = append(total, sessions...)
		if next == "" {
			break
		}
		if pages > 5 {
			t.Fatalf("more than 5 pages of 10 for 2 live sessions, cursor %q", next)
		}
		cursor = next
	}
	if pages < 2 {
		t.Errorf("one page read %d forgotten index keys, expected at most %d per page", maxStaleIndexKeys+3, maxStaleIndexKeys)
	}
	if len(total) != 2 {
		t.Errorf("the pages listed %d sessions, expected the 2 live ones", len(total))
	}
	if got := indexKeys(t, store); got != 2 {
		t.Errorf("%d index keys after the pages, expected the 2 of live sessions", got)
	}
}
