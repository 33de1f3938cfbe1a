package socketio

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/sockauth/sockauth/adapter"
	"github.com/sockauth/sockauth/internal/proxytest"
)

// echoHandler emits "echo" back to the socket with the subject and the
// event's arguments, and acknowledges with "ok" when asked to.
func echoHandler(s *socket.Socket, id adapter.Identity, args ...any) {
	if len(args) > 0 {
		if ack, ok := args[len(args)-1].(socket.Ack); ok {
			ack([]any{"ok", id.Subject}, nil)
			return
		}
	}
	_ = s.Emit("echo", append([]any{id.Subject}, args...)...)
}

func withEcho(_ *socket.Server, b *Binding) {
	b.OnEvent("echo", echoHandler)
}

func TestAuthenticateEventFlow(t *testing.T) {
	ts := newTestServer(t, "/", adapter.Config{}, nil, withEcho)
	c := dial(t, ts.url, "/")

	token := c.authenticate("code-alice")
	if token != "session-1" {
		t.Errorf("authenticated token = %q, expected session-1", token)
	}
	waitUntil(t, func() bool { return slices.Equal(ts.authority.confirmedTokens(), []string{"session-1"}) }, "the ack confirms session-1")

	c.emit("echo", `"hi"`)
	p := c.expectEvent("echo")
	if len(p.args) != 2 || string(p.args[0]) != `"alice"` || string(p.args[1]) != `"hi"` {
		t.Errorf("echo packet %q, expected [\"alice\",\"hi\"]", p.raw)
	}
}

func TestBareStringToken(t *testing.T) {
	ts := newTestServer(t, "/", adapter.Config{}, nil, nil)
	c := dial(t, ts.url, "/")

	c.emit(adapter.EventAuthenticate, `"code-bob"`)
	c.expectAuthenticated()
}

func TestAuthenticateEventWithAckCallback(t *testing.T) {
	ts := newTestServer(t, "/", adapter.Config{}, nil, nil)
	c := dial(t, ts.url, "/")

	// A client that passes a callback to emit adds an ack id; the binding
	// must still read the token from the first argument.
	c.emitWithAck(7, adapter.EventAuthenticate, `{"token":"code-alice"}`)
	c.expectAuthenticated()
}

func TestRejectedAuthenticateDisconnects(t *testing.T) {
	tests := []struct {
		name    string
		payload string
	}{
		{"unknown token", `{"token":"forged"}`},
		{"number", `42`},
		{"array", `["code-alice"]`},
		{"empty token", `{"token":""}`},
		{"no token member", `{"code":"code-alice"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestServer(t, "/", adapter.Config{}, nil, nil)
			c := dial(t, ts.url, "/")

			c.emit(adapter.EventAuthenticate, tc.payload)

			p := c.expectEvent(adapter.EventUnauthorized)
			if code := unauthorizedCode(t, p); code != string(adapter.CodeInvalidToken) {
				t.Errorf("code = %q, expected invalid_token", code)
			}
			c.expectServerDisconnect()
		})
	}
}

func TestAuthenticationTimeout(t *testing.T) {
	ts := newTestServer(t, "/", adapter.Config{AuthTimeout: 200 * time.Millisecond}, nil, nil)
	c := dial(t, ts.url, "/")

	p := c.expectEvent(adapter.EventUnauthorized)
	if code := unauthorizedCode(t, p); code != string(adapter.CodeAuthenticationTimeout) {
		t.Errorf("code = %q, expected authentication_timeout", code)
	}
	c.expectServerDisconnect()
}

func TestExpiryDisconnects(t *testing.T) {
	authority := newFakeAuthority()
	authority.tokenTTL = 300 * time.Millisecond
	ts := newTestServer(t, "/", adapter.Config{}, authority, nil)
	c := dial(t, ts.url, "/")
	c.authenticate("code-alice")

	p := c.expectEvent(adapter.EventUnauthorized)
	if code := unauthorizedCode(t, p); code != string(adapter.CodeTokenExpired) {
		t.Errorf("code = %q, expected token_expired", code)
	}
	c.expectServerDisconnect()
}

func TestRefreshOnLiveSocket(t *testing.T) {
	ts := newTestServer(t, "/", adapter.Config{}, nil, withEcho)
	c := dial(t, ts.url, "/")
	first := c.authenticate("code-alice")

	second := c.authenticate(first)
	if second == first {
		t.Errorf("refresh returned the presented token %q, expected its successor", first)
	}

	c.emit("echo", `"after refresh"`)
	c.expectEvent("echo")
}

func TestEventsGatedUntilAuthenticated(t *testing.T) {
	var mu sync.Mutex
	var own []string
	ts := newTestServer(t, "/", adapter.Config{}, nil, func(server *socket.Server, b *Binding) {
		b.OnEvent("echo", echoHandler)
		// A handler that the application registers on the socket itself is
		// gated too.
		_ = server.Of("/", nil).On("connection", func(args ...any) {
			s := args[0].(*socket.Socket)
			_ = s.On("own", func(args ...any) {
				mu.Lock()
				defer mu.Unlock()
				text, _ := args[0].(string)
				own = append(own, text)
			})
		})
	})
	c := dial(t, ts.url, "/")

	c.emit("echo", `"before"`)
	c.emit("own", `"before"`)
	c.emitWithAck(3, "echo", `"before with ack"`)
	c.expectNoPacket(200 * time.Millisecond)
	if got := ts.binding.Flow().Dropped(); got != 3 {
		t.Errorf("Dropped = %d, expected 3", got)
	}

	c.authenticate("code-alice")
	c.emit("own", `"after"`)
	c.emitWithAck(4, "echo", `"after with ack"`)
	p := c.next(wait)
	if p.kind != '3' || p.id != 4 || len(p.args) != 2 || string(p.args[0]) != `"ok"` {
		t.Errorf("got packet %q, expected ack 4 with [\"ok\",\"alice\"]", p.raw)
	}

	waitUntil(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(own) > 0
	}, "the application's own handler runs")
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(own, []string{"after"}) {
		t.Errorf("own handler saw %q, expected only [after]", own)
	}
}

func TestLogoutDisconnectsSession(t *testing.T) {
	ts := newTestServer(t, "/", adapter.Config{}, nil, nil)
	first := dial(t, ts.url, "/")
	token := first.authenticate("code-alice")
	second := dial(t, ts.url, "/")
	token = second.authenticate(token)
	other := dial(t, ts.url, "/")
	other.authenticate("code-bob")

	second.emit(adapter.EventLogout, `{"token":"`+token+`"}`)

	for name, c := range map[string]*client{"first": first, "second": second} {
		p := c.expectEvent(adapter.EventLoggedOut)
		if len(p.args) != 1 || string(p.args[0]) != `{"reason":"logout"}` {
			t.Errorf("%s: logged_out packet %q, expected {reason: logout}", name, p.raw)
		}
		c.expectServerDisconnect()
	}
	other.expectNoPacket(200 * time.Millisecond)
}

func TestLogoutWithoutTokenUsesCurrentOne(t *testing.T) {
	ts := newTestServer(t, "/", adapter.Config{}, nil, nil)
	c := dial(t, ts.url, "/")
	c.authenticate("code-alice")

	c.emit(adapter.EventLogout)

	c.expectEvent(adapter.EventLoggedOut)
	c.expectServerDisconnect()
}

func TestHandshakeTokenSources(t *testing.T) {
	tests := []struct {
		name string
		opts dialOptions
	}{
		{"auth payload", dialOptions{auth: `{"token":"code-alice"}`}},
		{"query parameter", dialOptions{query: url.Values{"token": {"code-alice"}}}},
		{"bearer header", dialOptions{header: http.Header{"Authorization": {"Bearer code-alice"}}}},
		{"bearer scheme in lower case", dialOptions{header: http.Header{"Authorization": {"bearer code-alice"}}}},
		{"auth payload before query", dialOptions{auth: `{"token":"code-alice"}`, query: url.Values{"token": {"forged"}}}},
		{"query before header", dialOptions{query: url.Values{"token": {"code-alice"}}, header: http.Header{"Authorization": {"Bearer forged"}}}},
		{"null auth token falls back on the header", dialOptions{auth: `{"token":null}`, header: http.Header{"Authorization": {"Bearer code-alice"}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestServer(t, "/", adapter.Config{}, nil, withEcho)
			c := open(t, ts.url, tc.opts)

			c.expectConnect()
			token := c.expectAuthenticated()
			if token != "session-1" {
				t.Errorf("authenticated token = %q, expected session-1", token)
			}
			if got := ts.authority.presentedTokens(); !slices.Equal(got, []string{"code-alice"}) {
				t.Errorf("tokens presented to the authority = %q, expected [code-alice]", got)
			}
			waitUntil(t, func() bool { return slices.Equal(ts.authority.confirmedTokens(), []string{"session-1"}) }, "the ack confirms session-1")

			c.emit("echo", `"hi"`)
			c.expectEvent("echo")
		})
	}
}

func TestHandshakeRejected(t *testing.T) {
	tests := []struct {
		name string
		opts dialOptions
		// presented reports whether the token reaches the authority.
		presented bool
	}{
		{"unknown token", dialOptions{auth: `{"token":"forged"}`}, true},
		{"empty token", dialOptions{auth: `{"token":""}`}, false},
		{"token not a string", dialOptions{auth: `{"token":42}`}, false},
		{"unknown query token", dialOptions{query: url.Values{"token": {"forged"}}}, true},
		{"repeated query token", dialOptions{query: url.Values{"token": {"code-alice", "code-bob"}}}, false},
		{"unknown bearer token", dialOptions{header: http.Header{"Authorization": {"Bearer forged"}}}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestServer(t, "/", adapter.Config{}, nil, nil)
			c := open(t, ts.url, tc.opts)

			p := c.next(wait)
			if p.kind != '4' {
				t.Fatalf("got packet %q, expected a CONNECT_ERROR packet", p.raw)
			}
			if code := decodeUnauthorized(t, p.data); code != string(adapter.CodeInvalidToken) {
				t.Errorf("code = %q, expected invalid_token", code)
			}
			if got := len(ts.authority.presentedTokens()) > 0; got != tc.presented {
				t.Errorf("token presented to the authority: %v, expected %v", got, tc.presented)
			}

			// The socket was never admitted, so an event gets no reply.
			c.emit(adapter.EventAuthenticate, `{"token":"code-alice"}`)
			c.expectNoPacket(200 * time.Millisecond)
		})
	}
}

func TestHandshakeIgnoresOtherAuthorizationSchemes(t *testing.T) {
	ts := newTestServer(t, "/", adapter.Config{}, nil, nil)
	c := open(t, ts.url, dialOptions{header: http.Header{"Authorization": {"Basic YWxpY2U6c2VjcmV0"}}})

	c.expectConnect()
	c.expectNoPacket(100 * time.Millisecond)
	c.authenticate("code-alice")
}

func TestHandshakeSocketRefreshesAndLogsOut(t *testing.T) {
	ts := newTestServer(t, "/", adapter.Config{}, nil, nil)
	c := open(t, ts.url, dialOptions{auth: `{"token":"code-alice"}`})
	c.expectConnect()
	first := c.expectAuthenticated()

	second := c.authenticate(first)

	c.emit(adapter.EventLogout, `{"token":"`+second+`"}`)
	c.expectEvent(adapter.EventLoggedOut)
	c.expectServerDisconnect()
}

func TestHandshakeExpiryDisconnects(t *testing.T) {
	authority := newFakeAuthority()
	authority.tokenTTL = 300 * time.Millisecond
	ts := newTestServer(t, "/", adapter.Config{}, authority, nil)
	c := open(t, ts.url, dialOptions{auth: `{"token":"code-alice"}`})
	c.expectConnect()
	c.expectAuthenticated()

	p := c.expectEvent(adapter.EventUnauthorized)
	if code := unauthorizedCode(t, p); code != string(adapter.CodeTokenExpired) {
		t.Errorf("code = %q, expected token_expired", code)
	}
	c.expectServerDisconnect()
}

func TestOnAuthenticatedAndOnDisconnect(t *testing.T) {
	type call struct {
		hook, subject, reason string
	}
	calls := make(chan call, 10)
	ts := newTestServer(t, "/", adapter.Config{}, nil, func(_ *socket.Server, b *Binding) {
		b.OnAuthenticated(func(s *socket.Socket, id adapter.Identity) {
			calls <- call{hook: "authenticated", subject: id.Subject}
			// Emitting from the hook is safe.
			_ = s.Emit("welcome", id.Subject)
		})
		b.OnDisconnect(func(s *socket.Socket, id adapter.Identity, reason string) {
			calls <- call{hook: "disconnect", subject: id.Subject, reason: reason}
		})
	})

	c := open(t, ts.url, dialOptions{auth: `{"token":"code-alice"}`})
	c.expectConnect()
	c.expectAuthenticated()
	c.expectEvent("welcome")
	c.send("1" + c.prefix())

	for _, want := range []call{
		{hook: "authenticated", subject: "alice"},
		{hook: "disconnect", subject: "alice", reason: "client namespace disconnect"},
	} {
		select {
		case got := <-calls:
			if got != want {
				t.Errorf("hook call %+v, expected %+v", got, want)
			}
		case <-time.After(wait):
			t.Fatalf("no %s hook call within %v", want.hook, wait)
		}
	}
}

// TestNamespaces serves an authenticated namespace beside a public one, in
// both arrangements, on one server and one connection per client.
func TestNamespaces(t *testing.T) {
	tests := []struct {
		name              string
		protected, public string
	}{
		{"public root and authenticated /chat", "/chat", "/"},
		{"authenticated root and public /chat", "/", "/chat"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestServer(t, tc.protected, adapter.Config{AuthTimeout: 500 * time.Millisecond}, nil, func(server *socket.Server, b *Binding) {
				b.OnEvent("echo", echoHandler)
				public := server.Of(tc.public, nil)
				if err := ConnectInOrder(public); err != nil {
					t.Fatalf("ConnectInOrder: %v", err)
				}
				_ = public.On("connection", func(args ...any) {
					s := args[0].(*socket.Socket)
					_ = s.On("echo", func(args ...any) {
						_ = s.Emit("echo", append([]any{"public"}, args...)...)
					})
				})
			})

			public := dial(t, ts.url, tc.public)
			public.emit("echo", `"hi"`)
			if p := public.expectEvent("echo"); string(p.args[0]) != `"public"` {
				t.Errorf("public echo %q, expected it from the public handler", p.raw)
			}

			protected := dial(t, ts.url, tc.protected)
			protected.emit("echo", `"hi"`)
			protected.expectNoPacket(100 * time.Millisecond)
			protected.authenticate("code-alice")
			protected.emit("echo", `"hi"`)
			if p := protected.expectEvent("echo"); string(p.args[0]) != `"alice"` {
				t.Errorf("protected echo %q, expected it for alice", p.raw)
			}

			// The public namespace has no auth timeout.
			public.expectNoPacket(700 * time.Millisecond)
			public.emit("echo", `"still here"`)
			public.expectEvent("echo")

			// A rejected handshake token fails only the protected namespace.
			rejected := open(t, ts.url, dialOptions{namespace: tc.protected, auth: `{"token":"forged"}`})
			if p := rejected.next(wait); p.kind != '4' || p.namespace != rejected.wireNamespace() {
				t.Errorf("got packet %q, expected a CONNECT_ERROR for %s", p.raw, tc.protected)
			}
			publicWithToken := open(t, ts.url, dialOptions{namespace: tc.public, auth: `{"token":"forged"}`})
			publicWithToken.expectConnect()
		})
	}
}

func TestCloseRejectsHandshakes(t *testing.T) {
	ts := newTestServer(t, "/", adapter.Config{}, nil, nil)
	ts.binding.Close()

	c := open(t, ts.url, dialOptions{auth: `{"token":"code-alice"}`})
	p := c.next(wait)
	if p.kind != '4' {
		t.Fatalf("got packet %q, expected a CONNECT_ERROR packet", p.raw)
	}
	var payload struct {
		Message string `json:"message"`
	}
	if err := json.Unmarshal(p.data, &payload); err != nil || payload.Message != errClosedMessage {
		t.Errorf("connect error %s, expected message %q", p.data, errClosedMessage)
	}

	unauthenticated := open(t, ts.url, dialOptions{})
	unauthenticated.expectConnect()
	unauthenticated.expectServerDisconnect()
}

func TestOnEventRejectsReservedEvents(t *testing.T) {
	ts := newTestServer(t, "/", adapter.Config{}, nil, nil)
	for _, event := range []string{adapter.EventAuthenticate, adapter.EventLogout} {
		t.Run(event, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("OnEvent(%q) did not panic", event)
				}
			}()
			ts.binding.OnEvent(event, echoHandler)
		})
	}
	t.Run("nil handler", func(t *testing.T) {
		defer func() {
			if recover() == nil {
				t.Error("OnEvent with a nil handler did not panic")
			}
		}()
		ts.binding.OnEvent("echo", nil)
	})
}

func TestAttachRejectsBadArguments(t *testing.T) {
	authority := newFakeAuthority()
	if _, err := Attach(nil, "/", adapter.Config{Authority: authority}); err == nil {
		t.Error("Attach with a nil server succeeded")
	}
	server := socket.NewServer(nil, nil)
	defer server.Close(nil)
	if _, err := Attach(server, "chat", adapter.Config{Authority: authority}); err == nil {
		t.Error("Attach with namespace \"chat\" succeeded, expected an error for the missing slash")
	}
	if _, err := Attach(server, "/", adapter.Config{}); err == nil {
		t.Error("Attach without an authority succeeded")
	}
}

// TestEmitRightAfterConnect sends an event as soon as the CONNECT packet
// arrives, as socket.io-client does with events buffered before the
// connection, on many connections of a protected and a public namespace.
func TestEmitRightAfterConnect(t *testing.T) {
	const clients = 20
	ts := newTestServer(t, "/", adapter.Config{}, nil, func(server *socket.Server, b *Binding) {
		public := server.Of("/public", nil)
		if err := ConnectInOrder(public); err != nil {
			t.Fatalf("ConnectInOrder: %v", err)
		}
		_ = public.On("connection", func(args ...any) {
			s := args[0].(*socket.Socket)
			_ = s.On("echo", func(args ...any) {
				_ = s.Emit("echo", args...)
			})
		})
	})

	for i := range clients {
		protected := dial(t, ts.url, "/")
		protected.emit(adapter.EventAuthenticate, `{"token":"code-alice"}`)
		protected.expectAuthenticated()

		public := dial(t, ts.url, "/public")
		public.emit("echo", strconv.Itoa(i))
		if p := public.expectEvent("echo"); len(p.args) != 1 || string(p.args[0]) != strconv.Itoa(i) {
			t.Errorf("public echo %q, expected [%d]", p.raw, i)
		}
	}
}

func TestSocketReportsClientAddress(t *testing.T) {
	addresses := make(chan string, 1)
	ts := newTestServer(t, "/", adapter.Config{}, nil, func(_ *socket.Server, b *Binding) {
		b.OnAuthenticated(func(s *socket.Socket, _ adapter.Identity) {
			addresses <- (&boundSocket{socket: s, flow: b.flow}).ClientAddress()
		})
	})
	c := open(t, ts.url, dialOptions{auth: `{"token":"code-alice"}`})
	c.expectConnect()
	c.expectAuthenticated()

	select {
	case got := <-addresses:
		if got != "127.0.0.1" {
			t.Errorf("ClientAddress = %q, expected 127.0.0.1", got)
		}
	case <-time.After(wait):
		t.Fatal("OnAuthenticated not called")
	}
}

func TestAddressLimitBehindProxy(t *testing.T) {
	// Each forwarded client may authenticate once. The proxy connects from
	// loopback, which is trusted by default, and the test client connects
	// to the proxy from loopback too, so the client address is the entry
	// left of both: the address that the request brought.
	limit := adapter.RateLimit{PerSecond: 0.001, Burst: 1}
	tests := []struct {
		name    string
		trusted []netip.Prefix
		// limited reports whether the second socket from 203.0.113.7 is over
		// the limit.
		limited bool
	}{
		{name: "loopback proxy trusted by default", limited: true},
		// Without a trusted proxy every socket has the proxy's loopback
		// address, which has no limit.
		{name: "no trusted proxy", trusted: []netip.Prefix{}, limited: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestServer(t, "/", adapter.Config{AddressAuthenticateLimit: limit, TrustedProxies: tc.trusted}, nil, nil)
			proxy := proxytest.New(t, ts.url)
			from := func(address string) dialOptions {
				return dialOptions{header: http.Header{"X-Forwarded-For": {address}}}
			}

			first := open(t, proxy.URL, from("203.0.113.7"))
			first.expectConnect()
			first.authenticate("code-alice")

			second := open(t, proxy.URL, from("203.0.113.7"))
			second.expectConnect()
			second.emit(adapter.EventAuthenticate, `{"token":"code-bob"}`)
			if tc.limited {
				if got := unauthorizedCode(t, second.expectEvent(adapter.EventUnauthorized)); got != string(adapter.CodeRateLimited) {
					t.Errorf("second socket of 203.0.113.7: code %q, expected %s", got, adapter.CodeRateLimited)
				}
			} else {
				second.expectAuthenticated()
			}

			other := open(t, proxy.URL, from("203.0.113.8"))
			other.expectConnect()
			other.authenticate("code-bob")

			// The handshake path resolves the address the same way.
			handshake := open(t, proxy.URL, dialOptions{auth: `{"token":"code-alice"}`,
				header: http.Header{"X-Forwarded-For": {"203.0.113.8"}}})
			p := handshake.next(wait)
			switch {
			case tc.limited && p.kind != '4':
				t.Errorf("handshake of 203.0.113.8 got packet %q, expected CONNECT_ERROR", p.raw)
			case tc.limited:
				if code := decodeUnauthorized(t, p.data); code != string(adapter.CodeRateLimited) {
					t.Errorf("handshake of 203.0.113.8: code %q, expected %s", code, adapter.CodeRateLimited)
				}
			case p.kind != '0':
				t.Errorf("handshake of 203.0.113.8 got packet %q, expected CONNECT", p.raw)
			}
		})
	}
}

func TestSocketReportsForwardedClientAddress(t *testing.T) {
	addresses := make(chan string, 1)
	ts := newTestServer(t, "/", adapter.Config{}, nil, func(_ *socket.Server, b *Binding) {
		b.OnAuthenticated(func(s *socket.Socket, _ adapter.Identity) {
			addresses <- (&boundSocket{socket: s, flow: b.flow}).ClientAddress()
		})
	})
	proxy := proxytest.New(t, ts.url)
	c := open(t, proxy.URL, dialOptions{auth: `{"token":"code-alice"}`,
		header: http.Header{"X-Forwarded-For": {"192.0.2.50, 2001:db8::7"}}})
	c.expectConnect()
	c.expectAuthenticated()

	select {
	case got := <-addresses:
		if got != "2001:db8::7" {
			t.Errorf("ClientAddress = %q, expected 2001:db8::7", got)
		}
	case <-time.After(wait):
		t.Fatal("OnAuthenticated not called")
	}
}
