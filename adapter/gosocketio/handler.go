package gosocketio

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	socketio "github.com/googollee/go-socket.io"

	"github.com/sockauth/sockauth/internal/logthrottle"
)

const (
	// registrationWait bounds how long Handler holds the response of a
	// long-polling handshake while go-socket.io registers the new session.
	registrationWait = 2 * time.Second

	// registrationPollMin and registrationPollMax bound the pause between two
	// checks of the registration. The pause starts at the minimum and doubles.
	registrationPollMin = 100 * time.Microsecond
	registrationPollMax = 10 * time.Millisecond

	// sessionCheckInterval is how often Handler checks that the session of a
	// pending long-polling POST still exists.
	sessionCheckInterval = 100 * time.Millisecond

	// DefaultPayloadTimeout bounds how long Handler waits for the body of a
	// long-polling POST. A client sends it at once, and 1 MiB takes 8 s at
	// 1 Mbit/s.
	DefaultPayloadTimeout = 30 * time.Second
)

// HandlerOption configures Handler.
type HandlerOption func(*PollingHandler)

// WithMaxPayloadBytes sets the maximum size in bytes of the body of one
// long-polling POST, which may carry several engine.io packets. Larger
// bodies get HTTP 413. Zero or negative values keep the default,
// DefaultMaxMessageBytes.
func WithMaxPayloadBytes(n int) HandlerOption {
	return func(h *PollingHandler) {
		if n > 0 {
			h.maxPayloadBytes = int64(n)
		}
	}
}

// WithPayloadTimeout sets how long Handler waits for the whole body of a
// long-polling POST before it rejects the POST with HTTP 408. Zero or
// negative values keep the default, DefaultPayloadTimeout.
func WithPayloadTimeout(d time.Duration) HandlerOption {
	return func(h *PollingHandler) {
		if d > 0 {
			h.payloadTimeout = d
		}
	}
}

// Handler serves server over HTTP like the server itself, and in addition
// guards the HTTP long-polling transport of go-socket.io v1.7.0:
//
//   - It holds the response of each long-polling handshake until the new
//     engine.io session can be found by its id. go-socket.io writes the
//     handshake response before a goroutine of its own registers the
//     session. A client that polls again at once, as socket.io-client does,
//     can then get HTTP 400 "invalid sid value" and lose its connection. On
//     a busy 2-core machine, 2 handshakes in 1,200 did. Handler looks the
//     session up with an OPTIONS request of its id, which go-socket.io
//     serves without touching the session's packets. It sends the handshake
//     response once the lookup succeeds, or after registrationWait with a
//     warning in logger's log.
//   - It rejects a handshake by any method but GET or OPTIONS with HTTP 400.
//     engine.io servers, such as zishang520/socket.io v3.0.6, reject every
//     handshake but a GET, and Handler lets OPTIONS through for CORS
//     preflights. go-socket.io would open a session for a POST handshake
//     and keep the request open for the session's read timeout of a
//     minute.
//   - It reads the body of each POST to a session first, up to the limit
//     that WithMaxPayloadBytes sets and within the time that
//     WithPayloadTimeout sets. It rejects a larger body with HTTP 413, a
//     late one with HTTP 408, and an empty or broken one with HTTP 400.
//     go-socket.io then reads the packets from memory. While it does,
//     Handler checks every sessionCheckInterval that the session still
//     exists. When the session has closed, for example because a packet was
//     malformed, Handler ends the request with HTTP 400 within three
//     intervals, and logs a warning. go-socket.io would keep it open for a
//     minute and hold an HTTP server's graceful shutdown as long.
//
// NOTE: a POST whose packets need a response, such as a ping, still waits
// for the client's next poll, and one sent before the session's first poll
// waits for that poll. Both keep the payload in memory meanwhile, for at
// most the session's read timeout. An OPTIONS request without a session id,
// such as a browser's CORS preflight of a handshake, still opens a session
// in go-socket.io, as a GET handshake that is never polled does.
//
// A server should call CancelPayloadReads when its graceful shutdown starts.
// The server's RequestChecker receives the OPTIONS lookups too. Requests of
// other kinds pass through unchanged. Servers that offer only WebSocket do
// not need Handler, although it does no harm there. A nil logger means
// slog.Default().
func Handler(server *socketio.Server, logger *slog.Logger, opts ...HandlerOption) *PollingHandler {
	if logger == nil {
		logger = slog.Default()
	}
	h := &PollingHandler{
		server:          server,
		log:             logger,
		wait:            registrationWait,
		sessionCheck:    sessionCheckInterval,
		maxPayloadBytes: DefaultMaxMessageBytes,
		payloadTimeout:  DefaultPayloadTimeout,
		rejections:      logthrottle.New(rejectionLogBurst, rejectionLogInterval),
		reads:           make(map[*http.ResponseController]struct{}),
	}
	for _, opt := range opts {
		opt(h)
	}
	return h
}

// PollingHandler is the http.Handler that Handler returns. It is safe for
// concurrent use.
type PollingHandler struct {
	server *socketio.Server
	log    *slog.Logger
	// wait is registrationWait, shorter in tests.
	wait time.Duration
	// sessionCheck is sessionCheckInterval, shorter in tests.
	sessionCheck    time.Duration
	maxPayloadBytes int64
	payloadTimeout  time.Duration
	// rejections limits the log lines about POSTs that Handler rejects or
	// ends, which any client can cause.
	rejections *logthrottle.Throttle

	readsMu sync.Mutex // guards reads and readsCanceled
	// reads contains the controllers of the requests whose body Handler
	// reads now.
	reads map[*http.ResponseController]struct{}
	// readsCanceled is set by CancelPayloadReads.
	readsCanceled bool
}

// A burst of rejectionLogBurst warnings about rejected POSTs passes, and then
// one per rejectionLogInterval.
const (
	rejectionLogBurst    = 10
	rejectionLogInterval = 10 * time.Second
)

func (h *PollingHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	query := r.URL.Query()
	// go-socket.io writes the JSONP index j into a script as it is, so
	// only digits may pass, as engine.io's own servers ensure.
	if j := query.Get("j"); query.Has("j") && !isDigits(j) {
		http.Error(w, fmt.Sprintf("invalid JSONP index j %q: expected digits", j), http.StatusBadRequest)
		return
	}
	if query.Get("transport") != "polling" {
		h.server.ServeHTTP(w, r)
		return
	}

	sid := query.Get("sid")
	switch {
	case sid == "" && r.Method == http.MethodGet:
		h.serveHandshake(w, r)
	case sid == "" && r.Method != http.MethodOptions:
		http.Error(w, fmt.Sprintf("invalid method %s for an engine.io handshake: expected GET", r.Method), http.StatusBadRequest)
	case sid != "" && r.Method == http.MethodPost:
		h.servePost(w, r, sid)
	default:
		h.server.ServeHTTP(w, r)
	}
}

// serveHandshake serves a long-polling handshake and holds its response
// until the server has registered the new session.
func (h *PollingHandler) serveHandshake(w http.ResponseWriter, r *http.Request) {
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
func (h *PollingHandler) waitRegistered(r *http.Request, sid string) bool {
	deadline := time.Now().Add(h.wait)
	pause := registrationPollMin
	for {
		if h.sessionExists(r, sid) {
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

// sessionExists reports whether the server finds the engine.io session sid,
// by an OPTIONS request of the session derived from r.
func (h *PollingHandler) sessionExists(r *http.Request, sid string) bool {
	query := url.Values{}
	query.Set("EIO", r.URL.Query().Get("EIO"))
	query.Set("transport", "polling")
	query.Set("sid", sid)
	probe := r.Clone(r.Context())
	probe.Method = http.MethodOptions
	probe.URL.RawQuery = query.Encode()
	probe.Body = http.NoBody
	probe.ContentLength = 0

	lookup := &bufferedResponse{header: make(http.Header)}
	h.server.ServeHTTP(lookup, probe)
	return lookup.statusCode() == http.StatusOK
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
