package adapter

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	sockauthv1 "github.com/sockauth/sockauth/gen/sockauth/v1"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const wait = 2 * time.Second

func TestAuthenticateEmitsAuthenticated(t *testing.T) {
	authority := &fakeAuthority{}
	var hookCalls []Identity
	f := newTestFlow(t, authority, Config{}, Hooks{Authenticated: func(s Socket, id Identity) {
		hookCalls = append(hookCalls, id)
	}})
	s := connect(t, f, "s1")

	f.Authenticate(context.Background(), "s1", json.RawMessage(`{"token":"code-1"}`))

	e := s.waitFor(t, 1, wait)
	if e.event != EventAuthenticated || e.ack == nil || e.last {
		t.Fatalf("got event %q (ack set %v, last %v), expected authenticated with an ack", e.event, e.ack != nil, e.last)
	}
	if len(e.args) != 2 {
		t.Fatalf("authenticated has %d arguments, expected 2", len(e.args))
	}
	if e.args[0] != "session-1" {
		t.Errorf("authenticated token = %v, expected session-1", e.args[0])
	}
	info, ok := e.args[1].(map[string]any)
	if !ok {
		t.Fatalf("authenticated info is %T, expected map[string]any", e.args[1])
	}
	if info["session_id"] != "sid-1" || info["subject"] != "alice" {
		t.Errorf("authenticated info = %v, expected session_id sid-1 and subject alice", info)
	}
	expiresAt, _ := info["expires_at"].(string)
	parsed, err := time.Parse(time.RFC3339, expiresAt)
	if err != nil || !strings.HasSuffix(expiresAt, "Z") {
		t.Errorf("expires_at = %q, expected RFC 3339 in UTC (err %v)", expiresAt, err)
	}
	if until := time.Until(parsed); until < 59*time.Minute || until > time.Hour {
		t.Errorf("expires_at is %v from now, expected about 1h", until)
	}

	if got := authority.callsTo("Authenticate"); len(got) != 1 || got[0] != "code-1" {
		t.Errorf("Authenticate calls = %q, expected [code-1]", got)
	}

	id, ok := f.Identity("s1")
	if !ok {
		t.Fatal("Identity(s1) not found after authenticate")
	}
	if id.Subject != "alice" || id.SessionID != "sid-1" || id.TokenID != "jti-1" || id.Claims["role"] != "admin" {
		t.Errorf("Identity = %+v, expected alice, sid-1, jti-1 and claim role=admin", id)
	}
	if len(hookCalls) != 1 || hookCalls[0].Subject != "alice" {
		t.Errorf("Authenticated hook calls = %+v, expected one for alice", hookCalls)
	}
}

func TestAckConfirmsRotation(t *testing.T) {
	authority := &fakeAuthority{}
	f := newTestFlow(t, authority, Config{}, Hooks{})
	s := connect(t, f, "s1")
	f.Authenticate(context.Background(), "s1", "code-1")
	e := s.waitFor(t, 1, wait)

	if got := authority.callsTo("ConfirmRotation"); len(got) != 0 {
		t.Fatalf("ConfirmRotation called before the ack: %q", got)
	}
	e.ack()

	if got := authority.callsTo("ConfirmRotation"); len(got) != 1 || got[0] != "session-1" {
		t.Errorf("ConfirmRotation calls = %q, expected [session-1]", got)
	}
	if _, ok := f.Identity("s1"); !ok {
		t.Error("socket lost its identity after a confirmed rotation")
	}
}

func TestConfirmRotationFailure(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		wantReject Code
	}{
		{name: "revoked session disconnects", err: authorityError(t, codes.PermissionDenied, "SESSION_REVOKED"), wantReject: CodeRevokedToken},
		{name: "unavailable authority keeps socket", err: authorityError(t, codes.Unavailable, ""), wantReject: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			authority := &fakeAuthority{confirm: func(context.Context, string) (*sockauthv1.ConfirmRotationResponse, error) {
				return nil, tt.err
			}}
			f := newTestFlow(t, authority, Config{}, Hooks{})
			s := connect(t, f, "s1")
			f.Authenticate(context.Background(), "s1", "code-1")
			s.waitFor(t, 1, wait).ack()

			events := s.sent()
			if tt.wantReject == "" {
				if len(events) != 1 {
					t.Errorf("got %d events, expected only authenticated: %+v", len(events), events)
				}
				if _, ok := f.Identity("s1"); !ok {
					t.Error("socket lost its identity, expected it to stay authenticated")
				}
				return
			}
			if got := unauthorizedCode(t, s.waitFor(t, 2, wait)); got != tt.wantReject {
				t.Errorf("unauthorized code = %q, expected %q", got, tt.wantReject)
			}
		})
	}
}

func TestAuthenticateRejectsBadPayloadWithoutCall(t *testing.T) {
	tests := []struct {
		name    string
		payload any
	}{
		{name: "missing", payload: json.RawMessage(nil)},
		{name: "null", payload: json.RawMessage(`null`)},
		{name: "number", payload: json.RawMessage(`1`)},
		{name: "array", payload: json.RawMessage(`["code"]`)},
		{name: "object without string token", payload: json.RawMessage(`{"token":1}`)},
		{name: "empty object", payload: json.RawMessage(`{}`)},
		{name: "empty string", payload: json.RawMessage(`""`)},
		{name: "token too long", payload: strings.Repeat("a", DefaultMaxTokenBytes+1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			authority := &fakeAuthority{}
			f := newTestFlow(t, authority, Config{}, Hooks{})
			s := connect(t, f, "s1")

			f.Authenticate(context.Background(), "s1", tt.payload)

			if got := unauthorizedCode(t, s.waitFor(t, 1, wait)); got != CodeInvalidToken {
				t.Errorf("unauthorized code = %q, expected %q", got, CodeInvalidToken)
			}
			if n := authority.callCount(); n != 0 {
				t.Errorf("authority called %d times, expected no call", n)
			}
		})
	}
}

func TestAuthenticateMapsAuthorityErrors(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want Code
	}{
		{name: "invalid token", err: authorityError(t, codes.Unauthenticated, "TOKEN_INVALID"), want: CodeInvalidToken},
		{name: "expired token", err: authorityError(t, codes.Unauthenticated, "TOKEN_EXPIRED"), want: CodeTokenExpired},
		{name: "reused token", err: authorityError(t, codes.PermissionDenied, "TOKEN_REUSED"), want: CodeRevokedToken},
		{name: "revoked session", err: authorityError(t, codes.PermissionDenied, "SESSION_REVOKED"), want: CodeRevokedToken},
		{name: "expired session", err: authorityError(t, codes.Unauthenticated, "SESSION_EXPIRED"), want: CodeSessionExpired},
		{name: "invalid argument", err: authorityError(t, codes.InvalidArgument, "INVALID_ARGUMENT"), want: CodeInvalidToken},
		{name: "unavailable", err: authorityError(t, codes.Unavailable, ""), want: CodeAuthorityUnavailable},
		{name: "transport error", err: errFakeTransport, want: CodeAuthorityUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			authority := &fakeAuthority{authenticate: func(context.Context, string) (*sockauthv1.AuthenticateResponse, error) {
				return nil, tt.err
			}}
			f := newTestFlow(t, authority, Config{}, Hooks{})
			s := connect(t, f, "s1")

			f.Authenticate(context.Background(), "s1", "code-1")

			if got := unauthorizedCode(t, s.waitFor(t, 1, wait)); got != tt.want {
				t.Errorf("unauthorized code = %q, expected %q", got, tt.want)
			}
			if _, ok := f.Admit("s1", "message"); ok {
				t.Error("rejected socket admitted an application event")
			}
		})
	}
}

func TestAuthenticateInvalidResponse(t *testing.T) {
	tests := []struct {
		name string
		resp *sockauthv1.AuthenticateResponse
	}{
		{name: "missing info", resp: &sockauthv1.AuthenticateResponse{Token: "session-1"}},
		{name: "missing token", resp: &sockauthv1.AuthenticateResponse{Info: sessionResponse(1, "sid-1", "alice", time.Now().Add(time.Hour)).Info}},
		{name: "missing expiry", resp: &sockauthv1.AuthenticateResponse{Token: "session-1", Info: &sockauthv1.TokenInfo{SessionId: "sid-1", Subject: "alice"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			authority := &fakeAuthority{authenticate: func(context.Context, string) (*sockauthv1.AuthenticateResponse, error) {
				return tt.resp, nil
			}}
			f := newTestFlow(t, authority, Config{}, Hooks{})
			s := connect(t, f, "s1")

			f.Authenticate(context.Background(), "s1", "code-1")

			if got := unauthorizedCode(t, s.waitFor(t, 1, wait)); got != CodeAuthorityUnavailable {
				t.Errorf("unauthorized code = %q, expected %q", got, CodeAuthorityUnavailable)
			}
		})
	}
}

func TestAuthorityCallDeadline(t *testing.T) {
	authority := &fakeAuthority{authenticate: func(ctx context.Context, _ string) (*sockauthv1.AuthenticateResponse, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}}
	f := newTestFlow(t, authority, Config{CallTimeout: 50 * time.Millisecond}, Hooks{})
	s := connect(t, f, "s1")

	start := time.Now()
	f.Authenticate(context.Background(), "s1", "code-1")
	elapsed := time.Since(start)

	if elapsed > time.Second {
		t.Errorf("Authenticate took %v, expected about the 50ms call timeout", elapsed)
	}
	if got := unauthorizedCode(t, s.waitFor(t, 1, wait)); got != CodeAuthorityUnavailable {
		t.Errorf("unauthorized code = %q, expected %q", got, CodeAuthorityUnavailable)
	}
}

func TestAuthenticationTimeout(t *testing.T) {
	f := newTestFlow(t, &fakeAuthority{}, Config{AuthTimeout: 50 * time.Millisecond}, Hooks{})
	s := connect(t, f, "s1")

	if got := unauthorizedCode(t, s.waitFor(t, 1, wait)); got != CodeAuthenticationTimeout {
		t.Errorf("unauthorized code = %q, expected %q", got, CodeAuthenticationTimeout)
	}
}

func TestAuthenticationTimeoutStopsAfterAuthenticate(t *testing.T) {
	f := newTestFlow(t, &fakeAuthority{}, Config{AuthTimeout: 50 * time.Millisecond}, Hooks{})
	s := connect(t, f, "s1")
	f.Authenticate(context.Background(), "s1", "code-1")

	time.Sleep(150 * time.Millisecond)

	if events := s.sent(); len(events) != 1 || events[0].event != EventAuthenticated {
		t.Errorf("events = %+v, expected only authenticated", events)
	}
}

func TestExpiryDisconnects(t *testing.T) {
	tests := []struct {
		name          string
		tokenExpiry   time.Duration
		sessionExpiry time.Duration
		want          Code
	}{
		{name: "token expires first", tokenExpiry: 60 * time.Millisecond, sessionExpiry: time.Hour, want: CodeTokenExpired},
		{name: "session expires first", tokenExpiry: time.Hour, sessionExpiry: 60 * time.Millisecond, want: CodeSessionExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			authority := &fakeAuthority{authenticate: func(context.Context, string) (*sockauthv1.AuthenticateResponse, error) {
				resp := sessionResponse(1, "sid-1", "alice", time.Now().Add(tt.tokenExpiry))
				resp.Info.SessionExpiresAt = timestamppb.New(time.Now().Add(tt.sessionExpiry))
				return resp, nil
			}}
			f := newTestFlow(t, authority, Config{}, Hooks{})
			s := connect(t, f, "s1")
			f.Authenticate(context.Background(), "s1", "code-1")

			if got := unauthorizedCode(t, s.waitFor(t, 2, wait)); got != tt.want {
				t.Errorf("unauthorized code = %q, expected %q", got, tt.want)
			}
		})
	}
}

func TestRefreshResetsExpiry(t *testing.T) {
	var mu sync.Mutex
	lifetime := 300 * time.Millisecond
	calls := 0
	authority := &fakeAuthority{}
	authority.authenticate = func(context.Context, string) (*sockauthv1.AuthenticateResponse, error) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		return sessionResponse(calls, "sid-1", "alice", time.Now().Add(lifetime)), nil
	}
	hookCalls := 0
	f := newTestFlow(t, authority, Config{}, Hooks{Authenticated: func(Socket, Identity) { hookCalls++ }})
	s := connect(t, f, "s1")

	f.Authenticate(context.Background(), "s1", "code-1")
	time.Sleep(200 * time.Millisecond)
	f.Authenticate(context.Background(), "s1", "session-1")
	time.Sleep(200 * time.Millisecond)

	// 400ms after the first token was issued, it has expired, but the
	// refreshed one has 100ms left.
	events := s.sent()
	if len(events) != 2 || events[1].event != EventAuthenticated || events[1].args[0] != "session-2" {
		t.Fatalf("events = %+v, expected two authenticated, the second with session-2", events)
	}
	id, ok := f.Identity("s1")
	if !ok || id.TokenID != "jti-2" {
		t.Errorf("Identity = %+v (found %v), expected token jti-2", id, ok)
	}
	if hookCalls != 1 {
		t.Errorf("Authenticated hook called %d times, expected once: a refresh does not call it", hookCalls)
	}

	if got := unauthorizedCode(t, s.waitFor(t, 3, wait)); got != CodeTokenExpired {
		t.Errorf("unauthorized code = %q, expected %q after the refreshed token expired", got, CodeTokenExpired)
	}
}

func TestFailedRefreshDisconnects(t *testing.T) {
	authority := &fakeAuthority{}
	f := newTestFlow(t, authority, Config{}, Hooks{})
	s := connect(t, f, "s1")
	f.Authenticate(context.Background(), "s1", "code-1")
	s.waitFor(t, 1, wait)

	authority.authenticate = func(context.Context, string) (*sockauthv1.AuthenticateResponse, error) {
		return nil, authorityError(t, codes.PermissionDenied, "TOKEN_REUSED")
	}
	f.Authenticate(context.Background(), "s1", "session-0")

	if got := unauthorizedCode(t, s.waitFor(t, 2, wait)); got != CodeRevokedToken {
		t.Errorf("unauthorized code = %q, expected %q", got, CodeRevokedToken)
	}
	if _, ok := f.Identity("s1"); ok {
		t.Error("socket still authenticated after a failed refresh")
	}
}

func TestAdmitOnlyAuthenticated(t *testing.T) {
	f := newTestFlow(t, &fakeAuthority{}, Config{}, Hooks{})
	connect(t, f, "s1")

	if _, ok := f.Admit("s1", "message"); ok {
		t.Error("Admit admitted a waiting socket")
	}
	if _, ok := f.Admit("unknown", "message"); ok {
		t.Error("Admit admitted an unknown socket")
	}
	if got := f.Dropped(); got != 2 {
		t.Errorf("Dropped = %d, expected 2", got)
	}

	f.Authenticate(context.Background(), "s1", "code-1")
	id, ok := f.Admit("s1", "message")
	if !ok || id.Subject != "alice" {
		t.Errorf("Admit after authenticate = %+v, %v; expected alice, true", id, ok)
	}
	if got := f.Dropped(); got != 2 {
		t.Errorf("Dropped = %d after an admitted event, expected 2", got)
	}
}

func TestIdentityClaimsAreCopies(t *testing.T) {
	f := newTestFlow(t, &fakeAuthority{}, Config{}, Hooks{})
	connect(t, f, "s1")
	f.Authenticate(context.Background(), "s1", "code-1")

	id, _ := f.Identity("s1")
	id.Claims["role"] = "changed"

	again, _ := f.Identity("s1")
	if again.Claims["role"] != "admin" {
		t.Errorf("claim role = %q after a caller changed its copy, expected admin", again.Claims["role"])
	}
}

func TestLogoutFansOutToSession(t *testing.T) {
	authority := &fakeAuthority{}
	authority.authenticate = func(_ context.Context, token string) (*sockauthv1.AuthenticateResponse, error) {
		if token == "other-code" {
			return sessionResponse(9, "sid-2", "bob", time.Now().Add(time.Hour)), nil
		}
		return sessionResponse(1, "sid-1", "alice", time.Now().Add(time.Hour)), nil
	}
	f := newTestFlow(t, authority, Config{}, Hooks{})
	s1 := connect(t, f, "s1")
	s2 := connect(t, f, "s2")
	s3 := connect(t, f, "s3")
	f.Authenticate(context.Background(), "s1", "code-1")
	f.Authenticate(context.Background(), "s2", "code-1")
	f.Authenticate(context.Background(), "s3", "other-code")

	f.Logout(context.Background(), "s1", json.RawMessage(`{"token":"session-1"}`))

	for _, s := range []*fakeSocket{s1, s2} {
		e := s.waitFor(t, 2, wait)
		if e.event != EventLoggedOut || !e.last {
			t.Errorf("socket %s got %q (last %v), expected logged_out sent by Disconnect", s.id, e.event, e.last)
			continue
		}
		if payload, _ := e.args[0].(map[string]any); payload["reason"] != "logout" {
			t.Errorf("socket %s logged_out payload = %v, expected reason logout", s.id, e.args[0])
		}
	}
	if events := s3.sent(); len(events) != 1 {
		t.Errorf("socket of another session got %+v, expected only its authenticated", events)
	}
	if got := authority.callsTo("Logout"); len(got) != 1 || got[0] != "session-1" {
		t.Errorf("Logout calls = %q, expected [session-1]", got)
	}
	if _, ok := f.Admit("s2", "message"); ok {
		t.Error("logged out socket admitted an application event")
	}
}

// TestSessionIndexTracksEachSocket drops one of three sockets of a session
// from the index and refreshes another, then logs the session out. The
// index must reach the two that remain, once each, and end up empty.
func TestSessionIndexTracksEachSocket(t *testing.T) {
	f := newTestFlow(t, &fakeAuthority{}, Config{}, Hooks{})
	s1 := connect(t, f, "s1")
	s2 := connect(t, f, "s2")
	s3 := connect(t, f, "s3")
	for _, id := range []string{"s1", "s2", "s3"} {
		f.Authenticate(context.Background(), id, "code-1")
	}
	if _, known := f.Disconnected("s1"); !known {
		t.Fatal("Disconnected(s1) reported an unknown socket")
	}
	// A refresh of s2 takes it out of the index and files it again.
	f.Authenticate(context.Background(), "s2", "session-1")
	s2.waitFor(t, 2, wait)

	f.mu.Lock()
	members := slices.Clone(f.sessions["sid-1"])
	f.mu.Unlock()
	if len(members) != 2 {
		t.Fatalf("session index holds %d sockets, expected s2 and s3", len(members))
	}
	for _, id := range []string{"s2", "s3"} {
		if !slices.ContainsFunc(members, func(st *socketState) bool { return st.socket.ID() == id }) {
			t.Errorf("session index lacks socket %s", id)
		}
	}

	f.Logout(context.Background(), "s3", nil)
	if e := s2.waitFor(t, 3, wait); e.event != EventLoggedOut {
		t.Errorf("refreshed socket s2 got %q, expected logged_out", e.event)
	}
	if e := s3.waitFor(t, 2, wait); e.event != EventLoggedOut {
		t.Errorf("socket s3 got %q, expected logged_out", e.event)
	}
	if events := s1.sent(); len(events) != 1 {
		t.Errorf("disconnected socket s1 got %d events, expected only its authenticated", len(events))
	}
	f.mu.Lock()
	left, found := f.sessions["sid-1"]
	f.mu.Unlock()
	if found {
		t.Errorf("session index keeps %d sockets of a logged out session", len(left))
	}
}

func TestLogoutSkipsDisconnectedSockets(t *testing.T) {
	f := newTestFlow(t, &fakeAuthority{}, Config{}, Hooks{})
	s1 := connect(t, f, "s1")
	s2 := connect(t, f, "s2")
	f.Authenticate(context.Background(), "s1", "code-1")
	f.Authenticate(context.Background(), "s2", "code-1")

	id, known := f.Disconnected("s2")
	if !known || id.SessionID != "sid-1" {
		t.Fatalf("Disconnected(s2) = %+v, %v; expected sid-1, true", id, known)
	}
	if _, known := f.Disconnected("s2"); known {
		t.Error("second Disconnected(s2) reported a known socket")
	}

	f.Logout(context.Background(), "s1", nil)

	s1.waitFor(t, 2, wait)
	if events := s2.sent(); len(events) != 1 {
		t.Errorf("disconnected socket got %+v, expected only its authenticated", events)
	}
}

func TestLogoutWithoutPayloadUsesCurrentToken(t *testing.T) {
	tests := []struct {
		name    string
		payload any
	}{
		{name: "missing", payload: json.RawMessage(nil)},
		{name: "null", payload: json.RawMessage(`null`)},
		{name: "object without token", payload: json.RawMessage(`{}`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			authority := &fakeAuthority{}
			f := newTestFlow(t, authority, Config{}, Hooks{})
			s := connect(t, f, "s1")
			f.Authenticate(context.Background(), "s1", "code-1")

			f.Logout(context.Background(), "s1", tt.payload)

			if e := s.waitFor(t, 2, wait); e.event != EventLoggedOut {
				t.Errorf("got %q, expected logged_out", e.event)
			}
			if got := authority.callsTo("Logout"); len(got) != 1 || got[0] != "session-1" {
				t.Errorf("Logout calls = %q, expected the current token [session-1]", got)
			}
		})
	}
}

func TestLogoutRejections(t *testing.T) {
	tests := []struct {
		name          string
		authenticated bool
		payload       any
		logoutErr     error
		want          Code
		wantCall      bool
	}{
		{name: "no token on unauthenticated socket", payload: nil, want: CodeInvalidToken},
		{name: "number payload", authenticated: true, payload: json.RawMessage(`5`), want: CodeInvalidToken},
		{name: "empty token", authenticated: true, payload: json.RawMessage(`{"token":""}`), want: CodeInvalidToken},
		{name: "revoked session", authenticated: true, payload: "session-1", logoutErr: authorityError(t, codes.PermissionDenied, "SESSION_REVOKED"), want: CodeRevokedToken, wantCall: true},
		{name: "authority down", authenticated: true, payload: "session-1", logoutErr: authorityError(t, codes.Unavailable, ""), want: CodeAuthorityUnavailable, wantCall: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			authority := &fakeAuthority{}
			if tt.logoutErr != nil {
				authority.logout = func(context.Context, string) (*sockauthv1.LogoutResponse, error) {
					return nil, tt.logoutErr
				}
			}
			f := newTestFlow(t, authority, Config{}, Hooks{})
			s := connect(t, f, "s1")
			n := 1
			if tt.authenticated {
				f.Authenticate(context.Background(), "s1", "code-1")
				n = 2
			}

			f.Logout(context.Background(), "s1", tt.payload)

			if got := unauthorizedCode(t, s.waitFor(t, n, wait)); got != tt.want {
				t.Errorf("unauthorized code = %q, expected %q", got, tt.want)
			}
			if called := len(authority.callsTo("Logout")) > 0; called != tt.wantCall {
				t.Errorf("Logout called = %v, expected %v", called, tt.wantCall)
			}
		})
	}
}

func TestLogoutFromUnauthenticatedSocketWithToken(t *testing.T) {
	authority := &fakeAuthority{}
	f := newTestFlow(t, authority, Config{}, Hooks{})
	s1 := connect(t, f, "s1")
	s2 := connect(t, f, "s2")
	f.Authenticate(context.Background(), "s1", "code-1")

	f.Logout(context.Background(), "s2", "session-1")

	if e := s2.waitFor(t, 1, wait); e.event != EventLoggedOut {
		t.Errorf("calling socket got %q, expected logged_out", e.event)
	}
	if e := s1.waitFor(t, 2, wait); e.event != EventLoggedOut {
		t.Errorf("socket of the session got %q, expected logged_out", e.event)
	}
}

func TestSocketClosedDuringAuthenticate(t *testing.T) {
	release := make(chan struct{})
	authority := &fakeAuthority{}
	authority.authenticate = func(context.Context, string) (*sockauthv1.AuthenticateResponse, error) {
		<-release
		return sessionResponse(1, "sid-1", "alice", time.Now().Add(time.Hour)), nil
	}
	f := newTestFlow(t, authority, Config{}, Hooks{})
	s := connect(t, f, "s1")

	done := make(chan struct{})
	go func() {
		defer close(done)
		f.Authenticate(context.Background(), "s1", "code-1")
	}()
	for len(authority.callsTo("Authenticate")) == 0 {
		time.Sleep(time.Millisecond)
	}
	f.Disconnected("s1")
	close(release)
	<-done

	if events := s.sent(); len(events) != 0 {
		t.Errorf("disconnected socket got %+v, expected nothing", events)
	}
	if _, ok := f.Identity("s1"); ok {
		t.Error("disconnected socket has an identity")
	}
}

func TestEventsOfUnknownSocketsIgnored(t *testing.T) {
	authority := &fakeAuthority{}
	f := newTestFlow(t, authority, Config{}, Hooks{})

	f.Authenticate(context.Background(), "nobody", "code-1")
	f.Logout(context.Background(), "nobody", "session-1")

	if n := authority.callCount(); n != 0 {
		t.Errorf("authority called %d times for an unknown socket, expected no call", n)
	}
}

func TestSessionCheck(t *testing.T) {
	tests := []struct {
		name      string
		verifyErr error
		want      Code
	}{
		{name: "revoked session disconnects", verifyErr: authorityError(t, codes.PermissionDenied, "SESSION_REVOKED"), want: CodeRevokedToken},
		{name: "expired session disconnects", verifyErr: authorityError(t, codes.Unauthenticated, "SESSION_EXPIRED"), want: CodeSessionExpired},
		{name: "unavailable authority keeps sockets", verifyErr: authorityError(t, codes.Unavailable, ""), want: ""},
		{name: "live session keeps sockets", verifyErr: nil, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			verified := make(chan struct{}, 100)
			authority := &fakeAuthority{verify: func(context.Context, string) (*sockauthv1.VerifyResponse, error) {
				verified <- struct{}{}
				if tt.verifyErr != nil {
					return nil, tt.verifyErr
				}
				return &sockauthv1.VerifyResponse{}, nil
			}}
			f := newTestFlow(t, authority, Config{SessionCheckInterval: 20 * time.Millisecond}, Hooks{})
			s1 := connect(t, f, "s1")
			s2 := connect(t, f, "s2")
			connect(t, f, "waiting")
			f.Authenticate(context.Background(), "s1", "code-1")
			f.Authenticate(context.Background(), "s2", "code-1")

			if tt.want == "" {
				for range 3 {
					<-verified
				}
				if len(s1.sent()) != 1 || len(s2.sent()) != 1 {
					t.Errorf("sockets got %+v and %+v, expected only authenticated", s1.sent(), s2.sent())
				}
				return
			}
			for _, s := range []*fakeSocket{s1, s2} {
				if got := unauthorizedCode(t, s.waitFor(t, 2, wait)); got != tt.want {
					t.Errorf("socket %s unauthorized code = %q, expected %q", s.id, got, tt.want)
				}
			}
			// Both sockets belong to sid-1, so one Verify of either token
			// covers them, and the rejected sockets leave nothing to check.
			time.Sleep(60 * time.Millisecond)
			got := authority.callsTo("Verify")
			if len(got) != 1 || (got[0] != "session-1" && got[0] != "session-2") {
				t.Errorf("Verify calls = %q, expected one call with session-1 or session-2", got)
			}
		})
	}
}

func TestCloseStopsTimers(t *testing.T) {
	f, err := NewFlow(Config{Authority: &fakeAuthority{}, AuthTimeout: 30 * time.Millisecond, Logger: testLogger()}, Hooks{})
	if err != nil {
		t.Fatalf("NewFlow: %v", err)
	}
	s := connect(t, f, "s1")

	f.Close()
	f.Close()
	time.Sleep(100 * time.Millisecond)

	if events := s.sent(); len(events) != 0 {
		t.Errorf("socket got %+v after Close, expected no timeout", events)
	}
	if err := f.Connect(newFakeSocket("s2")); !errors.Is(err, ErrClosed) {
		t.Errorf("Connect after Close = %v, expected ErrClosed", err)
	}
}

func TestConcurrentSocketsRace(t *testing.T) {
	authority := &fakeAuthority{}
	f := newTestFlow(t, authority, Config{AuthTimeout: 20 * time.Millisecond}, Hooks{})

	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := string(rune('a' + i))
			s := connect(t, f, id)
			if i%2 == 0 {
				f.Authenticate(context.Background(), id, "code-1")
				f.Admit(id, "message")
				f.Logout(context.Background(), id, nil)
			}
			s.waitFor(t, 1, wait)
			f.Disconnected(id)
		}()
	}
	wg.Wait()
}

// TestConfirmRotationAfterLogoutElsewhere covers a logout on another socket
// of the session that lands between authenticated and its ack: the socket
// gets logged_out, as the revocation event would give it.
func TestConfirmRotationAfterLogoutElsewhere(t *testing.T) {
	st, err := status.New(codes.PermissionDenied, "session revoked").WithDetails(&errdetails.ErrorInfo{
		Reason: "SESSION_REVOKED", Domain: "sockauth", Metadata: map[string]string{"revoked_reason": "logout"},
	})
	if err != nil {
		t.Fatal(err)
	}
	authority := &fakeAuthority{confirm: func(context.Context, string) (*sockauthv1.ConfirmRotationResponse, error) {
		return nil, st.Err()
	}}
	f := newTestFlow(t, authority, Config{}, Hooks{})
	s := connect(t, f, "s1")
	f.Authenticate(context.Background(), "s1", "code-1")
	s.waitFor(t, 1, wait).ack()

	if got := loggedOutReason(t, s.waitFor(t, 2, wait)); got != LogoutReason {
		t.Errorf("logged_out reason %q, expected %q", got, LogoutReason)
	}
	if _, ok := f.Identity("s1"); ok {
		t.Error("socket still authenticated after its session was logged out")
	}
}
