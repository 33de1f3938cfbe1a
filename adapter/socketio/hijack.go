package socketio

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"

	"github.com/sockauth/sockauth/internal/readwait"
)

// ReleaseHijacked returns a handler that serves WebSocket upgrade requests
// with next through a ResponseWriter that drops the net/http response once
// next hijacks the connection. Other requests reach next unchanged.
//
// zishang520/socket.io v3.0.6 keeps the ResponseWriter of a WebSocket in its
// HttpContext for the life of the connection. Through it, the net/http
// response keeps the HTTP server's connection state, with its 4 KiB read and
// write buffers, which gorilla/websocket does not use because the library
// gives it buffers of its own. Wrap the server's handler to let the garbage
// collector free them:
//
//	http.Handle("/socket.io/", socketio.ReleaseHijacked(server.ServeHandler(nil)))
//
// On a plain TCP or Unix socket, the hijacked connection that next gets also
// waits for the socket to turn readable before each read. The goroutine
// that reads an idle WebSocket then blocks in shallower frames, and the
// garbage collector can halve the 8 KiB stack that handling a message grew
// it to. A TLS connection is passed on as it is.
func ReleaseHijacked(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !isWebSocketUpgrade(r) {
			next.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(&releasingWriter{w: w}, r)
	})
}

// isWebSocketUpgrade reports whether r requests an upgrade to WebSocket.
func isWebSocketUpgrade(r *http.Request) bool {
	for _, value := range r.Header.Values("Upgrade") {
		for token := range strings.SplitSeq(value, ",") {
			if strings.EqualFold(strings.TrimSpace(token), "websocket") {
				return true
			}
		}
	}
	return false
}

// releasingWriter is the ResponseWriter of an upgrade request. After a
// successful Hijack it no longer refers to the net/http response: Header
// returns a header that nothing sends, and Write returns
// http.ErrHijacked, as the net/http response does after a hijack.
type releasingWriter struct {
	// mu guards w and header.
	mu sync.Mutex
	// w is the net/http response, nil after Hijack.
	w http.ResponseWriter
	// header is the header returned after Hijack.
	header http.Header
}

var _ http.Hijacker = (*releasingWriter)(nil)

func (rw *releasingWriter) Header() http.Header {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	if rw.w == nil {
		if rw.header == nil {
			rw.header = make(http.Header)
		}
		return rw.header
	}
	return rw.w.Header()
}

func (rw *releasingWriter) Write(p []byte) (int, error) {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	if rw.w == nil {
		return 0, http.ErrHijacked
	}
	return rw.w.Write(p)
}

func (rw *releasingWriter) WriteHeader(statusCode int) {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	if rw.w != nil {
		rw.w.WriteHeader(statusCode)
	}
}

// Flush flushes the response unless it was hijacked.
func (rw *releasingWriter) Flush() {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	if flusher, ok := rw.w.(http.Flusher); ok {
		flusher.Flush()
	}
}

// Hijack hijacks the connection of the net/http response and drops the
// response.
func (rw *releasingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	if rw.w == nil {
		return nil, nil, http.ErrHijacked
	}
	hijacker, ok := rw.w.(http.Hijacker)
	if !ok {
		return nil, nil, http.ErrNotSupported
	}

	conn, buffers, err := hijacker.Hijack()
	if err != nil {
		return nil, nil, err
	}
	rw.w = nil
	return waitBeforeRead(conn), buffers, nil
}

// waitingTCPConn is a TCP connection whose Read waits for the socket to
// turn readable through its syscall.RawConn, and only then reads.
//
// An idle zishang520/socket.io v3.0.6 WebSocket's reader goroutine blocks
// under gorilla/websocket's NextReader. With net.TCPConn's own Read it used
// 1,304 bytes of its stack there, and the garbage collector shrinks a stack
// only while less than a quarter of it is in use, counting an 800-byte
// reserve. Waiting here takes 96 bytes off, so an idle socket keeps a
// 4 KiB reader stack instead of 8 KiB.
//
// It embeds *net.TCPConn rather than net.Conn, so that the connection keeps
// the methods of *net.TCPConn, unexported ones included. net.Buffers, which
// gorilla/websocket v1.5.3 uses to write a frame whose payload is larger
// than twice its write buffer, then writes the header and the payload with
// one writev rather than two writes.
//
// NOTE: 1,208 bytes in use is only 40 bytes below that limit, measured with
// Go 1.26 and gorilla/websocket v1.5.3. Larger frames in a later release
// would keep the 8 KiB stack again, which
// TestReleaseHijackedShrinksIdleReaderStacks reports.
type waitingTCPConn struct {
	*net.TCPConn
	raw syscall.RawConn
}

// waitingUnixConn is waitingTCPConn for a Unix socket.
type waitingUnixConn struct {
	*net.UnixConn
	raw syscall.RawConn
}

// waitBeforeRead returns conn wrapped in a waitingTCPConn or a
// waitingUnixConn when it is a TCP or Unix socket, and conn itself
// otherwise.
func waitBeforeRead(conn net.Conn) net.Conn {
	if !readwait.Supported {
		return conn
	}
	switch c := conn.(type) {
	case *net.TCPConn:
		if raw, err := c.SyscallConn(); err == nil {
			return &waitingTCPConn{TCPConn: c, raw: raw}
		}
	case *net.UnixConn:
		if raw, err := c.SyscallConn(); err == nil {
			return &waitingUnixConn{UnixConn: c, raw: raw}
		}
	}
	return conn
}

// Read waits until the socket has a byte to read, has closed, has failed or
// its read deadline has passed, and then reads into p. It calls the RawConn
// itself rather than a shared helper, whose frame would stay on the stack
// of a blocked reader.
func (c *waitingTCPConn) Read(p []byte) (int, error) {
	if len(p) > 0 {
		if err := c.raw.Read(readwait.Readable); err != nil {
			return 0, err
		}
	}
	return c.TCPConn.Read(p)
}

// Read is waitingTCPConn.Read for a Unix socket.
func (c *waitingUnixConn) Read(p []byte) (int, error) {
	if len(p) > 0 {
		if err := c.raw.Read(readwait.Readable); err != nil {
			return 0, err
		}
	}
	return c.UnixConn.Read(p)
}
