package socketio

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sockauth/sockauth/adapter"
	sockauthv1 "github.com/sockauth/sockauth/gen/sockauth/v1"
)

// This file holds the test fixtures: a fake authority, a loopback server and
// a minimal socket.io client of protocol 5 over an Engine.IO 4 websocket.

const wait = 3 * time.Second

// fakeAuthority accepts the codes "code-alice" and "code-bob" (sessions
// "sid-alice" and "sid-bob") and the session tokens it issued, and rejects
// every other token as TOKEN_INVALID. Its tokens live tokenTTL, one hour
// unless a test sets it.
type fakeAuthority struct {
	mu        sync.Mutex
	issued    map[string]string // session token → session id
	presented []string
	confirmed []string
	loggedOut []string
	n         int
	tokenTTL  time.Duration
}

var _ sockauthv1.AuthorityServiceClient = (*fakeAuthority)(nil)

func newFakeAuthority() *fakeAuthority {
	return &fakeAuthority{issued: make(map[string]string), tokenTTL: time.Hour}
}

func (a *fakeAuthority) IssueCode(context.Context, *sockauthv1.IssueCodeRequest, ...grpc.CallOption) (*sockauthv1.IssueCodeResponse, error) {
	return nil, status.Error(codes.Unimplemented, "not used by the adapter")
}

func (a *fakeAuthority) Authenticate(_ context.Context, req *sockauthv1.AuthenticateRequest, _ ...grpc.CallOption) (*sockauthv1.AuthenticateResponse, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.presented = append(a.presented, req.GetToken())

	var sid string
	switch token := req.GetToken(); token {
	case "code-alice":
		sid = "sid-alice"
	case "code-bob":
		sid = "sid-bob"
	default:
		var ok bool
		if sid, ok = a.issued[token]; !ok {
			return nil, invalidToken()
		}
	}

	a.n++
	token := fmt.Sprintf("session-%d", a.n)
	a.issued[token] = sid
	subject := strings.TrimPrefix(sid, "sid-")
	return &sockauthv1.AuthenticateResponse{
		Token: token,
		Info: &sockauthv1.TokenInfo{
			TokenId:    fmt.Sprintf("jti-%d", a.n),
			SessionId:  sid,
			Subject:    subject,
			Type:       sockauthv1.TokenType_TOKEN_TYPE_SESSION,
			Generation: uint64(a.n),
			ExpiresAt:  timestamppb.New(time.Now().Add(a.tokenTTL)),
			Claims:     map[string]string{"name": subject},
		},
	}, nil
}

func (a *fakeAuthority) ConfirmRotation(_ context.Context, req *sockauthv1.ConfirmRotationRequest, _ ...grpc.CallOption) (*sockauthv1.ConfirmRotationResponse, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.confirmed = append(a.confirmed, req.GetToken())
	return &sockauthv1.ConfirmRotationResponse{Confirmed: true}, nil
}

func (a *fakeAuthority) Verify(context.Context, *sockauthv1.VerifyRequest, ...grpc.CallOption) (*sockauthv1.VerifyResponse, error) {
	return &sockauthv1.VerifyResponse{Current: true}, nil
}

func (a *fakeAuthority) Logout(_ context.Context, req *sockauthv1.LogoutRequest, _ ...grpc.CallOption) (*sockauthv1.LogoutResponse, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	sid, ok := a.issued[req.GetToken()]
	if !ok {
		return nil, invalidToken()
	}
	a.loggedOut = append(a.loggedOut, sid)
	return &sockauthv1.LogoutResponse{SessionId: sid, Subject: strings.TrimPrefix(sid, "sid-")}, nil
}

// WatchRevocations reports that the fake serves no revocation stream, so a
// Flow that watches falls back on verifying sessions.
func (a *fakeAuthority) WatchRevocations(context.Context, *sockauthv1.WatchRevocationsRequest, ...grpc.CallOption) (grpc.ServerStreamingClient[sockauthv1.WatchRevocationsResponse], error) {
	return nil, status.Error(codes.Unimplemented, "the fake authority serves no revocation stream")
}

func (a *fakeAuthority) presentedTokens() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.presented...)
}

func (a *fakeAuthority) confirmedTokens() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.confirmed...)
}

func invalidToken() error {
	st, _ := status.New(codes.Unauthenticated, "invalid token").WithDetails(&errdetails.ErrorInfo{
		Reason: "TOKEN_INVALID",
		Domain: "sockauth",
	})
	return st.Err()
}

// testServer is a zishang520 socket.io server with a Binding, served on
// loopback.
type testServer struct {
	server    *socket.Server
	binding   *Binding
	authority *fakeAuthority
	url       string
}

// newTestServer serves a Binding on namespace over loopback HTTP and stops
// everything when the test ends. cfg.Authority is replaced by authority, or
// by a new fake when it is nil. setup, when not nil, runs before the server
// starts serving.
func newTestServer(tb testing.TB, namespace string, cfg adapter.Config, authority *fakeAuthority, setup func(*socket.Server, *Binding)) *testServer {
	tb.Helper()
	return newWrappedTestServer(tb, namespace, cfg, authority, setup, nil)
}

// newWrappedTestServer is newTestServer with the server's handler passed
// through wrap, unless wrap is nil.
func newWrappedTestServer(tb testing.TB, namespace string, cfg adapter.Config, authority *fakeAuthority, setup func(*socket.Server, *Binding), wrap func(http.Handler) http.Handler) *testServer {
	tb.Helper()

	if authority == nil {
		authority = newFakeAuthority()
	}
	cfg.Authority = authority
	if cfg.Logger == nil {
		cfg.Logger = testLogger()
	}

	server := socket.NewServer(nil, nil)
	binding, err := Attach(server, namespace, cfg)
	if err != nil {
		tb.Fatalf("Attach: %v", err)
	}
	if setup != nil {
		setup(server, binding)
	}

	mux := http.NewServeMux()
	handler := server.ServeHandler(nil)
	if wrap != nil {
		handler = wrap(handler)
	}
	mux.Handle("/socket.io/", handler)
	httpServer := httptest.NewServer(mux)

	tb.Cleanup(func() {
		binding.Close()
		closed := make(chan struct{})
		server.Close(func(error) { close(closed) })
		<-closed
		httpServer.Close()
	})
	return &testServer{server: server, binding: binding, authority: authority, url: httpServer.URL}
}

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

// packet is a socket.io packet of protocol 5 read by a client.
type packet struct {
	kind      byte // '0' connect, '1' disconnect, '2' event, '3' ack, '4' connect error
	namespace string
	id        int // -1 without ack id
	event     string
	args      []json.RawMessage
	data      json.RawMessage // the payload of connect and connect error packets
	raw       string
}

// client is a minimal socket.io client of protocol 5 over an Engine.IO 4
// websocket. It connects one namespace.
type client struct {
	tb        testing.TB
	conn      *websocket.Conn
	namespace string

	// frames receives the frames read by a background goroutine. It is
	// closed when reading fails, for example when the server closes the
	// connection.
	frames chan string
}

// dialOptions are the handshake inputs of a client.
type dialOptions struct {
	namespace string
	// auth is the raw JSON of the CONNECT packet's payload, or empty.
	auth   string
	query  url.Values
	header http.Header
}

// open opens the Engine.IO connection and sends the namespace's CONNECT
// packet, without waiting for the server's response.
func open(tb testing.TB, baseURL string, opts dialOptions) *client {
	tb.Helper()

	if opts.namespace == "" {
		opts.namespace = "/"
	}
	query := url.Values{"EIO": {"4"}, "transport": {"websocket"}}
	for key, values := range opts.query {
		query[key] = values
	}
	target := "ws" + strings.TrimPrefix(baseURL, "http") + "/socket.io/?" + query.Encode()
	conn, _, err := websocket.DefaultDialer.Dial(target, opts.header)
	if err != nil {
		tb.Fatalf("dialing %s: %v", target, err)
	}

	c := &client{tb: tb, conn: conn, namespace: opts.namespace, frames: make(chan string, 64)}
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		defer close(c.frames)
		for {
			_, data, err := conn.ReadMessage()
			if err != nil {
				return
			}
			c.frames <- string(data)
		}
	}()
	tb.Cleanup(func() {
		_ = conn.Close()
		<-readerDone
	})

	first := c.readFrame(wait)
	if !strings.HasPrefix(first, "0{") {
		tb.Fatalf("first frame = %q, expected an Engine.IO open packet", first)
	}
	c.send("0" + c.prefix() + opts.auth)
	return c
}

// dial connects a client without a handshake token to namespace and waits
// for the server's CONNECT packet.
func dial(tb testing.TB, baseURL, namespace string) *client {
	tb.Helper()
	c := open(tb, baseURL, dialOptions{namespace: namespace})
	c.expectConnect()
	return c
}

// expectConnect reads the namespace's CONNECT packet.
func (c *client) expectConnect() {
	c.tb.Helper()
	p := c.next(wait)
	if p.kind != '0' || p.namespace != c.wireNamespace() {
		c.tb.Fatalf("got packet %q, expected the CONNECT packet of %s", p.raw, c.namespace)
	}
}

// send writes a socket.io packet, without the Engine.IO message type.
func (c *client) send(sioPacket string) {
	c.tb.Helper()
	if err := c.conn.WriteMessage(websocket.TextMessage, []byte("4"+sioPacket)); err != nil {
		c.tb.Fatalf("writing %q: %v", sioPacket, err)
	}
}

// wireNamespace returns the namespace as packets carry it: empty for the
// root.
func (c *client) wireNamespace() string {
	if c.namespace == "/" {
		return ""
	}
	return c.namespace
}

// prefix returns the namespace part of an outgoing packet.
func (c *client) prefix() string {
	if c.namespace == "/" {
		return ""
	}
	return c.namespace + ","
}

// emit sends an event whose arguments are raw JSON texts.
func (c *client) emit(event string, rawArgs ...string) {
	c.tb.Helper()
	name, _ := json.Marshal(event)
	c.send("2" + c.prefix() + "[" + strings.Join(append([]string{string(name)}, rawArgs...), ",") + "]")
}

// emitWithAck sends an event with ack id id.
func (c *client) emitWithAck(id int, event string, rawArgs ...string) {
	c.tb.Helper()
	name, _ := json.Marshal(event)
	c.send("2" + c.prefix() + strconv.Itoa(id) + "[" + strings.Join(append([]string{string(name)}, rawArgs...), ",") + "]")
}

// ack acknowledges the server's packet with ack id id.
func (c *client) ack(id int) {
	c.tb.Helper()
	c.send("3" + c.prefix() + strconv.Itoa(id) + "[]")
}

func (c *client) readFrame(timeout time.Duration) string {
	c.tb.Helper()
	frame, err := c.tryReadFrame(timeout)
	if err != nil {
		c.tb.Fatalf("reading a frame within %v: %v", timeout, err)
	}
	return frame
}

var (
	errTimeout = errors.New("timed out")
	errClosed  = errors.New("connection closed")
)

func (c *client) tryReadFrame(timeout time.Duration) (string, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case frame, ok := <-c.frames:
		if !ok {
			return "", errClosed
		}
		return frame, nil
	case <-timer.C:
		return "", errTimeout
	}
}

// next returns the next socket.io packet. It replies to Engine.IO pings and
// skips other Engine.IO packets.
func (c *client) next(timeout time.Duration) packet {
	c.tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		frame := c.readFrame(time.Until(deadline))
		if frame == "2" {
			_ = c.conn.WriteMessage(websocket.TextMessage, []byte("3"))
			continue
		}
		if strings.HasPrefix(frame, "4") {
			return parsePacket(c.tb, frame[1:])
		}
	}
}

// expectEvent reads the next packet and checks that it is event.
func (c *client) expectEvent(event string) packet {
	c.tb.Helper()
	p := c.next(wait)
	if p.kind != '2' || p.event != event {
		c.tb.Fatalf("got packet %q, expected event %q", p.raw, event)
	}
	return p
}

// expectNoPacket checks that no socket.io packet arrives within d.
func (c *client) expectNoPacket(d time.Duration) {
	c.tb.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		frame, err := c.tryReadFrame(time.Until(deadline))
		if err != nil {
			return
		}
		if strings.HasPrefix(frame, "4") {
			c.tb.Fatalf("got packet %q, expected none", frame[1:])
		}
	}
}

// expectServerDisconnect reads the DISCONNECT packet of the client's
// namespace.
func (c *client) expectServerDisconnect() {
	c.tb.Helper()
	p := c.next(wait)
	if p.kind != '1' || p.namespace != c.wireNamespace() {
		c.tb.Fatalf("got packet %q, expected a DISCONNECT packet for %s", p.raw, c.namespace)
	}
}

func parsePacket(tb testing.TB, s string) packet {
	tb.Helper()
	p := packet{raw: s, id: -1}
	if s == "" {
		tb.Fatal("empty socket.io packet")
	}
	p.kind = s[0]
	rest := s[1:]

	if strings.HasPrefix(rest, "/") {
		end := strings.IndexByte(rest, ',')
		if end < 0 {
			p.namespace, rest = rest, ""
		} else {
			p.namespace, rest = rest[:end], rest[end+1:]
		}
	}

	digits := 0
	for digits < len(rest) && rest[digits] >= '0' && rest[digits] <= '9' {
		digits++
	}
	if digits > 0 {
		p.id, _ = strconv.Atoi(rest[:digits])
		rest = rest[digits:]
	}

	if rest == "" {
		return p
	}
	if p.kind == '0' || p.kind == '4' {
		p.data = json.RawMessage(rest)
		return p
	}
	var data []json.RawMessage
	if err := json.Unmarshal([]byte(rest), &data); err != nil {
		tb.Fatalf("packet %q: data is not a JSON array: %v", s, err)
	}
	if p.kind == '2' && len(data) > 0 {
		_ = json.Unmarshal(data[0], &p.event)
		data = data[1:]
	}
	p.args = data
	return p
}

// unauthorizedError is the payload of unauthorized, and of a connect error
// caused by a rejected handshake token.
type unauthorizedError struct {
	Message string `json:"message"`
	Data    struct {
		Message string `json:"message"`
		Code    string `json:"code"`
		Type    string `json:"type"`
	} `json:"data"`
}

// decodeUnauthorized decodes raw as an unauthorized payload and returns its
// code, checking the shape that socketio-jwt clients handle.
func decodeUnauthorized(tb testing.TB, raw json.RawMessage) string {
	tb.Helper()
	var payload unauthorizedError
	if err := json.Unmarshal(raw, &payload); err != nil {
		tb.Fatalf("payload %s: expected {message, data}: %v", raw, err)
	}
	if payload.Data.Type != "UnauthorizedError" || payload.Message == "" || payload.Message != payload.Data.Message {
		tb.Errorf("payload = %+v, expected type UnauthorizedError and equal non-empty messages", payload)
	}
	return payload.Data.Code
}

// unauthorizedCode returns data.code of an unauthorized event packet.
func unauthorizedCode(tb testing.TB, p packet) string {
	tb.Helper()
	if len(p.args) != 1 {
		tb.Fatalf("unauthorized packet %q: expected one {message, data} argument", p.raw)
	}
	return decodeUnauthorized(tb, p.args[0])
}

// expectAuthenticated reads authenticated, checks its shape, acknowledges
// it and returns the new session token.
func (c *client) expectAuthenticated() string {
	c.tb.Helper()
	p := c.expectEvent(adapter.EventAuthenticated)
	if p.id < 0 || len(p.args) != 2 {
		c.tb.Fatalf("authenticated packet %q: expected an ack id and two arguments", p.raw)
	}
	var next string
	if err := json.Unmarshal(p.args[0], &next); err != nil || next == "" {
		c.tb.Fatalf("authenticated token %s is not a non-empty string", p.args[0])
	}
	var info struct {
		ExpiresAt string `json:"expires_at"`
		SessionID string `json:"session_id"`
		Subject   string `json:"subject"`
	}
	if err := json.Unmarshal(p.args[1], &info); err != nil || info.SessionID == "" || info.Subject == "" {
		c.tb.Fatalf("authenticated info %s: expected {expires_at, session_id, subject}", p.args[1])
	}
	if _, err := time.Parse(time.RFC3339, info.ExpiresAt); err != nil {
		c.tb.Errorf("expires_at %q is not RFC 3339: %v", info.ExpiresAt, err)
	}
	c.ack(p.id)
	return next
}

// authenticate authenticates c with the authenticate event, acknowledges
// authenticated and returns the new session token.
func (c *client) authenticate(token string) string {
	c.tb.Helper()
	c.emit(adapter.EventAuthenticate, `{"token":"`+token+`"}`)
	return c.expectAuthenticated()
}

// waitUntil polls cond until it holds or wait passes.
func waitUntil(tb testing.TB, cond func() bool, what string) {
	tb.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting until %s", wait, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
