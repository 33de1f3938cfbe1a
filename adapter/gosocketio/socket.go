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

var _ adapter.Socket = (*socket)(nil)

func (s *socket) ID() string {
	return s.conn.ID()
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
// namespace straight to the engine.io connection, then closes the
// connection after CloseDelay.
//
// go-socket.io's Conn.Close sends no DISCONNECT packet, and
// socket.io-client 2.x reconnects after a transport that closes without one.
// After reading DISCONNECT the client emits disconnect with reason
// "io server disconnect", does not reconnect, and closes the transport when
// no other namespace of its manager is open. Both packets bypass
// go-socket.io's writer so that they arrive in order: Emit returns as soon
// as the writer takes the packet, before it is written.
func (s *socket) Disconnect(event string, payload any) error {
	var err error
	if writer, ok := s.conn.(parser.FrameWriter); ok {
		err = s.writeLast(writer, event, payload)
	} else {
		err = errors.New("connection does not expose its engine.io writer; sent the event without a disconnect packet")
		s.conn.Emit(event, payload)
	}

	s.binding.scheduleClose(s.conn)
	return err
}

func (s *socket) writeLast(writer parser.FrameWriter, event string, payload any) error {
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
