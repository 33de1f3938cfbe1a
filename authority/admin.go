package authority

import (
	"context"
	"errors"
	"fmt"
)

// RevokeSession revokes a session by id, as an administrator does, and returns
// it. Revoking a revoked session changes nothing and returns it as stored; an
// unknown id returns ErrNotFound.
func (s *Service) RevokeSession(ctx context.Context, sessionID string) (*Session, error) {
	if sessionID == "" {
		return nil, fmt.Errorf("session id is empty: %w", ErrInvalidArgument)
	}

	for range maxCASAttempts {
		session, err := s.store.Get(ctx, sessionID)
		if err != nil {
			return nil, fmt.Errorf("load session %s: %w", sessionID, err)
		}
		if session.Revoked() {
			return session, nil
		}

		next := *session
		next.Version++
		next.RevokedReason = RevokedAdmin
		next.RevokedAt = s.now()
		err = s.store.CompareAndSwap(ctx, session.Version, &next)
		if errors.Is(err, ErrConflict) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("store revocation of session %s: %w", sessionID, err)
		}
		s.announce(ctx, &next)
		s.log.Info("session revoked by administrator", "sid", next.ID, "sub", next.Subject)
		return &next, nil
	}
	return nil, fmt.Errorf("session %s changed %d times during one revocation: %w", sessionID, maxCASAttempts, ErrConflict)
}

// RevokeSubject revokes every live session of a subject, as after a password
// change, and returns the sessions it revoked.
func (s *Service) RevokeSubject(ctx context.Context, subject string) ([]*Session, error) {
	sessions, err := s.ListSessions(ctx, subject)
	if err != nil {
		return nil, err
	}

	var revoked []*Session
	for _, session := range sessions {
		if session.Revoked() {
			continue
		}
		done, err := s.RevokeSession(ctx, session.ID)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return revoked, err
		}
		revoked = append(revoked, done)
	}
	return revoked, nil
}

// ListSessions returns the stored sessions of a subject, revoked ones included.
func (s *Service) ListSessions(ctx context.Context, subject string) ([]*Session, error) {
	if subject == "" {
		return nil, fmt.Errorf("subject is empty: %w", ErrInvalidArgument)
	}
	sessions, err := s.store.ListBySubject(ctx, subject)
	if err != nil {
		return nil, fmt.Errorf("list sessions of %q: %w", subject, err)
	}
	return sessions, nil
}
