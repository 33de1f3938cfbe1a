package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sockauth/sockauth/internal/serve"
)

// eio3PollingClient is a socket.io 2.x client over HTTP long-polling with
// text payloads, enough to authenticate and chat.
type eio3PollingClient struct {
	t   *testing.T
	url string
}

// openEIO3Polling opens a session, takes its connect packet and
// authenticates with a login code of alice.
func openEIO3Polling(t *testing.T, baseURL string) *eio3PollingClient {
	t.Helper()

	c := &eio3PollingClient{t: t, url: openPollingSession(t, baseURL+"/socket.io/?EIO=3&transport=polling&b64=1")}
	if packets := c.poll(); len(packets) == 0 || packets[0] != "40" {
		t.Fatalf("first poll returned %q, want the connect packet", packets)
	}

	code := loginCode(t, baseURL)
	c.send(`42["authenticate",{"token":"` + code + `"}]`)
	for _, packet := range c.poll() {
		if strings.Contains(packet, `"authenticated"`) {
			return c
		}
	}
	t.Fatal("no authenticated event in the poll after authenticate")
	return nil
}

// send posts packets to the session.
func (c *eio3PollingClient) send(packets ...string) {
	c.t.Helper()

	var payload strings.Builder
	for _, packet := range packets {
		fmt.Fprintf(&payload, "%d:%s", len(packet), packet)
	}
	if status, body := pollingRequest(c.t, http.MethodPost, c.url, payload.String()); status != http.StatusOK {
		c.t.Fatalf("POST %q returned %d %q", payload.String(), status, body)
	}
}

// poll waits for the next packets of the session and returns them.
func (c *eio3PollingClient) poll() []string {
	c.t.Helper()

	status, body := pollingRequest(c.t, http.MethodGet, c.url, "")
	if status != http.StatusOK {
		c.t.Fatalf("poll returned %d %q", status, body)
	}
	var packets []string
	for body != "" {
		length, rest, ok := strings.Cut(body, ":")
		n, err := strconv.Atoi(length)
		if !ok || err != nil || n > len(rest) {
			c.t.Fatalf("invalid payload %q", body)
		}
		packets = append(packets, rest[:n])
		body = rest[n:]
	}
	return packets
}

// loginCode logs alice in at the demo and returns her login code.
func loginCode(t *testing.T, baseURL string) string {
	t.Helper()

	resp, err := http.Post(baseURL+"/login", "application/json",
		strings.NewReader(`{"username":"alice","password":"alice-password"}`))
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var reply struct {
		Token string `json:"token"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &reply) != nil || reply.Token == "" {
		t.Fatalf("login returned %d %q, want a token", resp.StatusCode, body)
	}
	return reply.Token
}

func TestBroadcastPassesSilentPollingClient(t *testing.T) {
	authority, err := serve.Start(context.Background(), serve.Config{
		Listen:  "127.0.0.1:0",
		DataDir: t.TempDir(),
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatalf("serve.Start: %v", err)
	}
	t.Cleanup(func() { authority.Close() })
	baseURL, _, _ := serveTestAppWith(t, authority.Addr())

	// The silent client authenticates and then stops polling, as a client
	// that froze or lost its network does. go-socket.io's Emit to it blocks
	// until its ping timeout of a minute.
	openEIO3Polling(t, baseURL)
	active := openEIO3Polling(t, baseURL)

	const messages = 5
	received := 0
	deadline := time.Now().Add(10 * time.Second)
	for i := range messages {
		active.send(fmt.Sprintf(`42["message",{"text":"hello %d"}]`, i))
	}
	for received < messages && time.Now().Before(deadline) {
		for _, packet := range active.poll() {
			if strings.HasPrefix(packet, `42["message"`) {
				received++
			}
		}
	}
	if received != messages {
		t.Errorf("active client received %d of %d chat messages within 10 s", received, messages)
	}
}
