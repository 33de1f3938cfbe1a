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
	"google.golang.org/grpc/metadata"
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
	// watch serves WatchRevocations. When it is nil, newTestFlow turns the
	// revocation watch off.
	watch *watchServer

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
	if authority.watch == nil {
		cfg.DisableRevocationWatch = true
	}
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

func (a *fakeAuthority) WatchRevocations(ctx context.Context, _ *sockauthv1.WatchRevocationsRequest, _ ...grpc.CallOption) (grpc.ServerStreamingClient[sockauthv1.WatchRevocationsResponse], error) {
	a.record("WatchRevocations", "")
	if a.watch == nil {
		return nil, errors.New("fake authority: WatchRevocations is not faked")
	}
	return a.watch.open(ctx)
}

// watchServer is the fake authority's side of WatchRevocations. Each call
// opens a fakeWatchStream and passes it on opened.
type watchServer struct {
	opened chan *fakeWatchStream

	mu sync.Mutex // guards failures and hold
	// failures is the number of calls to fail with Unavailable before the
	// next stream opens.
	failures int
	// hold, when set, keeps the next stream from sending its headers until
	// hold is closed.
	hold chan struct{}
}

func newWatchServer() *watchServer {
	return &watchServer{opened: make(chan *fakeWatchStream, 100)}
}

// failNext makes the next n calls fail with Unavailable.
func (w *watchServer) failNext(n int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.failures = n
}

// holdHeaders keeps the headers of the streams opened from now on until the
// returned function is called.
func (w *watchServer) holdHeaders() (release func()) {
	hold := make(chan struct{})
	w.mu.Lock()
	w.hold = hold
	w.mu.Unlock()
	return sync.OnceFunc(func() { close(hold) })
}

func (w *watchServer) open(ctx context.Context) (grpc.ServerStreamingClient[sockauthv1.WatchRevocationsResponse], error) {
	w.mu.Lock()
	if w.failures > 0 {
		w.failures--
		w.mu.Unlock()
		return nil, status.Error(codes.Unavailable, "fake authority: connection refused")
	}
	hold := w.hold
	w.mu.Unlock()

	stream := &fakeWatchStream{
		ctx:    ctx,
		hold:   hold,
		events: make(chan *sockauthv1.WatchRevocationsResponse, 100),
		end:    make(chan error, 1),
	}
	w.opened <- stream
	return stream, nil
}

// next returns the next stream that the flow opened, or fails the test.
func (w *watchServer) next(tb testing.TB) *fakeWatchStream {
	tb.Helper()
	select {
	case stream := <-w.opened:
		return stream
	case <-time.After(wait):
		tb.Fatalf("the flow opened no revocation stream within %v", wait)
		return nil
	}
}

// fakeWatchStream is a client stream of revocation events that a test
// feeds.
type fakeWatchStream struct {
	grpc.ClientStream // nil: only the methods below are used

	ctx    context.Context
	hold   chan struct{}
	events chan *sockauthv1.WatchRevocationsResponse
	end    chan error
}

var _ grpc.ServerStreamingClient[sockauthv1.WatchRevocationsResponse] = (*fakeWatchStream)(nil)

// send delivers a revocation event of session sid.
func (s *fakeWatchStream) send(sid string, reason sockauthv1.RevocationReason) {
	s.events <- &sockauthv1.WatchRevocationsResponse{SessionId: sid, Subject: "alice", Reason: reason, RevokedAt: timestamppb.Now()}
}

// breakWith ends the stream with err after the events already sent.
func (s *fakeWatchStream) breakWith(err error) {
	s.end <- err
}

func (s *fakeWatchStream) Header() (metadata.MD, error) {
	if s.hold != nil {
		select {
		case <-s.hold:
		case <-s.ctx.Done():
			return nil, status.FromContextError(s.ctx.Err()).Err()
		}
	}
	return metadata.MD{}, nil
}

func (s *fakeWatchStream) Recv() (*sockauthv1.WatchRevocationsResponse, error) {
	select {
	case event := <-s.events:
		return event, nil
	default:
	}
	select {
	case event := <-s.events:
		return event, nil
	case err := <-s.end:
		return nil, err
	case <-s.ctx.Done():
		return nil, status.FromContextError(s.ctx.Err()).Err()
	}
}

func (s *fakeWatchStream) Context() context.Context { return s.ctx }
