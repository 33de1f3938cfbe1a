package main

import (
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	socketio "github.com/googollee/go-socket.io"

	"github.com/sockauth/sockauth/internal/logtest"
)

// emitConn is a go-socket.io connection that records the chat messages
// emitted to it. While blocked is open, Emit blocks like go-socket.io's Emit
// to a client that does not read.
type emitConn struct {
	socketio.Conn
	id      string
	blocked chan struct{}

	mu       sync.Mutex // guards received
	received []string
}

func (c *emitConn) ID() string { return c.id }

func (c *emitConn) Emit(event string, args ...any) {
	if c.blocked != nil {
		<-c.blocked
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.received = append(c.received, args[0].(outgoingMessage).Text)
}

// waitReceived returns the texts that c received once there are n of them,
// or fails the test after 5 s.
func (c *emitConn) waitReceived(t *testing.T, n int) []string {
	t.Helper()

	deadline := time.Now().Add(5 * time.Second)
	for {
		c.mu.Lock()
		received := append([]string(nil), c.received...)
		c.mu.Unlock()
		if len(received) >= n {
			return received
		}
		if time.Now().After(deadline) {
			t.Fatalf("socket %s received %q within 5 s, want %d messages", c.id, received, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func newOutboxChat(recorder *logtest.Recorder) *eio3Chat {
	return &eio3Chat{logger: slog.New(recorder), outboxes: make(map[string]*outbox)}
}

func TestEnqueueNotBlockedBySlowSocket(t *testing.T) {
	chat := newOutboxChat(&logtest.Recorder{})
	slow := &emitConn{id: "slow", blocked: make(chan struct{})}
	fast := &emitConn{id: "fast"}

	var want []string
	for i := range 3 {
		text := fmt.Sprintf("message %d", i)
		want = append(want, text)
		chat.enqueue(slow, outgoingMessage{Text: text})
		chat.enqueue(fast, outgoingMessage{Text: text})
	}

	if got := fast.waitReceived(t, 3); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("fast socket received %q, want %q in order", got, want)
	}
	close(slow.blocked)
	if got := slow.waitReceived(t, 3); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("slow socket received %q after it caught up, want %q in order", got, want)
	}
}

func TestEnqueueDropsBeyondLimit(t *testing.T) {
	recorder := &logtest.Recorder{}
	chat := newOutboxChat(recorder)
	slow := &emitConn{id: "slow", blocked: make(chan struct{})}

	// The sending goroutine takes the first message and blocks in Emit, so
	// outboxLimit more fit in the outbox.
	chat.enqueue(slow, outgoingMessage{Text: "first"})
	deadline := time.Now().Add(5 * time.Second)
	for {
		chat.outboxesMu.Lock()
		inFlight := len(chat.outboxes["slow"].pending) == 0
		chat.outboxesMu.Unlock()
		if inFlight {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the sending goroutine did not take the first message within 5 s")
		}
		time.Sleep(time.Millisecond)
	}
	for i := range outboxLimit + 5 {
		chat.enqueue(slow, outgoingMessage{Text: fmt.Sprint(i)})
	}

	warnings := recorder.Messages(slog.LevelWarn)
	if len(warnings) != 1 {
		t.Errorf("got warnings %q, want one for the 5 dropped messages", warnings)
	}
	close(slow.blocked)
	received := slow.waitReceived(t, 1+outboxLimit)
	if len(received) != 1+outboxLimit {
		t.Errorf("slow socket received %d messages, want %d", len(received), 1+outboxLimit)
	}
	if last := received[len(received)-1]; last != fmt.Sprint(outboxLimit-1) {
		t.Errorf("last message received %q, want %q, the last one that fit", last, fmt.Sprint(outboxLimit-1))
	}
}

func TestOutboxRemovedWhenSent(t *testing.T) {
	chat := newOutboxChat(&logtest.Recorder{})
	conn := &emitConn{id: "idle"}

	chat.enqueue(conn, outgoingMessage{Text: "hello"})
	conn.waitReceived(t, 1)

	deadline := time.Now().Add(5 * time.Second)
	for {
		chat.outboxesMu.Lock()
		left := len(chat.outboxes)
		chat.outboxesMu.Unlock()
		if left == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d outboxes left 5 s after the last message was sent, want none", left)
		}
		time.Sleep(time.Millisecond)
	}
}
