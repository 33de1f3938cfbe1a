package loopbacktest

import (
	"io"
	"testing"
)

func TestTCPPairConnectsBothEnds(t *testing.T) {
	server, client := TCPPair(t)
	if _, err := client.Write([]byte("ping")); err != nil {
		t.Fatalf("Write: %v", err)
	}
	got := make([]byte, 4)
	if _, err := io.ReadFull(server, got); err != nil {
		t.Fatalf("ReadFull: %v", err)
	}
	if string(got) != "ping" {
		t.Errorf("server read %q, expected %q", got, "ping")
	}
}
