package socketio

import (
	"log/slog"

	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/sockauth/sockauth/adapter"
)

// boundSocket implements adapter.Socket for one socket of the binding's
// namespace.
type boundSocket struct {
	socket *socket.Socket
	flow   *adapter.Flow
	log    *slog.Logger
}

var (
	_ adapter.Socket          = (*boundSocket)(nil)
	_ adapter.ClientAddresser = (*boundSocket)(nil)
)

// ID returns the socket.io socket id. For clients of protocol 5 the library
// draws it from crypto/rand (80 bits and a counter), separate from the
// Engine.IO session id.
func (s *boundSocket) ID() string {
	return string(s.socket.Id())
}

// ClientAddress returns the IP address of the client: the TCP peer of the
// socket's Engine.IO handshake request, or the address that a trusted proxy
// forwarded in its X-Forwarded-For header (see adapter.Flow.ClientAddress).
func (s *boundSocket) ClientAddress() string {
	return clientAddress(s.flow, s.socket)
}

func clientAddress(flow *adapter.Flow, s *socket.Socket) string {
	request := s.Request().Request()
	return flow.ClientAddress(request.RemoteAddr, request.Header)
}

// EmitWithAck emits event with args and an ack callback that calls ack when
// the client acknowledges. The library writes without waiting for the
// client.
//
// NOTE: zishang520/socket.io v3.0.6 queues each incoming packet for the
// socket's task queue but handles a closed connection at once, clearing the
// pending acks. An ack that a client sends just before it closes can be
// dropped that way, and the rotation then stays unconfirmed until the
// authority's rotation leeway ends.
func (s *boundSocket) EmitWithAck(event string, ack func(), args ...any) error {
	var onAck socket.Ack = func(_ []any, err error) {
		if err == nil {
			ack()
		}
	}
	return s.socket.Emit(event, append(args, onAck)...)
}

// Disconnect emits event with payload and then a socket.io DISCONNECT
// packet for the namespace, which makes socket.io-client report "io server
// disconnect" and not reconnect. Both run on the socket's task queue, so
// that they follow the events already being handled, and Disconnect returns
// at once. The library then emits disconnect on the socket, which makes the
// binding call Flow.Disconnected. A socket that has disconnected already is
// left alone.
func (s *boundSocket) Disconnect(event string, payload any) error {
	s.socket.Enqueue(func() {
		if !s.socket.Connected() {
			return
		}
		if err := s.socket.Emit(event, payload); err != nil {
			s.log.Warn("emitting the last event failed", "socket", s.socket.Id(), "event", event, "error", err)
		}
		s.socket.Disconnect(false)
	})
	return nil
}
