package badgerstore_test

import (
	"context"
	"reflect"
	"testing"

	"github.com/sockauth/sockauth/authority"
	"github.com/sockauth/sockauth/authority/badgerstore"
	"github.com/sockauth/sockauth/authority/storetest"
)

func TestConformanceWithoutCache(t *testing.T) {
	storetest.Run(t, func(t *testing.T) authority.Store {
		opts := quietOptions()
		opts.CacheSessions = -1
		store, err := badgerstore.Open(t.TempDir(), opts)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() { store.Close() })
		return store
	})
}

// rotateOnce replaces session with its next version, as a rotation does.
func rotateOnce(t *testing.T, store *badgerstore.Store, session *authority.Session) *authority.Session {
	t.Helper()
	next := *session
	next.Version++
	next.Generation++
	next.PreviousTokenID, next.CurrentTokenID = session.CurrentTokenID, storetest.NewSession().CurrentTokenID
	if err := store.CompareAndSwap(context.Background(), session.Version, &next); err != nil {
		t.Fatalf("CompareAndSwap: %v", err)
	}
	return &next
}

func TestCacheServesWrittenSessions(t *testing.T) {
	ctx := context.Background()
	store, err := badgerstore.Open(t.TempDir(), quietOptions())
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer store.Close()

	session := storetest.NewSession()
	session.Claims = map[string]string{"room": "lobby"}
	if err := store.Create(ctx, session); err != nil {
		t.Fatalf("Create: %v", err)
	}
	next := rotateOnce(t, store, session)

	got, err := store.Get(ctx, session.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if got.Version != next.Version || got.CurrentTokenID != next.CurrentTokenID || got.Claims["room"] != "lobby" {
		t.Fatalf("Get = version %d, jti %q, claims %v; expected version %d, jti %q and the claims",
			got.Version, got.CurrentTokenID, got.Claims, next.Version, next.CurrentTokenID)
	}
	if stats := store.CacheStats(); stats.Hits != 1 || stats.Misses != 0 || stats.Sessions != 1 {
		t.Fatalf("CacheStats = %+v, expected one hit, no miss and one session", stats)
	}

	// The caller owns what Get returns: changing it changes neither the cache
	// nor the next read.
	got.Claims["room"] = "changed"
	got.CurrentTokenID = "changed"
	again, err := store.Get(ctx, session.ID)
	if err != nil {
		t.Fatalf("second Get: %v", err)
	}
	if again.Claims["room"] != "lobby" || again.CurrentTokenID != next.CurrentTokenID {
		t.Fatalf("second Get = claims %v, jti %q; a change to the first result leaked into the cache",
			again.Claims, again.CurrentTokenID)
	}
}

func TestCacheMatchesBadger(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	store, err := badgerstore.Open(dir, quietOptions())
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	session := storetest.NewSession()
	session.Claims = map[string]string{"plan": "pro"}
	if err := store.Create(ctx, session); err != nil {
		t.Fatalf("Create: %v", err)
	}
	rotateOnce(t, store, session)
	cached, err := store.Get(ctx, session.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if err := store.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	// A reopened store has an empty cache, so it reads the record from Badger.
	reopened, err := badgerstore.Open(dir, quietOptions())
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer reopened.Close()
	fromBadger, err := reopened.Get(ctx, session.ID)
	if err != nil {
		t.Fatalf("Get after reopen: %v", err)
	}
	if stats := reopened.CacheStats(); stats.Misses != 1 {
		t.Fatalf("CacheStats after reopen = %+v, expected the read to miss the cache", stats)
	}
	if !reflect.DeepEqual(cached, fromBadger) {
		t.Fatalf("cached record differs from Badger's:\ncached: %+v\nbadger: %+v", cached, fromBadger)
	}
}

func TestCacheKeepsItsLimit(t *testing.T) {
	ctx := context.Background()
	opts := quietOptions()
	opts.CacheSessions = 4
	store, err := badgerstore.Open(t.TempDir(), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer store.Close()

	var sessions []*authority.Session
	for range 10 {
		session := storetest.NewSession()
		if err := store.Create(ctx, session); err != nil {
			t.Fatalf("Create: %v", err)
		}
		sessions = append(sessions, rotateOnce(t, store, session))
	}
	if stats := store.CacheStats(); stats.Sessions != 4 {
		t.Fatalf("CacheStats = %+v, expected 4 sessions cached", stats)
	}

	// Evicted sessions are read from Badger, and a swap against their stored
	// version still works.
	for _, session := range sessions {
		got, err := store.Get(ctx, session.ID)
		if err != nil {
			t.Fatalf("Get %s: %v", session.ID, err)
		}
		if got.Version != session.Version {
			t.Fatalf("Get %s = version %d, expected %d", session.ID, got.Version, session.Version)
		}
		rotateOnce(t, store, session)
	}
	stats := store.CacheStats()
	if stats.Hits+stats.Misses != 10 || stats.Misses < 6 {
		t.Fatalf("CacheStats = %+v, expected 10 reads of which at least 6 missed", stats)
	}
}

func TestCacheOffReadsBadger(t *testing.T) {
	ctx := context.Background()
	opts := quietOptions()
	opts.CacheSessions = -1
	store, err := badgerstore.Open(t.TempDir(), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer store.Close()
	session := storetest.NewSession()
	if err := store.Create(ctx, session); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if _, err := store.Get(ctx, session.ID); err != nil {
		t.Fatalf("Get: %v", err)
	}
	if stats := store.CacheStats(); stats.Hits != 0 || stats.Sessions != 0 {
		t.Fatalf("CacheStats with the cache off = %+v, expected nothing cached", stats)
	}
}
