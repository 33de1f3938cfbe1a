package adapter

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// addressedSocket is a fakeSocket whose client has an address.
type addressedSocket struct {
	*fakeSocket
	address string
}

func (s addressedSocket) ClientAddress() string { return s.address }

// connectFrom connects a fake socket of a client at address to f.
func connectFrom(t *testing.T, f *Flow, id, address string) *fakeSocket {
	t.Helper()
	s := addressedSocket{fakeSocket: newFakeSocket(id), address: address}
	if err := f.Connect(s); err != nil {
		t.Fatalf("Connect(%s): %v", id, err)
	}
	return s.fakeSocket
}

// slowRefill is a rate so slow that no token comes back during a test.
const slowRefill = 0.001

func TestSocketAuthenticateLimit(t *testing.T) {
	authority := &fakeAuthority{}
	f := newTestFlow(t, authority, Config{SocketAuthenticateLimit: RateLimit{PerSecond: slowRefill, Burst: 2}}, Hooks{})
	s := connect(t, f, "s1")

	f.Authenticate(context.Background(), "s1", "code-1")
	f.Authenticate(context.Background(), "s1", "session-1")
	f.Authenticate(context.Background(), "s1", "session-2")

	if e := s.waitFor(t, 2, wait); e.event != EventAuthenticated {
		t.Fatalf("second event %q, expected authenticated for the refresh within the burst", e.event)
	}
	if got := unauthorizedCode(t, s.waitFor(t, 3, wait)); got != CodeRateLimited {
		t.Errorf("third authenticate: code %q, expected %q", got, CodeRateLimited)
	}
	if calls := authority.callsTo("Authenticate"); len(calls) != 2 {
		t.Errorf("Authenticate called %d times, expected 2: the limited event must not reach the authority", len(calls))
	}
}

func TestAddressAuthenticateLimit(t *testing.T) {
	authority := &fakeAuthority{}
	f := newTestFlow(t, authority, Config{AddressAuthenticateLimit: RateLimit{PerSecond: slowRefill, Burst: 3}}, Hooks{})

	var sameAddress []*fakeSocket
	for i := range 4 {
		id := fmt.Sprintf("same-%d", i)
		sameAddress = append(sameAddress, connectFrom(t, f, id, "192.0.2.1"))
		f.Authenticate(context.Background(), id, "code-1")
	}
	other := connectFrom(t, f, "other", "192.0.2.2")
	f.Authenticate(context.Background(), "other", "code-1")
	unknown := connect(t, f, "unknown")
	f.Authenticate(context.Background(), "unknown", "code-1")
	var loopback []*fakeSocket
	for i := range 4 {
		id := fmt.Sprintf("loopback-%d", i)
		loopback = append(loopback, connectFrom(t, f, id, "::1"))
		f.Authenticate(context.Background(), id, "code-1")
	}

	for _, s := range sameAddress[:3] {
		if e := s.waitFor(t, 1, wait); e.event != EventAuthenticated {
			t.Errorf("socket %s within the burst got %q, expected authenticated", s.id, e.event)
		}
	}
	if got := unauthorizedCode(t, sameAddress[3].waitFor(t, 1, wait)); got != CodeRateLimited {
		t.Errorf("fourth socket of one address: code %q, expected %q", got, CodeRateLimited)
	}
	if e := other.waitFor(t, 1, wait); e.event != EventAuthenticated {
		t.Errorf("socket of another address got %q, expected authenticated", e.event)
	}
	if e := unknown.waitFor(t, 1, wait); e.event != EventAuthenticated {
		t.Errorf("socket without an address got %q, expected authenticated", e.event)
	}
	for _, s := range loopback {
		if e := s.waitFor(t, 1, wait); e.event != EventAuthenticated {
			t.Errorf("socket %s of a loopback address got %q, expected authenticated beyond the burst", s.id, e.event)
		}
	}
}

func TestAuthenticateLimitsOff(t *testing.T) {
	authority := &fakeAuthority{}
	off := RateLimit{PerSecond: -1}
	f := newTestFlow(t, authority, Config{SocketAuthenticateLimit: off, AddressAuthenticateLimit: off}, Hooks{})
	s := connectFrom(t, f, "s1", "192.0.2.1")

	const events = 20
	for range events {
		f.Authenticate(context.Background(), "s1", "token")
	}

	for i, e := range s.sent() {
		if e.event != EventAuthenticated {
			t.Fatalf("event %d is %q, expected authenticated with the limits off", i, e.event)
		}
	}
	if n := len(s.sent()); n != events {
		t.Errorf("got %d events, expected %d", n, events)
	}
}

func TestHandshakeAddressLimit(t *testing.T) {
	authority := &fakeAuthority{}
	f := newTestFlow(t, authority, Config{AddressAuthenticateLimit: RateLimit{PerSecond: slowRefill, Burst: 1}}, Hooks{})
	ctx := WithClientAddress(context.Background(), "192.0.2.1")

	if _, err := f.AuthenticateHandshake(ctx, "s1", "code-1"); err != nil {
		t.Fatalf("first handshake: %v", err)
	}
	_, err := f.AuthenticateHandshake(ctx, "s2", "code-2")

	var rejection *HandshakeError
	if !errors.As(err, &rejection) || rejection.Code != CodeRateLimited {
		t.Errorf("second handshake of one address = %v, expected a HandshakeError with %q", err, CodeRateLimited)
	}
	if _, err := f.AuthenticateHandshake(WithClientAddress(context.Background(), "192.0.2.2"), "s3", "code-3"); err != nil {
		t.Errorf("handshake of another address: %v", err)
	}
}

func TestMaxUnauthenticatedSockets(t *testing.T) {
	authority := &fakeAuthority{}
	f := newTestFlow(t, authority, Config{MaxUnauthenticatedSockets: 2}, Hooks{})
	connect(t, f, "waiting-1")
	connect(t, f, "waiting-2")

	over := connect(t, f, "over")

	if got := unauthorizedCode(t, over.waitFor(t, 1, wait)); got != CodeTooManyConnections {
		t.Fatalf("socket over the cap: code %q, expected %q", got, CodeTooManyConnections)
	}
	if _, known := f.Disconnected("over"); !known {
		t.Error("the rejected socket is unknown to Disconnected, expected it registered until its binding reports the disconnect")
	}

	// A socket that authenticates, or one that disconnects, frees a place.
	f.Authenticate(context.Background(), "waiting-1", "code-1")
	admitted := connect(t, f, "admitted-after-authenticate")
	f.Disconnected("waiting-2")
	admittedToo := connect(t, f, "admitted-after-disconnect")
	admission, err := f.AuthenticateHandshake(context.Background(), "handshake", "code-2")
	if err != nil {
		t.Fatalf("AuthenticateHandshake: %v", err)
	}
	handshake := newFakeSocket("handshake")
	if err := f.ConnectAuthenticated(handshake, admission); err != nil {
		t.Fatalf("ConnectAuthenticated: %v", err)
	}

	time.Sleep(50 * time.Millisecond)
	for _, s := range []*fakeSocket{admitted, admittedToo} {
		if events := s.sent(); len(events) != 0 {
			t.Errorf("socket %s got %+v, expected to wait for authentication", s.id, events)
		}
	}
	if e := handshake.waitFor(t, 1, wait); e.event != EventAuthenticated {
		t.Errorf("socket admitted after a handshake got %q, expected authenticated although the cap is reached", e.event)
	}
	if waiting, authenticated := f.socketCounts(); waiting != 2 || authenticated != 2 {
		t.Errorf("socket counts: %d waiting and %d authenticated, expected 2 and 2", waiting, authenticated)
	}
}

func TestMaxPayloadBytes(t *testing.T) {
	huge := `{"token":"x","padding":"` + strings.Repeat("a", 300) + `"}`
	tests := []struct {
		name    string
		event   string
		payload any
	}{
		{name: "authenticate raw JSON", event: EventAuthenticate, payload: json.RawMessage(huge)},
		{name: "authenticate bytes", event: EventAuthenticate, payload: []byte(huge)},
		{name: "authenticate string", event: EventAuthenticate, payload: strings.Repeat("t", 300)},
		{name: "logout raw JSON", event: EventLogout, payload: json.RawMessage(huge)},
		{name: "authenticate decoded map", event: EventAuthenticate, payload: map[string]any{"token": "x", "padding": strings.Repeat("a", 300)}},
		{name: "authenticate decoded long token", event: EventAuthenticate, payload: map[string]any{"token": strings.Repeat("t", 300)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			authority := &fakeAuthority{}
			f := newTestFlow(t, authority, Config{MaxTokenBytes: 200, MaxPayloadBytes: 256}, Hooks{})
			s := connect(t, f, "s1")

			if tt.event == EventAuthenticate {
				f.Authenticate(context.Background(), "s1", tt.payload)
			} else {
				f.Logout(context.Background(), "s1", tt.payload)
			}

			if got := unauthorizedCode(t, s.waitFor(t, 1, wait)); got != CodePayloadTooLarge {
				t.Errorf("code %q, expected %q", got, CodePayloadTooLarge)
			}
			if n := authority.callCount(); n != 0 {
				t.Errorf("authority called %d times, expected none", n)
			}
		})
	}
}

func TestPayloadAtLimitAccepted(t *testing.T) {
	authority := &fakeAuthority{}
	f := newTestFlow(t, authority, Config{MaxTokenBytes: 200, MaxPayloadBytes: 256}, Hooks{})
	s := connect(t, f, "s1")
	prefix, suffix := `{"token":"`, `"}`
	payload := json.RawMessage(prefix + strings.Repeat("t", 200) + `","x":"` + strings.Repeat("p", 256-len(prefix)-200-len(`","x":"`)-len(suffix)) + suffix)
	if len(payload) != 256 {
		t.Fatalf("test payload has %d bytes, expected 256", len(payload))
	}

	f.Authenticate(context.Background(), "s1", payload)

	if e := s.waitFor(t, 1, wait); e.event != EventAuthenticated {
		t.Errorf("payload of exactly MaxPayloadBytes got %q, expected authenticated", e.event)
	}
}

func TestAddressLimitersSweep(t *testing.T) {
	limiters := newAddressLimiters(RateLimit{PerSecond: 1, Burst: 2})
	start := limiters.lastSweep

	limiters.allow("192.0.2.1", start)
	limiters.allow("192.0.2.2", start.Add(addressSweepInterval-time.Second))
	limiters.allow("192.0.2.2", start.Add(addressSweepInterval-time.Second))
	// The sweep runs on this call: 192.0.2.1 has been full for a while, and
	// 192.0.2.2 has refilled only one of its two tokens.
	limiters.allow("192.0.2.3", start.Add(addressSweepInterval))

	limiters.mu.Lock()
	defer limiters.mu.Unlock()
	if _, ok := limiters.buckets["192.0.2.1"]; ok {
		t.Error("the full bucket of 192.0.2.1 survived the sweep")
	}
	if _, ok := limiters.buckets["192.0.2.2"]; !ok {
		t.Error("the bucket of 192.0.2.2, which is not full, was swept")
	}
	if _, ok := limiters.buckets["192.0.2.3"]; !ok {
		t.Error("the bucket of 192.0.2.3 is missing after its first event")
	}
}

// logBuffer collects log lines from several goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestRejectionLogNamesClientAddress(t *testing.T) {
	var logs logBuffer
	f := newTestFlow(t, &fakeAuthority{}, Config{
		AddressAuthenticateLimit: RateLimit{PerSecond: slowRefill, Burst: 1},
		Logger:                   slog.New(slog.NewTextHandler(&logs, nil)),
	}, Hooks{})

	first := connectFrom(t, f, "first", "192.0.2.1")
	f.Authenticate(context.Background(), "first", "code-1")
	first.waitFor(t, 1, wait)
	second := connectFrom(t, f, "second", "192.0.2.1")
	f.Authenticate(context.Background(), "second", "code-1")
	if got := unauthorizedCode(t, second.waitFor(t, 1, wait)); got != CodeRateLimited {
		t.Fatalf("second socket: code %q, expected %q", got, CodeRateLimited)
	}

	var line string
	for l := range strings.Lines(logs.String()) {
		if strings.Contains(l, `msg="socket unauthorized"`) {
			line = l
		}
	}
	if !strings.Contains(line, "reason=rate_limited") || !strings.Contains(line, "address=192.0.2.1") {
		t.Errorf("log line %q, expected reason=rate_limited and address=192.0.2.1", line)
	}
}
