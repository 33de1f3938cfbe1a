package adapter

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	sockauthv1 "github.com/sockauth/sockauth/gen/sockauth/v1"
	"github.com/sockauth/sockauth/internal/serve"
)

// This file tests the revocation watch against a real authority, started
// with serve.Start on a loopback port with a Badger store in a temporary
// folder.

// startRealAuthority starts an authority and returns its address. It stops
// when the test ends, after the flows built later.
func startRealAuthority(t *testing.T) string {
	t.Helper()
	a, err := serve.Start(context.Background(), serve.Config{
		Listen:  "127.0.0.1:0",
		DataDir: t.TempDir(),
		Logger:  testLogger(),
	})
	if err != nil {
		t.Fatalf("serve.Start: %v", err)
	}
	t.Cleanup(func() {
		if err := a.Close(); err != nil {
			t.Errorf("closing the authority: %v", err)
		}
	})
	return a.Addr()
}

// dialAuthority returns a gRPC connection to addr, closed when the test
// ends.
func dialAuthority(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("grpc.NewClient(%s): %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// newRealFlow builds a Flow on its own connection to addr, as one socket
// server would, and waits until its revocation stream is open.
func newRealFlow(t *testing.T, addr string, cfg Config) *Flow {
	t.Helper()
	cfg.Authority = sockauthv1.NewAuthorityServiceClient(dialAuthority(t, addr))
	cfg.Logger = testLogger()
	f, err := NewFlow(cfg, Hooks{})
	if err != nil {
		t.Fatalf("NewFlow: %v", err)
	}
	t.Cleanup(f.Close)
	waitWatching(t, f)
	return f
}

// issueCode returns a login code for subject from the authority at addr.
func issueCode(t *testing.T, client sockauthv1.AuthorityServiceClient, subject string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	resp, err := client.IssueCode(ctx, &sockauthv1.IssueCodeRequest{Subject: subject})
	if err != nil {
		t.Fatalf("IssueCode(%s): %v", subject, err)
	}
	return resp.GetCode()
}

// authenticateReal connects a socket to f, authenticates it with token,
// acknowledges authenticated and returns the socket with its new token and
// session id.
func authenticateReal(t *testing.T, f *Flow, socketID, token string) (s *fakeSocket, next, sid string) {
	t.Helper()
	s = connect(t, f, socketID)
	f.Authenticate(context.Background(), socketID, map[string]any{"token": token})
	e := s.waitFor(t, 1, wait)
	if e.event != EventAuthenticated {
		t.Fatalf("socket %s got %q %v, expected authenticated", socketID, e.event, e.args)
	}
	e.ack()
	info := e.args[1].(map[string]any)
	return s, e.args[0].(string), info["session_id"].(string)
}

func TestWatchRealAuthorityLogoutReachesOtherFlow(t *testing.T) {
	addr := startRealAuthority(t)
	client := sockauthv1.NewAuthorityServiceClient(dialAuthority(t, addr))
	serverA := newRealFlow(t, addr, Config{})
	serverB := newRealFlow(t, addr, Config{})

	// The socket on server B presents the token of the socket on server A,
	// as a second tab would, so the token of A is no longer current but its
	// session is alive.
	onA, token, sid := authenticateReal(t, serverA, "on-a", issueCode(t, client, "alice"))
	onB, _, sidB := authenticateReal(t, serverB, "on-b", token)
	if sidB != sid {
		t.Fatalf("socket on B joined session %s, expected %s", sidB, sid)
	}
	time.Sleep(50 * time.Millisecond)
	assertStillConnected(t, onA)

	serverB.Logout(context.Background(), "on-b", nil)

	if got := loggedOutReason(t, onB.waitFor(t, 2, wait)); got != LogoutReason {
		t.Errorf("socket on B logged_out reason = %q, expected %q", got, LogoutReason)
	}
	if got := loggedOutReason(t, onA.waitFor(t, 2, wait)); got != LogoutReason {
		t.Errorf("socket on A logged_out reason = %q, expected %q", got, LogoutReason)
	}
}

func TestWatchRealAuthorityRevokeSubject(t *testing.T) {
	addr := startRealAuthority(t)
	conn := dialAuthority(t, addr)
	client := sockauthv1.NewAuthorityServiceClient(conn)
	serverA := newRealFlow(t, addr, Config{})
	serverB := newRealFlow(t, addr, Config{})
	onA, _, _ := authenticateReal(t, serverA, "bob-on-a", issueCode(t, client, "bob"))
	onB, _, _ := authenticateReal(t, serverB, "bob-on-b", issueCode(t, client, "bob"))
	other, _, _ := authenticateReal(t, serverB, "carol-on-b", issueCode(t, client, "carol"))

	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := sockauthv1.NewAdminServiceClient(conn).RevokeSubject(ctx, &sockauthv1.RevokeSubjectRequest{Subject: "bob"}); err != nil {
		t.Fatalf("RevokeSubject: %v", err)
	}

	for _, s := range []*fakeSocket{onA, onB} {
		if got := unauthorizedCode(t, s.waitFor(t, 2, wait)); got != CodeRevokedToken {
			t.Errorf("socket %s code = %q, expected %q", s.id, got, CodeRevokedToken)
		}
	}
	time.Sleep(50 * time.Millisecond)
	assertStillConnected(t, other)
}

func TestWatchRealAuthorityGap(t *testing.T) {
	addr := startRealAuthority(t)
	conn := dialAuthority(t, addr)
	client := sockauthv1.NewAuthorityServiceClient(conn)
	proxy := startCuttableProxy(t, addr)
	f := newRealFlow(t, proxy.addr(), Config{RevocationRetryDelay: 50 * time.Millisecond})
	s, _, sid := authenticateReal(t, f, "s1", issueCode(t, client, "alice"))

	// While the flow cannot reach the authority, an operator revokes the
	// session. No stream is open, so the event is lost.
	proxy.cut()
	deadline := time.Now().Add(wait)
	for f.watchEpoch.Load()%2 == 1 {
		if time.Now().After(deadline) {
			t.Fatal("the revocation stream is still open after the connection was cut")
		}
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := sockauthv1.NewAdminServiceClient(conn).RevokeSession(ctx, &sockauthv1.RevokeSessionRequest{SessionId: sid}); err != nil {
		t.Fatalf("RevokeSession: %v", err)
	}
	time.Sleep(100 * time.Millisecond)
	if events := s.sent(); len(events) != 1 {
		t.Fatalf("socket got %+v while the authority was unreachable, expected only authenticated", events)
	}

	proxy.restore()

	if got := unauthorizedCode(t, s.waitFor(t, 2, 2*wait)); got != CodeRevokedToken {
		t.Errorf("socket code = %q, expected %q", got, CodeRevokedToken)
	}
}

// cuttableProxy forwards loopback TCP connections to a backend until cut
// closes them and rejects new ones, and restore lets them through again.
type cuttableProxy struct {
	listener net.Listener
	backend  string

	mu    sync.Mutex // guards down and conns
	down  bool
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func startCuttableProxy(t *testing.T, backend string) *cuttableProxy {
	t.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen for the proxy: %v", err)
	}
	p := &cuttableProxy{listener: listener, backend: backend, conns: make(map[net.Conn]struct{})}
	p.wg.Go(p.serve)
	t.Cleanup(func() {
		listener.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *cuttableProxy) addr() string { return p.listener.Addr().String() }

func (p *cuttableProxy) serve() {
	for {
		client, err := p.listener.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue
		}
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if down {
			client.Close()
			continue
		}
		server, err := net.Dial("tcp", p.backend)
		if err != nil {
			client.Close()
			continue
		}
		p.track(client, server)
		p.wg.Go(func() { p.pipe(client, server) })
		p.wg.Go(func() { p.pipe(server, client) })
	}
}

func (p *cuttableProxy) track(conns ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range conns {
		p.conns[c] = struct{}{}
	}
}

func (p *cuttableProxy) pipe(dst, src net.Conn) {
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
}

func (p *cuttableProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

func (p *cuttableProxy) restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
}
