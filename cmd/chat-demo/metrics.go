package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sockauth/sockauth/internal/serve"
)

// metricsPath is the URL path of the Prometheus metrics.
const metricsPath = "/metrics"

// metricsEndpoint is the Prometheus registry of the demo's adapters and the
// HTTP server that serves it on its own address.
type metricsEndpoint struct {
	registry *prometheus.Registry
	address  string
	logger   *slog.Logger
	// listener and server are set by start.
	listener net.Listener
	server   *http.Server
}

// newMetricsEndpoint returns a registry with the Go runtime and process
// collectors for address, or nil when address is empty. It does not listen
// yet.
func newMetricsEndpoint(address string, logger *slog.Logger) *metricsEndpoint {
	if address == "" {
		return nil
	}
	registry := prometheus.NewRegistry()
	registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return &metricsEndpoint{registry: registry, address: address, logger: logger}
}

// registerer returns the registry for the adapter of one socket.io protocol,
// whose metrics carry the label protocol, or nil when m is nil.
func (m *metricsEndpoint) registerer(protocol string) prometheus.Registerer {
	if m == nil {
		return nil
	}
	return prometheus.WrapRegistererWith(prometheus.Labels{"protocol": protocol}, m.registry)
}

// start listens on the endpoint's address and serves metricsPath in the
// background until close.
func (m *metricsEndpoint) start(ctx context.Context) error {
	if m == nil {
		return nil
	}
	var listenConfig net.ListenConfig
	listener, err := listenConfig.Listen(ctx, "tcp", m.address)
	if err != nil {
		return fmt.Errorf("listen for metrics on %s: %w", m.address, err)
	}
	if !serve.IsLoopback(m.address) {
		m.logger.Warn("the metrics endpoint has no authentication and is reachable beyond loopback", "address", m.address)
	}

	mux := http.NewServeMux()
	mux.Handle("GET "+metricsPath, promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(m.logger.Handler(), slog.LevelError),
		ErrorHandling: promhttp.ContinueOnError,
		Timeout:       10 * time.Second,
	}))
	m.listener = listener
	m.server = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := m.server.Serve(listener); !errors.Is(err, http.ErrServerClosed) {
			m.logger.Error("metrics server stopped", "address", listener.Addr().String(), "err", err)
		}
	}()
	m.logger.Info("metrics listening", "address", listener.Addr().String(), "path", metricsPath)
	return nil
}

// close stops the HTTP server, waiting up to shutdownTimeout for scrapes in
// progress.
func (m *metricsEndpoint) close() {
	if m == nil || m.server == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := m.server.Shutdown(ctx); err != nil {
		m.logger.Warn("metrics server did not stop cleanly", "err", err)
	}
}
