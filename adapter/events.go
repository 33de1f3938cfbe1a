package adapter

import (
	"context"
	"errors"
	"log/slog"
	"time"

	sockauthv1 "github.com/sockauth/sockauth/gen/sockauth/v1"
)

// Authenticate handles an authenticate event: it exchanges the token in
// payload (see [TokenFromPayload]) for the next session token, emits
// authenticated with an ack that confirms the rotation, and restarts the
// socket's expiry timer. On any failure it emits unauthorized and
// disconnects the socket. An authenticated socket that authenticates again
// is refreshed. Events of unknown or closed sockets are ignored.
//
// Authenticate blocks for at most Config.CallTimeout plus the time the
// binding needs to emit. ctx may carry an earlier deadline or cancellation.
func (f *Flow) Authenticate(ctx context.Context, socketID string, payload any) {
	onOwnStack(func() { f.authenticate(ctx, socketID, payload) })
}

// authenticate is the body of Authenticate.
func (f *Flow) authenticate(ctx context.Context, socketID string, payload any) {
	st, ok := f.lookup(socketID)
	if !ok {
		return
	}

	if code, ok := f.checkPayload(st, EventAuthenticate, payload); !ok {
		f.reject(st, code)
		return
	}
	if !f.allowAuthenticate(st) {
		f.reject(st, CodeRateLimited)
		return
	}

	token, err := TokenFromPayload(payload, f.cfg.MaxTokenBytes)
	if err != nil {
		f.log.Info("authenticate payload rejected", "socket", socketID, "error", err)
		f.reject(st, CodeInvalidToken)
		return
	}

	// A change of the epoch during the call means that the revocation stream
	// opened or broke, so the revocation of this socket's session may have
	// been missed.
	epoch := f.watchEpoch.Load()
	start := time.Now()
	callCtx, cancel := f.callContext(ctx)
	resp, err := f.cfg.Authority.Authenticate(callCtx, &sockauthv1.AuthenticateRequest{Token: token})
	cancel()
	if err != nil {
		f.metrics.observeAuthentication(start, false)
		f.rejectCallError(st, "Authenticate", err)
		return
	}

	next := resp.GetToken()
	id, err := identityOf(resp.GetInfo())
	if err == nil && next == "" {
		err = errors.New("missing token in authority response")
	}
	if err != nil {
		f.metrics.observeAuthentication(start, false)
		f.log.Error("authority returned an invalid Authenticate response", "socket", socketID, "error", err)
		f.reject(st, CodeAuthorityUnavailable)
		return
	}

	// The socket may have been rejected, logged out or disconnected during
	// the call. The new token is then never delivered, and the authority's
	// rotation leeway lets the client retry with the presented one.
	f.mu.Lock()
	if st.phase == phaseClosed || f.sockets[socketID] != st {
		f.mu.Unlock()
		f.log.Info("socket closed during authenticate; new token not delivered", socketAttrs(socketID, id)...)
		return
	}
	if reason, revoked := f.recent.lookup(id.SessionID, time.Now()); revoked {
		f.closeLocked(st)
		f.mu.Unlock()
		f.metrics.observeAuthentication(start, false)
		f.log.Info("session revoked during authenticate; new token not delivered",
			append(socketAttrs(socketID, id), "reason", reasonName(reason))...)
		f.disconnectAll([]*socketState{st}, endingOf(reason), id.SessionID)
		return
	}
	previousSession := st.identity.SessionID
	f.unindexLocked(st)
	f.installIdentityLocked(st, id, next)
	f.mu.Unlock()

	ack := func() { f.confirm(st, next, id) }
	err = st.socket.EmitWithAck(EventAuthenticated, ack, next, authenticatedInfo(id))
	f.metrics.observeAuthentication(start, true)
	if err != nil {
		f.log.Warn("emitting authenticated failed", append(socketAttrs(socketID, id), "error", err)...)
		return
	}

	// Requested after the emit, so that a rejection by the session check
	// reaches the client after authenticated.
	if f.watchEpoch.Load() != epoch {
		f.requestVerify()
	}

	if f.logs(slog.LevelInfo) {
		message := "socket refreshed"
		if previousSession == "" {
			message = "socket authenticated"
		}
		f.log.Info(message, append(socketAttrs(socketID, id), "generation", id.Generation)...)
	}

	if previousSession != id.SessionID && f.hooks.Authenticated != nil {
		f.hooks.Authenticated(st.socket, id.clone())
	}
}

// confirm calls ConfirmRotation for token after the client acknowledged it.
// A failure other than an unreachable authority means the session is dead,
// so the socket is rejected.
func (f *Flow) confirm(st *socketState, token string, id Identity) {
	onOwnStack(func() { f.confirmOnce(st, token, id) })
}

// confirmOnce is the body of confirm.
func (f *Flow) confirmOnce(st *socketState, token string, id Identity) {
	ctx, cancel := f.callContext(context.Background())
	resp, err := f.cfg.Authority.ConfirmRotation(ctx, &sockauthv1.ConfirmRotationRequest{Token: token})
	cancel()

	if err != nil {
		code := CodeOf(err)
		if code == CodeAuthorityUnavailable {
			// The rotation stays unconfirmed and ends with the authority's
			// leeway, so the socket may stay.
			f.log.Warn("confirming rotation failed", append(socketAttrs(st.socket.ID(), id), "error", err)...)
			return
		}
		f.log.Info("rotation confirmation rejected", append(socketAttrs(st.socket.ID(), id), "reason", string(code))...)
		// A logout on another socket can land between authenticated and its
		// ack. The socket then gets logged_out, as the revocation event
		// would give it, whichever of the two arrives first.
		if revokedForLogout(err) {
			f.end(st, loggedOut())
			return
		}
		f.reject(st, code)
		return
	}

	if f.logs(slog.LevelDebug) {
		f.log.Debug("rotation acknowledged", append(socketAttrs(st.socket.ID(), id), "confirmed", resp.GetConfirmed())...)
	}
}

// Logout handles a logout event. It revokes the session of the token in
// payload, or of the socket's current token when payload carries none. Then
// it emits logged_out to the calling socket and to every other socket of
// that session connected to this Flow, and disconnects them. On failure it
// emits unauthorized and disconnects the calling socket. Events of unknown
// or closed sockets are ignored.
func (f *Flow) Logout(ctx context.Context, socketID string, payload any) {
	st, ok := f.lookup(socketID)
	if !ok {
		return
	}

	if code, ok := f.checkPayload(st, EventLogout, payload); !ok {
		f.reject(st, code)
		return
	}

	token, err := TokenFromPayload(payload, f.cfg.MaxTokenBytes)
	if errors.Is(err, ErrNoToken) {
		f.mu.Lock()
		token = st.token
		f.mu.Unlock()
		if token == "" {
			err = errors.New("logout without a token from an unauthenticated socket")
		} else {
			err = nil
		}
	}
	if err != nil {
		f.log.Info("logout payload rejected", "socket", socketID, "error", err)
		f.reject(st, CodeInvalidToken)
		return
	}

	callCtx, cancel := f.callContext(ctx)
	resp, err := f.cfg.Authority.Logout(callCtx, &sockauthv1.LogoutRequest{Token: token})
	cancel()
	if err != nil {
		f.rejectCallError(st, "Logout", err)
		return
	}

	f.endSession(st, resp.GetSessionId(), resp.GetSubject())
}

// endSession disconnects with logged_out the calling socket and every open
// socket of the session.
func (f *Flow) endSession(caller *socketState, sid, subject string) {
	f.mu.Lock()
	var targets []*socketState
	if caller.phase != phaseClosed {
		f.closeLocked(caller)
		targets = append(targets, caller)
	}
	targets = append(targets, f.takeSessionLocked(sid)...)
	f.recent.add(sid, sockauthv1.RevocationReason_REVOCATION_REASON_LOGOUT, time.Now())
	f.mu.Unlock()

	f.log.Info("session logged out", "sid", sid, "subject", subject, "socket", caller.socket.ID(), "sockets", len(targets))
	f.disconnectAll(targets, loggedOut(), sid)
}

// rejectCallError logs a failed authority call and rejects the socket with
// the matching code.
func (f *Flow) rejectCallError(st *socketState, rpc string, err error) {
	code := CodeOf(err)

	f.mu.Lock()
	id := st.identity
	f.mu.Unlock()
	attrs := append(socketAttrs(st.socket.ID(), id), "rpc", rpc, "reason", string(code))

	// reject logs the rejection itself; only an unreachable authority needs
	// its error logged.
	if code == CodeAuthorityUnavailable {
		f.log.Warn("authority call failed", append(attrs, "error", err)...)
	} else {
		f.log.Debug("authority rejected the token", attrs...)
	}
	f.reject(st, code)
}

// checkPayload rejects a payload larger than Config.MaxPayloadBytes before
// it is decoded. It returns the code to reject with, and false, or true for
// a payload within the limit or of unknown size.
func (f *Flow) checkPayload(st *socketState, event string, payload any) (Code, bool) {
	size, known := payloadSize(payload)
	if !known || size <= f.cfg.MaxPayloadBytes {
		return "", true
	}
	f.log.Info("payload too large", "socket", st.socket.ID(), "event", event, "bytes", size, "max_bytes", f.cfg.MaxPayloadBytes)
	return CodePayloadTooLarge, false
}

// allowAuthenticate reports whether st may authenticate now under
// Config.SocketAuthenticateLimit and Config.AddressAuthenticateLimit, and
// takes a token from each when it may. A socket over its own limit takes no
// token from its address.
func (f *Flow) allowAuthenticate(st *socketState) bool {
	now := time.Now()
	if st.limiter != nil && !st.limiter.AllowN(now, 1) {
		f.log.Debug("socket over its authenticate limit", "socket", st.socket.ID())
		return false
	}

	address := clientAddressOf(st.socket)
	if !f.addresses.allow(address, now) {
		f.log.Debug("client address over its authenticate limit", "socket", st.socket.ID(), "address", address)
		return false
	}
	return true
}

// installIdentityLocked marks the socket authenticated as id with token, adds
// it to the session index and arms its expiry timer. f.mu must be held.
func (f *Flow) installIdentityLocked(st *socketState, id Identity, token string) {
	f.setPhaseLocked(st, phaseAuthenticated)
	st.identity = id
	st.token = token
	f.indexLocked(st)
	deadline, code := id.deadline()
	f.armTimerLocked(st, time.Until(deadline), code)
}

// authenticatedInfo is the second argument of the authenticated event.
func authenticatedInfo(id Identity) map[string]any {
	return map[string]any{
		"expires_at": id.ExpiresAt.UTC().Format(time.RFC3339),
		"session_id": id.SessionID,
		"subject":    id.Subject,
	}
}
