package gosocketio

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/googollee/go-socket.io/engineio"
	"github.com/googollee/go-socket.io/engineio/frame"
	enginepacket "github.com/googollee/go-socket.io/engineio/packet"
	"github.com/googollee/go-socket.io/engineio/transport"
	gorilla "github.com/gorilla/websocket"

	"github.com/sockauth/sockauth/adapter"
)

// newWebSocketTestServer serves a Binding on the root namespace with ws as
// its only transport. handlersRunning counts the HTTP handlers
// that have not returned yet.
func newWebSocketTestServer(tb testing.TB, ws *WebSocketTransport) (ts *testServer, handlersRunning *atomic.Int64) {
	tb.Helper()
	return newEngineTestServer(tb, &engineio.Options{Transports: []transport.Transport{ws}})
}

// newEngineTestServer is newWebSocketTestServer with engine.io options of the
// caller's own.
func newEngineTestServer(tb testing.TB, opts *engineio.Options) (ts *testServer, handlersRunning *atomic.Int64) {
	tb.Helper()

	authority := newFakeAuthority()
	server := NewServer(opts)
	binding, err := New(server, adapter.Config{Authority: authority, Logger: testLogger()})
	if err != nil {
		tb.Fatalf("New: %v", err)
	}

	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = server.Serve()
	}()
	handlersRunning = new(atomic.Int64)
	httpServer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handlersRunning.Add(1)
		defer handlersRunning.Add(-1)
		server.ServeHTTP(w, r)
	}))

	tb.Cleanup(func() {
		binding.Close()
		httpServer.Close()
		_ = server.Close()
		<-served
	})
	return &testServer{server: server, binding: binding, authority: authority, url: httpServer.URL}, handlersRunning
}

func TestWebSocketHandlerReturnsAfterUpgrade(t *testing.T) {
	ts, handlersRunning := newWebSocketTestServer(t, NewWebSocketTransport())
	c := dial(t, ts.url, "/")

	waitUntil(t, func() bool { return handlersRunning.Load() == 0 }, "the HTTP handler returned while the WebSocket is open")

	c.emit(adapter.EventAuthenticate, `{"token":"code-alice"}`)
	p := c.expectEvent(adapter.EventAuthenticated)
	if len(p.args) == 0 || string(p.args[0]) != `"session-1"` {
		t.Fatalf("authenticated packet %q, expected token session-1", p.raw)
	}
}

func TestWebSocketWriteBufferLentPerMessage(t *testing.T) {
	ws := NewWebSocketTransport()
	ts, _ := newWebSocketTestServer(t, ws)
	c := dial(t, ts.url, "/")

	c.emit(adapter.EventAuthenticate, `{"token":"code-alice"}`)
	c.expectEvent(adapter.EventAuthenticated)

	if lent := ws.writeBuffers.lent.Load(); lent == 0 {
		t.Fatal("no write buffer was lent for the messages sent, expected each message to borrow one")
	}
	waitUntil(t, func() bool { return ws.writeBuffers.out.Load() == 0 },
		"every write buffer returned to the pool while the WebSocket is idle")
}

func TestWebSocketMessageLimit(t *testing.T) {
	ws := NewWebSocketTransport()
	// The token below makes an authenticate packet of exactly 64 bytes
	// after the engine.io packet type.
	ws.MaxMessageBytes = 64
	ts, _ := newWebSocketTestServer(t, ws)

	atLimit := dial(t, ts.url, "/")
	token := "code-alice" + strings.Repeat(" ", 64-len(`2["authenticate",{"token":"code-alice"}]`))
	atLimit.send(`2["authenticate",{"token":"` + token + `"}]`)
	atLimit.expectEvent(adapter.EventUnauthorized)

	overLimit := dial(t, ts.url, "/")
	overLimit.send(`2["authenticate",{"token":"` + token + ` "}]`)
	for {
		frame, err := overLimit.tryReadFrame(2 * time.Second)
		if errors.Is(err, errTimeout) {
			t.Fatal("the connection is still open 2 s after a message over the limit, expected the server to close it")
		}
		if err != nil {
			break
		}
		if strings.HasPrefix(frame, "4") {
			t.Fatalf("got packet %q after a message over the limit, expected the connection closed", frame[1:])
		}
	}
}

// fakeFrameConn is a transport.Conn with one text message to read.
type fakeFrameConn struct {
	transport.Conn
	message string
	// closed is set when the frame reader of the message is closed, and
	// connClosed when the connection is.
	closed, connClosed bool
}

func (c *fakeFrameConn) Close() error {
	c.connClosed = true
	return nil
}

func (c *fakeFrameConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1234}
}

func (c *fakeFrameConn) NextReader() (frame.Type, enginepacket.Type, io.ReadCloser, error) {
	if c.message == "" {
		return 0, 0, nil, io.EOF
	}
	r := &frameReader{Reader: strings.NewReader(c.message), conn: c}
	c.message = ""
	return frame.String, enginepacket.MESSAGE, r, nil
}

type frameReader struct {
	io.Reader
	conn *fakeFrameConn
}

func (r *frameReader) Close() error {
	r.conn.closed = true
	return nil
}

func TestWebSocketSilentClientClosed(t *testing.T) {
	ts, _ := newEngineTestServer(t, &engineio.Options{
		Transports:   []transport.Transport{NewWebSocketTransport()},
		PingInterval: 100 * time.Millisecond,
		PingTimeout:  300 * time.Millisecond,
	})
	c := dial(t, ts.url, "/")
	c.emit(adapter.EventAuthenticate, `{"token":"code-alice"}`)
	c.expectEvent(adapter.EventAuthenticated)

	// The client now sends nothing, not even engine.io pings.
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := c.tryReadFrame(time.Until(deadline))
		if errors.Is(err, errClosed) {
			return
		}
		if errors.Is(err, errTimeout) {
			t.Fatal("the server kept a silent client's connection for 5 s, past its 300 ms ping timeout")
		}
	}
}

func TestWebSocketOversizedMessageNotRead(t *testing.T) {
	ws := NewWebSocketTransport()
	ws.MaxMessageBytes = 1 << 10
	ws.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	ts, _ := newWebSocketTestServer(t, ws)
	c := dial(t, ts.url, "/")

	// One message whose frames keep coming: the server must stop reading it
	// soon after the limit instead of discarding the rest.
	w, err := c.conn.NextWriter(gorilla.TextMessage)
	if err != nil {
		t.Fatalf("NextWriter: %v", err)
	}
	chunk := bytes.Repeat([]byte("a"), 64<<10)
	const bound = 64 << 20
	for written := 0; written < bound; written += len(chunk) {
		if _, err := w.Write(chunk); err != nil {
			return
		}
	}
	t.Fatalf("the server still read a message over its 1 KiB limit after %d MiB", bound>>20)
}

func TestWebSocketMessageIsByteScanner(t *testing.T) {
	fake := &fakeFrameConn{message: `2["echo",{"n":1}]`}
	conn := &websocketConn{Conn: fake, maxMessageBytes: DefaultMaxMessageBytes}

	frameType, packetType, r, err := conn.NextReader()
	if err != nil {
		t.Fatalf("NextReader: %v", err)
	}
	if frameType != frame.String || packetType != enginepacket.MESSAGE {
		t.Errorf("NextReader types = %v, %v, expected frame.String, enginepacket.MESSAGE", frameType, packetType)
	}
	if !fake.closed {
		t.Error("the frame reader is still open after NextReader, expected it closed at once")
	}
	if _, ok := r.(io.ByteScanner); !ok {
		t.Errorf("NextReader returned %T, expected an io.ByteScanner that the socket.io decoder needs no buffer for", r)
	}
	data, err := io.ReadAll(r)
	if err != nil || string(data) != `2["echo",{"n":1}]` {
		t.Errorf("message = %q, %v, expected the whole message", data, err)
	}
}

func TestWebSocketMessageCloseDropsBytes(t *testing.T) {
	fake := &fakeFrameConn{message: `2["echo",{"n":1}]`}
	conn := &websocketConn{Conn: fake, maxMessageBytes: DefaultMaxMessageBytes}
	_, _, r, err := conn.NextReader()
	if err != nil {
		t.Fatalf("NextReader: %v", err)
	}
	var first [1]byte
	if _, err := r.Read(first[:]); err != nil {
		t.Fatalf("reading the first byte: %v", err)
	}

	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	if n, err := r.Read(first[:]); n != 0 || err != io.EOF {
		t.Errorf("Read after Close = %d, %v, expected 0, io.EOF", n, err)
	}
	if size := r.(message).Size(); size != 0 {
		t.Errorf("message still refers to %d bytes after Close, expected none", size)
	}
}

func TestWebSocketMessageOverLimit(t *testing.T) {
	fake := &fakeFrameConn{message: strings.Repeat("x", 11)}
	var logs bytes.Buffer
	conn := &websocketConn{Conn: fake, maxMessageBytes: 10, log: slog.New(slog.NewTextHandler(&logs, nil))}

	_, _, _, err := conn.NextReader()
	if !errors.Is(err, ErrMessageTooLarge) {
		t.Errorf("NextReader error = %v, expected ErrMessageTooLarge", err)
	}
	if !fake.closed {
		t.Error("the frame reader is still open after a message over the limit")
	}
	if !fake.connClosed {
		t.Error("the connection is still open after a message over the limit, so closing the frame reader reads the rest")
	}
	if line := logs.String(); !strings.Contains(line, "over the size limit") ||
		!strings.Contains(line, "remote=127.0.0.1:1234") || !strings.Contains(line, "limit_bytes=10") {
		t.Errorf("log %q lacks the warning with the remote address and the limit", line)
	}
}

func TestWebSocketServeHTTPReturns(t *testing.T) {
	conn := &websocketConn{Conn: &fakeFrameConn{}}
	returned := make(chan struct{})
	go func() {
		defer close(returned)
		conn.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/socket.io/", nil))
	}()
	select {
	case <-returned:
	case <-time.After(5 * time.Second):
		t.Fatal("ServeHTTP still blocks after 5 s, expected it to return at once")
	}
}
