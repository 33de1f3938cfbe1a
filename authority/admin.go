package authority

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
)

// RevokeSession revokes a session by id, as an administrator does, and returns
// it. Revoking a revoked session changes nothing and returns it as stored; an
// unknown id returns ErrNotFound.
func (s *Service) RevokeSession(ctx context.Context, sessionID string) (*Session, error) {
	return s.revokeSession(ctx, sessionID, slog.LevelInfo)
}

// revokeSession is RevokeSession with the level of its log line.
func (s *Service) revokeSession(ctx context.Context, sessionID string, level slog.Level) (*Session, error) {
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
		s.log.Log(ctx, level, "session revoked by administrator", "sid", next.ID, "sub", next.Subject)
		return &next, nil
	}
	return nil, fmt.Errorf("session %s changed %d times during one revocation: %w", sessionID, maxCASAttempts, ErrConflict)
}

// MaxRevokedListed is how many of the sessions it revoked RevokeSubject
// returns, so that its reply stays small for a subject with very many
// sessions.
const MaxRevokedListed = 1000

// revokeWorkers is how many sessions of one page RevokeSubject revokes at
// once. The store syncs the writes of concurrent callers together, so one
// sync covers many revocations.
const revokeWorkers = 32

// RevokeSubject revokes every live session of a subject, as after a password
// change. It returns how many sessions it revoked and the first
// MaxRevokedListed of them. After an error the count and the list still
// cover every session that it revoked, and the other sessions stay as they
// were.
func (s *Service) RevokeSubject(ctx context.Context, subject string) (int, []*Session, error) {
	var (
		count  int
		listed []*Session
		token  string
	)
	for {
		sessions, next, err := s.ListSessions(ctx, subject, token, MaxListPageSize)
		if err != nil {
			return count, listed, err
		}
		revoked, err := s.revokeAll(ctx, sessions)
		for _, session := range revoked {
			if session == nil {
				continue
			}
			count++
			if len(listed) < MaxRevokedListed {
				listed = append(listed, session)
			}
		}
		if err != nil || next == "" {
			return count, listed, err
		}
		token = next
	}
}

// revokeAll revokes the live sessions among sessions, revokeWorkers at a
// time. The result has the revoked session at the index of each session it
// revoked, and nil elsewhere. The error is the first one that a revocation
// returned, other than ErrNotFound. After it, revokeAll starts no more
// revocations and waits for those under way.
func (s *Service) revokeAll(ctx context.Context, sessions []*Session) ([]*Session, error) {
	revoked := make([]*Session, len(sessions))
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
		failed   atomic.Bool
	)
	slots := make(chan struct{}, revokeWorkers)
	for i, session := range sessions {
		if session.Revoked() {
			continue
		}
		slots <- struct{}{}
		if failed.Load() {
			<-slots
			break
		}
		wg.Add(1)
		go func() {
			defer func() {
				<-slots
				wg.Done()
			}()
			// The caller logs one line for the subject, so that a subject
			// with many sessions does not flood the log.
			done, err := s.revokeSession(ctx, session.ID, slog.LevelDebug)
			switch {
			case err == nil:
				revoked[i] = done
			case !errors.Is(err, ErrNotFound):
				errOnce.Do(func() { firstErr = err })
				failed.Store(true)
			}
		}()
	}
	wg.Wait()
	return revoked, firstErr
}

// Page sizes of ListSessions.
const (
	// DefaultListPageSize is the page size of a request that gives none.
	DefaultListPageSize = 1000
	// MaxListPageSize is the largest page; larger requests get this size.
	MaxListPageSize = 10000
)

// ListSessions returns one page of the stored sessions of a subject, revoked
// ones included, and the token of the next page, empty after the last page.
// pageToken is empty for the first page and a token that ListSessions
// returned for the same subject for the others. pageSize 0 means
// DefaultListPageSize, sizes above MaxListPageSize mean MaxListPageSize, and a
// negative size or a foreign token returns ErrInvalidArgument.
func (s *Service) ListSessions(ctx context.Context, subject, pageToken string, pageSize int) ([]*Session, string, error) {
	if subject == "" {
		return nil, "", fmt.Errorf("subject is empty: %w", ErrInvalidArgument)
	}
	switch {
	case pageSize < 0:
		return nil, "", fmt.Errorf("page size %d is negative: %w", pageSize, ErrInvalidArgument)
	case pageSize == 0:
		pageSize = DefaultListPageSize
	case pageSize > MaxListPageSize:
		pageSize = MaxListPageSize
	}
	cursor, err := decodePageToken(subject, pageToken)
	if err != nil {
		return nil, "", err
	}

	sessions, next, err := s.store.ListBySubject(ctx, subject, cursor, pageSize)
	if err != nil {
		return nil, "", fmt.Errorf("list sessions of %q: %w", subject, err)
	}
	return sessions, encodePageToken(subject, next), nil
}

// pageTokenVersion is the first byte of a page token, so that a later token
// format can tell tokens of this one apart.
const pageTokenVersion = 1

// pageTokenDigestBytes is the length of the subject digest in a page token.
const pageTokenDigestBytes = 8

// encodePageToken returns the page token of a store cursor: the version, the
// first bytes of the SHA-256 digest of subject and the cursor, in unpadded
// base64url. An empty cursor, the end of the list, gives an empty token.
func encodePageToken(subject, cursor string) string {
	if cursor == "" {
		return ""
	}
	digest := sha256.Sum256([]byte(subject))
	raw := make([]byte, 0, 1+pageTokenDigestBytes+len(cursor))
	raw = append(raw, pageTokenVersion)
	raw = append(raw, digest[:pageTokenDigestBytes]...)
	raw = append(raw, cursor...)
	return base64.RawURLEncoding.EncodeToString(raw)
}

// decodePageToken returns the store cursor of a page token, empty for an
// empty token. A token that is malformed or was returned for another subject
// returns ErrInvalidArgument.
func decodePageToken(subject, token string) (string, error) {
	if token == "" {
		return "", nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(token)
	valid := err == nil && len(raw) > 1+pageTokenDigestBytes && raw[0] == pageTokenVersion
	if valid {
		digest := sha256.Sum256([]byte(subject))
		valid = bytes.Equal(raw[1:1+pageTokenDigestBytes], digest[:pageTokenDigestBytes])
	}
	if !valid {
		return "", fmt.Errorf("page token %.40q was not returned by ListSessions for subject %q (start again with an empty token): %w",
			token, subject, ErrInvalidArgument)
	}
	return string(raw[1+pageTokenDigestBytes:]), nil
}
