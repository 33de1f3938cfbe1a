package badgerstore

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sockauth/sockauth/authority/storetest"
)

// gather registers the store's collector on a new registry and returns its
// metric families by name.
func gather(t *testing.T, s *Store) map[string]*dto.MetricFamily {
	t.Helper()
	registry := prometheus.NewRegistry()
	if err := registry.Register(s.Collector()); err != nil {
		t.Fatalf("register the store's collector: %v", err)
	}
	families, err := registry.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, family := range families {
		byName[family.GetName()] = family
	}
	return byName
}

// value returns the single value of the counter or gauge name.
func value(t *testing.T, families map[string]*dto.MetricFamily, name string) float64 {
	t.Helper()
	family, ok := families[name]
	if !ok || len(family.GetMetric()) != 1 {
		t.Fatalf("metric %s missing or not single", name)
	}
	metric := family.GetMetric()[0]
	if metric.GetCounter() != nil {
		return metric.GetCounter().GetValue()
	}
	return metric.GetGauge().GetValue()
}

func TestStoreMetricsCountSyncsWritesAndCache(t *testing.T) {
	store, err := Open(t.TempDir(), Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer store.Close()

	ctx := context.Background()
	const sessions = 5
	for range sessions {
		session := storetest.NewSession()
		if err := store.Create(ctx, session); err != nil {
			t.Fatalf("Create: %v", err)
		}
		if _, err := store.Get(ctx, session.ID); err != nil {
			t.Fatalf("Get: %v", err)
		}
	}

	families := gather(t, store)
	if got := value(t, families, "sockauth_store_writes_total"); got != sessions {
		t.Errorf("writes %v, expected %d", got, sessions)
	}
	syncs := value(t, families, "sockauth_store_syncs_total")
	if syncs < 1 || syncs > sessions {
		t.Errorf("syncs %v, expected 1 to %d for %d writes one after the other", syncs, sessions, sessions)
	}
	histogram := families["sockauth_store_sync_seconds"].GetMetric()[0].GetHistogram()
	if float64(histogram.GetSampleCount()) != syncs {
		t.Errorf("sync_seconds holds %d samples, expected one per sync (%v)", histogram.GetSampleCount(), syncs)
	}
	if histogram.GetSampleSum() <= 0 {
		t.Errorf("sync_seconds sums to %v, expected the time spent in real syncs", histogram.GetSampleSum())
	}
	if got := value(t, families, "sockauth_store_cache_hits_total"); got != sessions {
		t.Errorf("cache hits %v, expected %d: each Get read a session just written", got, sessions)
	}
	if got := value(t, families, "sockauth_store_cache_sessions"); got != sessions {
		t.Errorf("cached sessions %v, expected %d", got, sessions)
	}
	if got := value(t, families, "sockauth_store_sync_failed"); got != 0 {
		t.Errorf("sync_failed %v, expected 0", got)
	}
}

func TestStoreMetricsReportFailedSync(t *testing.T) {
	diskGone := errors.New("disk gone")
	store, err := Open(t.TempDir(), Options{
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		wrapSync: func(func() error) error { return diskGone },
	})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer store.Close()

	if err := store.Create(context.Background(), storetest.NewSession()); !errors.Is(err, diskGone) {
		t.Fatalf("Create with a failing sync returned %v, expected the sync's error", err)
	}
	if got := value(t, gather(t, store), "sockauth_store_sync_failed"); got != 1 {
		t.Errorf("sync_failed %v after a failed sync, expected 1", got)
	}
}
