package redisstore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sockauth/sockauth/authority"
	"github.com/sockauth/sockauth/authority/redisstore"
	"github.com/sockauth/sockauth/authority/storetest"
)

// redisURL returns the Redis server of the tests: SOCKAUTH_TEST_REDIS_URL, or
// the local default that make test starts.
func redisURL() string {
	if url := os.Getenv("SOCKAUTH_TEST_REDIS_URL"); url != "" {
		return url
	}
	return "redis://127.0.0.1:6379/0"
}

// openStore returns a store with a random key prefix, and deletes its keys
// when the test ends.
func openStore(t *testing.T) *redisstore.Store {
	t.Helper()
	random := make([]byte, 6)
	rand.Read(random)
	prefix := "sockauth-test:" + hex.EncodeToString(random) + ":"

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	store, err := redisstore.Open(ctx, redisURL(), redisstore.Options{Prefix: prefix})
	if err != nil {
		t.Fatalf("Redis is required for these tests (make test starts it): %v", err)
	}

	t.Cleanup(func() {
		opts, _ := redis.ParseURL(redisURL())
		client := redis.NewClient(opts)
		defer client.Close()
		ctx := context.Background()
		iter := client.Scan(ctx, 0, prefix+"*", 100).Iterator()
		for iter.Next(ctx) {
			client.Del(ctx, iter.Val())
		}
		store.Close()
	})
	return store
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) authority.Store { return openStore(t) })
}

func TestOpenInvalidURL(t *testing.T) {
	if _, err := redisstore.Open(context.Background(), "http://127.0.0.1:6379", redisstore.Options{}); err == nil {
		t.Fatal("Open accepted an http URL")
	}
}

func TestOpenUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	// Port 1 on loopback has no listener, so the connection is refused at once.
	if _, err := redisstore.Open(ctx, "redis://127.0.0.1:1/0", redisstore.Options{}); err == nil {
		t.Fatal("Open of an unreachable server succeeded")
	}
}

func TestRecordExpires(t *testing.T) {
	store := openStore(t)
	session := storetest.NewSession()
	session.RetainUntil = time.Now().Add(-time.Hour)
	if err := store.Create(context.Background(), session); err != nil {
		t.Fatalf("Create: %v", err)
	}

	opts, _ := redis.ParseURL(redisURL())
	client := redis.NewClient(opts)
	defer client.Close()
	keys, err := client.Keys(context.Background(), "*"+session.ID+"*").Result()
	if err != nil || len(keys) != 1 {
		t.Fatalf("Keys = %v, %v; expected the one session key", keys, err)
	}
	ttl, err := client.PTTL(context.Background(), keys[0]).Result()
	if err != nil {
		t.Fatal(err)
	}
	if ttl <= 0 || ttl > time.Minute+time.Second {
		t.Fatalf("TTL %v of a record past its retention, expected at most the one-minute grace", ttl)
	}
}

// listAll reads every page of subject's sessions, starting after cursor, in
// pages of 3, and counts how often each session appears.
func listAll(t *testing.T, store *redisstore.Store, subject, cursor string, got map[string]int) {
	t.Helper()
	for first := true; first || cursor != ""; first = false {
		page, next, err := store.ListBySubject(context.Background(), subject, cursor, 3)
		if err != nil {
			t.Fatalf("ListBySubject: %v", err)
		}
		for _, session := range page {
			got[session.ID]++
		}
		cursor = next
	}
}

// firstPage reads the first page of 3 of subject's sessions, which must be
// full and have a next cursor, and counts its sessions.
func firstPage(t *testing.T, store *redisstore.Store, subject string) ([]*authority.Session, string, map[string]int) {
	t.Helper()
	page, next, err := store.ListBySubject(context.Background(), subject, "", 3)
	if err != nil || len(page) != 3 || next == "" {
		t.Fatalf("first page = %d sessions, next %q, %v; expected 3 and a next cursor", len(page), next, err)
	}
	got := map[string]int{}
	for _, session := range page {
		got[session.ID]++
	}
	return page, next, got
}

// checkListedOnce compares the sessions listed, with how often, with want.
func checkListedOnce(t *testing.T, got, want map[string]int) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("sessions listed, with how often: %v, expected each once: %v", got, want)
	}
}

// createSessions stores count sessions of subject and returns their ids,
// each counted once.
func createSessions(t *testing.T, store *redisstore.Store, subject string, count int) map[string]int {
	t.Helper()
	want := map[string]int{}
	for range count {
		session := storetest.NewSession()
		session.Subject = subject
		if err := store.Create(context.Background(), session); err != nil {
			t.Fatalf("Create: %v", err)
		}
		want[session.ID] = 1
	}
	return want
}

// TestListOnceWhenExpiryGrows rotates the sessions of the first page, which
// moves them to the end of the index by expiry, and reads the other pages.
// Each session must be listed once.
func TestListOnceWhenExpiryGrows(t *testing.T) {
	store := openStore(t)
	ctx := context.Background()
	subject := "rotating-" + storetest.NewSession().ID
	want := createSessions(t, store, subject, 7)

	page, next, got := firstPage(t, store, subject)
	for _, session := range page {
		rotated := *session
		rotated.Version++
		rotated.RetainUntil = session.RetainUntil.Add(3 * time.Hour)
		if err := store.CompareAndSwap(ctx, session.Version, &rotated); err != nil {
			t.Fatalf("CompareAndSwap: %v", err)
		}
	}
	listAll(t, store, subject, next, got)
	checkListedOnce(t, got, want)
}

// TestListAfterCursorEntryRemoved removes the session of the cursor from both
// indexes before the next page is read.
func TestListAfterCursorEntryRemoved(t *testing.T) {
	store := openStore(t)
	client := testClient(t)
	ctx := context.Background()
	subject := "removed-" + storetest.NewSession().ID
	want := createSessions(t, store, subject, 7)

	page, next, got := firstPage(t, store, subject)
	for _, key := range []string{store.SubjectKey(subject), store.SubjectIDsKey(subject)} {
		if err := client.ZRem(ctx, key, page[2].ID).Err(); err != nil {
			t.Fatal(err)
		}
	}
	listAll(t, store, subject, next, got)
	checkListedOnce(t, got, want)
}

// TestListFillsIndexByID lists a subject whose sessions are only in the
// index by expiry, as a version that kept only that one left them, and
// pages with a cursor of that version.
func TestListFillsIndexByID(t *testing.T) {
	store := openStore(t)
	client := testClient(t)
	ctx := context.Background()
	subject := "upgraded-" + storetest.NewSession().ID
	want := createSessions(t, store, subject, 7)
	if err := client.Del(ctx, store.SubjectIDsKey(subject)).Err(); err != nil {
		t.Fatal(err)
	}

	got := map[string]int{}
	listAll(t, store, subject, "", got)
	checkListedOnce(t, got, want)
	ttl, err := client.PTTL(ctx, store.SubjectIDsKey(subject)).Result()
	if err != nil || ttl <= 0 {
		t.Errorf("index by id has TTL %v, %v; expected the index by expiry's", ttl, err)
	}

	ids := make([]string, 0, len(want))
	for id := range want {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	page, _, err := store.ListBySubject(ctx, subject, "1767225600000:"+ids[2], 3)
	if err != nil {
		t.Fatalf("ListBySubject with an expiry cursor: %v", err)
	}
	if len(page) != 3 || page[0].ID != ids[3] {
		t.Errorf("page after the expiry cursor of %s starts with %d sessions, expected 3 from %s", ids[2], len(page), ids[3])
	}
}

// testClient returns a client of the tests' Redis server.
func testClient(t *testing.T) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(redisURL())
	if err != nil {
		t.Fatal(err)
	}
	client := redis.NewClient(opts)
	t.Cleanup(func() { client.Close() })
	return client
}

func TestListRejectsMalformedCursor(t *testing.T) {
	store := openStore(t)
	for _, cursor := range []string{"x:sid-1", "12:", "sid 1", "sid-1:12"} {
		_, _, err := store.ListBySubject(context.Background(), "alice", cursor, 3)
		if !errors.Is(err, authority.ErrInvalidArgument) {
			t.Errorf("ListBySubject after cursor %q = %v, expected ErrInvalidArgument", cursor, err)
		}
	}
}
