package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"
	"unicode/utf8"

	socketio "github.com/googollee/go-socket.io"

	"github.com/sockauth/sockauth/adapter"
	sockauthv1 "github.com/sockauth/sockauth/gen/sockauth/v1"
)

const (
	// chatRoom is the go-socket.io room of the authenticated sockets, the
	// audience of every chat message.
	chatRoom = "chat"

	// eventMessage is the chat event: {text} from a client, {from, text, at}
	// to every authenticated socket.
	eventMessage = "message"

	// eventEcho requests an ack that carries the event's JSON payload back as
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

// chatServer is the socket.io side of the demo. It serves every socket.io
// client generation on /socket.io/: requests of Engine.IO protocol 4, which
// socket.io-client 3.x and 4.x speak, go to a zishang520 socket.io server,
// and every other request goes to a go-socket.io server for
// socket.io-client 2.x (Engine.IO 3). Both run the sockauth flow, and a chat
// message reaches the authenticated sockets of both.
type chatServer struct {
	eio3   *eio3Chat
	eio4   *eio4Chat
	logger *slog.Logger
}

// chatOptions configures a chatServer.
type chatOptions struct {
	// AuthTimeout is how long a new socket may stay unauthenticated.
	AuthTimeout time.Duration
	// EIO3Polling offers HTTP long-polling to socket.io 2.x clients besides
	// WebSocket. Without it they must connect with transports: ['websocket'].
	EIO3Polling bool
	// TrustedProxies are the networks of the reverse proxies in front of
	// the demo (adapter.Config.TrustedProxies).
	TrustedProxies []netip.Prefix
	// Metrics receives the adapters' metrics, labelled by protocol. Nil
	// registers none.
	Metrics *metricsEndpoint
}

// newChatServer builds and starts both socket.io servers and attaches the
// sockauth flow to their root namespaces.
func newChatServer(authority sockauthv1.AuthorityServiceClient, opts chatOptions, logger *slog.Logger) (*chatServer, error) {
	c := &chatServer{logger: logger}

	eio3, err := newEIO3Chat(authority, opts, logger, c.handleMessage)
	if err != nil {
		return nil, err
	}
	eio4, err := newEIO4Chat(authority, opts, logger, c.handleMessage)
	if err != nil {
		_ = eio3.Close()
		return nil, err
	}

	c.eio3, c.eio4 = eio3, eio4
	return c, nil
}

// ServeHTTP routes a request by its EIO query parameter: "4" to the server
// of socket.io 3.x and 4.x clients, anything else to the server of 2.x
// clients, which rejects an unknown protocol itself.
func (c *chatServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("EIO") == "4" {
		c.eio4.ServeHTTP(w, r)
		return
	}
	c.eio3.ServeHTTP(w, r)
}

// disconnectAll closes the connections of both socket.io servers, which
// ends their pending long-polling requests, so that a graceful HTTP shutdown
// does not wait for them.
func (c *chatServer) disconnectAll() {
	c.eio4.disconnectAll()
	c.eio3.disconnectAll()
}

// Close stops the sockauth flows and closes both socket.io servers and their
// connections.
func (c *chatServer) Close() error {
	c.eio4.Close()
	return c.eio3.Close()
}

// handleMessage broadcasts a chat message of an authenticated socket to the
// authenticated sockets of both servers. The bindings call it only for
// authenticated sockets.
func (c *chatServer) handleMessage(socketID string, id adapter.Identity, payload json.RawMessage) {
	text, err := parseMessage(payload)
	if err != nil {
		c.logger.Info("message dropped", "socket", socketID, "subject", id.Subject, "err", err)
		return
	}

	msg := outgoingMessage{
		From: id.Subject,
		Text: text,
		At:   time.Now().UTC().Format("2006-01-02T15:04:05.000Z07:00"),
	}
	c.eio3.broadcast(msg)
	c.eio4.broadcast(msg)
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
