package adapter

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	sockauthv1 "github.com/sockauth/sockauth/gen/sockauth/v1"
)

// multiSessionAuthority returns a fake authority whose Authenticate turns
// the token "code-SID" into a token of session SID, and whose Verify reports
// the sessions listed in dead with their error. Both can be changed while
// the test runs with the returned setDead.
func multiSessionAuthority(t *testing.T) (authority *fakeAuthority, setDead func(sid string, err error)) {
	var (
		mu    sync.Mutex
		sidOf = make(map[string]string) // issued token → session
		dead  = make(map[string]error)  // session → Verify error
		n     int
	)
	authority = &fakeAuthority{
		watch: newWatchServer(),
		authenticate: func(_ context.Context, token string) (*sockauthv1.AuthenticateResponse, error) {
			mu.Lock()
			defer mu.Unlock()
			sid, ok := sidOf[token]
			if !ok {
				sid = strings.TrimPrefix(token, "code-")
			}
			n++
			resp := sessionResponse(n, sid, "alice", time.Now().Add(time.Hour))
			sidOf[resp.GetToken()] = sid
			return resp, nil
		},
		verify: func(_ context.Context, token string) (*sockauthv1.VerifyResponse, error) {
			mu.Lock()
			defer mu.Unlock()
			if err := dead[sidOf[token]]; err != nil {
				return nil, err
			}
			return &sockauthv1.VerifyResponse{Current: false}, nil
		},
	}
	setDead = func(sid string, err error) {
		mu.Lock()
		defer mu.Unlock()
		dead[sid] = err
	}
	return authority, setDead
}

// newWatchingFlow builds a Flow on authority, whose watch must be set, and
// returns it with its first revocation stream, once that stream is open.
func newWatchingFlow(t *testing.T, authority *fakeAuthority, cfg Config) (*Flow, *fakeWatchStream) {
	t.Helper()
	if cfg.RevocationRetryDelay == 0 {
		cfg.RevocationRetryDelay = 10 * time.Millisecond
	}
	f := newTestFlow(t, authority, cfg, Hooks{})
	stream := authority.watch.next(t)
	waitWatching(t, f)
	return f, stream
}

// waitWatching waits until f has an open revocation stream.
func waitWatching(t *testing.T, f *Flow) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for f.watchEpoch.Load()%2 == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("revocation stream not open after %v", wait)
		}
		time.Sleep(time.Millisecond)
	}
}

// authenticated connects a socket and authenticates it into session sid of
// a multiSessionAuthority.
func authenticated(t *testing.T, f *Flow, socketID, sid string) *fakeSocket {
	t.Helper()
	s := connect(t, f, socketID)
	f.Authenticate(context.Background(), socketID, "code-"+sid)
	if e := s.waitFor(t, 1, wait); e.event != EventAuthenticated {
		t.Fatalf("socket %s got %q, expected authenticated", socketID, e.event)
	}
	return s
}

// loggedOutReason returns the reason of a logged_out event sent as the last
// packet, or fails.
func loggedOutReason(t *testing.T, e emitted) string {
	t.Helper()
	if e.event != EventLoggedOut || !e.last {
		t.Fatalf("got event %q (last packet %v), expected logged_out sent by Disconnect", e.event, e.last)
	}
	payload, ok := e.args[0].(map[string]any)
	if !ok {
		t.Fatalf("logged_out payload is %T, expected map[string]any", e.args[0])
	}
	reason, _ := payload["reason"].(string)
	return reason
}

// assertStillConnected checks that s received nothing after its first
// event.
func assertStillConnected(t *testing.T, s *fakeSocket) {
	t.Helper()
	if events := s.sent(); len(events) != 1 {
		t.Errorf("socket %s got %d events %+v, expected only authenticated", s.id, len(events), events)
	}
}

func TestWatchDisconnectsRevokedSession(t *testing.T) {
	tests := []struct {
		name   string
		reason sockauthv1.RevocationReason
		// event is the expected last event, code its code for unauthorized.
		event string
		code  Code
	}{
		{name: "logout", reason: sockauthv1.RevocationReason_REVOCATION_REASON_LOGOUT, event: EventLoggedOut},
		{name: "admin", reason: sockauthv1.RevocationReason_REVOCATION_REASON_ADMIN, event: EventUnauthorized, code: CodeRevokedToken},
		{name: "reused", reason: sockauthv1.RevocationReason_REVOCATION_REASON_REUSED, event: EventUnauthorized, code: CodeRevokedToken},
		{name: "expired", reason: sockauthv1.RevocationReason_REVOCATION_REASON_EXPIRED, event: EventUnauthorized, code: CodeSessionExpired},
		{name: "unspecified", reason: sockauthv1.RevocationReason_REVOCATION_REASON_UNSPECIFIED, event: EventUnauthorized, code: CodeRevokedToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			authority, _ := multiSessionAuthority(t)
			f, stream := newWatchingFlow(t, authority, Config{})
			first := authenticated(t, f, "first", "sid-1")
			second := authenticated(t, f, "second", "sid-1")
			other := authenticated(t, f, "other", "sid-2")
			waiting := connect(t, f, "waiting")

			stream.send("sid-1", tt.reason)

			for _, s := range []*fakeSocket{first, second} {
				e := s.waitFor(t, 2, wait)
				if tt.event == EventLoggedOut {
					if got := loggedOutReason(t, e); got != LogoutReason {
						t.Errorf("socket %s logged_out reason = %q, expected %q", s.id, got, LogoutReason)
					}
					continue
				}
				if got := unauthorizedCode(t, e); got != tt.code {
					t.Errorf("socket %s unauthorized code = %q, expected %q", s.id, got, tt.code)
				}
			}
			if _, ok := f.Identity("first"); ok {
				t.Error("socket first still has an identity after its session was revoked")
			}

			// Let the flow handle a second event, so that a wrong
			// disconnect of the other sockets would have happened.
			stream.send("sid-unknown", tt.reason)
			time.Sleep(50 * time.Millisecond)
			assertStillConnected(t, other)
			if events := waiting.sent(); len(events) != 0 {
				t.Errorf("unauthenticated socket got %+v, expected nothing", events)
			}
		})
	}
}

func TestWatchIgnoresEventWithoutSession(t *testing.T) {
	authority, _ := multiSessionAuthority(t)
	f, stream := newWatchingFlow(t, authority, Config{})
	s := authenticated(t, f, "s1", "sid-1")

	stream.send("", sockauthv1.RevocationReason_REVOCATION_REASON_ADMIN)
	time.Sleep(50 * time.Millisecond)

	assertStillConnected(t, s)
}

func TestWatchReconnectsAndVerifiesAfterBreak(t *testing.T) {
	authority, setDead := multiSessionAuthority(t)
	f, stream := newWatchingFlow(t, authority, Config{})
	revoked := authenticated(t, f, "revoked", "sid-revoked")
	expired := authenticated(t, f, "expired", "sid-expired")
	rotated := authenticated(t, f, "rotated", "sid-rotated")

	// The revocations happen while no stream is open, so no event reports
	// them. Verify reports sid-rotated alive with a token that is no longer
	// current.
	stream.breakWith(authorityError(t, codes.Unavailable, ""))
	setDead("sid-revoked", authorityError(t, codes.PermissionDenied, "SESSION_REVOKED"))
	setDead("sid-expired", authorityError(t, codes.Unauthenticated, "SESSION_EXPIRED"))

	authority.watch.next(t)

	if got := unauthorizedCode(t, revoked.waitFor(t, 2, wait)); got != CodeRevokedToken {
		t.Errorf("revoked socket code = %q, expected %q", got, CodeRevokedToken)
	}
	if got := unauthorizedCode(t, expired.waitFor(t, 2, wait)); got != CodeSessionExpired {
		t.Errorf("expired socket code = %q, expected %q", got, CodeSessionExpired)
	}
	time.Sleep(50 * time.Millisecond)
	assertStillConnected(t, rotated)
	if _, ok := f.Identity("rotated"); !ok {
		t.Error("socket of a live session whose token was rotated elsewhere lost its identity")
	}
}

func TestWatchRetriesUntilOpen(t *testing.T) {
	authority, setDead := multiSessionAuthority(t)
	authority.watch.failNext(3)
	f := newTestFlow(t, authority, Config{RevocationRetryDelay: 10 * time.Millisecond}, Hooks{})

	// The stream has never been open, so the revocation of sid-1 is known
	// only through Verify.
	s := authenticated(t, f, "s1", "sid-1")
	alive := authenticated(t, f, "s2", "sid-2")
	setDead("sid-1", authorityError(t, codes.PermissionDenied, "SESSION_REVOKED"))

	authority.watch.next(t)
	if got := unauthorizedCode(t, s.waitFor(t, 2, wait)); got != CodeRevokedToken {
		t.Errorf("socket code = %q, expected %q", got, CodeRevokedToken)
	}
	if calls := len(authority.callsTo("WatchRevocations")); calls != 4 {
		t.Errorf("WatchRevocations called %d times, expected 3 failures and 1 success", calls)
	}
	assertStillConnected(t, alive)
}

func TestWatchRetriesVerifyWhileAuthorityUnavailable(t *testing.T) {
	authority, setDead := multiSessionAuthority(t)
	f, stream := newWatchingFlow(t, authority, Config{})
	s := authenticated(t, f, "s1", "sid-1")

	// The authority first cannot be reached for Verify, then reports the
	// session revoked: the flow must keep verifying until it gets an answer.
	setDead("sid-1", authorityError(t, codes.Unavailable, ""))
	stream.breakWith(authorityError(t, codes.Unavailable, ""))
	authority.watch.next(t)
	deadline := time.Now().Add(wait)
	for len(authority.callsTo("Verify")) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("Verify called %d times after the break, expected retries", len(authority.callsTo("Verify")))
		}
		time.Sleep(5 * time.Millisecond)
	}
	setDead("sid-1", authorityError(t, codes.PermissionDenied, "SESSION_REVOKED"))

	if got := unauthorizedCode(t, s.waitFor(t, 2, wait)); got != CodeRevokedToken {
		t.Errorf("socket code = %q, expected %q", got, CodeRevokedToken)
	}
}

func TestWatchEventDuringAuthenticate(t *testing.T) {
	authority, _ := multiSessionAuthority(t)
	f, stream := newWatchingFlow(t, authority, Config{})
	issue := authority.authenticate
	authority.authenticate = func(ctx context.Context, token string) (*sockauthv1.AuthenticateResponse, error) {
		resp, err := issue(ctx, token)

		// The session is revoked after the authority minted the token,
		// and the event overtakes the response.
		stream.send("sid-1", sockauthv1.RevocationReason_REVOCATION_REASON_LOGOUT)
		deadline := time.Now().Add(wait)
		for {
			f.mu.Lock()
			_, seen := f.recent.lookup("sid-1", time.Now())
			f.mu.Unlock()
			if seen || time.Now().After(deadline) {
				break
			}
			time.Sleep(time.Millisecond)
		}
		return resp, err
	}
	s := connect(t, f, "s1")

	f.Authenticate(context.Background(), "s1", "code-sid-1")

	e := s.waitFor(t, 1, wait)
	if got := loggedOutReason(t, e); got != LogoutReason {
		t.Errorf("logged_out reason = %q, expected %q", got, LogoutReason)
	}
	if _, ok := f.Identity("s1"); ok {
		t.Error("socket has an identity although its session was revoked during authenticate")
	}
}

func TestWatchBreakDuringAuthenticateVerifies(t *testing.T) {
	authority, setDead := multiSessionAuthority(t)
	f, stream := newWatchingFlow(t, authority, Config{})

	// The next stream will not open during the test, so only the change of
	// the watch epoch during the call can make the flow verify the session.
	release := authority.watch.holdHeaders()
	defer release()
	issue := authority.authenticate
	authority.authenticate = func(ctx context.Context, token string) (*sockauthv1.AuthenticateResponse, error) {
		stream.breakWith(authorityError(t, codes.Unavailable, ""))
		for f.watchEpoch.Load()%2 == 1 {
			time.Sleep(time.Millisecond)
		}
		setDead("sid-1", authorityError(t, codes.PermissionDenied, "SESSION_REVOKED"))
		return issue(ctx, token)
	}
	s := connect(t, f, "s1")

	f.Authenticate(context.Background(), "s1", "code-sid-1")

	if e := s.waitFor(t, 1, wait); e.event != EventAuthenticated {
		t.Fatalf("got %q, expected authenticated", e.event)
	}
	if got := unauthorizedCode(t, s.waitFor(t, 2, wait)); got != CodeRevokedToken {
		t.Errorf("socket code = %q, expected %q", got, CodeRevokedToken)
	}
}

func TestWatchDisabled(t *testing.T) {
	authority, _ := multiSessionAuthority(t)
	cfg := Config{Authority: authority, DisableRevocationWatch: true, Logger: testLogger()}
	f, err := NewFlow(cfg, Hooks{})
	if err != nil {
		t.Fatalf("NewFlow: %v", err)
	}
	defer f.Close()
	authenticated(t, f, "s1", "sid-1")

	time.Sleep(50 * time.Millisecond)

	if calls := authority.callsTo("WatchRevocations"); len(calls) != 0 {
		t.Errorf("WatchRevocations called %d times with DisableRevocationWatch, expected none", len(calls))
	}
	if calls := authority.callsTo("Verify"); len(calls) != 0 {
		t.Errorf("Verify called %d times without watch or session check, expected none", len(calls))
	}
}

func TestWatchStopsOnClose(t *testing.T) {
	authority, _ := multiSessionAuthority(t)
	f, err := NewFlow(Config{Authority: authority, Logger: testLogger()}, Hooks{})
	if err != nil {
		t.Fatalf("NewFlow: %v", err)
	}
	stream := authority.watch.next(t)

	f.Close()

	select {
	case <-stream.ctx.Done():
	case <-time.After(wait):
		t.Fatal("the revocation stream's context is not done after Close")
	}
	// goleak in TestMain reports a watcher goroutine that outlives Close.
}

func TestLocalLogoutBlocksAuthenticateInFlight(t *testing.T) {
	authority, _ := multiSessionAuthority(t)
	f := newTestFlow(t, authority, Config{}, Hooks{})
	leaving := authenticated(t, f, "leaving", "sid-1")

	started := make(chan struct{})
	finish := make(chan struct{})
	issue := authority.authenticate
	authority.authenticate = func(ctx context.Context, token string) (*sockauthv1.AuthenticateResponse, error) {
		close(started)
		<-finish
		return issue(ctx, token)
	}
	authority.logout = func(context.Context, string) (*sockauthv1.LogoutResponse, error) {
		return &sockauthv1.LogoutResponse{SessionId: "sid-1", Subject: "alice"}, nil
	}
	joining := connect(t, f, "joining")
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.Authenticate(context.Background(), "joining", "code-sid-1")
	}()
	<-started

	f.Logout(context.Background(), "leaving", nil)
	close(finish)
	<-done

	if got := loggedOutReason(t, leaving.waitFor(t, 2, wait)); got != LogoutReason {
		t.Errorf("leaving socket logged_out reason = %q, expected %q", got, LogoutReason)
	}
	if got := loggedOutReason(t, joining.waitFor(t, 1, wait)); got != LogoutReason {
		t.Errorf("joining socket logged_out reason = %q, expected %q", got, LogoutReason)
	}
}

func TestRecentRevocationsExpire(t *testing.T) {
	recent := newRecentRevocations(time.Second)
	start := time.Now()
	recent.add("sid-1", sockauthv1.RevocationReason_REVOCATION_REASON_ADMIN, start)
	recent.add("sid-2", sockauthv1.RevocationReason_REVOCATION_REASON_LOGOUT, start.Add(500*time.Millisecond))
	recent.add("sid-1", sockauthv1.RevocationReason_REVOCATION_REASON_REUSED, start.Add(800*time.Millisecond))

	tests := []struct {
		sid    string
		at     time.Duration
		want   bool
		reason sockauthv1.RevocationReason
	}{
		{sid: "sid-1", at: 900 * time.Millisecond, want: true, reason: sockauthv1.RevocationReason_REVOCATION_REASON_REUSED},
		{sid: "sid-2", at: 1400 * time.Millisecond, want: true, reason: sockauthv1.RevocationReason_REVOCATION_REASON_LOGOUT},
		// The first entry of sid-1 is pruned, but its second one is kept.
		{sid: "sid-1", at: 1500 * time.Millisecond, want: true, reason: sockauthv1.RevocationReason_REVOCATION_REASON_REUSED},
		{sid: "sid-2", at: 1600 * time.Millisecond, want: false},
		{sid: "sid-1", at: 1900 * time.Millisecond, want: false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s at %v", tt.sid, tt.at), func(t *testing.T) {
			reason, ok := recent.lookup(tt.sid, start.Add(tt.at))
			if ok != tt.want || reason != tt.reason {
				t.Errorf("lookup = %v, %v; expected %v, %v", reason, ok, tt.reason, tt.want)
			}
		})
	}
	if len(recent.order) != 0 || len(recent.bySession) != 0 {
		t.Errorf("after every entry expired: %d ordered and %d indexed entries, expected none", len(recent.order), len(recent.bySession))
	}
}

func TestWatchEventBeforeHandshakeConnect(t *testing.T) {
	authority, _ := multiSessionAuthority(t)
	f, stream := newWatchingFlow(t, authority, Config{})
	admission, err := f.AuthenticateHandshake(context.Background(), "s1", "code-sid-1")
	if err != nil {
		t.Fatalf("AuthenticateHandshake: %v", err)
	}

	// The session is revoked before the socket.io server admits the socket.
	stream.send("sid-1", sockauthv1.RevocationReason_REVOCATION_REASON_ADMIN)
	deadline := time.Now().Add(wait)
	for {
		f.mu.Lock()
		_, seen := f.recent.lookup("sid-1", time.Now())
		f.mu.Unlock()
		if seen {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the flow did not record the revocation event")
		}
		time.Sleep(time.Millisecond)
	}
	s := newFakeSocket("s1")
	if err := f.ConnectAuthenticated(s, admission); err != nil {
		t.Fatalf("ConnectAuthenticated: %v", err)
	}

	if got := unauthorizedCode(t, s.waitFor(t, 1, wait)); got != CodeRevokedToken {
		t.Errorf("socket code = %q, expected %q", got, CodeRevokedToken)
	}
	if _, ok := f.Identity("s1"); ok {
		t.Error("socket has an identity although its session was revoked before it connected")
	}
}
