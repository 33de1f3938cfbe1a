//go:build unix

package gosocketio

import (
	"bufio"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/sockauth/sockauth/adapter"
)

// socketPair returns the two ends of a loopback TCP connection.
func socketPair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	defer listener.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		conn, err := listener.Accept()
		if err != nil {
			t.Errorf("Accept: %v", err)
		}
		accepted <- conn
	}()
	client, err = net.Dial("tcp", listener.Addr().String())
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	server = <-accepted
	if server == nil {
		t.FailNow()
	}
	t.Cleanup(func() {
		server.Close()
		client.Close()
	})
	return server, client
}

func waitAsync(w *idleWaiter) <-chan error {
	done := make(chan error, 1)
	go func() { done <- w.wait() }()
	return done
}

func TestIdleWaiterWaitsForData(t *testing.T) {
	server, client := socketPair(t)
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
	server, client := socketPair(t)
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
	server, _ := socketPair(t)
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
	server, client := socketPair(t)
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
	server, _ := socketPair(t)
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
