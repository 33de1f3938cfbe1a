package gosocketio

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"github.com/googollee/go-socket.io/engineio/frame"
	enginepacket "github.com/googollee/go-socket.io/engineio/packet"
	"github.com/googollee/go-socket.io/engineio/transport"
	"github.com/googollee/go-socket.io/engineio/transport/websocket"
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
//
// Use NewWebSocketTransport for its buffer sizes. Its fields must not change
// once the server uses it.
type WebSocketTransport struct {
	// Transport accepts the connections and names the transport.
	*websocket.Transport

	// MaxMessageBytes is the maximum size of one message from a client
	// after its one-byte engine.io packet type. A longer message closes the
	// connection. Zero means DefaultMaxMessageBytes.
	MaxMessageBytes int

	// Logger receives one warning for each connection closed for a message
	// over MaxMessageBytes; nil means slog.Default().
	Logger *slog.Logger
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

// Accept upgrades the request to a WebSocket with the embedded Transport.
func (t *WebSocketTransport) Accept(w http.ResponseWriter, r *http.Request) (transport.Conn, error) {
	conn, err := t.Transport.Accept(w, r)
	if err != nil {
		return nil, err
	}

	maxBytes := t.MaxMessageBytes
	if maxBytes <= 0 {
		maxBytes = DefaultMaxMessageBytes
	}
	return &websocketConn{Conn: conn, maxMessageBytes: int64(maxBytes), log: t.Logger}, nil
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
