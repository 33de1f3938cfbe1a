package serve

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	sockauthv1 "github.com/sockauth/sockauth/gen/sockauth/v1"
)

// brokenStore is a failingStore whose error a test sets.
type brokenStore struct{ err atomic.Pointer[error] }

func (s *brokenStore) Err() error {
	if err := s.err.Load(); err != nil {
		return *err
	}
	return nil
}

func servingStatus(t *testing.T, h *health.Server, service string) healthpb.HealthCheckResponse_ServingStatus {
	t.Helper()
	resp, err := h.Check(context.Background(), &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		t.Fatalf("health check of %q: %v", service, err)
	}
	return resp.GetStatus()
}

func TestWatchStoreReportsFailedStore(t *testing.T) {
	var logs bytes.Buffer
	a := &Authority{health: health.NewServer(), log: slog.New(slog.NewTextHandler(&logs, nil))}
	service := sockauthv1.AuthorityService_ServiceDesc.ServiceName
	a.health.SetServingStatus(service, healthpb.HealthCheckResponse_SERVING)
	store := &brokenStore{}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stopped := make(chan struct{})
	go func() {
		a.watchStore(ctx, store, time.Millisecond)
		close(stopped)
	}()

	time.Sleep(20 * time.Millisecond)
	if got := servingStatus(t, a.health, service); got != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("status %v while the store works, expected SERVING", got)
	}

	failure := errors.New("sync badger logs: input/output error")
	store.err.Store(&failure)
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("watchStore did not return after the store failed")
	}
	for _, name := range []string{"", service} {
		if got := servingStatus(t, a.health, name); got != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Errorf("status of %q is %v after the store failed, expected NOT_SERVING", name, got)
		}
	}
	if !strings.Contains(logs.String(), "input/output error") {
		t.Errorf("no log line names the store's error; logs:\n%s", logs.String())
	}
}

func TestWatchStoreStopsWithContext(t *testing.T) {
	a := &Authority{health: health.NewServer(), log: slog.New(slog.DiscardHandler)}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() {
		a.watchStore(ctx, &brokenStore{}, time.Millisecond)
		close(stopped)
	}()

	cancel()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("watchStore kept running after its context ended")
	}
}
