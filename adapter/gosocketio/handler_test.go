package gosocketio

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	socketio "github.com/googollee/go-socket.io"
	"github.com/googollee/go-socket.io/engineio"
	"github.com/googollee/go-socket.io/engineio/frame"
	enginepacket "github.com/googollee/go-socket.io/engineio/packet"
	"github.com/googollee/go-socket.io/engineio/transport"
	"github.com/googollee/go-socket.io/engineio/transport/polling"

	"github.com/sockauth/sockauth/adapter"
	"github.com/sockauth/sockauth/internal/logtest"
)

// registrationDelay is how long slowRegistration keeps go-socket.io from
// registering a session after its open packet is written.
const registrationDelay = 300 * time.Millisecond

// slowRegistration is the polling transport with a pause after the open
// packet of each session, before go-socket.io registers the session. It makes
// the window in which a handshake response has gone out but the session
// cannot be found wide enough to hit on every run.
type slowRegistration struct {
	transport.Transport
	// accepted counts the sessions the transport opened.
	accepted *atomic.Int64
	// delay is the pause after the open packet.
	delay time.Duration
}

func (s slowRegistration) Accept(w http.ResponseWriter, r *http.Request) (transport.Conn, error) {
	conn, err := s.Transport.Accept(w, r)
	if err != nil {
		return nil, err
	}
	s.accepted.Add(1)
	return &slowOpenConn{Conn: conn, handler: conn.(http.Handler), delay: s.delay}, nil
}

type slowOpenConn struct {
	transport.Conn
	handler http.Handler
	delay   time.Duration
}

func (c *slowOpenConn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.handler.ServeHTTP(w, r)
}

func (c *slowOpenConn) NextWriter(ft frame.Type, pt enginepacket.Type) (io.WriteCloser, error) {
	w, err := c.Conn.NextWriter(ft, pt)
	if err != nil || pt != enginepacket.OPEN {
		return w, err
	}
	return slowClose{WriteCloser: w, delay: c.delay}, nil
}

type slowClose struct {
	io.WriteCloser
	delay time.Duration
}

func (s slowClose) Close() error {
	err := s.WriteCloser.Close()
	time.Sleep(s.delay)
	return err
}

// newSlowRegistrationServer serves a Binding on a namespace over the slow
// polling transport, through wrap when it is not nil.
func newSlowRegistrationServer(t *testing.T, wrap func(*socketio.Server) http.Handler) string {
	t.Helper()
	baseURL, _ := newPollingServer(t, registrationDelay, 0, wrap)
	return baseURL
}

// newPollingServer serves a Binding on a namespace over a polling transport
// that pauses for delay after each open packet, through wrap when it is not
// nil. A pingTimeout of zero keeps go-socket.io's default. It returns the
// server's URL and the count of sessions it opened.
func newPollingServer(t *testing.T, delay, pingTimeout time.Duration, wrap func(*socketio.Server) http.Handler) (string, *atomic.Int64) {
	t.Helper()

	slow := slowRegistration{Transport: polling.Default, accepted: new(atomic.Int64), delay: delay}
	server := NewServer(&engineio.Options{Transports: []transport.Transport{slow}, PingTimeout: pingTimeout})
	// go-socket.io v1.7.0 panics when the server closes while it still
	// registers a session, so the cleanup waits for each session to reach
	// the root namespace's connect handler.
	var connected atomic.Int64
	server.OnConnect("/", func(socketio.Conn) error {
		connected.Add(1)
		return nil
	})
	binding, err := Attach(server, "/chat", adapter.Config{Authority: newFakeAuthority(), Logger: testLogger()})
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = server.Serve()
	}()
	var h http.Handler = server
	if wrap != nil {
		h = wrap(server)
	}
	httpServer := httptest.NewServer(h)
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for connected.Load() < slow.accepted.Load() && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		binding.Close()
		httpServer.Close()
		_ = server.Close()
		<-served
	})
	return httpServer.URL, slow.accepted
}

// handshakeThenPoll opens a polling session and polls once at once, as
// socket.io-client does, and returns the status and body of that poll and
// the session id.
func handshakeThenPoll(t *testing.T, baseURL string) (int, string, string) {
	t.Helper()

	client := &http.Client{Timeout: 5 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	url := baseURL + "/socket.io/?EIO=3&transport=polling&b64=1"

	resp, body := getBody(t, client, url)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("handshake returned status %d: %q", resp.StatusCode, body)
	}
	if got := resp.Header.Get("Content-Type"); !strings.HasPrefix(got, "text/plain") {
		t.Errorf("handshake Content-Type %q, want the text/plain of a b64 payload", got)
	}
	packets := decodePayload(t, string(body))
	if len(packets) == 0 || !strings.HasPrefix(packets[0], `0{"sid":"`) {
		t.Fatalf("handshake packets %q, want an open packet", packets)
	}
	sid := packets[0][len(`0{"sid":"`):]
	sid = sid[:strings.IndexByte(sid, '"')]

	closeAtCleanup(t, client, baseURL, sid)

	resp, body = getBody(t, client, url+"&sid="+sid)
	return resp.StatusCode, string(body), sid
}

// getBody sends a GET request of url and returns the response and its body.
func getBody(t *testing.T, client *http.Client, url string) (*http.Response, []byte) {
	t.Helper()

	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the response of %s: %v", url, err)
	}
	return resp, body
}

// closeAtCleanup posts the close packet of the session sid when the test
// ends, which ends the session and its goroutines.
func closeAtCleanup(t *testing.T, client *http.Client, baseURL, sid string) {
	t.Cleanup(func() {
		resp, err := client.Post(baseURL+"/socket.io/?EIO=3&transport=polling&b64=1&sid="+sid,
			"text/plain;charset=UTF-8", strings.NewReader("1:1"))
		if err != nil {
			t.Errorf("closing session %s: %v", sid, err)
			return
		}
		resp.Body.Close()
	})
}

// pollUntilFound polls the session sid until the server finds it. The
// session's connect packet waits for a poll, and the cleanup of
// newSlowRegistrationServer waits for the connect.
func pollUntilFound(t *testing.T, baseURL, sid string) {
	t.Helper()

	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get(baseURL + "/socket.io/?EIO=3&transport=polling&b64=1&sid=" + sid)
		if err != nil {
			t.Fatalf("poll: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("session %s not found within 5 s of its handshake", sid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestHandlerWaitsForSessionRegistration(t *testing.T) {
	t.Run("server alone", func(t *testing.T) {
		// Shows that the slow transport opens the window: without Handler
		// the poll finds no session.
		baseURL := newSlowRegistrationServer(t, nil)
		status, body, sid := handshakeThenPoll(t, baseURL)
		if status != http.StatusBadRequest || !strings.Contains(body, "invalid sid") {
			t.Errorf("poll right after the handshake returned %d %q, want go-socket.io's 400 invalid sid", status, body)
		}
		pollUntilFound(t, baseURL, sid)
	})
	t.Run("through Handler", func(t *testing.T) {
		start := time.Now()
		status, body, _ := handshakeThenPoll(t, newSlowRegistrationServer(t, withHandler))
		if status != http.StatusOK {
			t.Fatalf("poll right after the handshake returned %d %q, want 200", status, body)
		}
		if took := time.Since(start); took < registrationDelay {
			t.Errorf("handshake and poll took %v, less than the %v between the open packet and the registration", took, registrationDelay)
		}
	})
}

func withHandler(server *socketio.Server) http.Handler {
	return Handler(server, testLogger())
}

func TestHandlerWarnsWhenRegistrationLate(t *testing.T) {
	recorder := &logtest.Recorder{}
	baseURL := newSlowRegistrationServer(t, func(server *socketio.Server) http.Handler {
		h := Handler(server, slog.New(recorder))
		h.wait = registrationDelay / 10
		return h
	})

	status, body, sid := handshakeThenPoll(t, baseURL)
	if status != http.StatusBadRequest {
		t.Errorf("poll after a handshake that gave up waiting returned %d %q, want 400", status, body)
	}
	warnings := recorder.Records(slog.LevelWarn)
	if len(warnings) != 1 {
		t.Fatalf("got %d warnings %q, want one", len(warnings), recorder.Messages(slog.LevelWarn))
	}
	if !strings.Contains(warnings[0].Message, "not registered in time") {
		t.Errorf("warning %q, want one about the late registration", warnings[0].Message)
	}
	var socket string
	warnings[0].Attrs(func(a slog.Attr) bool {
		if a.Key == "socket" {
			socket = a.Value.String()
		}
		return true
	})
	if socket != sid {
		t.Errorf("warning names socket %q, want %q", socket, sid)
	}
	pollUntilFound(t, baseURL, sid)
}

func TestHandlerHoldsJSONPHandshake(t *testing.T) {
	baseURL := newSlowRegistrationServer(t, withHandler)
	client := &http.Client{Timeout: 5 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	url := baseURL + "/socket.io/?EIO=3&transport=polling&j=0"

	resp, body := getBody(t, client, url)
	sid := handshakeSessionID(&bufferedResponse{status: resp.StatusCode, body: *bytes.NewBuffer(body)})
	if sid == "" {
		t.Fatalf("JSONP handshake returned %d %q, want a script with the open packet", resp.StatusCode, body)
	}

	closeAtCleanup(t, client, baseURL, sid)

	// This poll takes the connect packet, which the cleanup of
	// newSlowRegistrationServer waits for.
	resp, body = getBody(t, client, url+"&sid="+sid)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "40") {
		t.Errorf("JSONP poll right after the handshake returned %d %q, want 200 with the connect packet", resp.StatusCode, body)
	}
}

func TestHandlerRejectsNonNumericJSONPIndex(t *testing.T) {
	baseURL := newSlowRegistrationServer(t, withHandler)
	for _, j := range []string{"0]);alert(1);//", "", "1e3"} {
		resp, err := http.Get(baseURL + "/socket.io/?EIO=3&transport=polling&j=" + url.QueryEscape(j))
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "invalid JSONP index") {
			t.Errorf("handshake with j=%q returned %d %q, want 400 invalid JSONP index", j, resp.StatusCode, body)
		}
	}
}

func TestHandlerPassesUnknownSessionThrough(t *testing.T) {
	baseURL := newSlowRegistrationServer(t, withHandler)
	start := time.Now()
	resp, err := http.Get(baseURL + "/socket.io/?EIO=3&transport=polling&b64=1&sid=UNKNOWN")
	if err != nil {
		t.Fatalf("poll: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "invalid sid") {
		t.Errorf("poll of an unknown session returned %d %q, want 400 invalid sid", resp.StatusCode, body)
	}
	if took := time.Since(start); took > registrationWait/2 {
		t.Errorf("poll of an unknown session took %v, want an answer without waiting", took)
	}
}

func TestHandshakeSessionID(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		want   string
	}{
		{name: "b64 payload", body: `96:0{"sid":"ABC2","upgrades":[],"pingInterval":25000,"pingTimeout":60000}2:40`, want: "ABC2"},
		{name: "binary payload", body: "\x00\x09\x06\xff0{\"sid\":\"XY\"}", want: "XY"},
		{name: "JSONP payload", body: `___eio[0]("96:0{\"sid\":\"ABC2\",\"upgrades\":[]}");`, want: "ABC2"},
		{name: "JSONP empty sid", body: `___eio[0]("96:0{\"sid\":\"\"}");`},
		{name: "error status", status: http.StatusBadRequest, body: `0{"sid":"ABC2"}`},
		{name: "no sid", body: `2:40`},
		{name: "empty sid", body: `0{"sid":""}`},
		{name: "unterminated sid", body: `0{"sid":"ABC`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			response := &bufferedResponse{header: make(http.Header), status: tt.status}
			response.body.WriteString(tt.body)
			if got := handshakeSessionID(response); got != tt.want {
				t.Errorf("handshakeSessionID = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestHandlerRejectsHandshakeByOtherMethods(t *testing.T) {
	baseURL, accepted := newPollingServer(t, 0, 0, withHandler)
	client := &http.Client{Timeout: 5 * time.Second}
	t.Cleanup(client.CloseIdleConnections)

	for _, method := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
		req, err := http.NewRequest(method, baseURL+"/socket.io/?EIO=3&transport=polling&b64=1", strings.NewReader("2:42"))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s handshake: %v", method, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "expected GET") {
			t.Errorf("%s handshake returned %d %q, want 400 expected GET", method, resp.StatusCode, body)
		}
	}
	if n := accepted.Load(); n != 0 {
		t.Errorf("the transport opened %d sessions for rejected handshakes, want 0", n)
	}
}

// openPollingSession opens a long-polling session and takes its connect
// packet with a first poll, as socket.io-client does, and returns the
// session's URL.
func openPollingSession(t *testing.T, client *http.Client, baseURL string) string {
	t.Helper()

	url := baseURL + "/socket.io/?EIO=3&transport=polling&b64=1"
	resp, body := getBody(t, client, url)
	sid := handshakeSessionID(&bufferedResponse{status: resp.StatusCode, body: *bytes.NewBuffer(body)})
	if sid == "" {
		t.Fatalf("handshake returned %d %q, want an open packet", resp.StatusCode, body)
	}
	closeAtCleanup(t, client, baseURL, sid)
	url += "&sid=" + sid
	if resp, body := getBody(t, client, url); resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "40") {
		t.Fatalf("first poll returned %d %q, want the connect packet", resp.StatusCode, body)
	}
	return url
}

// post sends payload to a polling session's url and returns the status and
// the body of the response.
func post(t *testing.T, client *http.Client, url, payload string) (int, string) {
	t.Helper()

	resp, err := client.Post(url, "text/plain;charset=UTF-8", strings.NewReader(payload))
	if err != nil {
		t.Fatalf("POST %q: %v", payload, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the response to POST %q: %v", payload, err)
	}
	return resp.StatusCode, string(body)
}

func TestHandlerEndsPostToClosedSession(t *testing.T) {
	// go-socket.io closes the session on the event packet without a
	// name, but keeps reading the POST that carried it for its ping
	// timeout, a minute by default. The timeout here is shorter, so that
	// the goroutine that Handler leaves to go-socket.io ends before the
	// test's check for leaked goroutines.
	t.Cleanup(waitPostsServed)
	recorder := &logtest.Recorder{}
	baseURL, _ := newPollingServer(t, 0, time.Second, func(server *socketio.Server) http.Handler {
		h := Handler(server, slog.New(recorder))
		h.sessionCheck = 20 * time.Millisecond
		return h
	})
	client := &http.Client{Timeout: 5 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	url := openPollingSession(t, client, baseURL)

	status, body := post(t, client, url, "2:42")
	if status != http.StatusBadRequest || !strings.Contains(body, "session closed") {
		t.Errorf("POST of a malformed packet returned %d %q, want 400 session closed", status, body)
	}
	warnings := recorder.Messages(slog.LevelWarn)
	if len(warnings) != 1 || !strings.Contains(warnings[0], "session closed") {
		t.Errorf("warnings %q, want one about the closed session", warnings)
	}
}

// waitPostsServed waits up to 10 s for the goroutines in which
// go-socket.io serves long-polling POSTs to end.
func waitPostsServed() {
	stacks := make([]byte, 1<<20)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		n := runtime.Stack(stacks, true)
		if !bytes.Contains(stacks[:n], []byte("(*PollingHandler).servePost.func")) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestHandlerLimitsPostPayload(t *testing.T) {
	baseURL, _ := newPollingServer(t, 0, 0, func(server *socketio.Server) http.Handler {
		return Handler(server, testLogger(), WithMaxPayloadBytes(len("1:2")))
	})
	client := &http.Client{Timeout: 5 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	url := openPollingSession(t, client, baseURL)

	status, body := post(t, client, url, "1:21:2")
	if status != http.StatusRequestEntityTooLarge || !strings.Contains(body, "limit is 3 bytes") {
		t.Errorf("POST over the limit returned %d %q, want 413 naming the limit", status, body)
	}
	// The session survives a rejected payload, and a ping at the limit
	// passes. go-socket.io reads the ping only once it can send the pong,
	// so a poll waits for the pong, as with socket.io-client.
	polled := make(chan string, 1)
	go func() {
		resp, err := client.Get(url)
		if err != nil {
			polled <- err.Error()
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		polled <- string(body)
	}()
	status, body = post(t, client, url, "1:2")
	if status != http.StatusOK || body != "ok" {
		t.Errorf("POST at the limit returned %d %q, want 200 ok", status, body)
	}
	if got := <-polled; got != "1:3" {
		t.Errorf("poll after the ping returned %q, want the pong 1:3", got)
	}
}

func TestHandlerRecoversPanicOfPost(t *testing.T) {
	recorder := &logtest.Recorder{}
	server := NewServer(&engineio.Options{
		Transports: []transport.Transport{polling.Default},
		RequestChecker: func(r *http.Request) (http.Header, error) {
			if r.Method == http.MethodPost {
				panic("request checker failed")
			}
			return nil, nil
		},
	})
	httpServer := httptest.NewServer(Handler(server, slog.New(recorder)))
	t.Cleanup(httpServer.Close)

	status, _ := post(t, http.DefaultClient, httpServer.URL+"/socket.io/?EIO=3&transport=polling&b64=1&sid=ANY", "1:2")
	if status != http.StatusInternalServerError {
		t.Errorf("POST whose handling panicked returned %d, want 500", status)
	}
	errs := recorder.Messages(slog.LevelError)
	if len(errs) != 1 || !strings.Contains(errs[0], "panicked") {
		t.Errorf("errors %q, want one about the panic", errs)
	}
}

func TestHandlerReleasesPayloadOfClosedSession(t *testing.T) {
	// The first packet closes each session and the rest of the payload
	// stays unread in the goroutine that go-socket.io keeps until the
	// session's read timeout, shortened here as in
	// TestHandlerEndsPostToClosedSession.
	t.Cleanup(waitPostsServed)
	baseURL, _ := newPollingServer(t, 0, time.Second, func(server *socketio.Server) http.Handler {
		h := Handler(server, testLogger())
		h.sessionCheck = 20 * time.Millisecond
		return h
	})
	client := &http.Client{Timeout: 5 * time.Second}
	t.Cleanup(client.CloseIdleConnections)

	const posts, filler = 20, 512 << 10
	payload := "2:42" + fmt.Sprintf("%d:4", filler+1) + strings.Repeat("x", filler)
	heapBefore := liveHeap()
	for range posts {
		url := openPollingSession(t, client, baseURL)
		if status, body := post(t, client, url, payload); status != http.StatusBadRequest {
			t.Fatalf("POST of a malformed packet returned %d %q, want 400", status, body)
		}
	}
	if grown := int64(liveHeap()) - int64(heapBefore); grown > posts*filler/4 {
		t.Errorf("live heap grew by %d bytes after %d payloads of %d bytes whose sessions closed, want the payloads released",
			grown, posts, filler)
	}
}

// postSlowBody sends a POST to the polling session at url whose body
// promises 10 bytes and sends 3, and returns the connection and the time it
// sent them.
func postSlowBody(t *testing.T, baseURL, url string) (net.Conn, time.Time) {
	t.Helper()

	conn, err := net.Dial("tcp", strings.TrimPrefix(baseURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	path := strings.TrimPrefix(url, baseURL)
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: test\r\nContent-Type: text/plain;charset=UTF-8\r\nContent-Length: 10\r\n\r\n1:2", path)
	return conn, time.Now()
}

// readSlowBodyResponse reads the response on conn within 5 s and returns
// its status and body.
func readSlowBodyResponse(t *testing.T, conn net.Conn) (int, string) {
	t.Helper()

	if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the response to a slow body: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestHandlerBoundsPayloadTime(t *testing.T) {
	baseURL, _ := newPollingServer(t, 0, 0, func(server *socketio.Server) http.Handler {
		return Handler(server, testLogger(), WithPayloadTimeout(300*time.Millisecond))
	})
	client := &http.Client{Timeout: 5 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	url := openPollingSession(t, client, baseURL)

	conn, start := postSlowBody(t, baseURL, url)
	status, body := readSlowBodyResponse(t, conn)
	if status != http.StatusRequestTimeout || !strings.Contains(body, "not received within 300ms") {
		t.Errorf("POST with a slow body returned %d %q, want 408 naming the 300ms timeout", status, body)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("POST with a slow body took %v, want about the 300ms payload timeout", took)
	}
}

func TestHandlerCancelsPayloadReads(t *testing.T) {
	var handler *PollingHandler
	baseURL, _ := newPollingServer(t, 0, 0, func(server *socketio.Server) http.Handler {
		handler = Handler(server, testLogger())
		return handler
	})
	client := &http.Client{Timeout: 5 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	url := openPollingSession(t, client, baseURL)

	conn, start := postSlowBody(t, baseURL, url)
	time.Sleep(100 * time.Millisecond)
	handler.CancelPayloadReads()
	status, body := readSlowBodyResponse(t, conn)
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "shutting down") {
		t.Errorf("POST with a slow body after CancelPayloadReads returned %d %q, want 503 shutting down", status, body)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("POST with a slow body took %v after CancelPayloadReads, want well under the %v payload timeout", took, DefaultPayloadTimeout)
	}

	// A later slow body fails at once.
	conn, start = postSlowBody(t, baseURL, url)
	if status, _ := readSlowBodyResponse(t, conn); status != http.StatusServiceUnavailable {
		t.Errorf("slow POST after CancelPayloadReads returned %d, want 503", status)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("slow POST after CancelPayloadReads took %v, want a response at once", took)
	}
}

func TestHandlerRejectsEmptyPost(t *testing.T) {
	baseURL, _ := newPollingServer(t, 0, 0, withHandler)
	client := &http.Client{Timeout: 5 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	url := openPollingSession(t, client, baseURL)

	status, body := post(t, client, url, "")
	if status != http.StatusBadRequest || !strings.Contains(body, "body is empty") {
		t.Errorf("POST of an empty body returned %d %q, want 400 body is empty", status, body)
	}
}

func TestHandlerThrottlesRejectionWarnings(t *testing.T) {
	recorder := &logtest.Recorder{}
	baseURL, _ := newPollingServer(t, 0, 0, func(server *socketio.Server) http.Handler {
		return Handler(server, slog.New(recorder), WithMaxPayloadBytes(4))
	})
	client := &http.Client{Timeout: 5 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	url := openPollingSession(t, client, baseURL)

	for range rejectionLogBurst + 5 {
		if status, _ := post(t, client, url, "1:21:2"); status != http.StatusRequestEntityTooLarge {
			t.Fatalf("POST over the limit returned %d, want 413", status)
		}
	}
	if got := len(recorder.Messages(slog.LevelWarn)); got != rejectionLogBurst {
		t.Errorf("%d warnings for %d rejected POSTs, want the burst of %d", got, rejectionLogBurst+5, rejectionLogBurst)
	}
}
