package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/sockauth/sockauth/internal/serve"
)

// storeSyncs are the counters of the syncs that make the authority's Badger
// writes durable. Every acknowledged write waits for one of them.
type storeSyncs struct {
	writes, syncs uint64
	// syncTime is the time the syncs took together.
	syncTime time.Duration
}

// since returns the syncs between an earlier reading and s, or an error
// when a counter went down, as it does when the authority restarted.
func (s storeSyncs) since(earlier storeSyncs) (storeSyncs, error) {
	if s.writes < earlier.writes || s.syncs < earlier.syncs || s.syncTime < earlier.syncTime {
		return storeSyncs{}, errors.New("the store's sync counters went down during a phase, as they do when the authority restarts")
	}
	return storeSyncs{writes: s.writes - earlier.writes, syncs: s.syncs - earlier.syncs,
		syncTime: s.syncTime - earlier.syncTime}, nil
}

// writesPerSync returns how many writes shared a sync, or -1 without syncs.
func (s storeSyncs) writesPerSync() float64 {
	if s.syncs == 0 {
		return -1
	}
	return float64(s.writes) / float64(s.syncs)
}

// meanSync returns the mean duration of a sync, or -1 without syncs.
func (s storeSyncs) meanSync() time.Duration {
	if s.syncs == 0 {
		return -1
	}
	return s.syncTime / time.Duration(s.syncs)
}

// syncReader reads the store's sync counters once.
type syncReader func(ctx context.Context) (storeSyncs, error)

// inProcessSyncs reads the counters of an authority in this process, or
// returns nil when its store is not Badger.
func inProcessSyncs(a *serve.Authority) syncReader {
	if _, ok := a.SyncStats(); !ok {
		return nil
	}
	return func(context.Context) (storeSyncs, error) {
		stats, _ := a.SyncStats()
		return storeSyncs{writes: stats.Writes, syncs: stats.Syncs, syncTime: stats.SyncTime}, nil
	}
}

// Metric names that `sockauth serve --metrics-listen` exports for its Badger
// store.
const (
	metricSyncs    = "sockauth_store_syncs_total"
	metricWrites   = "sockauth_store_writes_total"
	metricSyncTime = "sockauth_store_sync_seconds"
)

// maxMetricsBytes bounds the metrics page that scrapedSyncs reads.
const maxMetricsBytes = 8 << 20

// scrapedSyncs reads the counters from the Prometheus metrics page at url.
func scrapedSyncs(url string, client *http.Client) syncReader {
	return func(ctx context.Context) (storeSyncs, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return storeSyncs{}, fmt.Errorf("--metrics %q is not a valid URL: %w", url, err)
		}
		resp, err := client.Do(req)
		if err != nil {
			return storeSyncs{}, fmt.Errorf("read the authority's metrics: %w, so check that sockauth serve runs with --metrics-listen at that address", err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return storeSyncs{}, fmt.Errorf("read the authority's metrics at %s: status %s", url, resp.Status)
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxMetricsBytes+1))
		if err != nil {
			return storeSyncs{}, fmt.Errorf("read the authority's metrics at %s: %w", url, err)
		}
		if len(body) > maxMetricsBytes {
			return storeSyncs{}, fmt.Errorf("the metrics page at %s is larger than %d MiB", url, maxMetricsBytes>>20)
		}
		syncs, err := parseStoreSyncs(body)
		if err != nil {
			return storeSyncs{}, fmt.Errorf("metrics at %s: %w", url, err)
		}
		return syncs, nil
	}
}

// parseStoreSyncs takes the sync counters from a page of Prometheus metrics
// in the text format.
func parseStoreSyncs(page []byte) (storeSyncs, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(page))
	if err != nil {
		return storeSyncs{}, fmt.Errorf("not Prometheus text metrics: %w", err)
	}
	counter := func(name string) (uint64, error) {
		family, ok := families[name]
		if !ok || len(family.GetMetric()) != 1 || family.GetMetric()[0].GetCounter() == nil {
			return 0, fmt.Errorf("no counter %s, which an authority that stores sessions in Badger exports", name)
		}
		return uint64(family.GetMetric()[0].GetCounter().GetValue()), nil
	}
	syncs, err := counter(metricSyncs)
	if err != nil {
		return storeSyncs{}, err
	}
	writes, err := counter(metricWrites)
	if err != nil {
		return storeSyncs{}, err
	}
	family, ok := families[metricSyncTime]
	if !ok || len(family.GetMetric()) != 1 || family.GetMetric()[0].GetHistogram() == nil {
		return storeSyncs{}, fmt.Errorf("no histogram %s, which an authority that stores sessions in Badger exports", metricSyncTime)
	}
	seconds := family.GetMetric()[0].GetHistogram().GetSampleSum()
	return storeSyncs{writes: writes, syncs: syncs, syncTime: time.Duration(seconds * float64(time.Second))}, nil
}
