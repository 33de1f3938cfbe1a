package authority

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Operation names, used as the method label of metrics and the op attribute
// of logs. They match the RPC names of AuthorityService.
const (
	opIssueCode       = "IssueCode"
	opAuthenticate    = "Authenticate"
	opConfirmRotation = "ConfirmRotation"
	opVerify          = "Verify"
	opLogout          = "Logout"
)

// Rejection reasons of the reason label and the reason log attribute. They are
// the lower-case ErrorInfo reasons of the gRPC API.
const (
	reasonTokenInvalid   = "token_invalid"
	reasonTokenExpired   = "token_expired"
	reasonTokenReused    = "token_reused"
	reasonSessionRevoked = "session_revoked"
	reasonSessionExpired = "session_expired"
	reasonInternal       = "internal"
)

// Metrics are the Prometheus collectors of a Service. One Metrics may serve
// several Services, and every method is safe for concurrent use. A nil
// *Metrics records nothing.
type Metrics struct {
	codesIssued        prometheus.Counter
	tokensRotated      *prometheus.CounterVec
	tokensRedelivered  prometheus.Counter
	rotationsConfirmed prometheus.Counter
	tokensRejected     *prometheus.CounterVec
	reuseDetected      prometheus.Counter
	sessionsRevoked    *prometheus.CounterVec
}

// NewMetrics creates the collectors of a Service and registers them with reg.
// It returns an error when a collector of the same name is already registered.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		codesIssued: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sockauth_codes_issued_total",
			Help: "Login codes issued by IssueCode; each starts a session.",
		}),
		tokensRotated: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sockauth_tokens_rotated_total",
			Help: "Session tokens minted by Authenticate, by the type of the presented token: code (a login) or session (a reconnect or refresh).",
		}, []string{"presented"}),
		tokensRedelivered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sockauth_tokens_redelivered_total",
			Help: "Authenticate calls that presented an unconfirmed predecessor inside the rotation leeway and got the current token again.",
		}),
		rotationsConfirmed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sockauth_rotations_confirmed_total",
			Help: "ConfirmRotation calls that killed a predecessor token.",
		}),
		tokensRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sockauth_tokens_rejected_total",
			Help: "Tokens rejected, by RPC and reason: token_invalid, token_expired, token_reused, session_revoked or session_expired.",
		}, []string{"method", "reason"}),
		reuseDetected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sockauth_token_reuse_detected_total",
			Help: "Replaced tokens presented again; each revoked its session. Equal to the token_reused rejections, kept as its own series for alerts.",
		}),
		sessionsRevoked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sockauth_sessions_revoked_total",
			Help: "Sessions revoked by this process, by reason: logout, admin or reused.",
		}, []string{"reason"}),
	}

	collectors := []prometheus.Collector{
		m.codesIssued, m.tokensRotated, m.tokensRedelivered, m.rotationsConfirmed,
		m.tokensRejected, m.reuseDetected, m.sessionsRevoked,
	}
	for _, c := range collectors {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}

	// Create the series of every known label value, so that rate() and alerts
	// see a zero before the first event.
	for _, presented := range []TokenType{TypeCode, TypeSession} {
		m.tokensRotated.WithLabelValues(string(presented))
	}
	for _, method := range []string{opAuthenticate, opConfirmRotation, opVerify, opLogout} {
		for _, reason := range []string{reasonTokenInvalid, reasonTokenExpired, reasonTokenReused, reasonSessionRevoked, reasonSessionExpired} {
			m.tokensRejected.WithLabelValues(method, reason)
		}
	}
	for _, reason := range []string{RevokedLogout, RevokedAdmin, RevokedReused} {
		m.sessionsRevoked.WithLabelValues(reason)
	}
	return m, nil
}

func (m *Metrics) codeIssued() {
	if m != nil {
		m.codesIssued.Inc()
	}
}

func (m *Metrics) tokenRotated(presented TokenType) {
	if m != nil {
		m.tokensRotated.WithLabelValues(string(presented)).Inc()
	}
}

func (m *Metrics) tokenRedelivered() {
	if m != nil {
		m.tokensRedelivered.Inc()
	}
}

func (m *Metrics) rotationConfirmed() {
	if m != nil {
		m.rotationsConfirmed.Inc()
	}
}

func (m *Metrics) tokenRejected(method, reason string) {
	if m == nil {
		return
	}
	m.tokensRejected.WithLabelValues(method, reason).Inc()
	if reason == reasonTokenReused {
		m.reuseDetected.Inc()
	}
}

func (m *Metrics) sessionRevoked(reason string) {
	if m != nil {
		m.sessionsRevoked.WithLabelValues(reason).Inc()
	}
}

// rejectionReason returns the reason label of an error returned by a Service
// method, or reasonInternal for a failure that is not the token's fault, such
// as a storage error.
func rejectionReason(err error) string {
	switch {
	case errors.Is(err, ErrTokenExpired):
		return reasonTokenExpired
	case errors.Is(err, ErrTokenReused):
		return reasonTokenReused
	case errors.Is(err, ErrSessionRevoked):
		return reasonSessionRevoked
	case errors.Is(err, ErrSessionExpired):
		return reasonSessionExpired
	case errors.Is(err, ErrInvalidToken):
		return reasonTokenInvalid
	default:
		return reasonInternal
	}
}

// tokenOutcome is the result of one token call, for its log line and metrics.
type tokenOutcome struct {
	op    string
	start time.Time
	// presented holds the claims of the presented token once it decoded; an
	// expired token still has its claims.
	presented Claims
	// successor is the token returned by Authenticate.
	successor Claims
	// redelivered marks an Authenticate that handed out the current token
	// again inside the rotation leeway.
	redelivered bool
}

// record logs the outcome of a token call on one line and counts it. Every
// Authenticate outcome is logged at info; successes of the other calls at
// debug, because adapters call Verify and ConfirmRotation for every socket.
// Failures that are not the token's fault are logged where they are mapped
// to an RPC status, so they are only counted here.
func (s *Service) record(ctx context.Context, o *tokenOutcome, err error) {
	if err != nil {
		reason := rejectionReason(err)
		if reason == reasonInternal {
			return
		}
		s.metrics.tokenRejected(o.op, reason)
		attrs := append(o.attrs(), slog.String("outcome", "rejected"), slog.String("reason", reason), slog.String("error", err.Error()))
		s.log.LogAttrs(ctx, slog.LevelInfo, "token rejected", attrs...)
		return
	}

	level := slog.LevelDebug
	outcome := "accepted"
	switch {
	case o.op == opAuthenticate && o.redelivered:
		s.metrics.tokenRedelivered()
		level = slog.LevelInfo
		outcome = "redelivered"
	case o.op == opAuthenticate:
		s.metrics.tokenRotated(o.presented.Type)
		level = slog.LevelInfo
		outcome = "rotated"
	}

	// Verify and ConfirmRotation succeed for every socket, so their debug
	// lines are not even built unless debug logging is on.
	if !s.log.Enabled(ctx, level) {
		return
	}
	attrs := append(o.attrs(), slog.String("outcome", outcome))
	if o.successor.TokenID != "" {
		attrs = append(attrs, slog.String("successor_jti", o.successor.TokenID), slog.Uint64("gen", o.successor.Generation))
	}
	s.log.LogAttrs(ctx, level, "token accepted", attrs...)
}

// attrs returns the log attributes that every outcome line carries.
func (o *tokenOutcome) attrs() []slog.Attr {
	return []slog.Attr{
		slog.String("op", o.op),
		slog.String("sub", o.presented.Subject),
		slog.String("sid", o.presented.SessionID),
		slog.String("jti", o.presented.TokenID),
		slog.String("typ", string(o.presented.Type)),
		slog.Float64("latency_ms", float64(time.Since(o.start).Microseconds())/1000),
	}
}

// SessionCounter is a Store that can count its session records cheaply. The
// Badger store implements it; the Redis store does not, because counting
// there means a scan of the whole keyspace.
type SessionCounter interface {
	// CountSessions returns the number of stored session records, revoked
	// ones included.
	CountSessions(ctx context.Context) (int, error)
}

// storeCountTimeout bounds one count of the store for sockauth_sessions_stored.
const storeCountTimeout = 5 * time.Second

// StoreCountInterval is the shortest time between two counts of the store
// for sockauth_sessions_stored. A scrape sooner after the last count reports
// that count again. With a million sessions in the Badger store, a scrape
// that counted took 0.7 to 0.9 s on a 2-core machine.
const StoreCountInterval = time.Minute

// StoreWithMetrics is a Store that keeps Prometheus metrics of its own. The
// Badger store implements it.
type StoreWithMetrics interface {
	// Collector returns the store's metrics.
	Collector() prometheus.Collector
}

// RegisterStoreMetrics registers the store's own metrics with reg when store
// implements StoreWithMetrics, and the gauge sockauth_sessions_stored when it
// implements SessionCounter. It reports whether it registered the gauge. A
// scrape counts the store when the last count is older than
// StoreCountInterval, and reports the last count otherwise. A failed count is
// logged and leaves the gauge out of that scrape.
func RegisterStoreMetrics(reg prometheus.Registerer, store Store, logger *slog.Logger) (bool, error) {
	if withMetrics, ok := store.(StoreWithMetrics); ok {
		if err := reg.Register(withMetrics.Collector()); err != nil {
			return false, err
		}
	}
	counter, ok := store.(SessionCounter)
	if !ok {
		return false, nil
	}
	if logger == nil {
		logger = slog.Default()
	}
	collector := &storeCollector{
		counter: counter,
		log:     logger,
		now:     time.Now,
		desc: prometheus.NewDesc("sockauth_sessions_stored",
			"Session records in the store, counted at most once a minute: sessions whose newest token expired less than a minute ago, revoked ones included.",
			nil, nil),
	}
	if err := reg.Register(collector); err != nil {
		return false, err
	}
	return true, nil
}

// storeCollector is a prometheus.Collector that counts the store's sessions.
type storeCollector struct {
	counter SessionCounter
	log     *slog.Logger
	desc    *prometheus.Desc
	now     func() time.Time

	// mu guards counted, count and pending.
	mu sync.Mutex
	// counted is when the last successful count started, zero before the
	// first, and count is its result.
	counted time.Time
	count   int
	// pending is the count in progress, nil when none is. A scrape that
	// arrives during it waits for its result, failed or not, rather than
	// counting again after it, so that a hanging store delays each scrape
	// by one count.
	pending *pendingCount
}

// pendingCount is one count of the store, shared by the scrapes that wait
// for it.
type pendingCount struct {
	// done is closed once count and err are set.
	done  chan struct{}
	count int
	err   error
}

// Describe implements prometheus.Collector.
func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector.
func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	count, err := c.sessions()
	if err != nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(count))
}

// sessions returns the last count while it is younger than
// StoreCountInterval. Otherwise it waits for the count in progress, or
// counts the store when none is in progress and logs a failed count.
func (c *storeCollector) sessions() (int, error) {
	c.mu.Lock()
	start := c.now()
	if !c.counted.IsZero() && start.Sub(c.counted) < StoreCountInterval {
		count := c.count
		c.mu.Unlock()
		return count, nil
	}
	if pending := c.pending; pending != nil {
		c.mu.Unlock()
		<-pending.done
		return pending.count, pending.err
	}
	pending := &pendingCount{done: make(chan struct{})}
	c.pending = pending
	c.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), storeCountTimeout)
	pending.count, pending.err = c.counter.CountSessions(ctx)
	cancel()
	if pending.err != nil {
		c.log.Warn("counting stored sessions for metrics failed", "error", pending.err)
	}

	c.mu.Lock()
	c.pending = nil
	if pending.err == nil {
		c.counted, c.count = start, pending.count
	}
	c.mu.Unlock()
	close(pending.done)
	return pending.count, pending.err
}
