package socketio

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
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
