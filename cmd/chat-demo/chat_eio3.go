package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sync"

	socketio "github.com/googollee/go-socket.io"
	"github.com/googollee/go-socket.io/engineio"
	"github.com/googollee/go-socket.io/engineio/transport"
	"github.com/googollee/go-socket.io/engineio/transport/polling"

	"github.com/sockauth/sockauth/adapter"
	"github.com/sockauth/sockauth/adapter/gosocketio"
	sockauthv1 "github.com/sockauth/sockauth/gen/sockauth/v1"
)

// messageHandler handles a chat message of an authenticated socket.
type messageHandler func(socketID string, id adapter.Identity, payload json.RawMessage)

// eio3Chat is the go-socket.io server of socket.io-client 2.x.
type eio3Chat struct {
	server *socketio.Server
	// handler serves server and guards its long-polling transport.
	handler *gosocketio.PollingHandler
	binding *gosocketio.Binding
	// polling is set when the server offers HTTP long-polling.
	polling bool
	logger  *slog.Logger

	outboxesMu sync.Mutex // guards outboxes
	// outboxes contains the chat messages that wait for a connection, by
	// connection id. A connection has an entry only while a goroutine sends
	// its messages, so idle connections cost nothing here.
	outboxes map[string]*outbox
}

// outboxLimit is how many chat messages may wait for one connection. Further
// messages to that connection are dropped until it catches up.
const outboxLimit = 64

// outbox is the queue of chat messages of one connection.
type outbox struct {
	pending []outgoingMessage
	// dropped counts the messages dropped since the last one queued.
	dropped int
}

// newEIO3Chat builds the go-socket.io server, attaches the sockauth flow to
// its root namespace and starts it.
func newEIO3Chat(authority sockauthv1.AuthorityServiceClient, opts chatOptions, logger *slog.Logger, onMessage messageHandler) (*eio3Chat, error) {
	// NOTE: by default the server offers only the WebSocket transport. With
	// go-socket.io v1.7.0 and socket.io-client 2.5.0, a packet posted while
	// the client upgraded from long-polling to WebSocket got HTTP 400, which
	// closed the connection. go-socket.io offers a session the upgrade to the
	// transports listed after the session's own, so with polling listed last
	// a session that starts on long-polling stays there. docs/clients.md
	// lists the measured results.
	// The transport's default message limit of 1 MiB stays far above the
	// adapter's payload limit, so that an oversized authenticate payload
	// gets unauthorized with payload_too_large rather than a closed
	// connection.
	websocket := gosocketio.NewWebSocketTransport()
	websocket.Logger = logger.With("component", "transport", "protocol", "eio3")
	transports := []transport.Transport{websocket}
	if opts.EIO3Polling {
		transports = []transport.Transport{websocket, polling.Default}
	}
	server := gosocketio.NewServer(&engineio.Options{Transports: transports})

	binding, err := gosocketio.New(server, adapter.Config{
		Authority:            authority,
		AuthTimeout:          opts.AuthTimeout,
		SessionCheckInterval: sessionCheckInterval,
		TrustedProxies:       opts.TrustedProxies,
		Registerer:           opts.Metrics.registerer("eio3"),
		Logger:               logger.With("component", "adapter", "protocol", "eio3"),
	})
	if err != nil {
		server.Close()
		return nil, fmt.Errorf("attach the sockauth adapter: %w", err)
	}

	// Joining the room on authentication, and leaving it only on disconnect,
	// keeps unauthenticated sockets out of the audience. broadcast checks each
	// socket again, because a rejected socket stays in the room until its
	// connection closes.
	binding.OnAuthenticated(func(conn socketio.Conn, id adapter.Identity) {
		conn.Join(chatRoom)
		logger.Info("socket joined the chat", "socket", conn.ID(), "subject", id.Subject, "sid", id.SessionID, "protocol", "eio3")
	})
	binding.OnDisconnect(func(conn socketio.Conn, id adapter.Identity, reason string) {
		logger.Info("socket disconnected", "socket", conn.ID(), "subject", id.Subject, "sid", id.SessionID, "reason", reason, "protocol", "eio3")
	})

	// The payload is raw JSON, because go-socket.io drops the whole
	// connection when it cannot decode an argument into a typed parameter.
	binding.OnEvent(eventMessage, func(conn socketio.Conn, id adapter.Identity, payload json.RawMessage) {
		onMessage(conn.ID(), id, payload)
	})
	binding.OnEvent(eventEcho, handleEcho)

	go func() {
		// Serve returns when Close closes the engine.io server.
		if err := server.Serve(); err != nil {
			logger.Debug("socket.io server stopped", "err", err)
		}
	}()
	return &eio3Chat{
		server:   server,
		handler:  gosocketio.Handler(server, logger.With("component", "transport", "protocol", "eio3")),
		binding:  binding,
		polling:  opts.EIO3Polling,
		logger:   logger,
		outboxes: make(map[string]*outbox),
	}, nil
}

func (c *eio3Chat) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// go-socket.io rejects a transport it does not offer with the garbled
	// text "invalid transport: %!s(<nil>)", so the demo writes its own message.
	transport := r.URL.Query().Get("transport")
	switch {
	case !c.polling && transport != "websocket":
		http.Error(w, fmt.Sprintf("invalid transport %q: socket.io 2.x clients must use the websocket transport "+
			"on this server, or start the chat demo with --eio3-polling", transport), http.StatusBadRequest)
		return
	case transport != "websocket" && transport != "polling":
		http.Error(w, fmt.Sprintf("invalid transport %q: expected websocket or polling", transport), http.StatusBadRequest)
		return
	}
	c.handler.ServeHTTP(w, r)
}

// disconnectAll ends the reads of long-polling POST bodies under way and
// closes every connection of the root namespace. Each connection is in a
// room named after its id, so the rooms list them all.
func (c *eio3Chat) disconnectAll() {
	c.handler.CancelPayloadReads()
	conns := make(map[string]socketio.Conn)
	for _, room := range c.server.Rooms("/") {
		c.server.ForEach("/", room, func(conn socketio.Conn) {
			conns[conn.ID()] = conn
		})
	}
	// Close outside ForEach, which holds the room lock that a closing
	// connection takes to leave its rooms.
	for _, conn := range conns {
		_ = conn.Close()
	}
}

// Close stops the sockauth flow and closes the server and its connections.
func (c *eio3Chat) Close() error {
	c.binding.Close()
	return c.server.Close()
}

// broadcast queues msg for every socket in the chat room that is still
// authenticated.
//
// go-socket.io v1.7.0 emits through an unbuffered channel per connection, so
// an Emit to a connection whose client does not read blocks until that
// connection times out. A polling client that went away without a close
// packet is such a connection for up to a minute. Each connection's messages
// therefore go out from a goroutine of their own, in order.
func (c *eio3Chat) broadcast(msg outgoingMessage) {
	var audience []socketio.Conn
	c.server.ForEach("/", chatRoom, func(conn socketio.Conn) {
		audience = append(audience, conn)
	})

	// Queue outside ForEach, which holds the room lock while it runs.
	for _, conn := range audience {
		if _, ok := c.binding.Identity(conn); !ok {
			continue
		}
		c.enqueue(conn, msg)
	}
}

// enqueue adds msg to the outbox of conn, and starts the goroutine that sends
// it when none runs. It drops msg when the outbox is full.
func (c *eio3Chat) enqueue(conn socketio.Conn, msg outgoingMessage) {
	c.outboxesMu.Lock()
	box, sending := c.outboxes[conn.ID()]
	if !sending {
		box = &outbox{}
		c.outboxes[conn.ID()] = box
	}
	if len(box.pending) >= outboxLimit {
		box.dropped++
		dropped := box.dropped
		c.outboxesMu.Unlock()
		if dropped == 1 {
			c.logger.Warn("chat message dropped for a socket that does not read, and later ones are dropped "+
				"without a log line until it reads", "socket", conn.ID(), "protocol", "eio3", "limit", outboxLimit)
		}
		return
	}
	box.pending = append(box.pending, msg)
	box.dropped = 0
	c.outboxesMu.Unlock()

	if !sending {
		go c.send(conn, box)
	}
}

// send emits the messages of box to conn until box is empty, and then removes
// box. An Emit to a closed connection returns at once.
func (c *eio3Chat) send(conn socketio.Conn, box *outbox) {
	for {
		c.outboxesMu.Lock()
		if len(box.pending) == 0 {
			delete(c.outboxes, conn.ID())
			c.outboxesMu.Unlock()
			return
		}
		msg := box.pending[0]
		box.pending = box.pending[1:]
		c.outboxesMu.Unlock()

		conn.Emit(eventMessage, msg)
	}
}
