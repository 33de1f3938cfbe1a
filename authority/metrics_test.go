package authority_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sockauth/sockauth/authority"
	"github.com/sockauth/sockauth/authority/badgerstore"
)

// lockedBuffer is a bytes.Buffer safe for concurrent writes, as a log sink.
type lockedBuffer struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// records returns the JSON log records written so far.
func (b *lockedBuffer) records(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()

	var records []map[string]any
	scanner := bufio.NewScanner(bytes.NewReader(b.buf.Bytes()))
	for scanner.Scan() {
		var record map[string]any
		if err := json.Unmarshal(scanner.Bytes(), &record); err != nil {
			t.Fatalf("log line is not JSON: %v: %s", err, scanner.Text())
		}
		records = append(records, record)
	}
	return records
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type observedFixture struct {
	service  *authority.Service
	registry *prometheus.Registry
	logs     *lockedBuffer
	clock    *fakeClock
}

// newObservedFixture returns a Service with metrics in a fresh registry and
// JSON logs at debug level in a buffer.
func newObservedFixture(t *testing.T) *observedFixture {
	t.Helper()

	store, err := badgerstore.Open("", badgerstore.Options{InMemory: true, Logger: discardLogger()})
	if err != nil {
		t.Fatalf("open in-memory store: %v", err)
	}
	t.Cleanup(func() { store.Close() })
	codec, err := authority.NewPasetoV2(map[string][]byte{"k1": make([]byte, authority.KeySize)}, "k1")
	if err != nil {
		t.Fatal(err)
	}

	registry := prometheus.NewRegistry()
	metrics, err := authority.NewMetrics(registry)
	if err != nil {
		t.Fatalf("NewMetrics: %v", err)
	}
	logs := &lockedBuffer{}
	clock := &fakeClock{now: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)}
	service, err := authority.NewService(codec, store, authority.Config{
		Now:     clock.Now,
		Logger:  slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Metrics: metrics,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &observedFixture{service: service, registry: registry, logs: logs, clock: clock}
}

func TestMetricsCountTokenOutcomes(t *testing.T) {
	f := newObservedFixture(t)
	ctx := context.Background()

	code, err := f.service.IssueCode(ctx, "alice", nil)
	if err != nil {
		t.Fatalf("IssueCode: %v", err)
	}
	first, err := f.service.Authenticate(ctx, code.Token)
	if err != nil {
		t.Fatalf("Authenticate(code): %v", err)
	}
	if _, err := f.service.Authenticate(ctx, code.Token); err != nil {
		t.Fatalf("Authenticate(code) inside the leeway: %v", err)
	}
	if confirmed, err := f.service.ConfirmRotation(ctx, first.Token); err != nil || !confirmed {
		t.Fatalf("ConfirmRotation = %v, %v; expected true, nil", confirmed, err)
	}
	second, err := f.service.Authenticate(ctx, first.Token)
	if err != nil {
		t.Fatalf("Authenticate(first): %v", err)
	}
	if confirmed, err := f.service.ConfirmRotation(ctx, second.Token); err != nil || !confirmed {
		t.Fatalf("ConfirmRotation = %v, %v; expected true, nil", confirmed, err)
	}
	if _, err := f.service.Authenticate(ctx, first.Token); !errors.Is(err, authority.ErrTokenReused) {
		t.Fatalf("Authenticate(first) again = %v, expected ErrTokenReused", err)
	}
	if _, err := f.service.Verify(ctx, second.Token); !errors.Is(err, authority.ErrSessionRevoked) {
		t.Fatalf("Verify after reuse = %v, expected ErrSessionRevoked", err)
	}
	if _, err := f.service.Verify(ctx, "v2.local.garbage.e30"); !errors.Is(err, authority.ErrInvalidToken) {
		t.Fatalf("Verify(garbage) = %v, expected ErrInvalidToken", err)
	}

	other, err := f.service.IssueCode(ctx, "bob", nil)
	if err != nil {
		t.Fatalf("IssueCode: %v", err)
	}
	bob, err := f.service.Authenticate(ctx, other.Token)
	if err != nil {
		t.Fatalf("Authenticate(bob's code): %v", err)
	}
	if _, err := f.service.Logout(ctx, bob.Token); err != nil {
		t.Fatalf("Logout: %v", err)
	}
	third, err := f.service.IssueCode(ctx, "carol", nil)
	if err != nil {
		t.Fatalf("IssueCode: %v", err)
	}
	if _, err := f.service.RevokeSession(ctx, third.Claims.SessionID); err != nil {
		t.Fatalf("RevokeSession: %v", err)
	}
	expiring, err := f.service.IssueCode(ctx, "dave", nil)
	if err != nil {
		t.Fatalf("IssueCode: %v", err)
	}
	f.clock.Advance(time.Minute)
	if _, err := f.service.Authenticate(ctx, expiring.Token); !errors.Is(err, authority.ErrTokenExpired) {
		t.Fatalf("Authenticate(expired code) = %v, expected ErrTokenExpired", err)
	}

	expected := `
# HELP sockauth_codes_issued_total Login codes issued by IssueCode; each starts a session.
# TYPE sockauth_codes_issued_total counter
sockauth_codes_issued_total 4
# HELP sockauth_rotations_confirmed_total ConfirmRotation calls that killed a predecessor token.
# TYPE sockauth_rotations_confirmed_total counter
sockauth_rotations_confirmed_total 2
# HELP sockauth_token_reuse_detected_total Replaced tokens presented again; each revoked its session. Equal to the token_reused rejections, kept as its own series for alerts.
# TYPE sockauth_token_reuse_detected_total counter
sockauth_token_reuse_detected_total 1
# HELP sockauth_tokens_redelivered_total Authenticate calls that presented an unconfirmed predecessor inside the rotation leeway and got the current token again.
# TYPE sockauth_tokens_redelivered_total counter
sockauth_tokens_redelivered_total 1
# HELP sockauth_tokens_rotated_total Session tokens minted by Authenticate, by the type of the presented token: code (a login) or session (a reconnect or refresh).
# TYPE sockauth_tokens_rotated_total counter
sockauth_tokens_rotated_total{presented="code"} 2
sockauth_tokens_rotated_total{presented="session"} 1
# HELP sockauth_sessions_revoked_total Sessions revoked by this process, by reason: logout, admin or reused.
# TYPE sockauth_sessions_revoked_total counter
sockauth_sessions_revoked_total{reason="admin"} 1
sockauth_sessions_revoked_total{reason="logout"} 1
sockauth_sessions_revoked_total{reason="reused"} 1
`
	names := []string{
		"sockauth_codes_issued_total", "sockauth_rotations_confirmed_total", "sockauth_token_reuse_detected_total",
		"sockauth_tokens_redelivered_total", "sockauth_tokens_rotated_total", "sockauth_sessions_revoked_total",
	}
	if err := testutil.GatherAndCompare(f.registry, strings.NewReader(expected), names...); err != nil {
		t.Error(err)
	}

	rejected := map[[2]string]float64{
		{"Authenticate", "token_reused"}:  1,
		{"Authenticate", "token_expired"}: 1,
		{"Verify", "session_revoked"}:     1,
		{"Verify", "token_invalid"}:       1,
		{"Logout", "token_invalid"}:       0,
	}
	families, err := f.registry.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	got := map[[2]string]float64{}
	for _, family := range families {
		if family.GetName() != "sockauth_tokens_rejected_total" {
			continue
		}
		for _, metric := range family.GetMetric() {
			labels := map[string]string{}
			for _, pair := range metric.GetLabel() {
				labels[pair.GetName()] = pair.GetValue()
			}
			got[[2]string{labels["method"], labels["reason"]}] = metric.GetCounter().GetValue()
		}
	}
	for key, want := range rejected {
		value, ok := got[key]
		if !ok {
			t.Errorf("sockauth_tokens_rejected_total{method=%q,reason=%q} is missing", key[0], key[1])
			continue
		}
		if value != want {
			t.Errorf("sockauth_tokens_rejected_total{method=%q,reason=%q} = %v, expected %v", key[0], key[1], value, want)
		}
	}
}

func TestLogOneLinePerAuthenticateOutcome(t *testing.T) {
	f := newObservedFixture(t)
	ctx := context.Background()

	code, err := f.service.IssueCode(ctx, "alice", nil)
	if err != nil {
		t.Fatalf("IssueCode: %v", err)
	}
	first, err := f.service.Authenticate(ctx, code.Token)
	if err != nil {
		t.Fatalf("Authenticate(code): %v", err)
	}
	if _, err := f.service.Authenticate(ctx, code.Token); err != nil {
		t.Fatalf("Authenticate(code) inside the leeway: %v", err)
	}
	f.clock.Advance(time.Minute)
	if _, err := f.service.Authenticate(ctx, code.Token); !errors.Is(err, authority.ErrTokenExpired) {
		t.Fatalf("Authenticate(expired code) = %v, expected ErrTokenExpired", err)
	}
	if _, err := f.service.Authenticate(ctx, "v2.local.not-a-token.e30"); !errors.Is(err, authority.ErrInvalidToken) {
		t.Fatalf("Authenticate(garbage) = %v, expected ErrInvalidToken", err)
	}

	type line struct{ level, message, outcome, reason, jti, successor string }
	var got []line
	for _, record := range f.logs.records(t) {
		if record["op"] != "Authenticate" {
			continue
		}
		if _, ok := record["latency_ms"].(float64); !ok {
			t.Errorf("log line has no numeric latency_ms: %v", record)
		}
		if record["sub"] == nil || record["sid"] == nil {
			t.Errorf("log line lacks sub or sid: %v", record)
		}
		str := func(key string) string { s, _ := record[key].(string); return s }
		got = append(got, line{str("level"), str("msg"), str("outcome"), str("reason"), str("jti"), str("successor_jti")})
	}

	expected := []line{
		{"INFO", "token accepted", "rotated", "", code.Claims.TokenID, first.Claims.TokenID},
		{"INFO", "token accepted", "redelivered", "", code.Claims.TokenID, first.Claims.TokenID},
		{"INFO", "token rejected", "rejected", "token_expired", code.Claims.TokenID, ""},
		{"INFO", "token rejected", "rejected", "token_invalid", "", ""},
	}
	if len(got) != len(expected) {
		t.Fatalf("%d Authenticate log lines, expected %d:\n%s", len(got), len(expected), f.logs)
	}
	for i := range expected {
		if got[i] != expected[i] {
			t.Errorf("line %d = %+v, expected %+v", i, got[i], expected[i])
		}
	}

	for _, token := range []string{code.Token, first.Token} {
		if strings.Contains(f.logs.String(), token) {
			t.Fatal("the log contains a token string")
		}
	}
}

func TestNewMetricsRejectsDuplicateRegistration(t *testing.T) {
	registry := prometheus.NewRegistry()
	if _, err := authority.NewMetrics(registry); err != nil {
		t.Fatalf("first NewMetrics: %v", err)
	}
	if _, err := authority.NewMetrics(registry); err == nil {
		t.Fatal("second NewMetrics on one registry succeeded, expected a registration error")
	}
}

func TestSessionsStoredGauge(t *testing.T) {
	store, err := badgerstore.Open("", badgerstore.Options{InMemory: true, Logger: discardLogger()})
	if err != nil {
		t.Fatalf("open in-memory store: %v", err)
	}
	t.Cleanup(func() { store.Close() })
	codec, err := authority.NewPasetoV2(map[string][]byte{"k1": make([]byte, authority.KeySize)}, "k1")
	if err != nil {
		t.Fatal(err)
	}
	service, err := authority.NewService(codec, store, authority.Config{Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}

	registry := prometheus.NewRegistry()
	registered, err := authority.RegisterStoreMetrics(registry, store, discardLogger())
	if err != nil || !registered {
		t.Fatalf("RegisterStoreMetrics = %v, %v; expected true, nil for the Badger store", registered, err)
	}

	ctx := context.Background()
	for _, subject := range []string{"alice", "bob", "carol"} {
		if _, err := service.IssueCode(ctx, subject, nil); err != nil {
			t.Fatalf("IssueCode(%s): %v", subject, err)
		}
	}
	expected := `
# HELP sockauth_sessions_stored Session records in the store, counted at most once a minute: sessions whose newest token expired less than a minute ago, revoked ones included.
# TYPE sockauth_sessions_stored gauge
sockauth_sessions_stored 3
`
	if err := testutil.GatherAndCompare(registry, strings.NewReader(expected), "sockauth_sessions_stored"); err != nil {
		t.Error(err)
	}
}

// countingCounter is a SessionCounter that returns the number of counts so
// far, or err when it is set. Each count takes delay.
type countingCounter struct {
	delay time.Duration

	mu    sync.Mutex
	calls int
	err   error
}

func (c *countingCounter) CountSessions(context.Context) (int, error) {
	time.Sleep(c.delay)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	if c.err != nil {
		return 0, c.err
	}
	return c.calls, nil
}

func (c *countingCounter) setErr(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.err = err
}

func TestSessionsStoredCountsOncePerInterval(t *testing.T) {
	counter := &countingCounter{}
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	registry := prometheus.NewRegistry()
	registry.MustRegister(authority.NewStoreCollectorWithClock(counter, discardLogger(), func() time.Time { return now }))
	expect := func(value string) {
		t.Helper()
		expected := "# HELP sockauth_sessions_stored Session records in the store.\n# TYPE sockauth_sessions_stored gauge\n" + value
		if err := testutil.GatherAndCompare(registry, strings.NewReader(expected), "sockauth_sessions_stored"); err != nil {
			t.Error(err)
		}
	}

	expect("sockauth_sessions_stored 1\n")
	now = now.Add(authority.StoreCountInterval - time.Second)
	expect("sockauth_sessions_stored 1\n")
	now = now.Add(time.Second)
	expect("sockauth_sessions_stored 2\n")

	// A failed count leaves the gauge out and is retried at the next scrape.
	counter.setErr(errors.New("disk gone"))
	now = now.Add(authority.StoreCountInterval)
	expect("")
	counter.setErr(nil)
	expect("sockauth_sessions_stored 4\n")
}

func TestSessionsStoredSharesConcurrentCount(t *testing.T) {
	counter := &countingCounter{delay: 20 * time.Millisecond}
	registry := prometheus.NewRegistry()
	registry.MustRegister(authority.NewStoreCollectorWithClock(counter, discardLogger(), time.Now))

	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := registry.Gather(); err != nil {
				t.Errorf("Gather: %v", err)
			}
		})
	}
	wg.Wait()
	if counter.calls != 1 {
		t.Errorf("8 concurrent scrapes counted the store %d times, expected once", counter.calls)
	}
}

func TestSessionsStoredSharesFailedCount(t *testing.T) {
	counter := &countingCounter{delay: 20 * time.Millisecond}
	counter.setErr(errors.New("disk gone"))
	registry := prometheus.NewRegistry()
	registry.MustRegister(authority.NewStoreCollectorWithClock(counter, discardLogger(), time.Now))

	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			families, err := registry.Gather()
			if err != nil {
				t.Errorf("Gather: %v", err)
			}
			if len(families) != 0 {
				t.Errorf("a scrape during a failed count gathered %d families, expected none", len(families))
			}
		})
	}
	wg.Wait()
	// Scrapes that wait for a failed count share its failure. Counting in
	// turn instead would hold the last of 8 scrapes of a hanging store for 8
	// count timeouts.
	if counter.calls != 1 {
		t.Errorf("8 concurrent scrapes during a failed count counted the store %d times, expected once", counter.calls)
	}
}
