package socketio

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/sockauth/sockauth/adapter"
)

// Binding runs the sockauth flow on one namespace of a zishang520 socket.io
// server. Its methods are safe for concurrent use.
type Binding struct {
	namespace socket.Namespace
	flow      *adapter.Flow
	log       *slog.Logger
	order     *connectOrder

	// hooksMu guards onAuthenticated, onDisconnect and handlers.
	hooksMu         sync.RWMutex
	onAuthenticated func(s *socket.Socket, id adapter.Identity)
	onDisconnect    func(s *socket.Socket, id adapter.Identity, reason string)
	handlers        map[string]EventHandler

	// admissionsMu guards admissions and closed.
	admissionsMu sync.Mutex
	admissions   map[*socket.Socket]*pendingAdmission
	closed       bool

	// handshakes counts the handshake authentications in progress, and
	// stopHandshakes cancels them, so that Close can end them.
	handshakes     sync.WaitGroup
	handshakeCtx   context.Context
	stopHandshakes context.CancelFunc
}

// pendingAdmission is a socket whose handshake token was accepted and which
// the server has not admitted yet. The binding drops it after the auth
// timeout, when its socket never connected.
type pendingAdmission struct {
	admission *adapter.Admission
	expiry    *time.Timer
}

// New attaches the flow to the root namespace "/". See Attach.
func New(server *socket.Server, cfg adapter.Config) (*Binding, error) {
	return Attach(server, "/", cfg)
}

// Attach registers the flow's middleware and connection handler on
// namespace ("" and "/" both mean the root namespace) and returns the
// Binding. The application registers its event handlers with
// Binding.OnEvent. Handlers it registers itself on a socket, for example
// in its own connection handler, are also shielded: the binding drops every
// event other than authenticate and logout from a socket that is not
// authenticated. The application must not handle authenticate and logout
// itself. Call Close when the server stops.
func Attach(server *socket.Server, namespace string, cfg adapter.Config) (*Binding, error) {
	if server == nil {
		return nil, errors.New("socketio: missing server")
	}
	if namespace == "" {
		namespace = "/"
	}
	if !strings.HasPrefix(namespace, "/") {
		return nil, fmt.Errorf("socketio: invalid namespace %q: must start with /", namespace)
	}

	b := &Binding{
		handlers:   make(map[string]EventHandler),
		admissions: make(map[*socket.Socket]*pendingAdmission),
		order:      newConnectOrder(),
	}
	flow, err := adapter.NewFlow(cfg, adapter.Hooks{Authenticated: b.authenticated})
	if err != nil {
		return nil, err
	}
	b.flow = flow
	b.log = flow.Config().Logger.With("namespace", namespace)
	b.handshakeCtx, b.stopHandshakes = context.WithCancel(context.Background())

	b.namespace = server.Of(namespace, nil)
	b.namespace.Use(b.authenticateHandshake)
	if err := b.namespace.On("connection", b.connection); err != nil {
		flow.Close()
		return nil, fmt.Errorf("socketio: registering the connection handler: %w", err)
	}
	return b, nil
}

// Namespace returns the name of the namespace the flow is attached to.
func (b *Binding) Namespace() string {
	return b.namespace.Name()
}

// Flow returns the library-neutral flow, for example to read Flow.Dropped.
func (b *Binding) Flow() *adapter.Flow {
	return b.flow
}

// Identity returns the identity of an authenticated socket, or false when s
// is not authenticated on this Binding.
func (b *Binding) Identity(s *socket.Socket) (adapter.Identity, bool) {
	return b.flow.Identity(string(s.Id()))
}

// OnAuthenticated sets the function called after a socket received
// authenticated for a new session: after a handshake authentication, on its
// first authenticate event, and when a later authenticate switched it to
// another session, but not on a refresh. It runs on the socket's task
// queue, where emitting is safe. A typical use is joining rooms. A later
// call replaces the function.
func (b *Binding) OnAuthenticated(f func(s *socket.Socket, id adapter.Identity)) {
	b.hooksMu.Lock()
	defer b.hooksMu.Unlock()
	b.onAuthenticated = f
}

// OnDisconnect sets the function called once when a socket of the
// namespace disconnects, with its last identity (the zero Identity when it
// never authenticated) and the library's reason, such as "client namespace
// disconnect" or "server namespace disconnect". A later call replaces the
// function.
func (b *Binding) OnDisconnect(f func(s *socket.Socket, id adapter.Identity, reason string)) {
	b.hooksMu.Lock()
	defer b.hooksMu.Unlock()
	b.onDisconnect = f
}

// Close stops the flow's timers, cancels the handshake authentications in
// progress and waits for them. It disconnects no socket: after Close,
// sockets are no longer timed out and new ones are rejected.
func (b *Binding) Close() {
	b.admissionsMu.Lock()
	b.closed = true
	for s, pending := range b.admissions {
		pending.expiry.Stop()
		delete(b.admissions, s)
	}
	b.admissionsMu.Unlock()

	b.stopHandshakes()
	b.handshakes.Wait()
	b.flow.Close()
}

// connection runs on the socket's task queue after the namespace's
// middleware admitted the socket, before any event of the socket is
// dispatched.
func (b *Binding) connection(args ...any) {
	s, ok := firstSocket(args)
	if !ok {
		b.log.Error("connection handler called without a socket", "arguments", len(args))
		return
	}
	bound := &boundSocket{socket: s, flow: b.flow, log: b.log}
	b.order.connected(s)

	s.Use(b.gate(s))
	b.on(s, adapter.EventAuthenticate, func(args ...any) {
		b.flow.Authenticate(context.Background(), string(s.Id()), payloadOf(args))
	})
	b.on(s, adapter.EventLogout, func(args ...any) {
		b.flow.Logout(context.Background(), string(s.Id()), payloadOf(args))
	})
	b.on(s, "disconnect", func(args ...any) {
		reason, _ := firstString(args)
		b.disconnected(s, reason)
	})
	b.registerHandlers(s)

	var err error
	if admission := b.takeAdmission(s); admission != nil {
		err = b.flow.ConnectAuthenticated(bound, admission)
	} else {
		err = b.flow.Connect(bound)
	}
	if err != nil {
		b.log.Info("socket rejected", "socket", s.Id(), "error", err)
		s.Disconnect(false)
	}
}

// on registers listener for event on s and logs the library's refusal,
// which happens only for reserved event names.
func (b *Binding) on(s *socket.Socket, event string, listener func(args ...any)) {
	if err := s.On(event, listener); err != nil {
		b.log.Error("registering an event listener failed", "socket", s.Id(), "event", event, "error", err)
	}
}

func (b *Binding) disconnected(s *socket.Socket, reason string) {
	id, known := b.flow.Disconnected(string(s.Id()))
	if !known {
		return
	}

	b.hooksMu.RLock()
	hook := b.onDisconnect
	b.hooksMu.RUnlock()
	if hook != nil {
		hook(s, id, reason)
	}
}

// authenticated is the flow's Authenticated hook.
func (b *Binding) authenticated(s adapter.Socket, id adapter.Identity) {
	b.hooksMu.RLock()
	hook := b.onAuthenticated
	b.hooksMu.RUnlock()

	bound, ok := s.(*boundSocket)
	if hook == nil || !ok {
		return
	}
	hook(bound.socket, id)
}

// payloadOf returns the first argument of an authenticate or logout event,
// or nil when there is none. A trailing ack callback is not a payload.
func payloadOf(args []any) any {
	if len(args) == 0 {
		return nil
	}
	if _, isAck := args[0].(socket.Ack); isAck {
		return nil
	}
	return args[0]
}

func firstSocket(args []any) (*socket.Socket, bool) {
	if len(args) == 0 {
		return nil, false
	}
	s, ok := args[0].(*socket.Socket)
	return s, ok && s != nil
}

func firstString(args []any) (string, bool) {
	if len(args) == 0 {
		return "", false
	}
	s, ok := args[0].(string)
	return s, ok
}
