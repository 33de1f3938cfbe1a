package gosocketio

import (
	"fmt"
	"reflect"

	socketio "github.com/googollee/go-socket.io"

	"github.com/sockauth/sockauth/adapter"
)

var (
	connType     = reflect.TypeFor[socketio.Conn]()
	identityType = reflect.TypeFor[adapter.Identity]()
)

// OnEvent registers handler for event on the binding's namespace. handler
// must be a func whose first two parameters are socketio.Conn and
// adapter.Identity, for example
//
//	func(conn socketio.Conn, id adapter.Identity, text string) string
//
// go-socket.io decodes the event's arguments into the remaining parameters
// and sends the results, if any, as the ack. The handler runs only for
// authenticated connections. Events from other connections are dropped,
// counted in Flow.Dropped and logged at debug level.
//
// NOTE: when handler has results, go-socket.io v1.7.0 still sends an ack
// for a dropped event, carrying the zero values of the results.
//
// OnEvent panics when handler does not have that shape or when event is
// authenticate or logout, which the binding handles itself.
func (b *Binding) OnEvent(event string, handler any) {
	if event == adapter.EventAuthenticate || event == adapter.EventLogout {
		panic(fmt.Sprintf("gosocketio: event %q is handled by the binding", event))
	}

	fn := reflect.ValueOf(handler)
	fnType := fn.Type()
	if fnType.Kind() != reflect.Func || fnType.NumIn() < 2 || fnType.In(0) != connType || fnType.In(1) != identityType || fnType.IsVariadic() {
		panic(fmt.Sprintf("gosocketio: handler of event %q must be func(socketio.Conn, adapter.Identity, ...) without variadic parameters, got %T", event, handler))
	}

	// go-socket.io reads the argument types from the handler's signature, so
	// the registered wrapper has the handler's signature without the
	// Identity parameter.
	in := []reflect.Type{connType}
	for i := 2; i < fnType.NumIn(); i++ {
		in = append(in, fnType.In(i))
	}
	out := make([]reflect.Type, fnType.NumOut())
	for i := range out {
		out[i] = fnType.Out(i)
	}
	wrapperType := reflect.FuncOf(in, out, false)

	wrapper := reflect.MakeFunc(wrapperType, func(args []reflect.Value) []reflect.Value {
		conn := args[0].Interface().(socketio.Conn)

		id, ok := b.flow.Admit(conn.ID(), event)
		if !ok {
			results := make([]reflect.Value, len(out))
			for i, t := range out {
				results[i] = reflect.Zero(t)
			}
			return results
		}

		callArgs := append([]reflect.Value{args[0], reflect.ValueOf(id)}, args[1:]...)
		return fn.Call(callArgs)
	})

	b.server.OnEvent(b.namespace, event, wrapper.Interface())
}
