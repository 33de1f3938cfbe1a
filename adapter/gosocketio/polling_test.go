package gosocketio

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sockauth/sockauth/adapter"
)

// pollingClient is a minimal engine.io 3 polling client that exchanges
// base64 text payloads (b64=1).
type pollingClient struct {
	tb   testing.TB
	url  string
	http *http.Client
}

// dialPolling opens an engine.io session over polling and returns the
// client with the packets of the first response after the open packet.
func dialPolling(tb testing.TB, baseURL string) (*pollingClient, []string) {
	tb.Helper()
	c := &pollingClient{tb: tb, url: baseURL + "/socket.io/?EIO=3&transport=polling&b64=1", http: &http.Client{Timeout: 5 * time.Second}}
	tb.Cleanup(c.http.CloseIdleConnections)

	packets, status := c.get()
	if status != http.StatusOK || len(packets) == 0 || !strings.HasPrefix(packets[0], "0") {
		tb.Fatalf("handshake returned status %d and packets %q, expected an open packet", status, packets)
	}
	sid := packets[0][strings.Index(packets[0], `"sid":"`)+7:]
	sid = sid[:strings.IndexByte(sid, '"')]
	c.url += "&sid=" + sid
	return c, packets[1:]
}

// get long-polls once and returns the engine.io packets and the status.
func (c *pollingClient) get() ([]string, int) {
	c.tb.Helper()
	resp, err := c.http.Get(c.url)
	if err != nil {
		c.tb.Fatalf("polling GET: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		c.tb.Fatalf("reading polling response: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, resp.StatusCode
	}
	return decodePayload(c.tb, string(body)), resp.StatusCode
}

// post sends engine.io packets in one payload.
func (c *pollingClient) post(packets ...string) {
	c.tb.Helper()
	var body strings.Builder
	for _, p := range packets {
		body.WriteString(strconv.Itoa(len(p)) + ":" + p)
	}
	resp, err := c.http.Post(c.url, "text/plain;charset=UTF-8", strings.NewReader(body.String()))
	if err != nil {
		c.tb.Fatalf("polling POST: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		c.tb.Fatalf("polling POST returned status %d, expected 200", resp.StatusCode)
	}
}

// decodePayload splits a text payload of "length:packet" records. Lengths
// count characters, which are bytes for the ASCII packets of these tests.
func decodePayload(tb testing.TB, payload string) []string {
	tb.Helper()
	var packets []string
	for payload != "" {
		colon := strings.IndexByte(payload, ':')
		n, err := strconv.Atoi(payload[:max(colon, 0)])
		if colon < 0 || err != nil || colon+1+n > len(payload) {
			tb.Fatalf("invalid polling payload %q", payload)
		}
		packets = append(packets, payload[colon+1:colon+1+n])
		payload = payload[colon+1+n:]
	}
	return packets
}

func TestPollingClientReceivesLastPackets(t *testing.T) {
	ts := newTestServer(t, "/", adapter.Config{})
	c, received := dialPolling(t, ts.url)
	for len(received) == 0 {
		received, _ = c.get()
	}
	if received[0] != "40" {
		t.Fatalf("got packets %q, expected the root connect packet 40", received)
	}

	c.post(`42["authenticate",{"token":"forged"}]`)

	var packets []string
	for len(packets) < 2 {
		more, status := c.get()
		if status != http.StatusOK {
			t.Fatalf("polling GET returned status %d before the last packets arrived; got %q", status, packets)
		}
		packets = append(packets, more...)
	}
	if !strings.HasPrefix(packets[0], `42["unauthorized",`) || !strings.Contains(packets[0], `"code":"invalid_token"`) {
		t.Errorf("first packet %q, expected unauthorized with invalid_token", packets[0])
	}
	if packets[1] != "41" {
		t.Errorf("second packet %q, expected the disconnect packet 41", packets[1])
	}

	// The client does not close its side, so the server must.
	deadline := time.Now().Add(CloseDelay + 2*time.Second)
	for {
		more, status := c.get()
		if status != http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("engine.io session still open %v after the disconnect packet, expected it closed", CloseDelay+2*time.Second)
		}
		for _, p := range more {
			if strings.HasPrefix(p, "4") {
				t.Errorf("got packet %q after the disconnect packet, expected none", p)
			}
		}
	}
}

func TestLogoutDoesNotWaitForPollingClient(t *testing.T) {
	ts := newTestServer(t, "/", adapter.Config{})
	poller, received := dialPolling(t, ts.url)
	for len(received) == 0 {
		received, _ = poller.get()
	}
	poller.post(`42["authenticate","code-alice"]`)
	var authenticated []string
	for len(authenticated) == 0 {
		authenticated, _ = poller.get()
	}
	if !strings.HasPrefix(authenticated[0], `421["authenticated",`) {
		t.Fatalf("got packets %q, expected authenticated with ack id 1", authenticated)
	}
	poller.post(`431[]`)
	socket := dial(t, ts.url, "/")
	socket.authenticate("code-alice")

	// No polling request is pending, so the server cannot deliver
	// logged_out to the poller until its next request. The websocket of the
	// same session must not wait for that.
	poller.post(`42["logout"]`)
	socket.expectEvent(adapter.EventLoggedOut)

	var packets []string
	for len(packets) < 2 {
		more, status := poller.get()
		if status != http.StatusOK {
			t.Fatalf("polling GET returned status %d before the last packets arrived; got %q", status, packets)
		}
		packets = append(packets, more...)
	}
	if !strings.HasPrefix(packets[0], `42["logged_out",`) || packets[1] != "41" {
		t.Errorf("poller got packets %q, expected logged_out and the disconnect packet 41", packets)
	}
}
