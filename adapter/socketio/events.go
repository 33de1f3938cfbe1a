package socketio

import (
	"fmt"
	"maps"

	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/sockauth/sockauth/adapter"
)

// EventHandler handles an application event from an authenticated socket.
// args are the event's arguments as the library decodes them from JSON
// (map[string]any, []any, string, float64, bool or nil). When the client
// requested an acknowledgement, the last argument is a socket.Ack, and the
// handler acknowledges by calling it with the response arguments.
type EventHandler func(s *socket.Socket, id adapter.Identity, args ...any)

// OnEvent registers handler for event on every socket of the namespace that
// connects after the call. The handler runs on the socket's task queue, and
// only for a socket that is authenticated when the event is dispatched.
// Events from other sockets are dropped without an acknowledgement, counted
// in Flow.Dropped and logged at debug level. A later call for the same
// event replaces the handler for sockets that connect afterwards.
//
// OnEvent panics when handler is nil or when event is authenticate or
// logout, which the binding handles itself.
func (b *Binding) OnEvent(event string, handler EventHandler) {
	if event == adapter.EventAuthenticate || event == adapter.EventLogout {
		panic(fmt.Sprintf("socketio: event %q is handled by the binding", event))
	}
	if handler == nil {
		panic(fmt.Sprintf("socketio: nil handler for event %q", event))
	}

	b.hooksMu.Lock()
	defer b.hooksMu.Unlock()
	b.handlers[event] = handler
}

// registerHandlers registers the handlers of OnEvent on s.
func (b *Binding) registerHandlers(s *socket.Socket) {
	b.hooksMu.RLock()
	handlers := maps.Clone(b.handlers)
	b.hooksMu.RUnlock()

	for event, handler := range handlers {
		b.on(s, event, func(args ...any) {
			// The gate admitted the event, but the socket may have been
			// rejected since.
			id, ok := b.flow.Identity(string(s.Id()))
			if !ok {
				return
			}
			handler(s, id, args...)
		})
	}
}

// gate returns the socket middleware that lets authenticate and logout
// through, and every other event only from an authenticated socket. A
// dropped event does not call next, so no listener of s receives it.
func (b *Binding) gate(s *socket.Socket) socket.SocketMiddleware {
	return func(event []any, next func(error)) {
		name := eventName(event)
		if name == adapter.EventAuthenticate || name == adapter.EventLogout {
			next(nil)
			return
		}
		if _, ok := b.flow.Admit(string(s.Id()), name); ok {
			next(nil)
		}
	}
}

// eventName returns the name of an event packet's arguments. The protocol
// also allows numeric names, which are formatted as decimal text.
func eventName(event []any) string {
	if len(event) == 0 {
		return ""
	}
	if name, ok := event[0].(string); ok {
		return name
	}
	return fmt.Sprint(event[0])
}
