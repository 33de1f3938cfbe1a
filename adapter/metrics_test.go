package adapter

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"

	sockauthv1 "github.com/sockauth/sockauth/gen/sockauth/v1"
)

// histogramCounts returns the sample count of each outcome of the
// authentication duration histogram in registry.
func histogramCounts(t *testing.T, registry *prometheus.Registry) map[string]uint64 {
	t.Helper()
	families, err := registry.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	counts := make(map[string]uint64)
	for _, family := range families {
		if family.GetName() != "sockauth_adapter_authentication_duration_seconds" {
			continue
		}
		for _, metric := range family.GetMetric() {
			for _, label := range metric.GetLabel() {
				if label.GetName() == "outcome" {
					counts[label.GetValue()] = metric.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	return counts
}

func TestMetricsOfSocketsAndRejections(t *testing.T) {
	registry := prometheus.NewRegistry()
	authority := &fakeAuthority{}
	authority.authenticate = func(ctx context.Context, token string) (*sockauthv1.AuthenticateResponse, error) {
		if token == "forged" {
			return nil, authorityError(t, codes.Unauthenticated, "TOKEN_INVALID")
		}
		return sessionResponse(1, "sid-1", "alice", time.Now().Add(time.Hour)), nil
	}
	f := newTestFlow(t, authority, Config{Registerer: registry, AuthTimeout: 100 * time.Millisecond}, Hooks{})
	authenticated := connect(t, f, "authenticated")
	forged := connect(t, f, "forged")
	idle := connect(t, f, "idle")

	f.Authenticate(context.Background(), "authenticated", "code-1")
	f.Authenticate(context.Background(), "forged", "forged")
	authenticated.waitFor(t, 1, wait)
	forged.waitFor(t, 1, wait)

	// The rejected socket is closed, so only the authenticated and the idle
	// socket count as connected.
	connected := `
# HELP sockauth_adapter_sockets_connected Sockets connected to the adapter that it has not closed, authenticated or not.
# TYPE sockauth_adapter_sockets_connected gauge
sockauth_adapter_sockets_connected 2
# HELP sockauth_adapter_sockets_authenticated Sockets whose last authentication succeeded and whose token has not expired.
# TYPE sockauth_adapter_sockets_authenticated gauge
sockauth_adapter_sockets_authenticated 1
`
	if err := testutil.GatherAndCompare(registry, strings.NewReader(connected),
		"sockauth_adapter_sockets_connected", "sockauth_adapter_sockets_authenticated"); err != nil {
		t.Errorf("socket gauges before the timeout: %v", err)
	}

	idle.waitFor(t, 1, wait)
	f.Disconnected("forged")
	f.Disconnected("idle")

	after := `
# HELP sockauth_adapter_sockets_connected Sockets connected to the adapter that it has not closed, authenticated or not.
# TYPE sockauth_adapter_sockets_connected gauge
sockauth_adapter_sockets_connected 1
# HELP sockauth_adapter_authentication_timeouts_total Sockets disconnected because they did not authenticate within the auth timeout. Equal to the authentication_timeout rejections, kept as its own series for alerts.
# TYPE sockauth_adapter_authentication_timeouts_total counter
sockauth_adapter_authentication_timeouts_total 1
`
	if err := testutil.GatherAndCompare(registry, strings.NewReader(after),
		"sockauth_adapter_sockets_connected", "sockauth_adapter_authentication_timeouts_total"); err != nil {
		t.Errorf("after the timeout: %v", err)
	}

	rejections := map[Code]float64{CodeInvalidToken: 1, CodeAuthenticationTimeout: 1, CodeRevokedToken: 0, CodeRateLimited: 0}
	for code, want := range rejections {
		counter, err := f.metrics.rejections.GetMetricWithLabelValues(string(code))
		if err != nil {
			t.Fatalf("rejections{code=%q}: %v", code, err)
		}
		if got := testutil.ToFloat64(counter); got != want {
			t.Errorf("rejections{code=%q} = %v, expected %v", code, got, want)
		}
	}
	if got := testutil.CollectAndCount(f.metrics.rejections); got != len(knownCodes) {
		t.Errorf("rejections has %d series, expected one per known code (%d)", got, len(knownCodes))
	}

	counts := histogramCounts(t, registry)
	if counts[outcomeAuthenticated] != 1 || counts[outcomeRejected] != 1 {
		t.Errorf("authentication duration counts = %v, expected 1 authenticated and 1 rejected", counts)
	}
}

func TestMetricsCountRevocationRejections(t *testing.T) {
	registry := prometheus.NewRegistry()
	authority, _ := multiSessionAuthority(t)
	f, stream := newWatchingFlow(t, authority, Config{Registerer: registry})
	s := authenticated(t, f, "s1", "sid-1")

	stream.send("sid-1", sockauthv1.RevocationReason_REVOCATION_REASON_ADMIN)
	s.waitFor(t, 2, wait)

	counter, err := f.metrics.rejections.GetMetricWithLabelValues(string(CodeRevokedToken))
	if err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(counter); got != 1 {
		t.Errorf("rejections{code=revoked_token} = %v after a revocation event, expected 1", got)
	}
}

func TestMetricsOfSeveralFlows(t *testing.T) {
	registry := prometheus.NewRegistry()
	first := newTestFlow(t, &fakeAuthority{}, Config{Registerer: prometheus.WrapRegistererWith(prometheus.Labels{"server": "a"}, registry)}, Hooks{})
	second := newTestFlow(t, &fakeAuthority{}, Config{Registerer: prometheus.WrapRegistererWith(prometheus.Labels{"server": "b"}, registry)}, Hooks{})
	connect(t, first, "s1")
	connect(t, second, "s2")
	connect(t, second, "s3")

	want := `
# HELP sockauth_adapter_sockets_connected Sockets connected to the adapter that it has not closed, authenticated or not.
# TYPE sockauth_adapter_sockets_connected gauge
sockauth_adapter_sockets_connected{server="a"} 1
sockauth_adapter_sockets_connected{server="b"} 2
`
	if err := testutil.GatherAndCompare(registry, strings.NewReader(want), "sockauth_adapter_sockets_connected"); err != nil {
		t.Error(err)
	}

	_, err := NewFlow(Config{Authority: &fakeAuthority{}, DisableRevocationWatch: true, Registerer: prometheus.WrapRegistererWith(prometheus.Labels{"server": "a"}, registry)}, Hooks{})
	if err == nil {
		t.Error("NewFlow with the labels of a registered Flow succeeded, expected a registration error")
	}
}
