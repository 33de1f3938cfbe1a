package authority

import "errors"

// Errors returned by Service methods, wrapped with context; test with errors.Is.
var (
	// ErrInvalidToken reports a token that is malformed, was made with an unknown
	// key, failed authentication, or has the wrong purpose for the call.
	ErrInvalidToken = errors.New("invalid token")

	// ErrTokenExpired reports a token past its exp claim.
	ErrTokenExpired = errors.New("token expired")

	// ErrTokenReused reports a token that had already been replaced. The session
	// is revoked by the call that returns it.
	ErrTokenReused = errors.New("token reused")

	// ErrSessionRevoked reports a token whose session was revoked or is unknown.
	ErrSessionRevoked = errors.New("session revoked")

	// ErrSessionExpired reports a token whose session is past its maximum age.
	ErrSessionExpired = errors.New("session expired")

	// ErrInvalidArgument reports a request that is malformed apart from its token,
	// such as an empty subject.
	ErrInvalidArgument = errors.New("invalid argument")
)

// Errors returned by Store implementations.
var (
	// ErrNotFound reports a session id that the store does not hold.
	ErrNotFound = errors.New("session not found")

	// ErrExists reports a Create for a session id that is already stored.
	ErrExists = errors.New("session already exists")

	// ErrConflict reports a CompareAndSwap whose expected version is no longer
	// the stored one, because another writer updated the session first.
	ErrConflict = errors.New("session changed concurrently")
)

// SessionRevokedError reports a revoked session and the reason it was revoked
// for (RevokedLogout, RevokedReused or RevokedAdmin). It matches
// ErrSessionRevoked with errors.Is.
type SessionRevokedError struct {
	SessionID string
	Reason    string
}

func (e *SessionRevokedError) Error() string {
	return "session " + e.SessionID + " was revoked (" + e.Reason + "): " + ErrSessionRevoked.Error()
}

// Is reports whether target is ErrSessionRevoked.
func (e *SessionRevokedError) Is(target error) bool { return target == ErrSessionRevoked }
