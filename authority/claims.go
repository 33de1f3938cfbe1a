package authority

import (
	"fmt"
	"time"
)

// TokenType is the purpose of a token, carried in the typ claim.
type TokenType string

// Token purposes.
const (
	// TypeCode is a short-lived, single-use login code: generation 0 of a session.
	TypeCode TokenType = "code"
	// TypeSession is a long-lived session token that rotates on every use.
	TypeSession TokenType = "session"
)

// Claims are the contents of a token.
type Claims struct {
	Subject   string    // sub
	SessionID string    // sid
	TokenID   string    // jti, unique per token
	Type      TokenType // typ
	// Generation counts rotations: 0 for the code, 1 for the first session token.
	Generation uint64    // gen
	IssuedAt   time.Time // iat
	ExpiresAt  time.Time // exp, required
	// Extra holds the application's own string claims, copied from IssueCode.
	Extra map[string]string
}

// Validate reports whether the registered claims are present and consistent.
func (c *Claims) Validate() error {
	switch {
	case c.Subject == "":
		return fmt.Errorf("missing sub claim: %w", ErrInvalidToken)
	case c.SessionID == "":
		return fmt.Errorf("missing sid claim: %w", ErrInvalidToken)
	case c.TokenID == "":
		return fmt.Errorf("missing jti claim: %w", ErrInvalidToken)
	case c.ExpiresAt.IsZero():
		return fmt.Errorf("missing exp claim: %w", ErrInvalidToken)
	case c.IssuedAt.IsZero():
		return fmt.Errorf("missing iat claim: %w", ErrInvalidToken)
	case c.Type == TypeCode && c.Generation != 0:
		return fmt.Errorf("code with generation %d: %w", c.Generation, ErrInvalidToken)
	case c.Type == TypeSession && c.Generation == 0:
		return fmt.Errorf("session token with generation 0: %w", ErrInvalidToken)
	case c.Type != TypeCode && c.Type != TypeSession:
		return fmt.Errorf("unknown typ claim %q: %w", c.Type, ErrInvalidToken)
	}
	return nil
}
