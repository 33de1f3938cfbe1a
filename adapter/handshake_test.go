package adapter

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	sockauthv1 "github.com/sockauth/sockauth/gen/sockauth/v1"
)

func TestHandshakeAuthenticatesBeforeConnect(t *testing.T) {
	authority := &fakeAuthority{}
	var hookCalls []Identity
	f := newTestFlow(t, authority, Config{AuthTimeout: 50 * time.Millisecond}, Hooks{Authenticated: func(s Socket, id Identity) {
		hookCalls = append(hookCalls, id)
	}})

	admission, err := f.AuthenticateHandshake(context.Background(), "s1", "code-1")
	if err != nil {
		t.Fatalf("AuthenticateHandshake: %v", err)
	}
	if id := admission.Identity(); id.SessionID != "sid-1" || id.TokenID != "jti-1" {
		t.Errorf("admission identity = %+v, expected sid-1 and jti-1", id)
	}
	if _, ok := f.Identity("s1"); ok {
		t.Error("socket known to the flow before ConnectAuthenticated")
	}

	s := newFakeSocket("s1")
	if err := f.ConnectAuthenticated(s, admission); err != nil {
		t.Fatalf("ConnectAuthenticated: %v", err)
	}

	e := s.waitFor(t, 1, wait)
	if e.event != EventAuthenticated || e.ack == nil || e.last {
		t.Fatalf("got event %q (ack set %v, last %v), expected authenticated with an ack", e.event, e.ack != nil, e.last)
	}
	if len(e.args) != 2 || e.args[0] != "session-1" {
		t.Fatalf("authenticated arguments = %v, expected session-1 and the info", e.args)
	}
	info, _ := e.args[1].(map[string]any)
	if info["session_id"] != "sid-1" || info["subject"] != "alice" {
		t.Errorf("authenticated info = %v, expected session_id sid-1 and subject alice", info)
	}
	if _, ok := f.Admit("s1", "message"); !ok {
		t.Error("a socket connected with an admission does not admit events")
	}
	if len(hookCalls) != 1 || hookCalls[0].Subject != "alice" {
		t.Errorf("Authenticated hook calls = %+v, expected one for alice", hookCalls)
	}

	e.ack()
	if got := authority.callsTo("ConfirmRotation"); len(got) != 1 || got[0] != "session-1" {
		t.Errorf("ConfirmRotation calls = %q, expected [session-1]", got)
	}

	// The authentication timeout of Connect does not apply.
	time.Sleep(150 * time.Millisecond)
	if events := s.sent(); len(events) != 1 {
		t.Errorf("got %d events, expected only authenticated: %+v", len(events), events)
	}
}

func TestHandshakeRefreshAndLogout(t *testing.T) {
	authority := &fakeAuthority{}
	f := newTestFlow(t, authority, Config{}, Hooks{})
	admission, err := f.AuthenticateHandshake(context.Background(), "s1", "code-1")
	if err != nil {
		t.Fatalf("AuthenticateHandshake: %v", err)
	}
	s := newFakeSocket("s1")
	if err := f.ConnectAuthenticated(s, admission); err != nil {
		t.Fatalf("ConnectAuthenticated: %v", err)
	}
	s.waitFor(t, 1, wait)

	f.Authenticate(context.Background(), "s1", "session-1")
	if e := s.waitFor(t, 2, wait); e.event != EventAuthenticated || e.args[0] != "session-2" {
		t.Fatalf("got %q with %v, expected authenticated with session-2", e.event, e.args)
	}

	f.Logout(context.Background(), "s1", nil)
	if e := s.waitFor(t, 3, wait); e.event != EventLoggedOut || !e.last {
		t.Fatalf("got %q (last %v), expected logged_out sent by Disconnect", e.event, e.last)
	}
	if got := authority.callsTo("Logout"); len(got) != 1 || got[0] != "session-2" {
		t.Errorf("Logout calls = %q, expected [session-2]", got)
	}
}

func TestHandshakeExpiry(t *testing.T) {
	authority := &fakeAuthority{authenticate: func(context.Context, string) (*sockauthv1.AuthenticateResponse, error) {
		return sessionResponse(1, "sid-1", "alice", time.Now().Add(100*time.Millisecond)), nil
	}}
	f := newTestFlow(t, authority, Config{}, Hooks{})
	admission, err := f.AuthenticateHandshake(context.Background(), "s1", "code-1")
	if err != nil {
		t.Fatalf("AuthenticateHandshake: %v", err)
	}
	s := newFakeSocket("s1")
	if err := f.ConnectAuthenticated(s, admission); err != nil {
		t.Fatalf("ConnectAuthenticated: %v", err)
	}

	if got := unauthorizedCode(t, s.waitFor(t, 2, wait)); got != CodeTokenExpired {
		t.Errorf("unauthorized code = %q, expected %q", got, CodeTokenExpired)
	}
}

func TestHandshakeRejections(t *testing.T) {
	tests := []struct {
		name  string
		token string
		err   error
		want  Code
		// called reports whether the authority sees the token.
		called bool
	}{
		{name: "empty token", token: "", want: CodeInvalidToken},
		{name: "token too long", token: strings.Repeat("x", DefaultMaxTokenBytes+1), want: CodeInvalidToken},
		{name: "invalid token", token: "forged", err: authorityError(t, codes.Unauthenticated, "TOKEN_INVALID"), want: CodeInvalidToken, called: true},
		{name: "expired token", token: "old", err: authorityError(t, codes.Unauthenticated, "TOKEN_EXPIRED"), want: CodeTokenExpired, called: true},
		{name: "reused token", token: "replaced", err: authorityError(t, codes.PermissionDenied, "TOKEN_REUSED"), want: CodeRevokedToken, called: true},
		{name: "unavailable authority", token: "code-1", err: authorityError(t, codes.Unavailable, ""), want: CodeAuthorityUnavailable, called: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			authority := &fakeAuthority{authenticate: func(context.Context, string) (*sockauthv1.AuthenticateResponse, error) {
				return nil, tt.err
			}}
			f := newTestFlow(t, authority, Config{}, Hooks{})

			admission, err := f.AuthenticateHandshake(context.Background(), "s1", tt.token)

			var rejection *HandshakeError
			if !errors.As(err, &rejection) {
				t.Fatalf("AuthenticateHandshake error = %v (admission %v), expected a *HandshakeError", err, admission)
			}
			if rejection.Code != tt.want {
				t.Errorf("code = %q, expected %q", rejection.Code, tt.want)
			}
			if called := len(authority.callsTo("Authenticate")) > 0; called != tt.called {
				t.Errorf("authority called: %v, expected %v", called, tt.called)
			}
		})
	}
}

func TestHandshakeErrorCarriesUnauthorizedData(t *testing.T) {
	rejection := &HandshakeError{Code: CodeRevokedToken}

	if rejection.Message() != "token revoked" {
		t.Errorf("Message() = %q, expected %q", rejection.Message(), "token revoked")
	}
	data := rejection.Data()
	if data["code"] != "revoked_token" || data["message"] != "token revoked" || data["type"] != "UnauthorizedError" {
		t.Errorf("Data() = %v, expected code revoked_token, message %q and type UnauthorizedError", data, "token revoked")
	}
	if !strings.Contains(rejection.Error(), "revoked_token") {
		t.Errorf("Error() = %q, expected it to name the code", rejection.Error())
	}
}

func TestHandshakeAfterClose(t *testing.T) {
	authority := &fakeAuthority{}
	f := newTestFlow(t, authority, Config{}, Hooks{})
	admission, err := f.AuthenticateHandshake(context.Background(), "s1", "code-1")
	if err != nil {
		t.Fatalf("AuthenticateHandshake: %v", err)
	}
	f.Close()

	if err := f.ConnectAuthenticated(newFakeSocket("s1"), admission); !errors.Is(err, ErrClosed) {
		t.Errorf("ConnectAuthenticated after Close = %v, expected ErrClosed", err)
	}
	if _, err := f.AuthenticateHandshake(context.Background(), "s2", "code-2"); !errors.Is(err, ErrClosed) {
		t.Errorf("AuthenticateHandshake after Close = %v, expected ErrClosed", err)
	}
	if got := authority.callsTo("Authenticate"); len(got) != 1 {
		t.Errorf("Authenticate calls = %q, expected only the one before Close", got)
	}
}
