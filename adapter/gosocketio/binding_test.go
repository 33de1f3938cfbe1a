package gosocketio

import (
	"encoding/json"
	"regexp"
	"slices"
	"sync"
	"testing"
	"time"

	socketio "github.com/googollee/go-socket.io"
	"go.uber.org/goleak"

	"github.com/sockauth/sockauth/adapter"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestAuthenticateOverWebsocket(t *testing.T) {
	ts := newTestServer(t, "/", adapter.Config{})
	c := dial(t, ts.url, "/")

	c.emit(adapter.EventAuthenticate, `{"token":"code-alice"}`)
	p := c.expectEvent(adapter.EventAuthenticated)

	if p.id < 0 {
		t.Fatalf("authenticated packet %q has no ack id", p.raw)
	}
	if len(p.args) != 2 || string(p.args[0]) != `"session-1"` {
		t.Fatalf("authenticated packet %q, expected token session-1 and an info object", p.raw)
	}
	var info struct {
		ExpiresAt string `json:"expires_at"`
		SessionID string `json:"session_id"`
		Subject   string `json:"subject"`
	}
	if err := json.Unmarshal(p.args[1], &info); err != nil {
		t.Fatalf("authenticated info %s: %v", p.args[1], err)
	}
	if info.SessionID != "sid-alice" || info.Subject != "alice" {
		t.Errorf("authenticated info = %+v, expected sid-alice and alice", info)
	}
	if _, err := time.Parse(time.RFC3339, info.ExpiresAt); err != nil {
		t.Errorf("expires_at %q is not RFC 3339: %v", info.ExpiresAt, err)
	}

	c.ack(p.id)
	waitUntil(t, func() bool { return slices.Equal(ts.authority.confirmedTokens(), []string{"session-1"}) },
		"ConfirmRotation(session-1) after the ack")
}

func TestBareStringToken(t *testing.T) {
	ts := newTestServer(t, "/", adapter.Config{})
	c := dial(t, ts.url, "/")

	c.emit(adapter.EventAuthenticate, `"code-alice"`)

	c.expectEvent(adapter.EventAuthenticated)
}

func TestRejectedPayloadsDisconnect(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{name: "number", args: []string{`42`}},
		{name: "object without string token", args: []string{`{"token":42}`}},
		{name: "array", args: []string{`["code-alice"]`}},
		{name: "null", args: []string{`null`}},
		{name: "no argument", args: nil},
		{name: "empty string", args: []string{`""`}},
		{name: "unknown token", args: []string{`{"token":"forged"}`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestServer(t, "/", adapter.Config{})
			c := dial(t, ts.url, "/")

			c.emit(adapter.EventAuthenticate, tt.args...)

			if got := unauthorizedCode(t, c.expectEvent(adapter.EventUnauthorized)); got != "invalid_token" {
				t.Errorf("unauthorized code = %q, expected invalid_token", got)
			}
			c.expectServerDisconnect()
		})
	}
}

func TestAuthenticationTimeoutOverWebsocket(t *testing.T) {
	ts := newTestServer(t, "/", adapter.Config{AuthTimeout: 100 * time.Millisecond})
	c := dial(t, ts.url, "/")

	if got := unauthorizedCode(t, c.expectEvent(adapter.EventUnauthorized)); got != "authentication_timeout" {
		t.Errorf("unauthorized code = %q, expected authentication_timeout", got)
	}
	c.expectServerDisconnect()
}

func TestEventsGatedUntilAuthenticated(t *testing.T) {
	ts := newTestServer(t, "/", adapter.Config{})
	var mu sync.Mutex
	var seen []string
	ts.binding.OnEvent("echo", func(conn socketio.Conn, id adapter.Identity, text string) {
		mu.Lock()
		seen = append(seen, id.Subject+":"+text)
		mu.Unlock()
		conn.Emit("echoed", text)
	})
	c := dial(t, ts.url, "/")

	c.emit("echo", `"before"`)
	c.expectNoPacket(200 * time.Millisecond)
	if got := ts.binding.Flow().Dropped(); got != 1 {
		t.Errorf("Dropped = %d, expected 1", got)
	}

	c.authenticate("code-alice")
	c.emit("echo", `"after"`)

	p := c.expectEvent("echoed")
	if len(p.args) != 1 || string(p.args[0]) != `"after"` {
		t.Errorf("echoed packet %q, expected argument after", p.raw)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(seen, []string{"alice:after"}) {
		t.Errorf("handler saw %q, expected only alice:after", seen)
	}
}

func TestHandlerResultsSentAsAck(t *testing.T) {
	ts := newTestServer(t, "/", adapter.Config{})
	ts.binding.OnEvent("ping", func(conn socketio.Conn, id adapter.Identity, text string) string {
		return "pong " + id.Subject + " " + text
	})
	c := dial(t, ts.url, "/")
	c.authenticate("code-alice")

	c.emitWithAck("ping", `"x"`)

	ack := c.next(2 * time.Second)
	if ack.kind != '3' || ack.id != 1 || len(ack.args) != 1 || string(ack.args[0]) != `"pong alice x"` {
		t.Errorf("got packet %q, expected ack 1 with \"pong alice x\"", ack.raw)
	}
}

func TestLogoutDisconnectsSession(t *testing.T) {
	ts := newTestServer(t, "/", adapter.Config{})
	alice1 := dial(t, ts.url, "/")
	alice2 := dial(t, ts.url, "/")
	bob := dial(t, ts.url, "/")
	token := alice1.authenticate("code-alice")
	alice2.authenticate("code-alice")
	bob.authenticate("code-bob")

	alice1.emit(adapter.EventLogout, `{"token":"`+token+`"}`)

	for _, c := range []*client{alice1, alice2} {
		p := c.expectEvent(adapter.EventLoggedOut)
		if len(p.args) != 1 || string(p.args[0]) != `{"reason":"logout"}` {
			t.Errorf("logged_out packet %q, expected {\"reason\":\"logout\"}", p.raw)
		}
		c.expectServerDisconnect()
	}
	bob.expectNoPacket(200 * time.Millisecond)
	if _, ok := ts.binding.Flow().Identity(bob.sid); !ok {
		t.Error("socket of another session lost its identity")
	}
}

func TestLogoutReachesOtherServer(t *testing.T) {
	authority := newFakeAuthority()
	serverA := newTestServerOn(t, authority, "/", adapter.Config{})
	serverB := newTestServerOn(t, authority, "/", adapter.Config{})
	waitUntil(t, func() bool { return authority.watchingFlows() == 2 }, "both servers watching revocations")
	onA := dial(t, serverA.url, "/")
	onB := dial(t, serverB.url, "/")
	bobOnB := dial(t, serverB.url, "/")
	token := onA.authenticate("code-alice")
	onB.authenticate("code-alice")
	bobOnB.authenticate("code-bob")

	onA.emit(adapter.EventLogout, `{"token":"`+token+`"}`)

	for _, c := range []*client{onA, onB} {
		p := c.expectEvent(adapter.EventLoggedOut)
		if len(p.args) != 1 || string(p.args[0]) != `{"reason":"logout"}` {
			t.Errorf("logged_out packet %q, expected {\"reason\":\"logout\"}", p.raw)
		}
		c.expectServerDisconnect()
	}
	bobOnB.expectNoPacket(200 * time.Millisecond)
}

func TestLogoutWithoutTokenUsesCurrentOne(t *testing.T) {
	ts := newTestServer(t, "/", adapter.Config{})
	c := dial(t, ts.url, "/")
	c.authenticate("code-alice")

	c.emit(adapter.EventLogout)

	c.expectEvent(adapter.EventLoggedOut)
	c.expectServerDisconnect()
}

func TestRefreshOnLiveSocket(t *testing.T) {
	ts := newTestServer(t, "/", adapter.Config{})
	authenticatedHooks := 0
	var mu sync.Mutex
	ts.binding.OnAuthenticated(func(conn socketio.Conn, id adapter.Identity) {
		mu.Lock()
		authenticatedHooks++
		mu.Unlock()
	})
	c := dial(t, ts.url, "/")
	first := c.authenticate("code-alice")

	second := c.authenticate(first)

	if second == first {
		t.Errorf("refresh returned the same token %q, expected a new one", second)
	}
	id, ok := ts.binding.Flow().Identity(c.sid)
	if !ok || id.TokenID != "jti-2" {
		t.Errorf("identity after refresh = %+v (found %v), expected jti-2", id, ok)
	}
	mu.Lock()
	defer mu.Unlock()
	if authenticatedHooks != 1 {
		t.Errorf("OnAuthenticated called %d times, expected once", authenticatedHooks)
	}
}

func TestOnAuthenticatedCanEmit(t *testing.T) {
	ts := newTestServer(t, "/", adapter.Config{})
	ts.binding.OnAuthenticated(func(conn socketio.Conn, id adapter.Identity) {
		conn.Join("user:" + id.Subject)
		conn.Emit("welcome", id.Subject)
	})
	c := dial(t, ts.url, "/")

	c.authenticate("code-alice")

	p := c.expectEvent("welcome")
	if len(p.args) != 1 || string(p.args[0]) != `"alice"` {
		t.Errorf("welcome packet %q, expected alice", p.raw)
	}
	if n := ts.server.RoomLen("/", "user:alice"); n != 1 {
		t.Errorf("room user:alice has %d members, expected 1", n)
	}
}

func TestOnDisconnectHook(t *testing.T) {
	ts := newTestServer(t, "/", adapter.Config{})
	calls := make(chan adapter.Identity, 10)
	ts.binding.OnDisconnect(func(conn socketio.Conn, id adapter.Identity, reason string) {
		calls <- id
	})
	c := dial(t, ts.url, "/")
	c.authenticate("code-alice")

	c.emit(adapter.EventLogout)
	c.expectEvent(adapter.EventLoggedOut)
	c.expectServerDisconnect()

	select {
	case id := <-calls:
		if id.Subject != "alice" {
			t.Errorf("OnDisconnect identity = %+v, expected alice", id)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("OnDisconnect not called within 2s")
	}
	select {
	case id := <-calls:
		t.Errorf("OnDisconnect called again with %+v, expected once", id)
	case <-time.After(200 * time.Millisecond):
	}
}

func TestNamespaceBinding(t *testing.T) {
	ts := newTestServer(t, "/chat", adapter.Config{AuthTimeout: 300 * time.Millisecond})
	ts.binding.OnEvent("echo", func(conn socketio.Conn, id adapter.Identity, text string) {
		conn.Emit("echoed", text)
	})
	c := dial(t, ts.url, "/chat")

	c.emit("echo", `"early"`)
	c.expectNoPacket(100 * time.Millisecond)
	c.authenticate("code-alice")
	c.emit("echo", `"late"`)

	p := c.expectEvent("echoed")
	if p.namespace != "/chat" {
		t.Errorf("echoed packet %q, expected namespace /chat", p.raw)
	}

	c.emit(adapter.EventLogout)
	c.expectEvent(adapter.EventLoggedOut)
	c.expectServerDisconnect()
}

func TestNamespaceTimeout(t *testing.T) {
	ts := newTestServer(t, "/chat", adapter.Config{AuthTimeout: 100 * time.Millisecond})
	c := dial(t, ts.url, "/chat")

	p := c.expectEvent(adapter.EventUnauthorized)
	if p.namespace != "/chat" {
		t.Errorf("unauthorized packet %q, expected namespace /chat", p.raw)
	}
	c.expectServerDisconnect()
}

func TestRandomSessionIDs(t *testing.T) {
	ts := newTestServer(t, "/", adapter.Config{})
	first := dial(t, ts.url, "/")
	second := dial(t, ts.url, "/")

	pattern := regexp.MustCompile(`^[A-Z2-7]{26,}$`)
	for _, sid := range []string{first.sid, second.sid} {
		if !pattern.MatchString(sid) {
			t.Errorf("session id %q, expected at least 26 base32 characters", sid)
		}
	}
	if first.sid == second.sid {
		t.Errorf("two connections share session id %q", first.sid)
	}
}

func TestOnEventRejectsBadHandlers(t *testing.T) {
	tests := []struct {
		name    string
		event   string
		handler any
	}{
		{name: "not a func", event: "x", handler: 42},
		{name: "no identity", event: "x", handler: func(socketio.Conn, string) {}},
		{name: "identity first", event: "x", handler: func(adapter.Identity, socketio.Conn) {}},
		{name: "variadic", event: "x", handler: func(socketio.Conn, adapter.Identity, ...string) {}},
		{name: "authenticate", event: adapter.EventAuthenticate, handler: func(socketio.Conn, adapter.Identity) {}},
		{name: "logout", event: adapter.EventLogout, handler: func(socketio.Conn, adapter.Identity) {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestServer(t, "/", adapter.Config{})
			defer func() {
				if recover() == nil {
					t.Error("OnEvent did not panic")
				}
			}()
			ts.binding.OnEvent(tt.event, tt.handler)
		})
	}
}

func TestAttachRejectsBadArguments(t *testing.T) {
	if _, err := Attach(nil, "/", adapter.Config{Authority: newFakeAuthority()}); err == nil {
		t.Error("Attach(nil server) succeeded, expected an error")
	}
	if _, err := Attach(NewServer(nil), "chat", adapter.Config{Authority: newFakeAuthority()}); err == nil {
		t.Error("Attach with namespace chat succeeded, expected an error")
	}
	if _, err := New(NewServer(nil), adapter.Config{}); err == nil {
		t.Error("New without an authority succeeded, expected an error")
	}
}

// waitUntil polls cond for up to 2 seconds.
func waitUntil(tb testing.TB, cond func() bool, what string) {
	tb.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
