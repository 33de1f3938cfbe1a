package gosocketio

import (
	"strconv"
	"testing"
	"time"

	socketio "github.com/googollee/go-socket.io"

	"github.com/sockauth/sockauth/adapter"
)

// newPublicChatServer binds the flow to the root namespace and serves /chat
// without authentication.
func newPublicChatServer(t *testing.T) *testServer {
	ts := newTestServer(t, "/", adapter.Config{AuthTimeout: 300 * time.Millisecond})
	ts.server.OnConnect("/chat", func(socketio.Conn) error { return nil })
	ts.server.OnEvent("/chat", "echo", func(conn socketio.Conn, text string) {
		conn.Emit("echoed", text)
	})
	return ts
}

// TestAuthenticatedRootBesidePublicNamespace shows that a socket.io 2.x
// client, which always joins the root namespace too, must authenticate on
// an authenticated root even when it uses only a public namespace.
func TestAuthenticatedRootBesidePublicNamespace(t *testing.T) {
	ts := newPublicChatServer(t)
	public := dial(t, ts.url, "/chat")
	public.emit("echo", `"hello"`)
	if p := public.expectEvent("echoed"); len(p.args) != 1 || string(p.args[0]) != `"hello"` {
		t.Errorf("echoed packet %q, expected [\"hello\"]", p.raw)
	}

	// The root namespace of that client times out, and closing the
	// connection ends /chat too.
	p := public.next(2 * time.Second)
	if p.kind != '2' || p.event != adapter.EventUnauthorized || p.namespace != "" {
		t.Fatalf("got packet %q, expected unauthorized on the root namespace", p.raw)
	}
	if code := unauthorizedCode(t, p); code != string(adapter.CodeAuthenticationTimeout) {
		t.Errorf("code = %q, expected authentication_timeout", code)
	}
}

func TestPublicNamespaceAfterRootAuthentication(t *testing.T) {
	ts := newPublicChatServer(t)
	c := dial(t, ts.url, "/chat")

	// Authenticate on the root namespace of the same connection.
	c.send(`2["authenticate",{"token":"code-alice"}]`)
	p := c.next(2 * time.Second)
	if p.kind != '2' || p.event != adapter.EventAuthenticated || p.namespace != "" || p.id < 0 {
		t.Fatalf("got packet %q, expected authenticated with an ack id on the root namespace", p.raw)
	}
	c.send("3" + strconv.Itoa(p.id) + "[]")

	c.expectNoPacket(500 * time.Millisecond)
	c.emit("echo", `"still here"`)
	c.expectEvent("echoed")
}
