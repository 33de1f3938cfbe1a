package socketio

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/sockauth/sockauth/adapter"
	"github.com/sockauth/sockauth/internal/loopbacktest"
	"github.com/sockauth/sockauth/internal/readwait"
)

func TestReleaseHijackedDropsResponse(t *testing.T) {
	writers := make(chan http.ResponseWriter, 1)
	upgrader := websocket.Upgrader{ReadBufferSize: 1024, WriteBufferSize: 1024}
	server := httptest.NewServer(ReleaseHijacked(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			t.Errorf("Upgrade: %v", err)
			close(writers)
			return
		}
		conn.Close()
		writers <- w
	})))
	t.Cleanup(server.Close)

	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(server.URL, "http"), nil)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	conn.Close()

	w, ok := <-writers
	if !ok {
		t.Fatal("the handler did not upgrade the request")
	}
	released, ok := w.(*releasingWriter)
	if !ok {
		t.Fatalf("the handler of an upgrade request got %T, expected *releasingWriter", w)
	}
	released.mu.Lock()
	remaining := released.w
	released.mu.Unlock()
	if remaining != nil {
		t.Errorf("releasingWriter still refers to %T after the hijack, expected nil", remaining)
	}
	if _, err := w.Write([]byte("late")); !errors.Is(err, http.ErrHijacked) {
		t.Errorf("Write after the hijack returned %v, expected http.ErrHijacked", err)
	}
	if _, _, err := w.(http.Hijacker).Hijack(); !errors.Is(err, http.ErrHijacked) {
		t.Errorf("a second Hijack returned %v, expected http.ErrHijacked", err)
	}
	w.Header().Set("X-Late", "1")
	w.WriteHeader(http.StatusOK)
}

func TestReleaseHijackedPassesOtherRequests(t *testing.T) {
	var got http.ResponseWriter
	handler := ReleaseHijacked(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		got = w
		w.WriteHeader(http.StatusNoContent)
	}))

	recorder := httptest.NewRecorder()
	handler.ServeHTTP(recorder, httptest.NewRequest(http.MethodGet, "/socket.io/?EIO=4&transport=polling", nil))

	if got != recorder {
		t.Errorf("the handler of a polling request got %T, expected the server's ResponseWriter", got)
	}
	if recorder.Code != http.StatusNoContent {
		t.Errorf("status = %d, expected %d from the wrapped handler", recorder.Code, http.StatusNoContent)
	}
}

func TestIsWebSocketUpgrade(t *testing.T) {
	tests := []struct {
		name    string
		upgrade []string
		want    bool
	}{
		{"none", nil, false},
		{"websocket", []string{"websocket"}, true},
		{"mixed case", []string{"WebSocket"}, true},
		{"list", []string{"h2c, websocket"}, true},
		{"second header", []string{"h2c", "websocket"}, true},
		{"other protocol", []string{"h2c"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/socket.io/", nil)
			for _, value := range tt.upgrade {
				r.Header.Add("Upgrade", value)
			}
			if got := isWebSocketUpgrade(r); got != tt.want {
				t.Errorf("isWebSocketUpgrade(Upgrade: %q) = %v, expected %v", tt.upgrade, got, tt.want)
			}
		})
	}
}

// stackPerSocket opens n authenticated sockets on a new test server whose
// handler passes through wrap, and returns the goroutine stack bytes per
// socket that remain in use after two garbage collections, test clients'
// goroutines included.
func stackPerSocket(t *testing.T, n int, wrap func(http.Handler) http.Handler) float64 {
	t.Helper()
	ts := newWrappedTestServer(t, "/", adapter.Config{}, nil, withEcho, wrap)
	settleGoroutines()
	before := stackInUse()
	for range n {
		c := dial(t, ts.url, "/")
		c.authenticate("code-alice")
		c.emitWithAck(1, "echo", `"hi"`)
		if p := c.next(wait); p.kind != '3' {
			t.Fatalf("got packet %q, expected the echo's ack", p.raw)
		}
	}
	settleGoroutines()
	return float64(int64(stackInUse())-int64(before)) / float64(n)
}

// settleGoroutines waits, for up to 2 s, until the number of goroutines
// stays the same for 50 ms, so that goroutines of earlier tests and
// finished calls have exited.
func settleGoroutines() {
	last := runtime.NumGoroutine()
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		now := runtime.NumGoroutine()
		if now == last {
			return
		}
		last = now
	}
}

// stackInUse returns the bytes of goroutine stacks in use after two garbage
// collections: the first shrinks the stacks, the second frees what the
// first released.
func stackInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var stats runtime.MemStats
	runtime.ReadMemStats(&stats)
	return stats.StackInuse
}

// stackModeVariable names the environment variable that makes
// TestStackPerSocketHelper measure: "direct" or "released".
const stackModeVariable = "SOCKETIO_TEST_STACK_MODE"

// TestStackPerSocketHelper prints the stack bytes per idle socket when the
// test binary runs it in a process of its own, and is skipped otherwise.
func TestStackPerSocketHelper(t *testing.T) {
	var wrap func(http.Handler) http.Handler
	switch os.Getenv(stackModeVariable) {
	case "direct":
	case "released":
		wrap = ReleaseHijacked
	default:
		t.Skip("runs only in the process that TestReleaseHijackedShrinksIdleReaderStacks starts")
	}
	fmt.Printf("stack-per-socket %.0f\n", stackPerSocket(t, 200, wrap))
}

// measureStackPerSocket runs TestStackPerSocketHelper in a new process, so
// that no earlier test's goroutines or stack sizes blur the figure.
func measureStackPerSocket(t *testing.T, mode string) float64 {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestStackPerSocketHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), stackModeVariable+"="+mode)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("measuring %s sockets: %v\n%s", mode, err, out)
	}
	for line := range strings.Lines(string(out)) {
		if value, ok := strings.CutPrefix(strings.TrimSpace(line), "stack-per-socket "); ok {
			bytes, err := strconv.ParseFloat(value, 64)
			if err != nil {
				t.Fatalf("measuring %s sockets printed %q: %v", mode, line, err)
			}
			return bytes
		}
	}
	t.Fatalf("measuring %s sockets printed no figure:\n%s", mode, out)
	return 0
}

func TestReleaseHijackedShrinksIdleReaderStacks(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector enlarges stack frames, so the reader's stack does not shrink")
	}
	if !readwait.Supported {
		t.Skip("this system has no non-blocking peek")
	}
	direct := measureStackPerSocket(t, "direct")
	released := measureStackPerSocket(t, "released")
	t.Logf("stack per idle socket: %.0f bytes served directly, %.0f through ReleaseHijacked", direct, released)
	// Each socket's reader keeps 8 KiB served directly and 4 KiB through
	// ReleaseHijacked. Other goroutines' stacks move the figures by up to
	// about 1 KiB.
	if released > direct-2*1024 {
		t.Errorf("stack per idle socket through ReleaseHijacked = %.0f bytes, expected at least 2 KiB below the %.0f bytes of a socket served directly", released, direct)
	}
}

func TestWaitingConnReads(t *testing.T) {
	server, client := loopbacktest.TCPPair(t)
	conn := waitBeforeRead(server)
	if _, ok := conn.(*waitingTCPConn); !ok && readwait.Supported {
		t.Fatalf("waitBeforeRead returned %T for a TCP connection, expected *waitingTCPConn", conn)
	}
	if _, ok := conn.(interface{ SetNoDelay(bool) error }); !ok {
		t.Errorf("waitBeforeRead returned %T, which hides the methods of *net.TCPConn", conn)
	}

	if n, err := conn.Read(nil); n != 0 || err != nil {
		t.Errorf("Read of an empty buffer = %d, %v; expected 0, nil at once", n, err)
	}

	got := make(chan string, 1)
	go func() {
		buf := make([]byte, 8)
		n, err := conn.Read(buf)
		if err != nil {
			t.Errorf("Read: %v", err)
		}
		got <- string(buf[:n])
	}()
	select {
	case s := <-got:
		t.Fatalf("Read returned %q before the client wrote", s)
	case <-time.After(50 * time.Millisecond):
	}
	if _, err := client.Write([]byte("abc")); err != nil {
		t.Fatalf("Write: %v", err)
	}
	select {
	case s := <-got:
		if s != "abc" {
			t.Errorf("Read = %q, expected %q", s, "abc")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read still blocks 5 s after the client wrote")
	}

	if err := conn.SetReadDeadline(time.Now().Add(20 * time.Millisecond)); err != nil {
		t.Fatalf("SetReadDeadline: %v", err)
	}
	if _, err := conn.Read(make([]byte, 8)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("Read after the deadline = %v, expected os.ErrDeadlineExceeded", err)
	}
	if err := conn.SetReadDeadline(time.Time{}); err != nil {
		t.Fatalf("SetReadDeadline: %v", err)
	}

	client.Close()
	if _, err := conn.Read(make([]byte, 8)); !errors.Is(err, io.EOF) {
		t.Errorf("Read after the client closed = %v, expected io.EOF", err)
	}
	conn.Close()
	if _, err := conn.Read(make([]byte, 8)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Read after Close = %v, expected net.ErrClosed", err)
	}
}

func TestWaitingConnReturnsOnClose(t *testing.T) {
	server, _ := loopbacktest.TCPPair(t)
	conn := waitBeforeRead(server)
	done := make(chan error, 1)
	go func() {
		_, err := conn.Read(make([]byte, 8))
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	conn.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Read during Close = %v, expected net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read still blocks 5 s after Close")
	}
}

func TestWaitingConnReportsReset(t *testing.T) {
	server, client := loopbacktest.TCPPair(t)
	conn := waitBeforeRead(server)
	if err := client.(*net.TCPConn).SetLinger(0); err != nil {
		t.Fatalf("SetLinger: %v", err)
	}
	client.Close()

	// The RST may arrive after Close returns, so Read may first wait.
	if _, err := conn.Read(make([]byte, 8)); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("Read after the client reset the connection = %v, expected ECONNRESET", err)
	}
}

func TestWaitBeforeReadPassesTLS(t *testing.T) {
	server, _ := loopbacktest.TCPPair(t)
	tlsConn := tls.Server(server, &tls.Config{})
	if conn := waitBeforeRead(tlsConn); conn != net.Conn(tlsConn) {
		t.Errorf("waitBeforeRead wrapped a TLS connection in %T, whose decrypted bytes a wait on the socket would miss", conn)
	}
}
