package redisstore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"reflect"
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

func TestListPagesAfterCursorEntryChanged(t *testing.T) {
	for _, change := range []string{"removed", "rescored"} {
		t.Run(change, func(t *testing.T) {
			store := openStore(t)
			opts, err := redis.ParseURL(redisURL())
			if err != nil {
				t.Fatal(err)
			}
			client := redis.NewClient(opts)
			defer client.Close()
			ctx := context.Background()

			// Sessions created in one second share their expiry, so the
			// index orders them by id alone.
			subject := "paged-" + change
			want := map[string]int{}
			for range 7 {
				session := storetest.NewSession()
				session.Subject = subject
				if err := store.Create(ctx, session); err != nil {
					t.Fatalf("Create: %v", err)
				}
				want[session.ID] = 1
			}

			page, next, err := store.ListBySubject(ctx, subject, "", 3)
			if err != nil || len(page) != 3 || next == "" {
				t.Fatalf("first page = %d sessions, next %q, %v; expected 3 and a next cursor", len(page), next, err)
			}
			got := map[string]int{}
			for _, session := range page {
				got[session.ID]++
			}
			cursorID := page[2].ID
			key := store.SubjectKey(subject)
			switch change {
			case "removed":
				err = client.ZRem(ctx, key, cursorID).Err()
			case "rescored":
				// A later expiry moves the entry behind the cursor, so it is
				// listed again.
				err = client.ZAddGT(ctx, key, redis.Z{Member: cursorID, Score: float64(time.Now().Add(3 * time.Hour).UnixMilli())}).Err()
				want[cursorID] = 2
			}
			if err != nil {
				t.Fatalf("changing the cursor's entry: %v", err)
			}

			for cursor := next; cursor != ""; {
				page, cursor, err = store.ListBySubject(ctx, subject, cursor, 3)
				if err != nil {
					t.Fatalf("ListBySubject: %v", err)
				}
				for _, session := range page {
					got[session.ID]++
				}
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("sessions listed, with how often: %v, expected %v", got, want)
			}
		})
	}
}

func TestListRejectsMalformedCursor(t *testing.T) {
	store := openStore(t)
	for _, cursor := range []string{"no-colon", "x:sid-1", "12:"} {
		_, _, err := store.ListBySubject(context.Background(), "alice", cursor, 3)
		if !errors.Is(err, authority.ErrInvalidArgument) {
			t.Errorf("ListBySubject after cursor %q = %v, expected ErrInvalidArgument", cursor, err)
		}
	}
}
