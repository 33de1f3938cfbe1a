package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// socketClient is a minimal socket.io 2.x client (protocol revision 4) over
// an engine.io 3 websocket, connected to the root namespace. It is enough
// for the sockauth events and nothing else.
type socketClient struct {
	conn *websocket.Conn

	writeMu sync.Mutex // serializes writes, which gorilla/websocket requires

	// packets receives every socket.io packet with the time it was read. It
	// is closed when the connection fails or closes.
	packets chan receivedPacket
}

// receivedPacket is a socket.io packet (an engine.io message without its
// type byte) and the time the reader took it off the connection.
type receivedPacket struct {
	text string
	at   time.Time
}

// errClosed is returned when the connection closed before the expected
// packet arrived.
var errClosed = errors.New("connection closed")

// dialSocket connects to the socket.io server at httpAddr (host:port) and
// waits for the connect packet of the root namespace.
func dialSocket(ctx context.Context, httpAddr string) (*socketClient, error) {
	url := "ws://" + httpAddr + "/socket.io/?EIO=3&transport=websocket"
	conn, _, err := websocket.DefaultDialer.DialContext(ctx, url, nil)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", url, err)
	}

	c := &socketClient{conn: conn, packets: make(chan receivedPacket, 16)}
	go c.read()

	packet, err := c.next(ctx)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("waiting for the connect packet: %w", err)
	}
	if packet.text != "0" {
		conn.Close()
		return nil, fmt.Errorf("got packet %q, expected the connect packet 0", packet.text)
	}
	return c, nil
}

// read forwards engine.io messages (type 4) to packets and drops the open
// and pong packets.
func (c *socketClient) read() {
	defer close(c.packets)
	for {
		_, data, err := c.conn.ReadMessage()
		if err != nil {
			return
		}
		at := time.Now()
		if len(data) > 0 && data[0] == '4' {
			c.packets <- receivedPacket{text: string(data[1:]), at: at}
		}
	}
}

// next returns the next socket.io packet.
func (c *socketClient) next(ctx context.Context) (receivedPacket, error) {
	select {
	case packet, ok := <-c.packets:
		if !ok {
			return receivedPacket{}, errClosed
		}
		return packet, nil
	case <-ctx.Done():
		return receivedPacket{}, ctx.Err()
	}
}

// write sends one engine.io message.
func (c *socketClient) write(message string) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	return c.conn.WriteMessage(websocket.TextMessage, []byte(message))
}

// ping sends an engine.io ping, which keeps the server from closing an idle
// connection.
func (c *socketClient) ping() error {
	return c.write("2")
}

// emit sends an event with JSON-encoded arguments.
func (c *socketClient) emit(event string, args ...any) error {
	data, err := json.Marshal(append([]any{event}, args...))
	if err != nil {
		return err
	}
	return c.write("42" + string(data))
}

// authenticate emits authenticate with token, waits for authenticated,
// acknowledges it and returns the new session token.
func (c *socketClient) authenticate(ctx context.Context, token string) (string, error) {
	if err := c.emit("authenticate", map[string]string{"token": token}); err != nil {
		return "", err
	}
	packet, err := c.next(ctx)
	if err != nil {
		return "", fmt.Errorf("waiting for authenticated: %w", err)
	}

	event, ackID, args, err := parseEvent(packet.text)
	if err != nil {
		return "", err
	}
	if event != "authenticated" || ackID < 0 || len(args) < 1 {
		return "", fmt.Errorf("got packet %q, expected authenticated with an ack id", packet.text)
	}
	var next string
	if err := json.Unmarshal(args[0], &next); err != nil {
		return "", fmt.Errorf("authenticated token %s: %w", args[0], err)
	}
	if err := c.write("43" + strconv.Itoa(ackID) + "[]"); err != nil {
		return "", err
	}
	return next, nil
}

// waitEvent returns the time at which the event arrived, skipping other
// packets.
func (c *socketClient) waitEvent(ctx context.Context, name string) (time.Time, error) {
	for {
		packet, err := c.next(ctx)
		if err != nil {
			return time.Time{}, fmt.Errorf("waiting for %s: %w", name, err)
		}
		event, _, _, err := parseEvent(packet.text)
		if err == nil && event == name {
			return packet.at, nil
		}
	}
}

// close closes the connection without a socket.io disconnect packet.
func (c *socketClient) close() {
	c.conn.Close()
}

// parseEvent splits an event packet "2[id][name, args...]" into its name,
// ack id (-1 without one) and raw arguments.
func parseEvent(packet string) (event string, ackID int, args []json.RawMessage, err error) {
	if !strings.HasPrefix(packet, "2") {
		return "", -1, nil, fmt.Errorf("packet %q is not an event", packet)
	}
	rest := packet[1:]

	digits := 0
	for digits < len(rest) && rest[digits] >= '0' && rest[digits] <= '9' {
		digits++
	}
	ackID = -1
	if digits > 0 {
		ackID, _ = strconv.Atoi(rest[:digits])
	}

	var parts []json.RawMessage
	if err := json.Unmarshal([]byte(rest[digits:]), &parts); err != nil || len(parts) == 0 {
		return "", -1, nil, fmt.Errorf("event packet %q: invalid JSON array", packet)
	}
	if err := json.Unmarshal(parts[0], &event); err != nil {
		return "", -1, nil, fmt.Errorf("event packet %q: name is not a string", packet)
	}
	return event, ackID, parts[1:], nil
}
