package adapter

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"time"

	sockauthv1 "github.com/sockauth/sockauth/gen/sockauth/v1"
)

// watchRevocations keeps a WatchRevocations stream open until Close and
// disconnects the sockets of every session that the stream reports revoked.
// Every time a stream opens, and after every failed attempt to open one, it
// asks the session checker to verify the sessions of the Flow's sockets,
// because revocations made while no stream was open were missed.
func (f *Flow) watchRevocations() {
	defer f.background.Done()

	delay := f.cfg.RevocationRetryDelay
	attempts := 0
	for {
		opened, err := f.watchOnce()
		if f.ctx.Err() != nil {
			return
		}

		if opened {
			attempts = 0
			delay = f.cfg.RevocationRetryDelay
		}
		attempts++
		wait := jitter(delay)
		if opened {
			f.log.Warn("revocation stream broke, reconnecting", "error", err, "retry_in", wait)
		} else {
			f.log.Warn("opening the revocation stream failed, retrying", "error", err, "attempt", attempts, "retry_in", wait)
			f.requestVerify()
		}

		if !f.sleep(wait) {
			return
		}
		delay = f.nextRetryDelay(delay)
	}
}

// watchOnce opens one revocation stream and handles its events until it
// ends. It returns whether the stream was open, and why it ended.
func (f *Flow) watchOnce() (opened bool, err error) {
	ctx, cancel := context.WithCancel(f.ctx)
	defer cancel()

	stream, err := f.cfg.Authority.WatchRevocations(ctx, &sockauthv1.WatchRevocationsRequest{})
	if err != nil {
		return false, err
	}

	// The authority sends the headers once its subscription is in place, so
	// no revocation made after they arrive is missed.
	header, err := stream.Header()
	if err != nil {
		return false, err
	}
	if header == nil {
		// The stream ended without headers, and Recv returns its status.
		_, err := stream.Recv()
		if err == nil {
			err = errors.New("the authority sent a revocation before the stream's headers")
		}
		return false, err
	}

	f.watchEpoch.Add(1)
	defer f.watchEpoch.Add(1)
	f.log.Info("revocation stream open, verifying the sessions of connected sockets")
	f.requestVerify()

	for {
		event, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return true, errors.New("the authority ended the revocation stream")
		}
		if err != nil {
			return true, err
		}
		f.revoked(event)
	}
}

// revoked disconnects the sockets of the session of a revocation event and
// remembers the session for authenticate calls still in flight.
func (f *Flow) revoked(event *sockauthv1.WatchRevocationsResponse) {
	sid := event.GetSessionId()
	if sid == "" {
		f.log.Warn("revocation event without a session id ignored", "subject", event.GetSubject(), "reason", reasonName(event.GetReason()))
		return
	}

	f.mu.Lock()
	f.recent.add(sid, event.GetReason(), time.Now())
	targets := f.takeSessionLocked(sid)
	f.mu.Unlock()

	if len(targets) == 0 {
		return
	}
	f.log.Info("sockets of a revoked session disconnected", "sid", sid, "subject", event.GetSubject(),
		"reason", reasonName(event.GetReason()), "sockets", len(targets))
	f.disconnectAll(targets, endingOf(event.GetReason()), sid)
}

// requestVerify asks the session checker for a pass that starts after this
// call.
func (f *Flow) requestVerify() {
	select {
	case f.verifyRequests <- struct{}{}:
	default:
	}
}

// sleep waits for d and returns true, or returns false when the Flow is
// closed first.
func (f *Flow) sleep(d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-f.stop:
		return false
	case <-timer.C:
		return true
	}
}

// nextRetryDelay doubles delay up to the larger of MaxRevocationRetryDelay
// and Config.RevocationRetryDelay.
func (f *Flow) nextRetryDelay(delay time.Duration) time.Duration {
	return min(2*delay, max(MaxRevocationRetryDelay, f.cfg.RevocationRetryDelay))
}

// jitter returns a random duration within 20% of d.
func jitter(d time.Duration) time.Duration {
	return d*4/5 + rand.N(d*2/5+1)
}

// reasonName returns a revocation reason in lower case without its prefix,
// such as "logout", for logs.
func reasonName(reason sockauthv1.RevocationReason) string {
	return strings.ToLower(strings.TrimPrefix(reason.String(), "REVOCATION_REASON_"))
}

// ending is the last event that the Flow sends to a socket it disconnects.
type ending struct {
	event   string
	payload any
	// code is the code of an unauthorized event, or empty.
	code Code
}

// rejection is the ending of unauthorized with code.
func rejection(code Code) ending {
	return ending{event: EventUnauthorized, payload: unauthorizedPayload(code), code: code}
}

// loggedOut is the ending of a socket whose session was logged out.
func loggedOut() ending {
	return ending{event: EventLoggedOut, payload: map[string]any{"reason": LogoutReason}}
}

// endingOf returns the ending of the sockets of a session revoked for
// reason: logged_out after a logout, unauthorized with session_expired for
// a session past its maximum age, and unauthorized with revoked_token for
// any other reason.
func endingOf(reason sockauthv1.RevocationReason) ending {
	switch reason {
	case sockauthv1.RevocationReason_REVOCATION_REASON_LOGOUT:
		return loggedOut()
	case sockauthv1.RevocationReason_REVOCATION_REASON_EXPIRED:
		return rejection(CodeSessionExpired)
	}
	return rejection(CodeRevokedToken)
}

// recentRevocation is one entry of recentRevocations.
type recentRevocation struct {
	sid    string
	reason sockauthv1.RevocationReason
	at     time.Time
}

// recentRevocations remembers the sessions revoked within the last
// retention. An authenticate call that was in flight when its session was
// revoked can return success after the revocation event arrived, and the
// Flow checks these entries so that such a socket is not let in. Its size
// grows with the rate of revocations across all replicas. It is not safe for
// concurrent use: the Flow guards it with its mutex.
type recentRevocations struct {
	retention time.Duration
	bySession map[string]recentRevocation
	order     []recentRevocation // oldest first
}

func newRecentRevocations(retention time.Duration) recentRevocations {
	return recentRevocations{retention: retention, bySession: make(map[string]recentRevocation)}
}

func (r *recentRevocations) add(sid string, reason sockauthv1.RevocationReason, now time.Time) {
	r.prune(now)
	entry := recentRevocation{sid: sid, reason: reason, at: now}
	r.bySession[sid] = entry
	r.order = append(r.order, entry)
}

// lookup returns the reason of a revocation of sid within the retention.
func (r *recentRevocations) lookup(sid string, now time.Time) (sockauthv1.RevocationReason, bool) {
	r.prune(now)
	entry, ok := r.bySession[sid]
	return entry.reason, ok
}

func (r *recentRevocations) prune(now time.Time) {
	expired := 0
	for _, entry := range r.order {
		if now.Sub(entry.at) <= r.retention {
			break
		}
		// A session revoked twice keeps its newer entry.
		if r.bySession[entry.sid].at.Equal(entry.at) {
			delete(r.bySession, entry.sid)
		}
		expired++
	}
	r.order = r.order[expired:]
	if len(r.order) == 0 {
		r.order = nil
	}
}
