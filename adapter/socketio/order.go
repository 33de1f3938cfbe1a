package socketio

import (
	"sync"
	"time"

	"github.com/zishang520/socket.io/servers/socket/v3"
)

// connectOrderTimeout bounds how long a namespace middleware holds the
// reading of a client's packets while it waits for the connection handlers.
// The wait only runs out when the client goes away before its socket
// connects, because the library then never runs the handlers.
const connectOrderTimeout = 5 * time.Second

// connectOrder holds the reading of a client's packets from the moment a
// namespace middleware admits a socket until the namespace's connection
// handlers run.
//
// NOTE: github.com/zishang520/socket.io/servers/socket/v3 v3.0.6 sends the
// CONNECT packet before it records the socket among the client's
// namespaces, on another goroutine than the one that reads packets. A
// client that emits as soon as it receives CONNECT, as socket.io-client does
// for events buffered before the connection, can have its event read in
// between. The library then finds no socket for the namespace and closes
// the whole connection. Holding the reader in the middleware, which runs on
// the reading goroutine, until the connection handlers ran, closes that
// gap.
type connectOrder struct {
	// mu guards pending.
	mu      sync.Mutex
	pending map[*socket.Socket]chan struct{}
}

func newConnectOrder() *connectOrder {
	return &connectOrder{pending: make(map[*socket.Socket]chan struct{})}
}

// admit calls next(nil) for s and returns once connected(s) was called, or
// after connectOrderTimeout. It must run in the namespace's last
// middleware, on the goroutine that called it.
func (o *connectOrder) admit(s *socket.Socket, next func(*socket.ExtendedError)) {
	done := make(chan struct{})
	o.mu.Lock()
	o.pending[s] = done
	o.mu.Unlock()

	next(nil)

	timer := time.NewTimer(connectOrderTimeout)
	select {
	case <-done:
	case <-timer.C:
	}
	timer.Stop()

	o.mu.Lock()
	delete(o.pending, s)
	o.mu.Unlock()
}

// connected releases the admit call of s. It is called from a connection
// handler of the namespace.
func (o *connectOrder) connected(s *socket.Socket) {
	o.mu.Lock()
	done, ok := o.pending[s]
	delete(o.pending, s)
	o.mu.Unlock()

	if ok {
		close(done)
	}
}

// ConnectInOrder protects a namespace that has no Binding, such as a public
// namespace beside an authenticated one, from a race in
// github.com/zishang520/socket.io/servers/socket/v3 v3.0.6: an event that a
// client emits right after its namespace connected can make the library
// close the client's whole connection. A Binding protects its own
// namespace. Call ConnectInOrder once per namespace, after registering the
// namespace's other middleware, because its middleware admits the socket.
func ConnectInOrder(namespace socket.Namespace) error {
	order := newConnectOrder()
	namespace.Use(func(s *socket.Socket, next func(*socket.ExtendedError)) {
		order.admit(s, next)
	})
	return namespace.On("connection", func(args ...any) {
		if s, ok := firstSocket(args); ok {
			order.connected(s)
		}
	})
}
