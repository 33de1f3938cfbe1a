package gosocketio

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime/debug"
	"sync"
	"time"
)

// CancelPayloadReads ends the reads of long-polling POST bodies under way
// with HTTP 503. Later POSTs whose body has not arrived whole with their
// headers get the same at once. A server calls it when a graceful shutdown
// starts, so that a client that sends its body slowly does not hold the
// shutdown:
//
//	httpServer.RegisterOnShutdown(handler.CancelPayloadReads)
func (h *PollingHandler) CancelPayloadReads() {
	h.readsMu.Lock()
	defer h.readsMu.Unlock()
	h.readsCanceled = true
	for controller := range h.reads {
		_ = controller.SetReadDeadline(time.Now())
	}
}

// postOutcome is the end of a long-polling POST.
type postOutcome int

const (
	postServed        postOutcome = iota // the server wrote its response
	postSessionClosed                    // the session closed first
	postClientGone                       // the client went away first
	postPanicked                         // the server panicked
)

// servePost reads the body of a long-polling POST to the session sid into
// memory and lets the server read its packets from there. It sends the
// server's response, or HTTP 400 when the session closes first.
func (h *PollingHandler) servePost(w http.ResponseWriter, r *http.Request, sid string) {
	payload, err := h.readPayload(w, r)
	if err != nil {
		var tooLarge *http.MaxBytesError
		switch {
		case errors.As(err, &tooLarge):
			h.rejections.Log(func(suppressed int64) {
				h.log.Warn("long-polling payload rejected: larger than the limit",
					"socket", sid, "limit_bytes", h.maxPayloadBytes, "address", r.RemoteAddr, "suppressed", suppressed)
			})
			http.Error(w, fmt.Sprintf("payload too large: the limit is %d bytes", h.maxPayloadBytes), http.StatusRequestEntityTooLarge)
		case errors.Is(err, os.ErrDeadlineExceeded) && h.payloadsCanceled():
			http.Error(w, "server shutting down: send the payload again after reconnecting", http.StatusServiceUnavailable)
		case errors.Is(err, os.ErrDeadlineExceeded):
			h.rejections.Log(func(suppressed int64) {
				h.log.Warn("long-polling payload rejected: not received in time",
					"socket", sid, "timeout", h.payloadTimeout, "address", r.RemoteAddr, "suppressed", suppressed)
			})
			http.Error(w, fmt.Sprintf("payload not received within %v", h.payloadTimeout), http.StatusRequestTimeout)
		default:
			h.rejections.Log(func(suppressed int64) {
				h.log.Info("long-polling payload not read", "socket", sid, "address", r.RemoteAddr, "error", err, "suppressed", suppressed)
			})
			http.Error(w, "failed to read the payload: "+err.Error(), http.StatusBadRequest)
		}
		return
	}
	if len(payload) == 0 {
		http.Error(w, "invalid payload: the body is empty", http.StatusBadRequest)
		return
	}

	// The server may go on reading after this handler has returned, so it
	// gets a request, a body and a response of its own, which net/http
	// never reuses.
	body := &releasableBody{payload: payload}
	post := r.Clone(r.Context())
	post.Body = body
	post.ContentLength = int64(len(payload))
	response := &bufferedResponse{header: make(http.Header)}
	done := make(chan postOutcome, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				h.log.Error("go-socket.io panicked serving a long-polling POST",
					"socket", sid, "address", r.RemoteAddr, "panic", p, "stack", string(debug.Stack()))
				done <- postPanicked
				return
			}
			done <- postServed
		}()
		h.server.ServeHTTP(response, post)
	}()

	outcome := h.waitPost(r, sid, done)
	if outcome == postSessionClosed || outcome == postClientGone {
		// go-socket.io keeps its goroutine until the session's read
		// timeout, a minute by default, but not the payload.
		body.release()
	}
	switch outcome {
	case postServed:
		for name, values := range response.header {
			w.Header()[name] = values
		}
		response.writeTo(w)
	case postSessionClosed:
		h.rejections.Log(func(suppressed int64) {
			h.log.Warn("long-polling POST ended because its session closed while the server held it, "+
				"as after a malformed packet or at shutdown",
				"socket", sid, "address", r.RemoteAddr, "bytes", len(payload), "suppressed", suppressed)
		})
		http.Error(w, "session closed while the server held the payload: open a new session", http.StatusBadRequest)
	case postPanicked:
		http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
	case postClientGone:
		// The client reads no response.
	}
}

// readPayload reads the body of r, up to h.maxPayloadBytes and within
// h.payloadTimeout. The deadline keeps a client that sends its body slowly
// from holding the request, and a graceful shutdown of the HTTP server,
// for longer. CancelPayloadReads moves the deadline to now.
func (h *PollingHandler) readPayload(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	controller := http.NewResponseController(w)
	deadlineSet := controller.SetReadDeadline(time.Now().Add(h.payloadTimeout)) == nil

	h.readsMu.Lock()
	if h.readsCanceled {
		_ = controller.SetReadDeadline(time.Now())
	}
	h.reads[controller] = struct{}{}
	h.readsMu.Unlock()

	payload, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.maxPayloadBytes))

	h.readsMu.Lock()
	delete(h.reads, controller)
	h.readsMu.Unlock()

	if err != nil {
		// The rest of the body is unread, so the connection cannot carry
		// another request. Closing it also keeps net/http from reading that
		// rest before it sends the error response.
		w.Header().Set("Connection", "close")
		return nil, err
	}
	if deadlineSet {
		_ = controller.SetReadDeadline(time.Time{})
	}
	return payload, nil
}

// payloadsCanceled reports whether CancelPayloadReads has run.
func (h *PollingHandler) payloadsCanceled() bool {
	h.readsMu.Lock()
	defer h.readsMu.Unlock()
	return h.readsCanceled
}

// releasableBody is the request body that go-socket.io reads a payload from.
// release drops the payload, after which Read returns io.EOF, so that a
// goroutine that go-socket.io keeps after Handler has responded does not keep
// the payload too.
type releasableBody struct {
	mu      sync.Mutex // guards payload
	payload []byte
}

func (b *releasableBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.payload) == 0 {
		return 0, io.EOF
	}
	n := copy(p, b.payload)
	b.payload = b.payload[n:]
	return n, nil
}

func (b *releasableBody) Close() error { return nil }

func (b *releasableBody) release() {
	b.mu.Lock()
	b.payload = nil
	b.mu.Unlock()
}

// waitPost waits for the outcome that done delivers, and checks every
// h.sessionCheck meanwhile that the session sid still exists. After the
// session has gone, it gives done one more interval, because a POST that
// closes the session itself, with a close packet, gets its response only
// after the session has gone.
func (h *PollingHandler) waitPost(r *http.Request, sid string, done <-chan postOutcome) postOutcome {
	check := time.NewTimer(h.sessionCheck)
	defer check.Stop()
	sessionGone := false
	for {
		select {
		case outcome := <-done:
			return outcome
		case <-r.Context().Done():
			return postClientGone
		case <-check.C:
			if sessionGone {
				return postSessionClosed
			}
			sessionGone = !h.sessionExists(r, sid)
			check.Reset(h.sessionCheck)
		}
	}
}
