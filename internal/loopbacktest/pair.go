// Package loopbacktest opens loopback connections for tests.
package loopbacktest

import (
	"net"
	"testing"
)

// TCPPair returns the server and client ends of a new TCP connection on
// 127.0.0.1, and closes both when the test ends.
func TCPPair(t testing.TB) (server, client net.Conn) {
	t.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	defer listener.Close()

	client, err = net.Dial("tcp", listener.Addr().String())
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	server, err = listener.Accept()
	if err != nil {
		client.Close()
		t.Fatalf("Accept: %v", err)
	}
	t.Cleanup(func() {
		server.Close()
		client.Close()
	})
	return server, client
}
