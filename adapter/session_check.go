package adapter

import (
	"sync"
	"sync/atomic"
	"time"

	sockauthv1 "github.com/sockauth/sockauth/gen/sockauth/v1"
)

// verifyParallelism is the number of Verify calls that one session check
// runs at once.
const verifyParallelism = 8

// checkSessions runs checkSessionsOnce every Config.SessionCheckInterval,
// when that is positive, and whenever requestVerify asks, until Close. With
// the revocation watch on, a pass in which the authority could not be
// reached for some session is repeated after Config.RevocationRetryDelay,
// doubling up to MaxRevocationRetryDelay, because a revocation made while
// no stream was open would otherwise go unnoticed.
func (f *Flow) checkSessions() {
	defer f.background.Done()

	var tick <-chan time.Time
	if f.cfg.SessionCheckInterval > 0 {
		ticker := time.NewTicker(f.cfg.SessionCheckInterval)
		defer ticker.Stop()
		tick = ticker.C
	}

	var retry <-chan time.Time
	delay := f.cfg.RevocationRetryDelay
	for {
		select {
		case <-f.stop:
			return
		case <-tick:
		case <-f.verifyRequests:
		case <-retry:
		}

		unverified := f.checkSessionsOnce()
		if unverified == 0 || f.cfg.DisableRevocationWatch {
			retry = nil
			delay = f.cfg.RevocationRetryDelay
			continue
		}
		retry = time.After(jitter(delay))
		delay = f.nextRetryDelay(delay)
	}
}

// checkSessionsOnce verifies one token per session and rejects every socket
// of a session that the authority reports dead. An unreachable authority
// disconnects nothing. It returns the number of sessions that could not be
// verified because the authority was unreachable.
func (f *Flow) checkSessionsOnce() int {
	tokens := f.sessionTokens()
	if len(tokens) == 0 {
		return 0
	}

	type check struct{ sid, token string }
	checks := make(chan check)
	var (
		unverified atomic.Int64
		errOnce    sync.Once
		firstErr   error
		workers    sync.WaitGroup
	)
	for range min(verifyParallelism, len(tokens)) {
		workers.Go(func() {
			for c := range checks {
				if err := f.verifySession(c.sid, c.token); err != nil {
					unverified.Add(1)
					errOnce.Do(func() { firstErr = err })
				}
			}
		})
	}

feed:
	for sid, token := range tokens {
		select {
		case <-f.stop:
			break feed
		case checks <- check{sid: sid, token: token}:
		}
	}
	close(checks)
	workers.Wait()

	if n := unverified.Load(); n > 0 {
		f.log.Warn("session check could not reach the authority", "unverified", n, "sessions", len(tokens), "error", firstErr)
		return int(n)
	}
	f.log.Debug("session check done", "sessions", len(tokens))
	return 0
}

// sessionTokens returns one token per session of the authenticated sockets:
// the one that expires last, because an expired token cannot be verified.
func (f *Flow) sessionTokens() map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()

	tokens := make(map[string]string, len(f.sessions))
	for sid, members := range f.sessions {
		var latest *socketState
		for _, st := range members {
			if st.phase != phaseAuthenticated {
				continue
			}
			if latest == nil || st.identity.ExpiresAt.After(latest.identity.ExpiresAt) {
				latest = st
			}
		}
		if latest != nil {
			tokens[sid] = latest.token
		}
	}
	return tokens
}

// verifySession calls Verify with a token of session sid and rejects the
// session's sockets when the authority reports it dead. A token that was
// rotated by another connection of the session is still verified, so its
// socket stays. It returns the error of an unreachable authority, and nil
// otherwise.
func (f *Flow) verifySession(sid, token string) error {
	ctx, cancel := f.callContext(f.ctx)
	_, err := f.cfg.Authority.Verify(ctx, &sockauthv1.VerifyRequest{Token: token})
	cancel()
	if err == nil {
		return nil
	}

	code := CodeOf(err)
	if code == CodeAuthorityUnavailable {
		return err
	}

	// A token that merely expired is left to the socket's expiry timer.
	if code == CodeTokenExpired {
		return nil
	}

	f.log.Info("session ended elsewhere", "sid", sid, "reason", string(code))
	f.rejectSession(sid, code)
	return nil
}

// rejectSession rejects every open socket of a session.
func (f *Flow) rejectSession(sid string, code Code) {
	f.mu.Lock()
	targets := f.takeSessionLocked(sid)
	f.mu.Unlock()

	for _, st := range targets {
		f.log.Info("socket unauthorized", append(socketAttrs(st.socket.ID(), st.identity), "reason", string(code))...)
	}
	f.disconnectAll(targets, rejection(code), sid)
}
