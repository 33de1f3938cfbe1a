package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/zishang520/socket.io/servers/engine/v3"
	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/sockauth/sockauth/adapter"
	"github.com/sockauth/sockauth/adapter/socketio"
	sockauthv1 "github.com/sockauth/sockauth/gen/sockauth/v1"
)

// maxEIO4PayloadBytes bounds the size of one HTTP long-polling request or
// WebSocket message of a socket.io 3.x or 4.x client. The largest legitimate
// packet is a chat message or a token of 4096 bytes, with JSON framing.
const maxEIO4PayloadBytes = 64 << 10

// eio4Chat is the zishang520 socket.io server of socket.io-client 3.x and
// 4.x. It offers HTTP long-polling and WebSocket, with upgrades.
type eio4Chat struct {
	server  *socket.Server
	binding *socketio.Binding
	handler http.Handler
}

// newEIO4Chat builds the zishang520 socket.io server and attaches the
// sockauth flow to its root namespace.
func newEIO4Chat(authority sockauthv1.AuthorityServiceClient, opts chatOptions, logger *slog.Logger, onMessage messageHandler) (*eio4Chat, error) {
	serverOptions := socket.DefaultServerOptions()
	serverOptions.SetServeClient(false)
	serverOptions.SetMaxHttpBufferSize(maxEIO4PayloadBytes)
	server := socket.NewServer(nil, serverOptions)

	binding, err := socketio.New(server, adapter.Config{
		Authority:            authority,
		AuthTimeout:          opts.AuthTimeout,
		SessionCheckInterval: sessionCheckInterval,
		TrustedProxies:       opts.TrustedProxies,
		Registerer:           opts.Metrics.registerer("eio4"),
		Logger:               logger.With("component", "adapter", "protocol", "eio4"),
	})
	if err != nil {
		server.Close(nil)
		return nil, fmt.Errorf("attach the sockauth adapter: %w", err)
	}

	binding.OnAuthenticated(func(s *socket.Socket, id adapter.Identity) {
		logger.Info("socket joined the chat", "socket", s.Id(), "subject", id.Subject, "sid", id.SessionID, "protocol", "eio4")
	})
	binding.OnDisconnect(func(s *socket.Socket, id adapter.Identity, reason string) {
		logger.Info("socket disconnected", "socket", s.Id(), "subject", id.Subject, "sid", id.SessionID, "reason", reason, "protocol", "eio4")
	})
	binding.OnEvent(eventMessage, func(s *socket.Socket, id adapter.Identity, args ...any) {
		payload, err := firstArgumentJSON(args)
		if err != nil {
			logger.Info("message dropped", "socket", s.Id(), "subject", id.Subject, "err", err)
			return
		}
		onMessage(string(s.Id()), id, payload)
	})
	binding.OnEvent(eventEcho, func(s *socket.Socket, id adapter.Identity, args ...any) {
		ack, ok := trailingAck(args)
		if !ok {
			return
		}
		payload, err := firstArgumentJSON(args)
		if err != nil {
			ack([]any{""}, nil)
			return
		}
		ack([]any{handleEcho(nil, id, payload)}, nil)
	})

	// ReleaseHijacked lets each WebSocket drop the HTTP server's buffers of
	// its connection, which the library would keep for its whole life, and
	// lets an idle WebSocket's reader keep a smaller stack.
	return &eio4Chat{server: server, binding: binding, handler: socketio.ReleaseHijacked(server.ServeHandler(nil))}, nil
}

func (c *eio4Chat) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.handler.ServeHTTP(w, r)
}

// disconnectAll closes the engine.io connection of every client once its
// buffered packets are sent. A pending long-poll ends with a close packet.
// Clients see "transport close" and reconnect, for example to the next
// process behind the same address, as they do when a Node socket.io server
// closes. A socket.io DISCONNECT packet would end in "io server disconnect",
// after which socket.io clients do not reconnect.
func (c *eio4Chat) disconnectAll() {
	var clients []engine.Socket
	c.server.Engine().Clients().Range(func(_ string, client engine.Socket) bool {
		clients = append(clients, client)
		return true
	})
	for _, client := range clients {
		client.Close(false)
	}
}

// Close stops the sockauth flow and closes the server and its connections.
func (c *eio4Chat) Close() {
	c.binding.Close()

	closed := make(chan struct{})
	c.server.Close(func(error) { close(closed) })
	<-closed
}

// broadcast emits msg to every authenticated socket of the root namespace.
func (c *eio4Chat) broadcast(msg outgoingMessage) {
	payload := map[string]any{"from": msg.From, "text": msg.Text, "at": msg.At}

	var audience []*socket.Socket
	c.server.Sockets().Sockets().Range(func(_ socket.SocketId, s *socket.Socket) bool {
		audience = append(audience, s)
		return true
	})
	for _, s := range audience {
		if _, ok := c.binding.Identity(s); !ok {
			continue
		}
		_ = s.Emit(eventMessage, payload)
	}
}

// firstArgumentJSON returns the first argument of an event, which the library
// decoded from JSON, encoded as JSON again, so that both servers share one
// payload parser. A missing argument is JSON null.
func firstArgumentJSON(args []any) (json.RawMessage, error) {
	if len(args) == 0 {
		return json.RawMessage("null"), nil
	}
	if _, isAck := args[0].(socket.Ack); isAck {
		return json.RawMessage("null"), nil
	}
	return json.Marshal(args[0])
}

// trailingAck returns the ack callback of an event that the client emitted
// with one.
func trailingAck(args []any) (socket.Ack, bool) {
	if len(args) == 0 {
		return nil, false
	}
	ack, ok := args[len(args)-1].(socket.Ack)
	return ack, ok
}
