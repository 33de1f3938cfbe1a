package gosocketio

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	socketio "github.com/googollee/go-socket.io"
	"github.com/googollee/go-socket.io/engineio"
	"github.com/googollee/go-socket.io/engineio/transport"
	"github.com/googollee/go-socket.io/engineio/transport/polling"
	"github.com/gorilla/websocket"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sockauth/sockauth/adapter"
	sockauthv1 "github.com/sockauth/sockauth/gen/sockauth/v1"
)

// This file holds the test fixtures: a fake authority, a loopback server and
// a minimal socket.io 2.x client over engine.io 3 websockets.

// fakeAuthority accepts the codes "code-alice" and "code-bob" (sessions
// "sid-alice" and "sid-bob") and the session tokens it issued, and rejects
// every other token as TOKEN_INVALID.
type fakeAuthority struct {
	mu        sync.Mutex
	issued    map[string]string // session token → session id
	confirmed []string
	loggedOut []string
	n         int
	// watchers receive a revocation event for every logout.
	watchers map[chan *sockauthv1.WatchRevocationsResponse]struct{}
}

var _ sockauthv1.AuthorityServiceClient = (*fakeAuthority)(nil)

func newFakeAuthority() *fakeAuthority {
	return &fakeAuthority{
		issued:   make(map[string]string),
		watchers: make(map[chan *sockauthv1.WatchRevocationsResponse]struct{}),
	}
}

func (a *fakeAuthority) IssueCode(context.Context, *sockauthv1.IssueCodeRequest, ...grpc.CallOption) (*sockauthv1.IssueCodeResponse, error) {
	return nil, status.Error(codes.Unimplemented, "not used by the adapter")
}

func (a *fakeAuthority) Authenticate(_ context.Context, req *sockauthv1.AuthenticateRequest, _ ...grpc.CallOption) (*sockauthv1.AuthenticateResponse, error) {
	a.mu.Lock()
	defer a.mu.Unlock()

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
			ExpiresAt:  timestamppb.New(time.Now().Add(time.Hour)),
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
	for events := range a.watchers {
		events <- &sockauthv1.WatchRevocationsResponse{
			SessionId: sid,
			Subject:   strings.TrimPrefix(sid, "sid-"),
			Reason:    sockauthv1.RevocationReason_REVOCATION_REASON_LOGOUT,
			RevokedAt: timestamppb.Now(),
		}
	}
	return &sockauthv1.LogoutResponse{SessionId: sid, Subject: strings.TrimPrefix(sid, "sid-")}, nil
}

// WatchRevocations opens a stream that receives an event for every later
// logout, until ctx ends.
func (a *fakeAuthority) WatchRevocations(ctx context.Context, _ *sockauthv1.WatchRevocationsRequest, _ ...grpc.CallOption) (grpc.ServerStreamingClient[sockauthv1.WatchRevocationsResponse], error) {
	events := make(chan *sockauthv1.WatchRevocationsResponse, 100)
	a.mu.Lock()
	a.watchers[events] = struct{}{}
	a.mu.Unlock()

	context.AfterFunc(ctx, func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		delete(a.watchers, events)
	})
	return &watchStream{ctx: ctx, events: events}, nil
}

// watchingFlows returns the number of open revocation streams.
func (a *fakeAuthority) watchingFlows() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.watchers)
}

// watchStream is a revocation stream of the fake authority.
type watchStream struct {
	grpc.ClientStream // nil: only the methods below are used

	ctx    context.Context
	events chan *sockauthv1.WatchRevocationsResponse
}

func (s *watchStream) Header() (metadata.MD, error) { return metadata.MD{}, nil }

func (s *watchStream) Context() context.Context { return s.ctx }

func (s *watchStream) Recv() (*sockauthv1.WatchRevocationsResponse, error) {
	select {
	case event := <-s.events:
		return event, nil
	case <-s.ctx.Done():
		return nil, status.FromContextError(s.ctx.Err()).Err()
	}
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

// testServer is a go-socket.io server with a Binding, served on loopback.
type testServer struct {
	server    *socketio.Server
	binding   *Binding
	authority *fakeAuthority
	url       string
}

// newTestServer serves a Binding on namespace over loopback HTTP and stops
// everything when the test ends. cfg.Authority is replaced by a fake.
func newTestServer(tb testing.TB, namespace string, cfg adapter.Config) *testServer {
	tb.Helper()
	return newTestServerOn(tb, newFakeAuthority(), namespace, cfg)
}

// newTestServerOn is newTestServer with the given authority, which several
// servers may share.
func newTestServerOn(tb testing.TB, authority *fakeAuthority, namespace string, cfg adapter.Config) *testServer {
	tb.Helper()

	cfg.Authority = authority
	if cfg.Logger == nil {
		cfg.Logger = testLogger()
	}

	// The WebSocket tests run over WebSocketTransport, which the chat demo
	// serves.
	server := NewServer(&engineio.Options{Transports: []transport.Transport{polling.Default, NewWebSocketTransport()}})
	if namespace != "/" {
		server.OnConnect("/", func(socketio.Conn) error { return nil })
	}
	binding, err := Attach(server, namespace, cfg)
	if err != nil {
		tb.Fatalf("Attach: %v", err)
	}

	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = server.Serve()
	}()
	httpServer := httptest.NewServer(server)

	tb.Cleanup(func() {
		binding.Close()
		httpServer.Close()
		_ = server.Close()
		<-served
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

// packet is a socket.io 2.x packet (protocol revision 4) read by a client.
type packet struct {
	kind      byte // '0' connect, '1' disconnect, '2' event, '3' ack, '4' error
	namespace string
	id        int // -1 without ack id
	event     string
	args      []json.RawMessage
	raw       string
}

// client is a minimal socket.io 2.x client over an engine.io 3 websocket.
type client struct {
	tb        testing.TB
	conn      *websocket.Conn
	sid       string
	namespace string

	// frames receives the frames read by a background goroutine. It is
	// closed when reading fails, for example when the server closes the
	// connection. gorilla/websocket cannot read again after a read deadline
	// passed, so the client waits on this channel instead.
	frames chan string
}

// dial connects a client to namespace ("/" for the root) and waits for the
// namespace's connect packet.
func dial(tb testing.TB, baseURL, namespace string) *client {
	tb.Helper()
	return dialWithHeader(tb, baseURL, namespace, nil)
}

// dialWithHeader is dial with header added to the upgrade request.
func dialWithHeader(tb testing.TB, baseURL, namespace string, header http.Header) *client {
	tb.Helper()

	url := "ws" + strings.TrimPrefix(baseURL, "http") + "/socket.io/?EIO=3&transport=websocket"
	conn, _, err := websocket.DefaultDialer.Dial(url, header)
	if err != nil {
		tb.Fatalf("dialing %s: %v", url, err)
	}
	c := &client{tb: tb, conn: conn, namespace: namespace, frames: make(chan string, 64)}
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

	open := c.readFrame(packetWait)
	var handshake struct {
		SID string `json:"sid"`
	}
	if !strings.HasPrefix(open, "0") || json.Unmarshal([]byte(open[1:]), &handshake) != nil {
		tb.Fatalf("first frame = %q, expected an engine.io open packet", open)
	}
	c.sid = handshake.SID

	if p := c.next(packetWait); p.kind != '0' || p.namespace != "" {
		tb.Fatalf("got packet %q, expected the root connect packet", p.raw)
	}
	if namespace != "/" {
		c.send("0" + namespace + ",")
		if p := c.next(packetWait); p.kind != '0' || p.namespace != namespace {
			tb.Fatalf("got packet %q, expected the connect packet of %s", p.raw, namespace)
		}
	}
	return c
}

// send writes a socket.io packet, without the engine.io message type.
func (c *client) send(sioPacket string) {
	c.tb.Helper()
	if err := c.conn.WriteMessage(websocket.TextMessage, []byte("4"+sioPacket)); err != nil {
		c.tb.Fatalf("writing %q: %v", sioPacket, err)
	}
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

// emitWithAck sends an event with ack id 1.
func (c *client) emitWithAck(event string, rawArgs ...string) {
	c.tb.Helper()
	name, _ := json.Marshal(event)
	c.send("2" + c.prefix() + "1[" + strings.Join(append([]string{string(name)}, rawArgs...), ",") + "]")
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

// packetWait is how long the client waits for a packet that must arrive.
// It allows for a machine loaded by parallel test packages and the race
// detector; tests that expect no packet pass their own, shorter, wait.
const packetWait = 5 * time.Second

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

// next returns the next socket.io packet, skipping engine.io packets.
func (c *client) next(timeout time.Duration) packet {
	c.tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		frame := c.readFrame(time.Until(deadline))
		if strings.HasPrefix(frame, "4") {
			return parsePacket(c.tb, frame[1:])
		}
	}
}

// expectEvent reads the next packet and checks that it is event.
func (c *client) expectEvent(event string) packet {
	c.tb.Helper()
	p := c.next(packetWait)
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

// expectServerDisconnect reads the disconnect packet of the client's
// namespace, then checks that the server closes the connection within
// CloseDelay and a margin although the client does not close it.
func (c *client) expectServerDisconnect() {
	c.tb.Helper()
	p := c.next(packetWait)
	if p.kind != '1' || p.namespace != strings.TrimSuffix(c.prefix(), ",") {
		c.tb.Fatalf("got packet %q, expected a disconnect packet for %s", p.raw, c.namespace)
	}

	limit := CloseDelay + 2*time.Second
	deadline := time.Now().Add(limit)
	for {
		frame, err := c.tryReadFrame(time.Until(deadline))
		if errors.Is(err, errTimeout) {
			c.tb.Fatalf("server did not close the connection within %v after the disconnect packet", limit)
		}
		if err != nil {
			return
		}
		if strings.HasPrefix(frame, "4") {
			c.tb.Fatalf("got packet %q after the disconnect packet, expected none", frame[1:])
		}
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

// unauthorizedCode returns data.code of an unauthorized packet.
func unauthorizedCode(tb testing.TB, p packet) string {
	tb.Helper()
	var payload struct {
		Message string `json:"message"`
		Data    struct {
			Message string `json:"message"`
			Code    string `json:"code"`
			Type    string `json:"type"`
		} `json:"data"`
	}
	if len(p.args) != 1 || json.Unmarshal(p.args[0], &payload) != nil {
		tb.Fatalf("unauthorized packet %q: expected one {message, data} argument", p.raw)
	}
	if payload.Data.Type != "UnauthorizedError" || payload.Message == "" || payload.Message != payload.Data.Message {
		tb.Errorf("unauthorized payload = %+v, expected type UnauthorizedError and equal non-empty messages", payload)
	}
	return payload.Data.Code
}

// authenticate authenticates c with token, acknowledges authenticated and
// returns the new session token.
func (c *client) authenticate(token string) string {
	c.tb.Helper()
	c.emit(adapter.EventAuthenticate, `{"token":"`+token+`"}`)
	p := c.expectEvent(adapter.EventAuthenticated)
	if p.id < 0 || len(p.args) != 2 {
		c.tb.Fatalf("authenticated packet %q: expected an ack id and two arguments", p.raw)
	}
	var next string
	if err := json.Unmarshal(p.args[0], &next); err != nil {
		c.tb.Fatalf("authenticated token %s is not a string", p.args[0])
	}
	c.ack(p.id)
	return next
}
