package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sockauth/sockauth/internal/logtest"
)

// serveTestApp runs the demo with long-polling for 2.x clients on a free
// loopback port, with an unreachable authority, until the test cancels the
// returned context. It returns the base URL and a channel that receives the
// result of Serve.
func serveTestApp(t *testing.T) (string, context.CancelFunc, <-chan error) {
	t.Helper()
	return serveTestAppWith(t, "127.0.0.1:1")
}

// serveTestAppWith runs the demo like serveTestApp, with the authority at
// authorityAddr.
func serveTestAppWith(t *testing.T, authorityAddr string) (string, context.CancelFunc, <-chan error) {
	t.Helper()

	users, err := newUserStore(defaultUsers)
	if err != nil {
		t.Fatalf("newUserStore: %v", err)
	}
	recorder := &logtest.Recorder{}
	// A long authentication timeout keeps the server from ending an idle
	// poll by itself while the test runs.
	cfg := config{Listen: "127.0.0.1:0", AuthTimeout: time.Minute, EIO3Polling: true}
	a, err := newApp(context.Background(), cfg, users, authorityAddr, slog.New(recorder))
	if err != nil {
		t.Fatalf("newApp: %v", err)
	}
	t.Cleanup(a.Close)

	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	served := make(chan error, 1)
	go func() { served <- a.Serve(ctx) }()

	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, record := range recorder.Records(slog.LevelInfo) {
			if record.Message != "chat demo listening" {
				continue
			}
			var address string
			record.Attrs(func(attr slog.Attr) bool {
				if attr.Key == "address" {
					address = attr.Value.String()
				}
				return true
			})
			return "http://" + address, cancel, served
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("the demo did not log its listen address within 5 s")
	return "", nil, nil
}

// pollingClient sends the requests of pollingRequest. Its timeout ends a
// request that the server holds for go-socket.io's ping timeout of a minute.
var pollingClient = &http.Client{Timeout: 20 * time.Second}

// pollingRequest sends one long-polling request and returns the status and
// the body.
func pollingRequest(t *testing.T, method, url, body string) (int, string) {
	t.Helper()

	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatalf("build request: %v", err)
	}
	req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	resp, err := pollingClient.Do(req)
	if err != nil {
		t.Errorf("%s %s: %v", method, url, err)
		return 0, ""
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Errorf("reading %s %s: %v", method, url, err)
	}
	return resp.StatusCode, string(data)
}

// openPollingSession sends the long-polling handshake handshakeURL and
// returns the URL of the new session.
func openPollingSession(t *testing.T, handshakeURL string) string {
	t.Helper()

	status, body := pollingRequest(t, http.MethodGet, handshakeURL, "")
	start := strings.Index(body, `"sid":"`)
	if status != http.StatusOK || start < 0 {
		t.Fatalf("handshake returned %d %q, want an open packet", status, body)
	}
	sid := body[start+len(`"sid":"`):]
	return handshakeURL + "&sid=" + sid[:strings.IndexByte(sid, '"')]
}

// stopTestApp cancels the app that serveTestApp started and checks that
// Serve returns nil well within the shutdown's limit, with inFlight, the
// request that the shutdown met, named in the errors.
func stopTestApp(t *testing.T, cancel context.CancelFunc, served <-chan error, inFlight string) {
	t.Helper()

	stopping := time.Now()
	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve returned %v with %s, want nil after a graceful shutdown", err, inFlight)
		}
		if took := time.Since(stopping); took > shutdownTimeout/2 {
			t.Errorf("shutdown took %v with %s, want well under the %v limit", took, inFlight, shutdownTimeout)
		}
	case <-time.After(2 * shutdownTimeout):
		t.Fatalf("Serve did not return within %v of the cancel with %s", 2*shutdownTimeout, inFlight)
	}
}

func TestAppShutdownEndsPendingPolls(t *testing.T) {
	tests := []struct {
		eio string
		// pollStatus is the status that ends the pending poll. go-socket.io
		// ends the poll of a closed session with 500.
		pollStatus int
		// pollBody is the body that ends the pending poll, or "" for any.
		// An engine.io close packet, without a socket.io DISCONNECT packet
		// before it, lets the client reconnect.
		pollBody string
	}{
		{eio: "3", pollStatus: http.StatusInternalServerError},
		{eio: "4", pollStatus: http.StatusOK, pollBody: "1"},
	}
	for _, tt := range tests {
		eio := tt.eio
		t.Run("EIO="+eio, func(t *testing.T) {
			baseURL, cancel, served := serveTestApp(t)
			url := baseURL + "/socket.io/?EIO=" + eio + "&transport=polling"

			url = openPollingSession(t, url)
			if eio == "4" {
				// socket.io 3 and later clients connect to the namespace
				// themselves.
				if status, body := pollingRequest(t, http.MethodPost, url, "40"); status != http.StatusOK {
					t.Fatalf("namespace connect returned %d %q", status, body)
				}
			}
			// The first poll takes the namespace's connect packet, and the
			// second one waits.
			if status, body := pollingRequest(t, http.MethodGet, url, ""); status != http.StatusOK || !strings.Contains(body, "40") {
				t.Fatalf("first poll returned %d %q, want the connect packet", status, body)
			}
			type pollResult struct {
				status int
				body   string
			}
			pending := make(chan pollResult, 1)
			go func() {
				status, body := pollingRequest(t, http.MethodGet, url, "")
				pending <- pollResult{status: status, body: body}
			}()
			time.Sleep(200 * time.Millisecond)

			stopTestApp(t, cancel, served, "a pending poll")
			poll := <-pending
			if poll.status != tt.pollStatus {
				t.Errorf("pending poll ended with status %d, want %d", poll.status, tt.pollStatus)
			}
			if tt.pollBody != "" && poll.body != tt.pollBody {
				t.Errorf("pending poll ended with body %q, want %q", poll.body, tt.pollBody)
			}
		})
	}
}

func TestAppShutdownEndsSlowPayload(t *testing.T) {
	baseURL, cancel, served := serveTestApp(t)
	url := openPollingSession(t, baseURL+"/socket.io/?EIO=3&transport=polling&b64=1")
	if status, body := pollingRequest(t, http.MethodGet, url, ""); status != http.StatusOK || !strings.Contains(body, "40") {
		t.Fatalf("first poll returned %d %q, want the connect packet", status, body)
	}

	// The body promises 10 bytes and sends 3, and the payload timeout of
	// 30 s is longer than the shutdown's limit.
	conn, err := net.Dial("tcp", strings.TrimPrefix(baseURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: test\r\nContent-Type: text/plain;charset=UTF-8\r\nContent-Length: 10\r\n\r\n1:2",
		strings.TrimPrefix(url, baseURL))
	time.Sleep(200 * time.Millisecond)

	stopTestApp(t, cancel, served, "a slow POST body")
}
