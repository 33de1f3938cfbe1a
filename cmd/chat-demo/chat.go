package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	socketio "github.com/googollee/go-socket.io"
	"github.com/googollee/go-socket.io/engineio"
	"github.com/googollee/go-socket.io/engineio/transport"
	"github.com/googollee/go-socket.io/engineio/transport/websocket"

	"github.com/sockauth/sockauth/adapter"
	"github.com/sockauth/sockauth/adapter/gosocketio"
	sockauthv1 "github.com/sockauth/sockauth/gen/sockauth/v1"
)

const (
	// chatRoom is the go-socket.io room of the authenticated sockets, the
	// audience of every chat message.
	chatRoom = "chat"

	// eventMessage is the chat event: {text} from a client, {from, text, at}
	// to every authenticated socket.
	eventMessage = "message"

	// eventEcho asks for an ack that carries the event's JSON payload back as
	// a string. Load generators use it as a request whose cost does not grow
	// with the number of sockets, unlike a chat message, which goes to every
	// socket. (The name "ping" is reserved by socket.io 2.x clients.)
	eventEcho = "echo"

	// maxEchoBytes bounds the payload that an echo returns.
	maxEchoBytes = 256

	// maxMessageRunes is the maximum length of a chat message after trimming
	// spaces, in Unicode code points. The page's input enforces the same number
	// in UTF-16 code units, which is never fewer.
	maxMessageRunes = 500

	// maxMessagePayloadBytes bounds the JSON payload of a message event, so an
	// oversized payload is dropped before it is decoded. It is twice the UTF-8
	// size of a maximum-length message, which leaves room for JSON escapes.
	maxMessagePayloadBytes = 4 * maxMessageRunes * 2

	// sessionCheckInterval is how often the adapter checks with the authority
	// that the session of each authenticated socket is still alive. That check
	// disconnects the sockets of a session revoked elsewhere, such as by reuse
	// of a replaced token.
	sessionCheckInterval = 30 * time.Second
)

// incomingMessage is the payload of a message event from a client.
type incomingMessage struct {
	Text string `json:"text"`
}

// outgoingMessage is the payload of a message event to the clients.
type outgoingMessage struct {
	From string `json:"from"`
	Text string `json:"text"`
	// At is when the server received the message, in RFC 3339 with
	// milliseconds, UTC.
	At string `json:"at"`
}

// chatServer is the socket.io side of the demo: the sockauth binding and the
// chat event handler. It serves /socket.io/.
type chatServer struct {
	server  *socketio.Server
	binding *gosocketio.Binding
	logger  *slog.Logger
}

// newChatServer builds the socket.io server, attaches the sockauth flow to its
// root namespace and starts it.
func newChatServer(authority sockauthv1.AuthorityServiceClient, authTimeout time.Duration, logger *slog.Logger) (*chatServer, error) {
	// NOTE: the server offers only the WebSocket transport. In local runs with
	// go-socket.io v1.7.0 and socket.io-client 2.5.0, HTTP long-polling lost
	// events, and an event sent while the client upgraded to WebSocket got HTTP
	// 400, which closed the connection. Clients must connect with transports: ['websocket'].
	server := gosocketio.NewServer(&engineio.Options{
		Transports: []transport.Transport{websocket.Default},
	})

	binding, err := gosocketio.New(server, adapter.Config{
		Authority:            authority,
		AuthTimeout:          authTimeout,
		SessionCheckInterval: sessionCheckInterval,
		Logger:               logger.With("component", "adapter"),
	})
	if err != nil {
		server.Close()
		return nil, fmt.Errorf("attach the sockauth adapter: %w", err)
	}

	c := &chatServer{server: server, binding: binding, logger: logger}

	// Joining the room on authentication, and leaving it only on disconnect,
	// keeps unauthenticated sockets out of the audience. broadcast checks each
	// socket again, because a rejected socket stays in the room until its
	// connection closes.
	binding.OnAuthenticated(func(conn socketio.Conn, id adapter.Identity) {
		conn.Join(chatRoom)
		logger.Info("socket joined the chat", "socket", conn.ID(), "subject", id.Subject, "sid", id.SessionID)
	})
	binding.OnDisconnect(func(conn socketio.Conn, id adapter.Identity, reason string) {
		logger.Info("socket disconnected", "socket", conn.ID(), "subject", id.Subject, "sid", id.SessionID, "reason", reason)
	})
	binding.OnEvent(eventMessage, c.handleMessage)
	binding.OnEvent(eventEcho, handleEcho)

	go func() {
		// Serve returns when Close closes the engine.io server.
		if err := server.Serve(); err != nil {
			logger.Debug("socket.io server stopped", "err", err)
		}
	}()
	return c, nil
}

func (c *chatServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.server.ServeHTTP(w, r)
}

// Close stops the sockauth flow and closes the socket.io server and its
// connections.
func (c *chatServer) Close() error {
	c.binding.Close()
	return c.server.Close()
}

// handleMessage runs only for authenticated sockets, because it is registered
// through the binding. The payload is raw JSON, because go-socket.io drops the
// whole connection when it cannot decode an argument into a typed parameter.
func (c *chatServer) handleMessage(conn socketio.Conn, id adapter.Identity, payload json.RawMessage) {
	text, err := parseMessage(payload)
	if err != nil {
		c.logger.Info("message dropped", "socket", conn.ID(), "subject", id.Subject, "err", err)
		return
	}

	c.broadcast(outgoingMessage{
		From: id.Subject,
		Text: text,
		At:   time.Now().UTC().Format("2006-01-02T15:04:05.000Z07:00"),
	})
}

// handleEcho acknowledges an echo of an authenticated socket with its
// payload, or with an empty string when the payload exceeds maxEchoBytes.
func handleEcho(_ socketio.Conn, _ adapter.Identity, payload json.RawMessage) string {
	if len(payload) > maxEchoBytes {
		return ""
	}
	return string(payload)
}

// Errors of parseMessage.
var (
	errMessagePayload = errors.New("invalid message payload: expected {text: string}")
	errMessageEmpty   = errors.New("empty message")
	errMessageTooLong = fmt.Errorf("message too long: the limit is %d characters", maxMessageRunes)
)

// parseMessage returns the trimmed text of a message payload.
func parseMessage(payload json.RawMessage) (string, error) {
	if len(payload) > maxMessagePayloadBytes {
		return "", errMessageTooLong
	}

	var msg incomingMessage
	if err := json.Unmarshal(payload, &msg); err != nil {
		return "", fmt.Errorf("%w: %v", errMessagePayload, err)
	}

	text := strings.TrimSpace(msg.Text)
	if text == "" {
		return "", errMessageEmpty
	}
	if utf8.RuneCountInString(text) > maxMessageRunes {
		return "", errMessageTooLong
	}
	return text, nil
}

// broadcast emits msg to every socket in the chat room that is still
// authenticated.
//
// NOTE: go-socket.io v1.7.0 emits through an unbuffered channel per
// connection, so a slow connection delays the sender's following events.
func (c *chatServer) broadcast(msg outgoingMessage) {
	var audience []socketio.Conn
	c.server.ForEach("/", chatRoom, func(conn socketio.Conn) {
		audience = append(audience, conn)
	})

	// Emit outside ForEach, which holds the room lock while it runs.
	for _, conn := range audience {
		if _, ok := c.binding.Identity(conn); !ok {
			continue
		}
		conn.Emit(eventMessage, msg)
	}
}
