package badgerstore

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// syncSecondsBuckets are the bounds of sockauth_store_sync_seconds. Syncs
// took 0.1 to 14 ms on the virtual disk of the machine the benchmarks ran on,
// and take longer on a slower or busier disk.
var syncSecondsBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1}

// storeMetrics are the store's Prometheus metrics. The counters are read
// from the store at scrape time; the histogram is observed by the sync stage.
type storeMetrics struct {
	store         *Store
	syncTime      prometheus.Histogram
	syncs         *prometheus.Desc
	writes        *prometheus.Desc
	failed        *prometheus.Desc
	cacheHits     *prometheus.Desc
	cacheMisses   *prometheus.Desc
	cacheSessions *prometheus.Desc
}

func newStoreMetrics(s *Store) *storeMetrics {
	return &storeMetrics{
		store: s,
		syncTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sockauth_store_sync_seconds",
			Help:    "Duration of each sync of the Badger logs, which every acknowledged write waits for.",
			Buckets: syncSecondsBuckets,
		}),
		syncs: prometheus.NewDesc("sockauth_store_syncs_total",
			"Syncs of the Badger logs; writes divided by syncs is the number of writes that shared a sync.", nil, nil),
		writes: prometheus.NewDesc("sockauth_store_writes_total",
			"Session records written to Badger.", nil, nil),
		failed: prometheus.NewDesc("sockauth_store_sync_failed",
			"1 after a sync of the Badger logs failed, when the store rejects writes until the authority restarts; 0 otherwise.",
			nil, nil),
		cacheHits: prometheus.NewDesc("sockauth_store_cache_hits_total",
			"Session reads answered by the cache of recently written sessions.", nil, nil),
		cacheMisses: prometheus.NewDesc("sockauth_store_cache_misses_total",
			"Session reads that the cache could not answer and Badger did.", nil, nil),
		cacheSessions: prometheus.NewDesc("sockauth_store_cache_sessions",
			"Sessions in the cache of recently written sessions.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (m *storeMetrics) Describe(ch chan<- *prometheus.Desc) {
	m.syncTime.Describe(ch)
	for _, desc := range []*prometheus.Desc{m.syncs, m.writes, m.failed, m.cacheHits, m.cacheMisses, m.cacheSessions} {
		ch <- desc
	}
}

// Collect implements prometheus.Collector.
func (m *storeMetrics) Collect(ch chan<- prometheus.Metric) {
	m.syncTime.Collect(ch)
	stats, cache := m.store.Stats(), m.store.CacheStats()
	failed := 0.0
	if m.store.Err() != nil {
		failed = 1
	}
	ch <- prometheus.MustNewConstMetric(m.syncs, prometheus.CounterValue, float64(stats.Syncs))
	ch <- prometheus.MustNewConstMetric(m.writes, prometheus.CounterValue, float64(stats.Writes))
	ch <- prometheus.MustNewConstMetric(m.failed, prometheus.GaugeValue, failed)
	ch <- prometheus.MustNewConstMetric(m.cacheHits, prometheus.CounterValue, float64(cache.Hits))
	ch <- prometheus.MustNewConstMetric(m.cacheMisses, prometheus.CounterValue, float64(cache.Misses))
	ch <- prometheus.MustNewConstMetric(m.cacheSessions, prometheus.GaugeValue, float64(cache.Sessions))
}

// observeSync records the duration of one sync round.
func (m *storeMetrics) observeSync(d time.Duration) { m.syncTime.Observe(d.Seconds()) }

// Collector returns the store's Prometheus metrics: syncs and their
// durations, writes, whether a sync failed, and the session cache's hits,
// misses and size.
func (s *Store) Collector() prometheus.Collector { return s.metrics }
