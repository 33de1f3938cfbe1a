package gosocketio

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	socketio "github.com/googollee/go-socket.io"
)

const (
	// registrationWait bounds how long Handler holds the response of a
	// long-polling handshake while go-socket.io registers the new session.
	registrationWait = 2 * time.Second

	// registrationPollMin and registrationPollMax bound the pause between two
	// checks of the registration. The pause starts at the minimum and doubles.
	registrationPollMin = 100 * time.Microsecond
	registrationPollMax = 10 * time.Millisecond
)

// Handler serves server over HTTP like the server itself, and in addition
// holds the response of each HTTP long-polling handshake until the new
// engine.io session can be found by its id.
//
// go-socket.io v1.7.0 writes the handshake response before a goroutine of its
// own registers the session. A client that polls again at once, as
// socket.io-client does, can then get HTTP 400 "invalid sid value" and lose
// its connection. On a busy 2-core machine, 2 handshakes in 1,200 did.
// Handler looks the session up with an OPTIONS request of its id, which
// go-socket.io serves without touching the session's packets. The server's
// RequestChecker receives these requests too. Handler sends the handshake
// response once the lookup succeeds, or after registrationWait with a
// warning in logger's log. Requests of other kinds pass through unchanged. Servers that offer only WebSocket do not need Handler, although
// it does no harm there. A nil logger means slog.Default().
func Handler(server *socketio.Server, logger *slog.Logger) http.Handler {
	if logger == nil {
		logger = slog.Default()
	}
	return &handler{server: server, log: logger, wait: registrationWait}
}

type handler struct {
	server *socketio.Server
	log    *slog.Logger
	// wait is registrationWait, shorter in tests.
	wait time.Duration
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	query := r.URL.Query()
	// go-socket.io writes the JSONP index j into a script as it is, so
	// only digits may pass, as engine.io's own servers ensure.
	if j := query.Get("j"); query.Has("j") && !isDigits(j) {
		http.Error(w, fmt.Sprintf("invalid JSONP index j %q: expected digits", j), http.StatusBadRequest)
		return
	}
	if r.Method != http.MethodGet || query.Get("transport") != "polling" || query.Get("sid") != "" {
		h.server.ServeHTTP(w, r)
		return
	}

	handshake := &bufferedResponse{header: w.Header()}
	h.server.ServeHTTP(handshake, r)
	if sid := handshakeSessionID(handshake); sid != "" && !h.waitRegistered(r, sid) {
		h.log.Warn("long-polling session not registered in time, so the client's next poll may fail with invalid sid",
			"socket", sid, "waited", h.wait, "address", r.RemoteAddr)
	}
	handshake.writeTo(w)
}

// waitRegistered reports whether the server finds the session sid within
// h.wait. It returns true early when the client has gone.
func (h *handler) waitRegistered(r *http.Request, sid string) bool {
	query := url.Values{}
	query.Set("EIO", r.URL.Query().Get("EIO"))
	query.Set("transport", "polling")
	query.Set("sid", sid)
	probe := r.Clone(r.Context())
	probe.Method = http.MethodOptions
	probe.URL.RawQuery = query.Encode()
	probe.Body = http.NoBody
	probe.ContentLength = 0

	deadline := time.Now().Add(h.wait)
	pause := registrationPollMin
	for {
		lookup := &bufferedResponse{header: make(http.Header)}
		h.server.ServeHTTP(lookup, probe)
		if lookup.statusCode() == http.StatusOK {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-r.Context().Done():
			return true
		case <-time.After(pause):
		}
		pause = min(2*pause, registrationPollMax)
	}
}

// handshakeSessionID returns the session id of a successful handshake
// response, or "" when the response is not one. The id is the "sid" member
// of the open packet's JSON. The JSONP encoding escapes the JSON's quotes
// with backslashes, and the other payload encodings keep them.
func handshakeSessionID(response *bufferedResponse) string {
	if response.statusCode() != http.StatusOK {
		return ""
	}
	body := response.body.Bytes()
	for _, quote := range []string{`"`, `\"`} {
		member := []byte(quote + "sid" + quote + ":" + quote)
		start := bytes.Index(body, member)
		if start < 0 {
			continue
		}
		rest := body[start+len(member):]
		end := bytes.Index(rest, []byte(quote))
		if end <= 0 {
			return ""
		}
		return string(rest[:end])
	}
	return ""
}

// isDigits reports whether s is one or more ASCII digits.
func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// bufferedResponse is an http.ResponseWriter that keeps the status and the
// body until writeTo sends them. Headers go to header directly.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.header }

func (b *bufferedResponse) WriteHeader(status int) {
	if b.status == 0 {
		b.status = status
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	b.WriteHeader(http.StatusOK)
	return b.body.Write(p)
}

// statusCode returns the status that net/http would send, which is 200 when
// the handler set none.
func (b *bufferedResponse) statusCode() int {
	if b.status == 0 {
		return http.StatusOK
	}
	return b.status
}

// writeTo sends the status and the body to w.
func (b *bufferedResponse) writeTo(w http.ResponseWriter) {
	w.WriteHeader(b.statusCode())
	// An error here means that the client has gone. The session's own
	// timeouts close the session then.
	_, _ = w.Write(b.body.Bytes())
}
