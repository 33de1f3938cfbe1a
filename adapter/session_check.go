package adapter

import (
	"context"
	"time"

	sockauthv1 "github.com/sockauth/sockauth/gen/sockauth/v1"
)

// checkSessions runs checkSessionsOnce every Config.SessionCheckInterval
// until Close.
func (f *Flow) checkSessions() {
	defer f.background.Done()

	ticker := time.NewTicker(f.cfg.SessionCheckInterval)
	defer ticker.Stop()

	for {
		select {
		case <-f.stop:
			return
		case <-ticker.C:
			f.checkSessionsOnce()
		}
	}
}

// checkSessionsOnce verifies one token per session and rejects every socket
// of a session that the authority reports dead. An unreachable authority
// disconnects nothing.
func (f *Flow) checkSessionsOnce() {
	tokens := make(map[string]string)
	f.mu.Lock()
	for sid, members := range f.sessions {
		for _, st := range members {
			if st.phase == phaseAuthenticated {
				tokens[sid] = st.token
				break
			}
		}
	}
	f.mu.Unlock()

	for sid, token := range tokens {
		select {
		case <-f.stop:
			return
		default:
		}

		ctx, cancel := f.callContext(context.Background())
		_, err := f.cfg.Authority.Verify(ctx, &sockauthv1.VerifyRequest{Token: token})
		cancel()
		if err == nil {
			continue
		}

		code := CodeOf(err)
		if code == CodeAuthorityUnavailable {
			f.log.Warn("session check failed", "sid", sid, "error", err)
			continue
		}

		// A token that merely expired is left to the socket's expiry timer.
		if code == CodeTokenExpired {
			continue
		}

		f.log.Info("session ended elsewhere", "sid", sid, "reason", string(code))
		f.rejectSession(sid, code)
	}
}

// rejectSession rejects every open socket of a session.
func (f *Flow) rejectSession(sid string, code Code) {
	f.mu.Lock()
	var members []*socketState
	for _, st := range f.sessions[sid] {
		members = append(members, st)
	}
	f.mu.Unlock()

	for _, st := range members {
		f.reject(st, code)
	}
}
