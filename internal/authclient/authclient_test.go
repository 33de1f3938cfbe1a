package authclient

import (
	"bytes"
	"context"
	"io"
	"net"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/health/grpc_health_v1"
)

// TestDialSendsNoBDPPings checks that a response does not make the client
// send a PING to estimate the bandwidth-delay product. With grpc-go's
// dynamic windows, the first DATA frame of a response queues such a PING
// before the call returns, so it would reach the server before the HEADERS
// of the next call.
func TestDialSendsNoBDPPings(t *testing.T) {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	t.Cleanup(func() { listener.Close() })

	conn, err := Dial(Options{Address: listener.Addr().String()})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	client := grpc_health_v1.NewHealthClient(conn)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	firstCall := make(chan error, 1)
	go func() {
		_, err := client.Check(ctx, &grpc_health_v1.HealthCheckRequest{})
		firstCall <- err
	}()

	server, err := listener.Accept()
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	t.Cleanup(func() { server.Close() })
	server.SetDeadline(time.Now().Add(10 * time.Second))
	framer := acceptHTTP2(t, server)

	streamID := readUntilHeaders(t, framer, nil)
	respondOK(t, framer, streamID)
	if err := <-firstCall; err != nil {
		t.Fatalf("first Check: %v", err)
	}

	secondCall := make(chan error, 1)
	go func() {
		_, err := client.Check(ctx, &grpc_health_v1.HealthCheckRequest{})
		secondCall <- err
	}()
	var pings int
	streamID = readUntilHeaders(t, framer, func(frame http2.Frame) {
		if ping, ok := frame.(*http2.PingFrame); ok && !ping.IsAck() {
			pings++
		}
	})
	if pings != 0 {
		t.Errorf("the client sent %d PING frames between two calls, expected none", pings)
	}
	respondOK(t, framer, streamID)
	if err := <-secondCall; err != nil {
		t.Fatalf("second Check: %v", err)
	}
}

// acceptHTTP2 reads the client preface of an HTTP/2 connection and sends
// the server's empty SETTINGS frame.
func acceptHTTP2(tb testing.TB, conn net.Conn) *http2.Framer {
	tb.Helper()
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(conn, preface); err != nil || string(preface) != http2.ClientPreface {
		tb.Fatalf("read client preface: %q, %v", preface, err)
	}
	framer := http2.NewFramer(conn, conn)
	if err := framer.WriteSettings(); err != nil {
		tb.Fatalf("write SETTINGS: %v", err)
	}
	return framer
}

// readUntilHeaders reads frames from the client up to the HEADERS frame
// that opens a stream, passes every frame before it to seen, acknowledges
// SETTINGS and PING frames, and returns the stream id.
func readUntilHeaders(tb testing.TB, framer *http2.Framer, seen func(http2.Frame)) uint32 {
	tb.Helper()
	for {
		frame, err := framer.ReadFrame()
		if err != nil {
			tb.Fatalf("read frame: %v", err)
		}
		switch frame := frame.(type) {
		case *http2.HeadersFrame:
			return frame.StreamID
		case *http2.SettingsFrame:
			if !frame.IsAck() {
				if err := framer.WriteSettingsAck(); err != nil {
					tb.Fatalf("write SETTINGS ack: %v", err)
				}
			}
		case *http2.PingFrame:
			if !frame.IsAck() {
				if err := framer.WritePing(true, frame.Data); err != nil {
					tb.Fatalf("write PING ack: %v", err)
				}
			}
		}
		if seen != nil {
			seen(frame)
		}
	}
}

// respondOK responds to a unary gRPC call with an empty message and status OK.
func respondOK(tb testing.TB, framer *http2.Framer, streamID uint32) {
	tb.Helper()
	encode := func(fields ...string) []byte {
		var block bytes.Buffer
		encoder := hpack.NewEncoder(&block)
		for i := 0; i < len(fields); i += 2 {
			encoder.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
		}
		return block.Bytes()
	}

	err := framer.WriteHeaders(http2.HeadersFrameParam{
		StreamID:      streamID,
		BlockFragment: encode(":status", "200", "content-type", "application/grpc"),
		EndHeaders:    true,
	})
	if err == nil {
		// A gRPC message: no compression, length 0.
		err = framer.WriteData(streamID, false, []byte{0, 0, 0, 0, 0})
	}
	if err == nil {
		err = framer.WriteHeaders(http2.HeadersFrameParam{
			StreamID:      streamID,
			BlockFragment: encode("grpc-status", "0"),
			EndHeaders:    true,
			EndStream:     true,
		})
	}
	if err != nil {
		tb.Fatalf("write response: %v", err)
	}
}
