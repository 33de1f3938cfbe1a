package gosocketio

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	socketio "github.com/googollee/go-socket.io"

	"github.com/sockauth/sockauth/adapter"
)

// CloseDelay is how long the server waits, after the last packets of a
// rejected or logged out socket were written, before it closes the engine.io
// connection itself. socket.io-client 2.x closes the connection on its own
// when it reads the disconnect packet, so the delay lets it do that first.
// Closing at once could reset a websocket on which the client is still
// sending, and a reset may discard packets the client has not read yet.
//
// NOTE: one second is a guess, not a measured value.
const CloseDelay = time.Second

// Binding runs the sockauth flow on one namespace of a go-socket.io server.
// Its methods are safe for concurrent use.
type Binding struct {
	server    *socketio.Server
	namespace string // as registered with the server: "/" for the root
	flow      *adapter.Flow
	log       *slog.Logger

	// hooksMu guards onAuthenticated and onDisconnect.
	hooksMu         sync.RWMutex
	onAuthenticated func(conn socketio.Conn, id adapter.Identity)
	onDisconnect    func(conn socketio.Conn, id adapter.Identity, reason string)

	// closesMu guards closes and closed.
	closesMu sync.Mutex
	closes   map[string]*pendingClose // by conn id
	closed   bool

	// writers counts the goroutines that write the last packets of a
	// connection.
	writers sync.WaitGroup
}

// New attaches the flow to the root namespace "/". See Attach.
func New(server *socketio.Server, cfg adapter.Config) (*Binding, error) {
	return Attach(server, "/", cfg)
}

// Attach registers the flow's connect, disconnect, authenticate and logout
// handlers on namespace ("" and "/" both mean the root namespace) and returns
// the Binding. The application must not register its own OnConnect,
// OnDisconnect or authenticate and logout handlers on that namespace, and
// registers its event handlers with Binding.OnEvent so that they run only
// for authenticated sockets. go-socket.io v1.7.0 rejects every connection
// when the root namespace has no handler, so when namespace is not the root
// the application must register at least server.OnConnect("/", ...).
//
// Build the server with NewServer so that session ids are random. Call
// Close when the server stops.
func Attach(server *socketio.Server, namespace string, cfg adapter.Config) (*Binding, error) {
	if server == nil {
		return nil, errors.New("gosocketio: missing server")
	}
	if namespace == "" {
		namespace = "/"
	}
	if !strings.HasPrefix(namespace, "/") {
		return nil, fmt.Errorf("gosocketio: invalid namespace %q: must start with /", namespace)
	}

	b := &Binding{
		server:    server,
		namespace: namespace,
		closes:    make(map[string]*pendingClose),
	}
	flow, err := adapter.NewFlow(cfg, adapter.Hooks{Authenticated: b.authenticated})
	if err != nil {
		return nil, err
	}
	b.flow = flow
	b.log = flow.Config().Logger.With("namespace", namespace)

	server.OnConnect(namespace, b.connect)
	server.OnDisconnect(namespace, b.disconnect)
	server.OnEvent(namespace, adapter.EventAuthenticate, b.authenticate)
	server.OnEvent(namespace, adapter.EventLogout, b.logout)
	return b, nil
}

// Namespace returns the namespace the flow is attached to.
func (b *Binding) Namespace() string {
	return b.namespace
}

// Flow returns the library-neutral flow, for example to read Flow.Dropped.
func (b *Binding) Flow() *adapter.Flow {
	return b.flow
}

// Identity returns the identity of an authenticated connection, or false
// when conn is not authenticated on this Binding.
func (b *Binding) Identity(conn socketio.Conn) (adapter.Identity, bool) {
	return b.flow.Identity(conn.ID())
}

// OnAuthenticated sets the function called after a connection received
// authenticated for a new session: on its first authentication, and when a
// later authenticate switched it to another session, but not on a refresh.
// It runs on the connection's read goroutine, where emitting is safe. A
// typical use is joining rooms. A later call replaces the function.
func (b *Binding) OnAuthenticated(f func(conn socketio.Conn, id adapter.Identity)) {
	b.hooksMu.Lock()
	defer b.hooksMu.Unlock()
	b.onAuthenticated = f
}

// OnDisconnect sets the function called once when a connection of the
// namespace disconnects, with its last identity (the zero Identity when it
// never authenticated) and go-socket.io's reason. A later call replaces the
// function.
func (b *Binding) OnDisconnect(f func(conn socketio.Conn, id adapter.Identity, reason string)) {
	b.hooksMu.Lock()
	defer b.hooksMu.Unlock()
	b.onDisconnect = f
}

// Close stops the flow's timers and closes at once the connections that
// were being disconnected. It disconnects no other connection: after Close,
// connections are no longer timed out and new ones are rejected.
func (b *Binding) Close() {
	b.flow.Close()

	b.closesMu.Lock()
	b.closed = true
	pending := b.closes
	b.closes = make(map[string]*pendingClose)
	b.closesMu.Unlock()

	// Closing a connection also ends a write of its last packets that
	// waits for the client.
	for _, p := range pending {
		if p.timer != nil {
			p.timer.Stop()
		}
		_ = p.conn.Close()
	}
	b.writers.Wait()
}

func (b *Binding) connect(conn socketio.Conn) error {
	// go-socket.io v1.7.0 calls the root namespace's connect handler before
	// the connection's writer runs, so emitting here would block forever.
	// Flow.Connect only starts the authentication timeout.
	if err := b.flow.Connect(&socket{conn: conn, binding: b}); err != nil {
		b.log.Info("connection rejected", "socket", conn.ID(), "error", err)
		return err
	}
	return nil
}

func (b *Binding) disconnect(conn socketio.Conn, reason string) {
	b.closesMu.Lock()
	if p, ok := b.closes[conn.ID()]; ok && p.conn == conn {
		if p.timer != nil {
			p.timer.Stop()
		}
		delete(b.closes, conn.ID())
	}
	b.closesMu.Unlock()

	id, known := b.flow.Disconnected(conn.ID())
	if !known {
		return
	}

	b.hooksMu.RLock()
	hook := b.onDisconnect
	b.hooksMu.RUnlock()
	if hook != nil {
		hook(conn, id, reason)
	}
}

// authenticate receives the payload as raw JSON so that every payload type
// reaches the flow's checks. A typed argument would make go-socket.io fail
// to decode a wrong type and drop the whole connection without a reply.
func (b *Binding) authenticate(conn socketio.Conn, payload json.RawMessage) {
	b.flow.Authenticate(context.Background(), conn.ID(), payload)
}

func (b *Binding) logout(conn socketio.Conn, payload json.RawMessage) {
	b.flow.Logout(context.Background(), conn.ID(), payload)
}

// authenticated is the flow's Authenticated hook.
func (b *Binding) authenticated(s adapter.Socket, id adapter.Identity) {
	b.hooksMu.RLock()
	hook := b.onAuthenticated
	b.hooksMu.RUnlock()

	sock, ok := s.(*socket)
	if hook == nil || !ok {
		return
	}
	hook(sock.conn, id)
}
