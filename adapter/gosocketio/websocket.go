package gosocketio

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/googollee/go-socket.io/engineio/frame"
	enginepacket "github.com/googollee/go-socket.io/engineio/packet"
	"github.com/googollee/go-socket.io/engineio/transport"
	"github.com/googollee/go-socket.io/engineio/transport/websocket"
	gorilla "github.com/gorilla/websocket"

	"github.com/sockauth/sockauth/internal/readwait"
)

const (
	// DefaultWebSocketBufferBytes is the size of the read buffer and of the
	// write buffer that NewWebSocketTransport gives each connection. Longer
	// messages take several reads, and are written in several frames.
	DefaultWebSocketBufferBytes = 1 << 10

	// DefaultMaxMessageBytes is the maximum size of one engine.io message,
	// after its packet type, that a WebSocketTransport reads when
	// MaxMessageBytes is zero.
	DefaultMaxMessageBytes = 1 << 20
)

// ErrMessageTooLarge is returned by the connections of a WebSocketTransport
// for a message longer than its MaxMessageBytes. The session then closes
// the connection.
var ErrMessageTooLarge = errors.New("gosocketio: websocket message too large")

// WebSocketTransport is a server transport for go-socket.io v1.7.0 that
// keeps less memory per open connection than websocket.Default. The
// engine.io server of that version does three things per connection that
// it avoids:
//   - It keeps the HTTP handler of each WebSocket blocked until the
//     connection closes, with the goroutine's stack, the request and the
//     HTTP server's buffers. The connections of a WebSocketTransport let
//     the handler return once the connection is hijacked, because the
//     server's read and write goroutines serve it from then on.
//   - The socket.io decoder wraps each message that lacks ReadByte in a new
//     4 KiB bufio.Reader and keeps the last one until the next message. A
//     WebSocketTransport reads each message whole, up to MaxMessageBytes,
//     hands it on as a bytes.Reader and drops its bytes when the decoder
//     closes it.
//   - websocket.Default leaves the buffer sizes at zero, which makes
//     gorilla/websocket keep the HTTP server's 4 KiB read and write buffers.
//     A WebSocketTransport gives each connection a read buffer of
//     ReadBufferSize (at least 512 bytes, and 4 KiB when it is zero), and
//     lends it a write buffer from a pool only while it writes a message.
//
// It also starts no goroutine and timer for each message read or written,
// as the connections of websocket.Transport do to warn about readers and
// writers left open. On a plain TCP or Unix socket, an idle connection's
// reader goroutine waits for the next message before it enters
// gorilla/websocket, with few frames on its stack, so that the garbage
// collector can shrink the stack. With 10,000 idle 2.x sockets this took
// goroutine stacks from 16.5 to 14.6 KiB per socket.
//
// Use NewWebSocketTransport for its buffer sizes. Its fields must not change
// once the server uses it.
type WebSocketTransport struct {
	// Transport names the transport and holds the buffer sizes and the
	// CheckOrigin function; Accept uses nothing else of it.
	*websocket.Transport

	// MaxMessageBytes is the maximum size of one message from a client
	// after its one-byte engine.io packet type. A longer message closes the
	// connection. Zero means DefaultMaxMessageBytes.
	MaxMessageBytes int

	// Logger receives one warning for each connection closed for a message
	// over MaxMessageBytes; nil means slog.Default().
	Logger *slog.Logger

	// writeBuffers lends connections their write buffers while they write a
	// message. gorilla/websocket needs one pool for each buffer size.
	writeBuffers countingPool
}

var _ transport.Transport = (*WebSocketTransport)(nil)

// NewWebSocketTransport returns a WebSocketTransport with read and write
// buffers of DefaultWebSocketBufferBytes and the default MaxMessageBytes.
func NewWebSocketTransport() *WebSocketTransport {
	return &WebSocketTransport{
		Transport: &websocket.Transport{
			ReadBufferSize:  DefaultWebSocketBufferBytes,
			WriteBufferSize: DefaultWebSocketBufferBytes,
		},
	}
}

// Accept upgrades the request to a WebSocket with the buffer sizes and the
// CheckOrigin function of the embedded Transport.
func (t *WebSocketTransport) Accept(w http.ResponseWriter, r *http.Request) (transport.Conn, error) {
	// gorilla/websocket reads through the buffered reader that Hijack
	// returns when ReadBufferSize is zero, so hijack hands it one of the
	// transport's size that the connection can check for buffered bytes.
	readBufferBytes := defaultReadBufferBytes
	if t.ReadBufferSize > 0 {
		readBufferBytes = max(t.ReadBufferSize, minReadBufferBytes)
	}
	hijack := &hijackCapture{ResponseWriter: w, readBufferBytes: readBufferBytes}
	upgrader := gorilla.Upgrader{
		WriteBufferSize: t.WriteBufferSize,
		WriteBufferPool: &t.writeBuffers,
		CheckOrigin:     t.CheckOrigin,
	}
	ws, err := upgrader.Upgrade(hijack, r, w.Header())
	if err != nil {
		return nil, err
	}

	maxBytes := t.MaxMessageBytes
	if maxBytes <= 0 {
		maxBytes = DefaultMaxMessageBytes
	}
	conn := newGorillaConn(ws, *r.URL, r.Header)
	conn.idle = hijack.waiter
	return &websocketConn{Conn: conn, maxMessageBytes: int64(maxBytes), log: t.Logger}, nil
}

const (
	// minReadBufferBytes is the smallest read buffer that gorilla/websocket
	// reads through instead of making its own.
	minReadBufferBytes = 512
	// defaultReadBufferBytes is the read buffer when ReadBufferSize is zero,
	// gorilla/websocket's own default.
	defaultReadBufferBytes = 4096
)

// hijackCapture hands gorilla/websocket a buffered reader of its own size
// when the connection is hijacked, and keeps it with the raw socket.
type hijackCapture struct {
	http.ResponseWriter
	readBufferBytes int
	// waiter is set by Hijack, and stays nil when the connection is not a
	// plain TCP or Unix socket.
	waiter *idleWaiter
}

func (h *hijackCapture) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hijacker, ok := h.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("gosocketio: the response writer does not implement http.Hijacker")
	}
	conn, rw, err := hijacker.Hijack()
	if err != nil || rw.Reader.Buffered() > 0 {
		// gorilla/websocket rejects a client that sent data early.
		return conn, rw, err
	}
	reader := bufio.NewReaderSize(conn, h.readBufferBytes)
	h.waiter = newIdleWaiter(conn, reader)
	return conn, bufio.NewReadWriter(reader, rw.Writer), nil
}

// idleWaiter waits for the next message near the top of the reader
// goroutine's stack. A reader that waited inside gorilla/websocket would
// keep about 2.3 KB of frames in use, so the garbage collector could not
// halve the 8 KiB stack that go-socket.io's event dispatch grows it to.
type idleWaiter struct {
	reader *bufio.Reader
	raw    syscall.RawConn
}

// newIdleWaiter returns a waiter for conn, or nil when conn is not a plain
// socket: a TLS connection, for one, can hold decrypted bytes that a wait
// on its socket would miss.
func newIdleWaiter(conn net.Conn, reader *bufio.Reader) *idleWaiter {
	if !readwait.Supported {
		return nil
	}
	var socket syscall.Conn
	switch c := conn.(type) {
	case *net.TCPConn:
		socket = c
	case *net.UnixConn:
		socket = c
	default:
		return nil
	}
	raw, err := socket.SyscallConn()
	if err != nil {
		return nil
	}
	return &idleWaiter{reader: reader, raw: raw}
}

// wait returns once the connection has bytes to read, has closed, or its
// read deadline passed. With bytes already buffered it returns at once.
//
// Its error is wrapped so that it lacks the Temporary method of
// *net.OpError: go-socket.io's session retries a read at once after an
// error that reports itself temporary, and an expired deadline would fail
// each retry at once, a loop that never closes the connection.
func (w *idleWaiter) wait() error {
	if w == nil || w.reader.Buffered() > 0 {
		return nil
	}
	if err := w.raw.Read(readwait.Readable); err != nil {
		return fmt.Errorf("gosocketio: waiting for the next message: %w", err)
	}
	return nil
}

// countingPool is a gorilla/websocket BufferPool that counts the buffers it
// lends.
type countingPool struct {
	sync.Pool
	// lent counts every buffer lent, and out those not yet returned.
	lent, out atomic.Int64
}

func (p *countingPool) Get() any {
	p.lent.Add(1)
	p.out.Add(1)
	return p.Pool.Get()
}

func (p *countingPool) Put(buffer any) {
	p.out.Add(-1)
	p.Pool.Put(buffer)
}

// gorillaConn is a transport.Conn over a gorilla/websocket connection, with
// go-socket.io's engine.io packet decoder and encoder.
type gorillaConn struct {
	*enginepacket.Decoder
	*enginepacket.Encoder

	ws     *gorilla.Conn
	url    url.URL
	header http.Header
	// idle is nil when the connection cannot wait outside gorilla/websocket.
	idle *idleWaiter
	// writing guards the connection from NextWriter until the writer is
	// closed, because gorilla/websocket allows one writer at a time.
	writing sync.Mutex
}

func newGorillaConn(ws *gorilla.Conn, u url.URL, header http.Header) *gorillaConn {
	c := &gorillaConn{ws: ws, url: u, header: header}
	c.Decoder = enginepacket.NewDecoder(gorillaFrames{c})
	c.Encoder = enginepacket.NewEncoder(gorillaFrames{c})
	return c
}

func (c *gorillaConn) URL() url.URL                      { return c.url }
func (c *gorillaConn) RemoteHeader() http.Header         { return c.header }
func (c *gorillaConn) LocalAddr() net.Addr               { return c.ws.LocalAddr() }
func (c *gorillaConn) RemoteAddr() net.Addr              { return c.ws.RemoteAddr() }
func (c *gorillaConn) SetReadDeadline(t time.Time) error { return c.ws.SetReadDeadline(t) }
func (c *gorillaConn) Close() error                      { return c.ws.Close() }

// SetWriteDeadline waits for a message being written, as gorilla/websocket
// allows no concurrent call with a writer.
func (c *gorillaConn) SetWriteDeadline(t time.Time) error {
	c.writing.Lock()
	defer c.writing.Unlock()
	return c.ws.SetWriteDeadline(t)
}

// gorillaFrames turns WebSocket messages into engine.io frames.
type gorillaFrames struct{ c *gorillaConn }

// NextReader returns the next message. Its Close discards what was not read.
func (f gorillaFrames) NextReader() (frame.Type, io.ReadCloser, error) {
	if err := f.c.idle.wait(); err != nil {
		return 0, nil, err
	}
	messageType, r, err := f.c.ws.NextReader()
	if err != nil {
		return 0, nil, err
	}
	switch messageType {
	case gorilla.TextMessage:
		return frame.String, discardOnClose{r}, nil
	case gorilla.BinaryMessage:
		return frame.Binary, discardOnClose{r}, nil
	}
	return 0, nil, transport.ErrInvalidFrame
}

// NextWriter starts a message, which is sent when its writer is closed.
func (f gorillaFrames) NextWriter(frameType frame.Type) (io.WriteCloser, error) {
	messageType := gorilla.TextMessage
	switch frameType {
	case frame.String:
	case frame.Binary:
		messageType = gorilla.BinaryMessage
	default:
		return nil, transport.ErrInvalidFrame
	}

	f.c.writing.Lock()
	w, err := f.c.ws.NextWriter(messageType)
	if err != nil {
		f.c.writing.Unlock()
		return nil, err
	}
	return &unlockOnClose{WriteCloser: w, writing: &f.c.writing}, nil
}

type discardOnClose struct{ io.Reader }

func (r discardOnClose) Close() error {
	_, err := io.Copy(io.Discard, r.Reader)
	return err
}

// unlockOnClose lets the next writer start once the message is sent.
type unlockOnClose struct {
	io.WriteCloser
	writing *sync.Mutex
	once    sync.Once
}

func (w *unlockOnClose) Close() error {
	err := w.WriteCloser.Close()
	w.once.Do(w.writing.Unlock)
	return err
}

// websocketConn is a connection of a WebSocketTransport.
type websocketConn struct {
	transport.Conn
	maxMessageBytes int64
	// log is the transport's Logger, which may be nil.
	log *slog.Logger
}

var _ http.Handler = (*websocketConn)(nil)

// ServeHTTP returns at once. The engine.io server calls it on the HTTP
// handler's goroutine after the upgrade, and websocket.Transport's
// connection blocks there until it closes.
func (c *websocketConn) ServeHTTP(http.ResponseWriter, *http.Request) {}

// NextReader reads the next message whole and closes its frame reader, which
// lets the connection read the message after it.
func (c *websocketConn) NextReader() (frame.Type, enginepacket.Type, io.ReadCloser, error) {
	frameType, packetType, r, err := c.Conn.NextReader()
	if err != nil {
		return frameType, packetType, r, err
	}

	data, err := io.ReadAll(io.LimitReader(r, c.maxMessageBytes))
	if err == nil {
		// Reading one more byte distinguishes a message of exactly the maximum
		// size from a longer one.
		var extra [1]byte
		if n, _ := r.Read(extra[:]); n > 0 {
			err = fmt.Errorf("%w: the limit is %d bytes", ErrMessageTooLarge, c.maxMessageBytes)
			c.logger().Warn("websocket message over the size limit; closing the connection",
				"remote", c.RemoteAddr().String(), "limit_bytes", c.maxMessageBytes)
			// Closing the connection first keeps the reader's Close below
			// from reading the rest of the message, which the client sets
			// the length of.
			_ = c.Conn.Close()
		}
	}
	if closeErr := r.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		return 0, 0, nil, err
	}
	return frameType, packetType, message{bytes.NewReader(data)}, nil
}

// logger returns the connection's logger, or slog.Default() when it has none.
func (c *websocketConn) logger() *slog.Logger {
	if c.log == nil {
		return slog.Default()
	}
	return c.log
}

// message is one message read whole. It implements io.ByteScanner, so that
// the socket.io decoder reads it without a buffer of its own.
type message struct {
	*bytes.Reader
}

// Close drops the message's bytes, which the socket.io decoder would keep
// until the next message. Reads after Close return io.EOF, as reads of a
// closed websocket.Transport frame reader do.
func (m message) Close() error {
	m.Reset(nil)
	return nil
}
