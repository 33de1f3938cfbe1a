package gosocketio

import (
	"errors"
	"fmt"

	socketio "github.com/googollee/go-socket.io"
	"github.com/googollee/go-socket.io/parser"

	"github.com/sockauth/sockauth/adapter"
)

// socket implements adapter.Socket for one go-socket.io connection in the
// binding's namespace.
type socket struct {
	conn    socketio.Conn
	binding *Binding
}

var (
	_ adapter.Socket          = (*socket)(nil)
	_ adapter.ClientAddresser = (*socket)(nil)
)

func (s *socket) ID() string {
	return s.conn.ID()
}

// ClientAddress returns the IP address of the client: the connection's TCP
// peer, or the address that a trusted proxy forwarded in the upgrade
// request's X-Forwarded-For header (see adapter.Flow.ClientAddress).
func (s *socket) ClientAddress() string {
	addr := s.conn.RemoteAddr()
	if addr == nil {
		return ""
	}
	return s.binding.flow.ClientAddress(addr.String(), s.conn.RemoteHeader())
}

// EmitWithAck emits through go-socket.io, which treats a trailing func
// argument as the ack callback.
//
// NOTE: go-socket.io v1.7.0 numbers acks with an unguarded counter shared by
// the namespaces of a connection. The flow emits with ack only from the
// authenticate handler, which runs on the connection's read goroutine, so an
// application that emits with ack from other goroutines races with it.
func (s *socket) EmitWithAck(event string, ack func(), args ...any) error {
	s.conn.Emit(event, append(args, ack)...)
	return nil
}

// Disconnect writes event and a socket.io DISCONNECT packet for the
// namespace straight to the engine.io connection, then closes the connection
// after CloseDelay. It returns at once, because a write over polling waits
// for the client's next request.
//
// go-socket.io's Conn.Close sends no DISCONNECT packet, and
// socket.io-client 2.x reconnects after a transport that closes without one.
// After reading DISCONNECT, socket.io-client 2.5.0 emits disconnect with
// reason "io server disconnect", does not reconnect, and closes the
// transport. Both packets bypass go-socket.io's writer so that they arrive in
// order: Emit returns as soon as the writer takes the packet, before it is
// written.
func (s *socket) Disconnect(event string, payload any) error {
	pending, ok := s.binding.beginClose(s.conn)
	if !ok {
		return nil
	}

	go func() {
		defer s.binding.writers.Done()

		if err := s.writeLast(event, payload); err != nil {
			s.binding.log.Debug("writing the last packets failed", "socket", s.conn.ID(), "event", event, "error", err)
		}
		s.binding.armClose(pending)
	}()
	return nil
}

func (s *socket) writeLast(event string, payload any) error {
	writer, ok := s.conn.(parser.FrameWriter)
	if !ok {
		s.conn.Emit(event, payload)
		return errors.New("connection does not expose its engine.io writer, so the event was sent without a disconnect packet")
	}

	namespace := s.binding.namespace
	if namespace == "/" {
		namespace = ""
	}
	encoder := parser.NewEncoder(writer)

	header := parser.Header{Type: parser.Event, Namespace: namespace}
	if err := encoder.Encode(header, []any{event, payload}); err != nil {
		return fmt.Errorf("writing %s: %w", event, err)
	}

	header = parser.Header{Type: parser.Disconnect, Namespace: namespace}
	if err := encoder.Encode(header); err != nil {
		return fmt.Errorf("writing disconnect packet: %w", err)
	}
	return nil
}
