package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/sockauth/sockauth/adapter/gosocketio"
	sockauthv1 "github.com/sockauth/sockauth/gen/sockauth/v1"
)

// newUnreachableAuthority returns a client of an authority address on which
// nothing listens. Building a chat server needs one, and opening an
// Engine.IO connection makes no authority call.
func newUnreachableAuthority(t *testing.T) sockauthv1.AuthorityServiceClient {
	t.Helper()

	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free loopback port: %v", err)
	}
	addr := listener.Addr().String()
	listener.Close()

	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("grpc.NewClient: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return sockauthv1.NewAuthorityServiceClient(conn)
}

// pollUnknownSession sends an HTTP long-polling request of Engine.IO
// protocol eio (none when empty) for a session that does not exist, and
// returns the response status and body. Each server rejects it with its own
// message, and no session is opened.
func pollUnknownSession(t *testing.T, baseURL, eio string) (int, string) {
	t.Helper()

	target := baseURL + "/socket.io/?transport=polling&sid=unknown"
	if eio != "" {
		target += "&EIO=" + eio
	}
	resp, err := http.Get(target)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the response of %s: %v", target, err)
	}
	return resp.StatusCode, string(body)
}

// serveTestChat serves a chat server with opts over loopback HTTP until the
// test ends and returns its base URL.
func serveTestChat(t *testing.T, opts chatOptions) string {
	t.Helper()

	chat, err := newChatServer(newUnreachableAuthority(t), opts, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("newChatServer: %v", err)
	}
	server := httptest.NewServer(chat)
	t.Cleanup(func() {
		server.Close()
		if err := chat.Close(); err != nil {
			t.Errorf("closing the chat server: %v", err)
		}
	})
	return server.URL
}

func TestChatRoutesByEngineIOProtocol(t *testing.T) {
	tests := []struct {
		name        string
		eio3Polling bool
		eio         string
		// wantText is a part of the response that only the expected server
		// sends.
		wantText string
	}{
		{name: "protocol 4", eio: "4", wantText: "Session ID unknown"},
		{name: "protocol 4 beside polling for protocol 3", eio3Polling: true, eio: "4", wantText: "Session ID unknown"},
		{name: "protocol 3 with polling", eio3Polling: true, eio: "3", wantText: "invalid sid value"},
		{name: "protocol 3 without polling", eio: "3", wantText: `invalid transport "polling": socket.io 2.x clients must use the websocket transport`},
		{name: "no protocol", eio3Polling: true, eio: "", wantText: "invalid sid value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := pollUnknownSession(t, serveTestChat(t, chatOptions{AuthTimeout: time.Second, EIO3Polling: tt.eio3Polling}), tt.eio)

			if status != http.StatusBadRequest {
				t.Errorf("status %d, expected %d", status, http.StatusBadRequest)
			}
			if !strings.Contains(body, tt.wantText) {
				t.Errorf("body %q, expected it to contain %q", body, tt.wantText)
			}
		})
	}
}

func TestChatEIO3WebSocketMessageLimit(t *testing.T) {
	baseURL := serveTestChat(t, chatOptions{AuthTimeout: 5 * time.Second})
	url := "ws" + strings.TrimPrefix(baseURL, "http") + "/socket.io/?EIO=3&transport=websocket"
	conn, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatalf("dialing %s: %v", url, err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatalf("SetReadDeadline: %v", err)
	}
	for _, want := range []string{"0", "40"} { // engine.io open, socket.io connect
		_, data, err := conn.ReadMessage()
		if err != nil || !strings.HasPrefix(string(data), want) {
			t.Fatalf("read %q, %v, expected a frame starting with %q", data, err, want)
		}
	}

	message := `42["message",{"text":"` + strings.Repeat("x", gosocketio.DefaultMaxMessageBytes) + `"}]`
	if err := conn.WriteMessage(websocket.TextMessage, []byte(message)); err != nil {
		t.Fatalf("writing a message of %d bytes: %v", len(message), err)
	}

	for {
		_, _, err := conn.ReadMessage()
		if err == nil {
			continue // frames sent before the close
		}
		var netErr net.Error
		if errors.As(err, &netErr) && netErr.Timeout() {
			t.Fatalf("the connection is still open 5 s after a message of %d bytes, expected the server to close it (limit %d)", len(message), gosocketio.DefaultMaxMessageBytes)
		}
		return
	}
}

func TestChatEIO3RejectsUnknownTransport(t *testing.T) {
	baseURL := serveTestChat(t, chatOptions{AuthTimeout: time.Second, EIO3Polling: true})
	for _, transport := range []string{"flashsocket", ""} {
		resp, err := http.Get(baseURL + "/socket.io/?EIO=3&transport=" + transport)
		if err != nil {
			t.Fatalf("GET: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("transport %q: status %d, expected %d", transport, resp.StatusCode, http.StatusBadRequest)
		}
		want := fmt.Sprintf("invalid transport %q: expected websocket or polling", transport)
		if !strings.Contains(string(body), want) {
			t.Errorf("transport %q: body %q, expected it to contain %q", transport, body, want)
		}
	}
}
