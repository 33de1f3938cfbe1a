package gosocketio

import (
	"time"

	socketio "github.com/googollee/go-socket.io"
)

// pendingClose is a connection being disconnected by the binding: its last
// packets are being written while timer is nil, then it waits for
// CloseDelay.
type pendingClose struct {
	conn  socketio.Conn
	timer *time.Timer
}

// beginClose registers conn as being disconnected and adds a writer. It
// returns false when conn is already being disconnected, or when the binding
// is closed, in which case it closes conn at once.
func (b *Binding) beginClose(conn socketio.Conn) (*pendingClose, bool) {
	b.closesMu.Lock()
	if b.closed {
		b.closesMu.Unlock()

		// Close runs b.disconnect, which takes closesMu.
		_ = conn.Close()
		return nil, false
	}
	defer b.closesMu.Unlock()

	if _, ok := b.closes[conn.ID()]; ok {
		return nil, false
	}
	p := &pendingClose{conn: conn}
	b.closes[conn.ID()] = p
	b.writers.Add(1)
	return p, true
}

// armClose starts the CloseDelay timer of p, unless the connection
// disconnected or the binding closed while its last packets were written.
func (b *Binding) armClose(p *pendingClose) {
	b.closesMu.Lock()
	defer b.closesMu.Unlock()

	if b.closes[p.conn.ID()] != p {
		return
	}
	p.timer = time.AfterFunc(CloseDelay, func() { b.closeNow(p) })
}

func (b *Binding) closeNow(p *pendingClose) {
	b.closesMu.Lock()
	if b.closes[p.conn.ID()] == p {
		delete(b.closes, p.conn.ID())
	}
	b.closesMu.Unlock()

	// Close runs the disconnect handlers of every namespace of the
	// connection, b.disconnect included.
	if err := p.conn.Close(); err != nil {
		b.log.Debug("closing connection failed", "socket", p.conn.ID(), "error", err)
	}
}
