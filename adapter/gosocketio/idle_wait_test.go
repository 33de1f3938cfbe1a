//go:build unix

package gosocketio

import (
	"bufio"
	"crypto/tls"
	"errors"
	"os"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/sockauth/sockauth/adapter"
	"github.com/sockauth/sockauth/internal/loopbacktest"
)

func waitAsync(w *idleWaiter) <-chan error {
	done := make(chan error, 1)
	go func() { done <- w.wait() }()
	return done
}

func TestIdleWaiterWaitsForData(t *testing.T) {
	server, client := loopbacktest.TCPPair(t)
	reader := bufio.NewReaderSize(server, 512)
	waiter := newIdleWaiter(server, reader)
	if waiter == nil {
		t.Fatal("newIdleWaiter returned nil for a TCP connection")
	}

	done := waitAsync(waiter)
	select {
	case err := <-done:
		t.Fatalf("wait returned %v before the client sent anything", err)
	case <-time.After(50 * time.Millisecond):
	}

	if _, err := client.Write([]byte("x")); err != nil {
		t.Fatalf("Write: %v", err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("wait: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("wait still blocks 5 s after the client sent a byte")
	}
	if b, err := reader.ReadByte(); err != nil || b != 'x' {
		t.Fatalf("ReadByte after wait = %q, %v; expected the byte that wait only peeked at", b, err)
	}
}

func TestIdleWaiterReturnsWithBufferedBytes(t *testing.T) {
	server, client := loopbacktest.TCPPair(t)
	reader := bufio.NewReaderSize(server, 512)
	waiter := newIdleWaiter(server, reader)
	if _, err := client.Write([]byte("ab")); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if _, err := reader.Peek(2); err != nil {
		t.Fatalf("Peek: %v", err)
	}
	if _, err := reader.ReadByte(); err != nil {
		t.Fatalf("ReadByte: %v", err)
	}

	// The socket is empty now, but the reader still holds "b".
	select {
	case err := <-waitAsync(waiter):
		if err != nil {
			t.Fatalf("wait: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("wait blocks although the reader holds a buffered byte")
	}
}

func TestIdleWaiterReadDeadline(t *testing.T) {
	server, _ := loopbacktest.TCPPair(t)
	waiter := newIdleWaiter(server, bufio.NewReaderSize(server, 512))
	if err := server.SetReadDeadline(time.Now().Add(20 * time.Millisecond)); err != nil {
		t.Fatalf("SetReadDeadline: %v", err)
	}
	select {
	case err := <-waitAsync(waiter):
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("wait = %v, expected os.ErrDeadlineExceeded", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("wait ignores the read deadline")
	}
}

func TestIdleWaiterReturnsOnClose(t *testing.T) {
	server, client := loopbacktest.TCPPair(t)
	waiter := newIdleWaiter(server, bufio.NewReaderSize(server, 512))
	done := waitAsync(waiter)
	client.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("wait = %v, expected nil so that the next read reports the close", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("wait still blocks 5 s after the client closed")
	}
}

func TestIdleWaiterNotForTLS(t *testing.T) {
	server, _ := loopbacktest.TCPPair(t)
	if waiter := newIdleWaiter(tls.Server(server, &tls.Config{}), nil); waiter != nil {
		t.Fatal("newIdleWaiter returned a waiter for a TLS connection, whose decrypted bytes it cannot see")
	}
}

func TestWebSocketReaderWaitsOutsideGorilla(t *testing.T) {
	ts, _ := newWebSocketTestServer(t, NewWebSocketTransport())
	c := dial(t, ts.url, "/")
	c.emit(adapter.EventAuthenticate, `{"token":"code-alice"}`)
	c.expectEvent(adapter.EventAuthenticated)

	waitUntil(t, func() bool {
		var dump strings.Builder
		if err := pprof.Lookup("goroutine").WriteTo(&dump, 2); err != nil {
			t.Fatalf("goroutine dump: %v", err)
		}
		return strings.Contains(dump.String(), "(*idleWaiter).wait")
	}, "the idle reader goroutine waits in idleWaiter.wait")
}
