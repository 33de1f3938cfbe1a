package gosocketio

import (
	"net/http"
	"net/netip"
	"testing"

	socketio "github.com/googollee/go-socket.io"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sockauth/sockauth/adapter"
	"github.com/sockauth/sockauth/internal/proxytest"
)

func TestUnauthenticatedCapOverWebsocket(t *testing.T) {
	registry := prometheus.NewRegistry()
	ts := newTestServer(t, "/", adapter.Config{MaxUnauthenticatedSockets: 1, Registerer: registry})
	waiting := dial(t, ts.url, "/")
	// go-socket.io writes the connect packet before it runs the connect
	// handler, so the flow may not have counted the first socket yet when
	// the client reads that packet.
	waitUntil(t, func() bool { return gaugeValue(t, registry, "sockauth_adapter_sockets_connected") == 1 },
		"the flow counted the first socket")

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

func TestAddressLimitBehindProxy(t *testing.T) {
	// The proxy and the test client both connect from loopback, which is
	// trusted by default, so the client address is the one that the
	// request brought in X-Forwarded-For.
	limit := adapter.RateLimit{PerSecond: 0.001, Burst: 1}
	tests := []struct {
		name    string
		trusted []netip.Prefix
		limited bool
	}{
		{name: "loopback proxy trusted by default", limited: true},
		// Without a trusted proxy every socket has the proxy's loopback
		// address, which has no limit.
		{name: "no trusted proxy", trusted: []netip.Prefix{}, limited: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestServer(t, "/", adapter.Config{AddressAuthenticateLimit: limit, TrustedProxies: tc.trusted})
			proxy := proxytest.New(t, ts.url)
			from := func(address string) http.Header { return http.Header{"X-Forwarded-For": {address}} }

			dialWithHeader(t, proxy.URL, "/", from("203.0.113.7")).authenticate("code-alice")

			second := dialWithHeader(t, proxy.URL, "/", from("203.0.113.7"))
			if tc.limited {
				second.emit(adapter.EventAuthenticate, `{"token":"code-bob"}`)
				if got := unauthorizedCode(t, second.expectEvent(adapter.EventUnauthorized)); got != string(adapter.CodeRateLimited) {
					t.Errorf("second socket of 203.0.113.7: code %q, expected %s", got, adapter.CodeRateLimited)
				}
			} else {
				second.authenticate("code-bob")
			}

			dialWithHeader(t, proxy.URL, "/", from("203.0.113.8")).authenticate("code-bob")
		})
	}
}

func TestClientAddressBehindProxy(t *testing.T) {
	ts := newTestServer(t, "/", adapter.Config{})
	conns := make(chan socketio.Conn, 1)
	ts.binding.OnAuthenticated(func(conn socketio.Conn, _ adapter.Identity) { conns <- conn })
	proxy := proxytest.New(t, ts.url)
	c := dialWithHeader(t, proxy.URL, "/", http.Header{"X-Forwarded-For": {"192.0.2.50, 203.0.113.7"}})

	c.authenticate("code-alice")

	conn := <-conns
	if got := (&socket{conn: conn, binding: ts.binding}).ClientAddress(); got != "203.0.113.7" {
		t.Errorf("ClientAddress() = %q, expected 203.0.113.7", got)
	}
}
