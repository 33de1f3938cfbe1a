package adapter

import (
	"errors"
	"maps"
	"time"

	sockauthv1 "github.com/sockauth/sockauth/gen/sockauth/v1"
)

// Identity is the set of claims that an authenticated socket proved with its
// current session token. The zero Identity belongs to a socket that never
// authenticated.
type Identity struct {
	// Subject is the authenticated user (the sub claim).
	Subject string
	// SessionID is the session of the token (the sid claim).
	SessionID string
	// TokenID is the id of the socket's current token (the jti claim).
	TokenID string
	// Generation is the rotation generation of the current token.
	Generation uint64
	// Claims are the application's own claims given to IssueCode. Each
	// Identity returned by the Flow carries its own copy.
	Claims map[string]string
	// ExpiresAt is when the current token expires. The socket is disconnected
	// then unless it authenticates again before.
	ExpiresAt time.Time
	// SessionExpiresAt is the end of the session's maximum age, or the zero
	// time when the authority did not report one.
	SessionExpiresAt time.Time
}

// clone returns a copy of id that shares no map with it.
func (id Identity) clone() Identity {
	id.Claims = maps.Clone(id.Claims)
	return id
}

// deadline returns when the socket must be disconnected and the code to send
// then. Tokens carry whole seconds, so a session's last token expires up to a
// second before the session. A token that expires in the session's last
// second, or after the session, ends with CodeSessionExpired.
func (id Identity) deadline() (time.Time, Code) {
	if !id.SessionExpiresAt.IsZero() && !id.ExpiresAt.Before(id.SessionExpiresAt.Truncate(time.Second)) {
		return minTime(id.ExpiresAt, id.SessionExpiresAt), CodeSessionExpired
	}
	return id.ExpiresAt, CodeTokenExpired
}

// minTime returns the earlier of a and b.
func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// identityOf converts the TokenInfo of an authority response.
func identityOf(info *sockauthv1.TokenInfo) (Identity, error) {
	if info == nil {
		return Identity{}, errors.New("missing token info in authority response")
	}
	if info.GetSessionId() == "" || info.GetSubject() == "" {
		return Identity{}, errors.New("missing session id or subject in authority response")
	}
	if info.GetExpiresAt() == nil {
		return Identity{}, errors.New("missing expires_at in authority response")
	}

	id := Identity{
		Subject:    info.GetSubject(),
		SessionID:  info.GetSessionId(),
		TokenID:    info.GetTokenId(),
		Generation: info.GetGeneration(),
		Claims:     maps.Clone(info.GetClaims()),
		ExpiresAt:  info.GetExpiresAt().AsTime(),
	}
	if info.GetSessionExpiresAt() != nil {
		id.SessionExpiresAt = info.GetSessionExpiresAt().AsTime()
	}
	return id, nil
}
