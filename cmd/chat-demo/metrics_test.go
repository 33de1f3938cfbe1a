package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/sockauth/sockauth/adapter"
)

func TestMetricsEndpointServesAdapterMetrics(t *testing.T) {
	users, err := newUserStore(defaultUsers)
	if err != nil {
		t.Fatalf("newUserStore: %v", err)
	}
	cfg := config{Listen: "127.0.0.1:0", AuthTimeout: adapter.DefaultAuthTimeout, MetricsListen: "127.0.0.1:0"}
	a, err := newApp(context.Background(), cfg, users, "127.0.0.1:1", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("newApp: %v", err)
	}
	t.Cleanup(a.Close)
	if err := a.metrics.start(context.Background()); err != nil {
		t.Fatalf("starting the metrics endpoint: %v", err)
	}

	resp, err := http.Get("http://" + a.metrics.listener.Addr().String() + metricsPath)
	if err != nil {
		t.Fatalf("GET %s: %v", metricsPath, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the metrics: %v", err)
	}

	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s status %d, expected 200", metricsPath, resp.StatusCode)
	}
	for _, want := range []string{
		`sockauth_adapter_sockets_connected{protocol="eio3"} 0`,
		`sockauth_adapter_sockets_connected{protocol="eio4"} 0`,
		`sockauth_adapter_rejections_total{code="rate_limited",protocol="eio3"} 0`,
		`go_goroutines `,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestAppWithoutMetricsListen(t *testing.T) {
	users, err := newUserStore(defaultUsers)
	if err != nil {
		t.Fatalf("newUserStore: %v", err)
	}
	cfg := config{Listen: "127.0.0.1:0", AuthTimeout: adapter.DefaultAuthTimeout}
	a, err := newApp(context.Background(), cfg, users, "127.0.0.1:1", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("newApp: %v", err)
	}
	t.Cleanup(a.Close)

	if a.metrics != nil {
		t.Error("the app has a metrics endpoint without --metrics-listen")
	}
}
