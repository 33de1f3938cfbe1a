package redisstore_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/sockauth/sockauth/authority/redisstore"
	"github.com/sockauth/sockauth/internal/logtest"
)

// hasDialFailure reports whether go-redis's message about a failed dial of its
// connection pool is among messages.
func hasDialFailure(messages []string) bool {
	for _, message := range messages {
		if strings.Contains(message, "connection pool: failed to dial") {
			return true
		}
	}
	return false
}

// unreachableStore returns a Store whose client dials port 1 on loopback,
// which has no listener, so every dial fails at once.
func unreachableStore(t *testing.T, handler slog.Handler) *redisstore.Store {
	t.Helper()
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialerRetries: 1, MaxRetries: -1})
	store := redisstore.New(client, redisstore.Options{Logger: slog.New(handler)})
	t.Cleanup(func() { store.Close() })
	return store
}

func TestClientMessagesReachStoreLogger(t *testing.T) {
	handler := &logtest.Recorder{}
	store := unreachableStore(t, handler)

	if _, err := store.Get(context.Background(), "sid"); err == nil {
		t.Fatal("Get from an unreachable Redis succeeded")
	}
	if messages := handler.Messages(slog.LevelWarn); !hasDialFailure(messages) {
		t.Fatalf("warnings %q lack go-redis's dial failure", messages)
	}
}

func TestClientMessagesReachNewestStore(t *testing.T) {
	older, newer := &logtest.Recorder{}, &logtest.Recorder{}
	olderStore := unreachableStore(t, older)
	newerStore := unreachableStore(t, newer)

	if _, err := olderStore.Get(context.Background(), "sid"); err == nil {
		t.Fatal("Get from an unreachable Redis succeeded")
	}
	if messages := newer.Messages(slog.LevelWarn); !hasDialFailure(messages) {
		t.Errorf("newest store's warnings %q lack go-redis's dial failure", messages)
	}
	if messages := older.Messages(slog.LevelWarn); len(messages) != 0 {
		t.Errorf("older store logged %q while a newer store was open", messages)
	}

	if err := newerStore.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := olderStore.Get(context.Background(), "sid"); err == nil {
		t.Fatal("Get from an unreachable Redis succeeded")
	}
	if messages := older.Messages(slog.LevelWarn); !hasDialFailure(messages) {
		t.Errorf("after the newer store closed, the older store's warnings %q lack go-redis's dial failure", messages)
	}
}
