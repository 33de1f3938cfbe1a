package authority

import (
	"context"
	"time"
)

// Revocation reasons stored in Session.RevokedReason.
const (
	RevokedLogout = "logout"
	RevokedReused = "reused"
	RevokedAdmin  = "admin"
)

// Session is the stored record of one login: the chain of tokens that starts
// with a code.
type Session struct {
	ID      string
	Subject string
	// Claims are the application's own claims, copied into every token.
	Claims map[string]string

	// CurrentTokenID is the jti of the newest token, the only one that rotates.
	CurrentTokenID string
	// CurrentIssuedAt and CurrentExpiresAt let the current token be minted again
	// with identical claims during the rotation leeway.
	CurrentIssuedAt  time.Time
	CurrentExpiresAt time.Time
	// PreviousTokenID is the jti that the current token replaced, or empty.
	PreviousTokenID string
	// RotatedAt is when the current token was minted.
	RotatedAt time.Time
	// Confirmed records that the holder acknowledged the current token, which
	// kills the previous one even inside the leeway.
	Confirmed  bool
	Generation uint64

	CreatedAt time.Time
	// ExpiresAt is the end of the session's maximum age.
	ExpiresAt time.Time

	// RevokedReason is empty while the session is alive.
	RevokedReason string
	RevokedAt     time.Time

	// RetainUntil is when the store may forget the record: no token of the
	// session can be presented unexpired after it.
	RetainUntil time.Time
	// Version increases by one on every write; CompareAndSwap checks it.
	Version uint64
}

// Revoked reports whether the session was revoked.
func (s *Session) Revoked() bool { return s.RevokedReason != "" }

// LastTokenExpiry returns the latest exp that a session token of the session
// can carry: ExpiresAt rounded down to the whole second, because claims hold
// whole-second times and session tokens never outlive their session. From
// then on no session token of the session is valid.
func (s *Session) LastTokenExpiry() time.Time { return s.ExpiresAt.Truncate(time.Second) }

// Store keeps session records. Implementations must make each method atomic and
// durable once it returns nil, and must be safe for concurrent use by several
// Service instances, including ones in other processes.
type Store interface {
	// Create stores a new session. It returns ErrExists when the id is taken.
	Create(ctx context.Context, s *Session) error

	// Get returns the session with the given id, or ErrNotFound.
	Get(ctx context.Context, id string) (*Session, error)

	// CompareAndSwap replaces the stored session with next when the stored
	// Version equals expectedVersion, and returns ErrConflict when it does not
	// and ErrNotFound when the session is gone. The caller sets next.Version.
	CompareAndSwap(ctx context.Context, expectedVersion uint64, next *Session) error

	// ListBySubject returns one page of the stored sessions of a subject,
	// revoked ones included, in an order of the store's choice. The page
	// starts after cursor, or at the start when cursor is empty, and holds at
	// most limit sessions. next is the cursor of the following page, empty
	// after the last one. Cursors are the store's own strings, and a cursor
	// stays valid when its session is gone.
	ListBySubject(ctx context.Context, subject, cursor string, limit int) (sessions []*Session, next string, err error)

	// Close releases the store.
	Close() error
}
