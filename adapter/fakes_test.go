package adapter

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	sockauthv1 "github.com/sockauth/sockauth/gen/sockauth/v1"
)

// fakeAuthority is an AuthorityServiceClient whose responses a test can
// replace.
// By default Authenticate accepts every token as a token of session "sid-1"
// of subject "alice" and returns "session-N", and the other calls succeed.
type fakeAuthority struct {
	mu    sync.Mutex
	calls []authorityCall

	authenticate func(ctx context.Context, token string) (*sockauthv1.AuthenticateResponse, error)
	confirm      func(ctx context.Context, token string) (*sockauthv1.ConfirmRotationResponse, error)
	verify       func(ctx context.Context, token string) (*sockauthv1.VerifyResponse, error)
	logout       func(ctx context.Context, token string) (*sockauthv1.LogoutResponse, error)

	issued int
}

type authorityCall struct {
	rpc   string
	token string
}

var _ sockauthv1.AuthorityServiceClient = (*fakeAuthority)(nil)

func (a *fakeAuthority) record(rpc, token string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls = append(a.calls, authorityCall{rpc: rpc, token: token})
}

// callsTo returns the tokens passed to rpc, in call order.
func (a *fakeAuthority) callsTo(rpc string) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var tokens []string
	for _, c := range a.calls {
		if c.rpc == rpc {
			tokens = append(tokens, c.token)
		}
	}
	return tokens
}

func (a *fakeAuthority) callCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.calls)
}

func (a *fakeAuthority) IssueCode(context.Context, *sockauthv1.IssueCodeRequest, ...grpc.CallOption) (*sockauthv1.IssueCodeResponse, error) {
	return nil, status.Error(codes.Unimplemented, "not used by the adapter")
}

func (a *fakeAuthority) Authenticate(ctx context.Context, req *sockauthv1.AuthenticateRequest, _ ...grpc.CallOption) (*sockauthv1.AuthenticateResponse, error) {
	a.record("Authenticate", req.GetToken())
	if a.authenticate != nil {
		return a.authenticate(ctx, req.GetToken())
	}

	a.mu.Lock()
	a.issued++
	n := a.issued
	a.mu.Unlock()
	return sessionResponse(n, "sid-1", "alice", time.Now().Add(time.Hour)), nil
}

func (a *fakeAuthority) ConfirmRotation(ctx context.Context, req *sockauthv1.ConfirmRotationRequest, _ ...grpc.CallOption) (*sockauthv1.ConfirmRotationResponse, error) {
	a.record("ConfirmRotation", req.GetToken())
	if a.confirm != nil {
		return a.confirm(ctx, req.GetToken())
	}
	return &sockauthv1.ConfirmRotationResponse{Confirmed: true}, nil
}

func (a *fakeAuthority) Verify(ctx context.Context, req *sockauthv1.VerifyRequest, _ ...grpc.CallOption) (*sockauthv1.VerifyResponse, error) {
	a.record("Verify", req.GetToken())
	if a.verify != nil {
		return a.verify(ctx, req.GetToken())
	}
	return &sockauthv1.VerifyResponse{Current: true}, nil
}

func (a *fakeAuthority) Logout(ctx context.Context, req *sockauthv1.LogoutRequest, _ ...grpc.CallOption) (*sockauthv1.LogoutResponse, error) {
	a.record("Logout", req.GetToken())
	if a.logout != nil {
		return a.logout(ctx, req.GetToken())
	}
	return &sockauthv1.LogoutResponse{SessionId: "sid-1", Subject: "alice"}, nil
}

// sessionResponse returns the n-th session token "session-N" of a session.
func sessionResponse(n int, sid, subject string, expires time.Time) *sockauthv1.AuthenticateResponse {
	return &sockauthv1.AuthenticateResponse{
		Token: fmt.Sprintf("session-%d", n),
		Info: &sockauthv1.TokenInfo{
			TokenId:          fmt.Sprintf("jti-%d", n),
			SessionId:        sid,
			Subject:          subject,
			Type:             sockauthv1.TokenType_TOKEN_TYPE_SESSION,
			Generation:       uint64(n),
			IssuedAt:         timestamppb.Now(),
			ExpiresAt:        timestamppb.New(expires),
			SessionExpiresAt: timestamppb.New(time.Now().Add(24 * time.Hour)),
			Claims:           map[string]string{"role": "admin"},
		},
	}
}

// authorityError builds an error as the authority returns it: a status with
// an ErrorInfo detail of domain "sockauth".
func authorityError(tb testing.TB, code codes.Code, reason string) error {
	tb.Helper()
	st, err := status.New(code, "rejected by the fake authority").WithDetails(&errdetails.ErrorInfo{
		Reason: reason,
		Domain: "sockauth",
	})
	if err != nil {
		tb.Fatalf("building status with details: %v", err)
	}
	return st.Err()
}

// emitted is one event sent to a fakeSocket.
type emitted struct {
	event string
	args  []any
	ack   func()
	last  bool // sent by Disconnect
}

// fakeSocket records what the flow sends to it.
type fakeSocket struct {
	id string

	mu     sync.Mutex
	events []emitted
	notify chan struct{}
}

var _ Socket = (*fakeSocket)(nil)

func newFakeSocket(id string) *fakeSocket {
	return &fakeSocket{id: id, notify: make(chan struct{}, 100)}
}

func (s *fakeSocket) ID() string { return s.id }

func (s *fakeSocket) EmitWithAck(event string, ack func(), args ...any) error {
	s.add(emitted{event: event, args: args, ack: ack})
	return nil
}

func (s *fakeSocket) Disconnect(event string, payload any) error {
	s.add(emitted{event: event, args: []any{payload}, last: true})
	return nil
}

func (s *fakeSocket) add(e emitted) {
	s.mu.Lock()
	s.events = append(s.events, e)
	s.mu.Unlock()
	s.notify <- struct{}{}
}

func (s *fakeSocket) sent() []emitted {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]emitted(nil), s.events...)
}

// waitFor waits until the socket received n events and returns the n-th.
func (s *fakeSocket) waitFor(tb testing.TB, n int, timeout time.Duration) emitted {
	tb.Helper()
	deadline := time.After(timeout)
	for {
		if events := s.sent(); len(events) >= n {
			return events[n-1]
		}
		select {
		case <-s.notify:
		case <-deadline:
			tb.Fatalf("socket %s: got %d events after %v, expected at least %d: %+v", s.id, len(s.sent()), timeout, n, s.sent())
		}
	}
}

// testLogger discards logs unless the test runs with -v.
func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(testWriter{}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type testWriter struct{}

func (testWriter) Write(p []byte) (int, error) {
	fmt.Print(string(p))
	return len(p), nil
}

// newTestFlow builds a Flow on authority, with cfg's other fields, and
// closes it when the test ends.
func newTestFlow(tb testing.TB, authority *fakeAuthority, cfg Config, hooks Hooks) *Flow {
	tb.Helper()
	cfg.Authority = authority
	if cfg.Logger == nil {
		cfg.Logger = testLogger()
	}
	f, err := NewFlow(cfg, hooks)
	if err != nil {
		tb.Fatalf("NewFlow: %v", err)
	}
	tb.Cleanup(f.Close)
	return f
}

// connect connects a fake socket to f.
func connect(tb testing.TB, f *Flow, id string) *fakeSocket {
	tb.Helper()
	s := newFakeSocket(id)
	if err := f.Connect(s); err != nil {
		tb.Fatalf("Connect(%s): %v", id, err)
	}
	return s
}

// unauthorizedCode returns data.code of an unauthorized event, or fails.
func unauthorizedCode(tb testing.TB, e emitted) Code {
	tb.Helper()
	if e.event != EventUnauthorized || !e.last {
		tb.Fatalf("got event %q (last packet %v), expected unauthorized sent by Disconnect", e.event, e.last)
	}
	payload, ok := e.args[0].(map[string]any)
	if !ok {
		tb.Fatalf("unauthorized payload is %T, expected map[string]any", e.args[0])
	}
	data, ok := payload["data"].(map[string]any)
	if !ok {
		tb.Fatalf("unauthorized data is %T, expected map[string]any", payload["data"])
	}
	if data["type"] != "UnauthorizedError" {
		tb.Errorf("unauthorized data.type = %v, expected UnauthorizedError", data["type"])
	}
	if data["message"] != payload["message"] || payload["message"] == "" {
		tb.Errorf("unauthorized message = %v and data.message = %v, expected the same non-empty text", payload["message"], data["message"])
	}
	code, _ := data["code"].(string)
	return Code(code)
}

var errFakeTransport = errors.New("fake transport failure")

func (a *fakeAuthority) WatchRevocations(context.Context, *sockauthv1.WatchRevocationsRequest, ...grpc.CallOption) (grpc.ServerStreamingClient[sockauthv1.WatchRevocationsResponse], error) {
	return nil, errors.New("fake authority: WatchRevocations is not faked")
}
