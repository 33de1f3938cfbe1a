package gosocketio

import (
	"testing"

	socketio "github.com/googollee/go-socket.io"

	"github.com/sockauth/sockauth/adapter"
)

func TestUnauthenticatedCapOverWebsocket(t *testing.T) {
	ts := newTestServer(t, "/", adapter.Config{MaxUnauthenticatedSockets: 1})
	waiting := dial(t, ts.url, "/")

	over := dial(t, ts.url, "/")

	if got := unauthorizedCode(t, over.expectEvent(adapter.EventUnauthorized)); got != string(adapter.CodeTooManyConnections) {
		t.Errorf("unauthorized code = %q, expected %s", got, adapter.CodeTooManyConnections)
	}
	over.expectServerDisconnect()
	waiting.authenticate("code-alice")
}

func TestClientAddressOfConnection(t *testing.T) {
	ts := newTestServer(t, "/", adapter.Config{})
	conns := make(chan socketio.Conn, 1)
	ts.binding.OnAuthenticated(func(conn socketio.Conn, _ adapter.Identity) { conns <- conn })
	c := dial(t, ts.url, "/")

	c.authenticate("code-alice")

	conn := <-conns
	if got := (&socket{conn: conn, binding: ts.binding}).ClientAddress(); got != "127.0.0.1" {
		t.Errorf("ClientAddress() = %q, expected 127.0.0.1", got)
	}
}
