package adapter

import (
	"context"
	"errors"
	"log/slog"
	"time"

	sockauthv1 "github.com/sockauth/sockauth/gen/sockauth/v1"
)

// HandshakeError is the error of [Flow.AuthenticateHandshake] for a token
// that the flow or the authority rejected. The binding then rejects the
// connection instead of admitting the socket, with the same message and data
// that an unauthorized event would carry.
type HandshakeError struct {
	// Code is the code that an unauthorized event would carry.
	Code Code
}

func (e *HandshakeError) Error() string {
	return "adapter: handshake token rejected: " + string(e.Code)
}

// Message returns the human-readable text of the code, the message member
// of an unauthorized event.
func (e *HandshakeError) Message() string {
	return e.Code.message()
}

// Data returns a new copy of the data member of an unauthorized event:
// {message, code, type: "UnauthorizedError"}.
func (e *HandshakeError) Data() map[string]any {
	return unauthorizedPayload(e.Code)["data"].(map[string]any)
}

// Admission is a handshake token that [Flow.AuthenticateHandshake] exchanged
// for the next session token, kept until the socket.io server admits the
// socket and the binding calls [Flow.ConnectAuthenticated]. When the socket
// never connects, the new token is never delivered and the rotation stays
// unconfirmed, so the client may present the same token again within the
// authority's rotation leeway.
type Admission struct {
	// token is the next session token. It is never logged.
	token    string
	identity Identity

	// started and epoch are the time and the watch epoch when the
	// Authenticate call began, to find revocations that the Flow may have
	// missed since.
	started time.Time
	epoch   uint64
}

// Identity returns the identity that the socket will have once connected.
func (a *Admission) Identity() Identity {
	return a.identity.clone()
}

// AuthenticateHandshake exchanges the token that a client sent with its
// connection handshake for the next session token, before the socket.io
// server admits the socket. socketID is used only in logs.
//
// It returns the Admission to pass to ConnectAuthenticated, or a
// *HandshakeError when the token is malformed, rejected by the authority or
// the authority is unavailable, or when the client address that ctx carries
// (see WithClientAddress) is over Config.AddressAuthenticateLimit. It
// returns ErrClosed after Close. It blocks for at most Config.CallTimeout.
// ctx may carry an earlier deadline or cancellation.
func (f *Flow) AuthenticateHandshake(ctx context.Context, socketID, token string) (admission *Admission, err error) {
	onOwnStack(func() { admission, err = f.authenticateHandshake(ctx, socketID, token) })
	return admission, err
}

// authenticateHandshake is the body of AuthenticateHandshake.
func (f *Flow) authenticateHandshake(ctx context.Context, socketID, token string) (*Admission, error) {
	f.mu.Lock()
	closed := f.closed
	f.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}

	if _, err := TokenFromPayload(token, f.cfg.MaxTokenBytes); err != nil {
		f.log.Info("handshake token rejected", "socket", socketID, "reason", string(CodeInvalidToken), "error", err)
		return nil, f.rejectHandshake(CodeInvalidToken)
	}
	if address := clientAddressFrom(ctx); !f.addresses.allow(address, time.Now()) {
		f.log.Info("handshake token rejected", "socket", socketID, "reason", string(CodeRateLimited), "address", address)
		return nil, f.rejectHandshake(CodeRateLimited)
	}

	started, epoch := time.Now(), f.watchEpoch.Load()
	callCtx, cancel := f.callContext(ctx)
	resp, err := f.cfg.Authority.Authenticate(callCtx, &sockauthv1.AuthenticateRequest{Token: token})
	cancel()
	if err != nil {
		code := CodeOf(err)
		if code == CodeAuthorityUnavailable {
			f.log.Warn("authority call failed", "socket", socketID, "rpc", "Authenticate", "reason", string(code), "error", err)
		} else {
			f.log.Info("handshake token rejected", "socket", socketID, "reason", string(code))
		}
		f.metrics.observeAuthentication(started, false)
		return nil, f.rejectHandshake(code)
	}

	next := resp.GetToken()
	id, err := identityOf(resp.GetInfo())
	if err == nil && next == "" {
		err = errors.New("missing token in authority response")
	}
	if err != nil {
		f.log.Error("authority returned an invalid Authenticate response", "socket", socketID, "error", err)
		f.metrics.observeAuthentication(started, false)
		return nil, f.rejectHandshake(CodeAuthorityUnavailable)
	}
	f.metrics.observeAuthentication(started, true)

	if f.logs(slog.LevelDebug) {
		f.log.Debug("handshake token accepted", socketAttrs(socketID, id)...)
	}
	return &Admission{token: next, identity: id, started: started, epoch: epoch}, nil
}

// ConnectAuthenticated registers a socket that the socket.io server admitted
// after AuthenticateHandshake, as authenticated with admission. It starts
// the expiry timer and emits authenticated with the new session token and an
// ack that confirms the rotation, as Authenticate does, and calls the
// Authenticated hook. The binding must call it where emitting is safe. It
// returns ErrClosed after Close.
func (f *Flow) ConnectAuthenticated(s Socket, admission *Admission) error {
	if admission == nil {
		return errors.New("adapter: missing admission in ConnectAuthenticated")
	}
	if err := f.connect(s, false); err != nil {
		return err
	}

	st, ok := f.lookup(s.ID())
	if !ok {
		return nil
	}
	f.deliverAdmission(st, admission)
	return nil
}

// deliverAdmission makes st authenticated with the admission's identity and
// emits authenticated with its token, unless the session was revoked since
// the handshake's Authenticate call began.
func (f *Flow) deliverAdmission(st *socketState, admission *Admission) {
	socketID := st.socket.ID()
	next, id := admission.token, admission.identity

	f.mu.Lock()
	if st.phase == phaseClosed || f.sockets[socketID] != st {
		f.mu.Unlock()
		f.log.Info("socket closed during handshake; new token not delivered", socketAttrs(socketID, id)...)
		return
	}
	if reason, revoked := f.recent.lookup(id.SessionID, time.Now()); revoked {
		f.closeLocked(st)
		f.mu.Unlock()
		f.log.Info("session revoked during handshake; new token not delivered",
			append(socketAttrs(socketID, id), "reason", reasonName(reason))...)
		f.disconnectAll([]*socketState{st}, endingOf(reason), id.SessionID)
		return
	}
	f.installIdentityLocked(st, id, next)
	f.mu.Unlock()

	ack := func() { f.confirm(st, next, id) }
	if err := st.socket.EmitWithAck(EventAuthenticated, ack, next, authenticatedInfo(id)); err != nil {
		f.log.Warn("emitting authenticated failed", append(socketAttrs(socketID, id), "error", err)...)
		return
	}

	// The recent revocations cover only 2×CallTimeout, and a change of the
	// epoch means that the stream opened or broke since the call began.
	if f.watchEpoch.Load() != admission.epoch || time.Since(admission.started) > f.recent.retention {
		f.requestVerify()
	}
	if f.logs(slog.LevelInfo) {
		f.log.Info("socket authenticated in handshake", append(socketAttrs(socketID, id), "generation", id.Generation)...)
	}

	if f.hooks.Authenticated != nil {
		f.hooks.Authenticated(st.socket, id.clone())
	}
}

// rejectHandshake counts a rejected handshake and returns its error.
func (f *Flow) rejectHandshake(code Code) *HandshakeError {
	f.metrics.rejected(code)
	return &HandshakeError{Code: code}
}
