package redisstore

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// clientLog receives the messages that go-redis prints itself, such as the
// failed dials of its connection pool. go-redis v9 has one logger for the
// whole process (redis.SetLogger), so every open Store registers here, and
// the newest one logs the messages. With no Store open, slog.Default() logs
// them.
var clientLog clientLogRouter

// installClientLog makes clientLog the logger of go-redis, once per process.
var installClientLog sync.Once

// clientLogRouter is the go-redis logger that forwards each message to the
// slog.Logger of the newest open Store, at warn level.
type clientLogRouter struct {
	mu     sync.Mutex // guards stores
	stores []*Store   // open Stores, oldest first
}

func (r *clientLogRouter) register(s *Store) {
	installClientLog.Do(func() { redis.SetLogger(r) })

	r.mu.Lock()
	defer r.mu.Unlock()
	r.stores = append(r.stores, s)
}

func (r *clientLogRouter) unregister(s *Store) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stores = slices.DeleteFunc(r.stores, func(open *Store) bool { return open == s })
}

func (r *clientLogRouter) logger() *slog.Logger {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.stores) == 0 {
		return slog.Default()
	}
	return r.stores[len(r.stores)-1].log
}

// Printf logs one message of go-redis. It implements the Logging interface
// that redis.SetLogger takes.
func (r *clientLogRouter) Printf(ctx context.Context, format string, args ...any) {
	message := strings.TrimSpace(fmt.Sprintf(format, args...))
	r.logger().Log(ctx, slog.LevelWarn, message, "component", "go-redis")
}
