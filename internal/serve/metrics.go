package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"

	"github.com/sockauth/sockauth/authority"
)

// MetricsPath is the URL path of the Prometheus metrics.
const MetricsPath = "/metrics"

// rpcLatencyBuckets are the upper bounds, in seconds, of the RPC latency
// histogram. Token calls take well under a millisecond with Badger on a local
// disk, so the buckets start lower than Prometheus's defaults.
var rpcLatencyBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}

// metricsServer is the Prometheus registry of an authority and the HTTP
// server that exposes it.
type metricsServer struct {
	registry *prometheus.Registry
	rpc      *grpcprom.ServerMetrics
	service  *authority.Metrics
	listener net.Listener
	server   *http.Server
	log      *slog.Logger
}

// checkMetricsListen rejects a metrics address that is not loopback unless
// cfg.Insecure is set: the metrics carry subjects' activity and no caller
// authentication protects them.
func checkMetricsListen(cfg Config) error {
	if cfg.MetricsListen == "" || IsLoopback(cfg.MetricsListen) || cfg.Insecure {
		return nil
	}
	return fmt.Errorf("will not serve metrics on %s: the metrics endpoint has no authentication, so only loopback "+
		"addresses are allowed; use 127.0.0.1:PORT, or pass --insecure", cfg.MetricsListen)
}

// newMetricsServer creates the registry with the Go runtime, process, RPC and
// token collectors. It does not listen yet.
func newMetricsServer(log *slog.Logger) (*metricsServer, error) {
	registry := prometheus.NewRegistry()
	registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)

	rpc := grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram(grpcprom.WithHistogramBuckets(rpcLatencyBuckets)))
	if err := registry.Register(rpc); err != nil {
		return nil, fmt.Errorf("register RPC metrics: %w", err)
	}
	service, err := authority.NewMetrics(registry)
	if err != nil {
		return nil, fmt.Errorf("register token metrics: %w", err)
	}
	return &metricsServer{registry: registry, rpc: rpc, service: service, log: log}, nil
}

// serverOptions returns the interceptors that count and time every RPC. They
// must come first in the chain, so that calls rejected by caller
// authentication are counted too.
func (m *metricsServer) serverOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(m.rpc.UnaryServerInterceptor()),
		grpc.ChainStreamInterceptor(m.rpc.StreamServerInterceptor()),
	}
}

// start registers the store gauge, creates the series of every RPC and starts
// serving MetricsPath on address.
func (m *metricsServer) start(ctx context.Context, address string, server *grpc.Server, store authority.Store) error {
	if _, err := authority.RegisterStoreMetrics(m.registry, store, m.log); err != nil {
		return fmt.Errorf("register store metrics: %w", err)
	}
	m.rpc.InitializeMetrics(server)

	var listenConfig net.ListenConfig
	listener, err := listenConfig.Listen(ctx, "tcp", address)
	if err != nil {
		return fmt.Errorf("listen for metrics on %s: %w", address, err)
	}
	mux := http.NewServeMux()
	mux.Handle(MetricsPath, promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(m.log.Handler(), slog.LevelError),
		ErrorHandling: promhttp.ContinueOnError,
		Timeout:       10 * time.Second,
	}))
	m.listener = listener
	m.server = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}

	go func() {
		if err := m.server.Serve(listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.log.Error("metrics server stopped", "address", listener.Addr().String(), "error", err)
		}
	}()
	m.log.Info("metrics listening", "address", listener.Addr().String(), "path", MetricsPath)
	return nil
}

// close stops the HTTP server, waiting up to shutdownGrace for scrapes in
// progress.
func (m *metricsServer) close() {
	if m == nil || m.server == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := m.server.Shutdown(ctx); err != nil {
		m.log.Warn("metrics server did not stop cleanly", "error", err)
	}
}

// serviceMetrics returns the token metrics, or nil when m is nil.
func (m *metricsServer) serviceMetrics() *authority.Metrics {
	if m == nil {
		return nil
	}
	return m.service
}
