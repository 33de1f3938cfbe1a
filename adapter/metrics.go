package adapter

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Outcomes of the outcome label of the authentication duration.
const (
	outcomeAuthenticated = "authenticated"
	outcomeRejected      = "rejected"
)

// metrics are the Prometheus collectors of one Flow. A nil *metrics records
// nothing, and every method is safe for concurrent use.
//
// The Flow exports:
//
//	sockauth_adapter_sockets_connected            gauge: sockets connected and not closed
//	sockauth_adapter_sockets_authenticated        gauge: sockets authenticated now
//	sockauth_adapter_authentication_duration_seconds{outcome}
//	                                              histogram: authenticate events that called the authority
//	sockauth_adapter_authentication_timeouts_total  counter
//	sockauth_adapter_rejections_total{code}       counter: unauthorized events sent, by code
type metrics struct {
	duration   *prometheus.HistogramVec
	timeouts   prometheus.Counter
	rejections *prometheus.CounterVec
}

// knownCodes are the codes whose rejection series exist from the start, so
// that rate() and alerts see a zero before the first rejection.
var knownCodes = []Code{
	CodeInvalidToken, CodeTokenExpired, CodeRevokedToken, CodeSessionExpired,
	CodeAuthenticationTimeout, CodeAuthorityUnavailable, CodeRateLimited,
	CodePayloadTooLarge, CodeTooManyConnections,
}

// newMetrics registers the Flow's collectors with reg, or returns nil when
// reg is nil. The gauges read f's socket counts when scraped.
func newMetrics(reg prometheus.Registerer, f *Flow) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}

	m := &metrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sockauth_adapter_authentication_duration_seconds",
			Help:    "Time from an authenticate event or handshake to its outcome, for those that called the authority, by outcome: authenticated or rejected.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"outcome"}),
		timeouts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sockauth_adapter_authentication_timeouts_total",
			Help: "Sockets disconnected because they did not authenticate within the auth timeout. Equal to the authentication_timeout rejections, kept as its own series for alerts.",
		}),
		rejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sockauth_adapter_rejections_total",
			Help: "Unauthorized events sent and rejected handshakes, by code.",
		}, []string{"code"}),
	}
	connected := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sockauth_adapter_sockets_connected",
		Help: "Sockets connected to the adapter that it has not closed, authenticated or not.",
	}, func() float64 {
		waiting, authenticated := f.socketCounts()
		return float64(waiting + authenticated)
	})
	authenticated := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sockauth_adapter_sockets_authenticated",
		Help: "Sockets whose last authentication succeeded and whose token has not expired.",
	}, func() float64 {
		_, authenticated := f.socketCounts()
		return float64(authenticated)
	})

	collectors := []prometheus.Collector{m.duration, m.timeouts, m.rejections, connected, authenticated}
	for i, c := range collectors {
		if err := reg.Register(c); err != nil {
			for _, registered := range collectors[:i] {
				reg.Unregister(registered)
			}
			return nil, errors.Join(errors.New("adapter: register metrics"), err)
		}
	}

	for _, outcome := range []string{outcomeAuthenticated, outcomeRejected} {
		m.duration.WithLabelValues(outcome)
	}
	for _, code := range knownCodes {
		m.rejections.WithLabelValues(string(code))
	}
	return m, nil
}

// observeAuthentication records the duration of an authentication that
// started at start.
func (m *metrics) observeAuthentication(start time.Time, authenticated bool) {
	if m == nil {
		return
	}
	outcome := outcomeRejected
	if authenticated {
		outcome = outcomeAuthenticated
	}
	m.duration.WithLabelValues(outcome).Observe(time.Since(start).Seconds())
}

// rejected counts one unauthorized event or rejected handshake.
func (m *metrics) rejected(code Code) {
	if m == nil {
		return
	}
	m.rejections.WithLabelValues(string(code)).Inc()
	if code == CodeAuthenticationTimeout {
		m.timeouts.Inc()
	}
}
