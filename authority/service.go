package authority

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Limits on IssueCode input, so that every token stays well below MaxTokenBytes.
const (
	MaxSubjectBytes    = 256
	MaxClaims          = 16
	MaxClaimNameBytes  = 64
	MaxClaimValueBytes = 256
)

// maxClockSkew is how far in the future a token's iat may lie, because the
// clocks of replicas differ a little. A token issued later is not yet valid.
const maxClockSkew = time.Minute

// maxCASAttempts bounds the retries of one rotation that keeps losing the race
// for its session record.
const maxCASAttempts = 16

// Config holds the lifetimes of a Service. Zero values take the defaults of
// DefaultConfig.
type Config struct {
	// CodeTTL is the lifetime of a login code; default 30 s.
	CodeTTL time.Duration
	// TokenTTL is the lifetime of a session token; default 1 h.
	TokenTTL time.Duration
	// SessionMaxAge is the absolute lifetime of a session; default 720 h.
	SessionMaxAge time.Duration
	// RotationLeeway is how long an unconfirmed predecessor may be presented
	// again and get the current token back; default 30 s.
	RotationLeeway time.Duration
	// Now returns the current time; default time.Now.
	Now func() time.Time
	// Logger receives one line per token call outcome and the revocations;
	// default slog.Default().
	Logger *slog.Logger
	// Metrics counts issued, rotated and rejected tokens and revocations; nil
	// records nothing.
	Metrics *Metrics
}

// DefaultConfig returns the default lifetimes.
func DefaultConfig() Config {
	return Config{
		CodeTTL:        30 * time.Second,
		TokenTTL:       time.Hour,
		SessionMaxAge:  720 * time.Hour,
		RotationLeeway: 30 * time.Second,
		Now:            time.Now,
		Logger:         slog.Default(),
	}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.CodeTTL == 0 {
		c.CodeTTL = d.CodeTTL
	}
	if c.TokenTTL == 0 {
		c.TokenTTL = d.TokenTTL
	}
	if c.SessionMaxAge == 0 {
		c.SessionMaxAge = d.SessionMaxAge
	}
	if c.RotationLeeway == 0 {
		c.RotationLeeway = d.RotationLeeway
	}
	if c.Now == nil {
		c.Now = d.Now
	}
	if c.Logger == nil {
		c.Logger = d.Logger
	}
	return c
}

// LongestTokenTTL returns the longest lifetime of the tokens that a service
// with c makes: the longer of its session tokens' and its login codes', with
// the defaults filled in.
func (c Config) LongestTokenTTL() time.Duration {
	c = c.withDefaults()
	return max(c.TokenTTL, c.CodeTTL)
}

// Validate reports whether c, with the defaults filled in, is a usable
// configuration, so that a caller can check it before it writes anything.
func (c Config) Validate() error {
	return c.withDefaults().validate()
}

func (c Config) validate() error {
	switch {
	case c.CodeTTL < time.Second:
		return fmt.Errorf("code TTL %v is below 1s", c.CodeTTL)
	case c.TokenTTL < time.Second:
		return fmt.Errorf("token TTL %v is below 1s", c.TokenTTL)
	case c.SessionMaxAge < c.TokenTTL:
		return fmt.Errorf("session max age %v is below the token TTL %v", c.SessionMaxAge, c.TokenTTL)
	case c.SessionMaxAge > MaxLifetime || c.CodeTTL > MaxLifetime:
		return fmt.Errorf("session max age %v or code TTL %v is above %v", c.SessionMaxAge, c.CodeTTL, MaxLifetime)
	case c.RotationLeeway < 0:
		return fmt.Errorf("rotation leeway %v is negative", c.RotationLeeway)
	}
	return nil
}

// Service issues, rotates, verifies and revokes tokens. It is safe for
// concurrent use, and several Services may share one Store.
type Service struct {
	codec Codec
	store Store
	cfg   Config
	log   *slog.Logger
	// metrics may be nil.
	metrics *Metrics

	hub *revocationHub
	// publisher carries revocation events between replicas, or is nil when
	// the store does not, and events go only to this Service's watchers.
	publisher RevocationPublisher
	cancel    context.CancelFunc
}

// Issued is a freshly minted token with its claims.
type Issued struct {
	Token            string
	Claims           Claims
	SessionExpiresAt time.Time
}

// Verified describes a valid token of a live session.
type Verified struct {
	Claims           Claims
	SessionExpiresAt time.Time
	// Current is true when the token is the newest of its session.
	Current bool
}

// NewService returns a Service; cfg is checked after its defaults are applied.
// When the store implements RevocationPublisher, the Service subscribes to it
// until Close.
func NewService(codec Codec, store Store, cfg Config) (*Service, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}

	s := &Service{codec: codec, store: store, cfg: cfg, log: cfg.Logger, metrics: cfg.Metrics, hub: newRevocationHub(), cancel: func() {}}
	if publisher, ok := store.(RevocationPublisher); ok {
		ctx, cancel := context.WithCancel(context.Background())
		if err := publisher.SubscribeRevocations(ctx, s.hub.deliver, s.hub.eventsMissed); err != nil {
			cancel()
			return nil, fmt.Errorf("subscribe to revocation events: %w", err)
		}
		s.publisher = publisher
		s.cancel = cancel
	}
	return s, nil
}

// Close ends the subscription to revocation events and closes every watcher,
// whose streams then end so that a graceful server stop need not wait for
// them. It does not close the store.
func (s *Service) Close() {
	s.cancel()
	s.hub.closeAll(ErrServiceClosed)
}

// WatchRevocations returns a Watcher that receives every revocation from now
// on, including those made by other replicas that share the store. The caller
// must Close it.
func (s *Service) WatchRevocations() *Watcher { return s.hub.watch() }

// IssueCode starts a session for subject and returns its login code.
func (s *Service) IssueCode(ctx context.Context, subject string, claims map[string]string) (Issued, error) {
	if err := validateIssueInput(subject, claims); err != nil {
		return Issued{}, err
	}

	now := s.now()
	session := &Session{
		ID:        newID(),
		Subject:   subject,
		Claims:    maps.Clone(claims),
		CreatedAt: now,
		ExpiresAt: now.Add(s.cfg.SessionMaxAge),
		Version:   1,
	}
	code := s.mint(session, TypeCode, 0, now, now.Add(s.cfg.CodeTTL))
	session.setCurrent(code, now)

	if err := s.store.Create(ctx, session); err != nil {
		return Issued{}, fmt.Errorf("store session %s: %w", session.ID, err)
	}
	s.metrics.codeIssued()
	return s.encode(code, session)
}

// Authenticate exchanges a code or session token for the next session token.
//
// The presented token must be the session's current one, or its unconfirmed
// predecessor inside the rotation leeway, in which case the current token is
// returned again with the same jti. Any other token of the session revokes it
// and returns ErrTokenReused. Concurrent calls with one token produce exactly
// one successor.
func (s *Service) Authenticate(ctx context.Context, token string) (issued Issued, err error) {
	outcome := &tokenOutcome{op: opAuthenticate, start: time.Now()}
	defer func() {
		outcome.successor = issued.Claims
		s.record(ctx, outcome, err)
	}()

	presented, err := s.decode(ctx, token)
	outcome.presented = presented
	if err != nil {
		return Issued{}, err
	}

	for range maxCASAttempts {
		session, err := s.liveSession(ctx, presented)
		if err != nil {
			return Issued{}, err
		}
		now := s.now()
		next := *session
		next.Version++

		switch {
		// The current token rotates: mint its successor and keep it as previous.
		case presented.TokenID == session.CurrentTokenID:
			expiresAt := minTime(now.Add(s.cfg.TokenTTL), session.ExpiresAt)
			successor := s.mint(session, TypeSession, session.Generation+1, now, expiresAt)
			next.PreviousTokenID = session.CurrentTokenID
			next.setCurrent(successor, now)
			if err := s.store.CompareAndSwap(ctx, session.Version, &next); err != nil {
				if errors.Is(err, ErrConflict) {
					continue
				}
				return Issued{}, fmt.Errorf("store rotation of session %s: %w", session.ID, err)
			}
			return s.encode(successor, &next)

		// The holder may have lost the successor in transit: hand it out again.
		case presented.TokenID == session.PreviousTokenID && !session.Confirmed &&
			now.Sub(session.RotatedAt) < s.cfg.RotationLeeway:
			outcome.redelivered = true
			return s.encode(s.currentClaims(session), session)

		// Two holders of one token means one of them stole it: revoke the session.
		default:
			next.RevokedReason = RevokedReused
			next.RevokedAt = now
			if err := s.store.CompareAndSwap(ctx, session.Version, &next); err != nil {
				if errors.Is(err, ErrConflict) {
					continue
				}
				return Issued{}, fmt.Errorf("store revocation of session %s: %w", session.ID, err)
			}
			s.announce(ctx, &next)
			s.log.Warn("token reuse detected, session revoked", "sid", session.ID,
				"sub", session.Subject, "jti", presented.TokenID, "gen", presented.Generation,
				"current_gen", session.Generation)
			return Issued{}, fmt.Errorf("token %s of session %s was replaced: %w",
				presented.TokenID, session.ID, ErrTokenReused)
		}
	}
	return Issued{}, fmt.Errorf("session %s changed %d times during one rotation: %w",
		presented.SessionID, maxCASAttempts, ErrConflict)
}

// ConfirmRotation kills the predecessor of token when token is its session's
// current, unconfirmed token, and reports whether it did. Confirming any other
// token of a live session changes nothing and returns false.
func (s *Service) ConfirmRotation(ctx context.Context, token string) (confirmed bool, err error) {
	outcome := &tokenOutcome{op: opConfirmRotation, start: time.Now()}
	defer func() { s.record(ctx, outcome, err) }()

	presented, err := s.decode(ctx, token)
	outcome.presented = presented
	if err != nil {
		return false, err
	}

	for range maxCASAttempts {
		session, err := s.liveSession(ctx, presented)
		if err != nil {
			return false, err
		}
		if presented.TokenID != session.CurrentTokenID || session.Confirmed {
			return false, nil
		}

		next := *session
		next.Version++
		next.Confirmed = true
		err = s.store.CompareAndSwap(ctx, session.Version, &next)
		if errors.Is(err, ErrConflict) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("store confirmation of session %s: %w", session.ID, err)
		}
		s.metrics.rotationConfirmed()
		return true, nil
	}
	return false, fmt.Errorf("session %s changed %d times during one confirmation: %w",
		presented.SessionID, maxCASAttempts, ErrConflict)
}

// Verify checks that token is an unexpired session token of a live session. The
// token need not be the current one: a connected socket stays authorized while
// its session lives, even after another connection rotated the token.
func (s *Service) Verify(ctx context.Context, token string) (verified Verified, err error) {
	outcome := &tokenOutcome{op: opVerify, start: time.Now()}
	defer func() { s.record(ctx, outcome, err) }()

	presented, err := s.decode(ctx, token)
	outcome.presented = presented
	if err != nil {
		return Verified{}, err
	}
	if presented.Type != TypeSession {
		return Verified{}, fmt.Errorf("verify needs a session token, got a %s: %w", presented.Type, ErrInvalidToken)
	}

	session, err := s.liveSession(ctx, presented)
	if err != nil {
		return Verified{}, err
	}
	return Verified{
		Claims:           presented,
		SessionExpiresAt: session.ExpiresAt,
		Current:          presented.TokenID == session.CurrentTokenID,
	}, nil
}

// Logout revokes the session of a session token and returns the revoked
// session. Any unexpired token of a live session may log it out.
func (s *Service) Logout(ctx context.Context, token string) (revoked *Session, err error) {
	outcome := &tokenOutcome{op: opLogout, start: time.Now()}
	defer func() { s.record(ctx, outcome, err) }()

	presented, err := s.decode(ctx, token)
	outcome.presented = presented
	if err != nil {
		return nil, err
	}
	if presented.Type != TypeSession {
		return nil, fmt.Errorf("logout needs a session token, got a %s: %w", presented.Type, ErrInvalidToken)
	}

	for range maxCASAttempts {
		session, err := s.liveSession(ctx, presented)
		if err != nil {
			return nil, err
		}

		next := *session
		next.Version++
		next.RevokedReason = RevokedLogout
		next.RevokedAt = s.now()
		err = s.store.CompareAndSwap(ctx, session.Version, &next)
		if errors.Is(err, ErrConflict) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("store logout of session %s: %w", session.ID, err)
		}
		s.announce(ctx, &next)
		s.log.Info("session logged out", "sid", session.ID, "sub", session.Subject, "jti", presented.TokenID)
		return &next, nil
	}
	return nil, fmt.Errorf("session %s changed %d times during one logout: %w",
		presented.SessionID, maxCASAttempts, ErrConflict)
}

// decode authenticates a token and checks its expiry. It returns the claims of
// an expired token along with ErrTokenExpired, or ErrSessionExpired when the
// token's session has ended too, so that the rejection can be logged with the
// token's ids.
func (s *Service) decode(ctx context.Context, token string) (Claims, error) {
	claims, err := s.codec.Decode(token)
	if err != nil {
		return Claims{}, err
	}
	now := s.now()
	if !now.Before(claims.ExpiresAt) {
		return claims, s.expiredTokenError(ctx, claims)
	}
	if claims.IssuedAt.After(now.Add(maxClockSkew)) {
		return claims, fmt.Errorf("token %s is not valid before %s: %w",
			claims.TokenID, claims.IssuedAt.Format(time.RFC3339), ErrInvalidToken)
	}
	return claims, nil
}

// expiredTokenError returns the error for an expired token: ErrSessionExpired
// when its stored session has reached LastTokenExpiry, because then only a new
// login helps, and ErrTokenExpired otherwise, also when the session is unknown
// or revoked or the store fails. Session tokens expire no later than their
// session, so a session token presented after its session's end gets here.
//
// NOTE: the Badger and Redis stores drop a session a minute after its last
// token expires, so after that an expired token gets ErrTokenExpired.
func (s *Service) expiredTokenError(ctx context.Context, claims Claims) error {
	tokenErr := fmt.Errorf("token %s expired at %s: %w",
		claims.TokenID, claims.ExpiresAt.Format(time.RFC3339), ErrTokenExpired)

	session, err := s.store.Get(ctx, claims.SessionID)
	if errors.Is(err, ErrNotFound) {
		return tokenErr
	}
	if err != nil {
		s.log.Warn("session of an expired token could not be loaded, so the token is reported as expired",
			"sid", claims.SessionID, "jti", claims.TokenID, "error", err)
		return tokenErr
	}
	if session.Subject != claims.Subject || session.Revoked() {
		return tokenErr
	}

	if s.now().Before(session.LastTokenExpiry()) {
		return tokenErr
	}
	return fmt.Errorf("token %s expired at %s, and session %s at %s: %w",
		claims.TokenID, claims.ExpiresAt.Format(time.RFC3339),
		session.ID, session.ExpiresAt.Format(time.RFC3339), ErrSessionExpired)
}

// liveSession loads the session of a decoded token and rejects it when the
// session is unknown, revoked or past its maximum age.
func (s *Service) liveSession(ctx context.Context, presented Claims) (*Session, error) {
	session, err := s.store.Get(ctx, presented.SessionID)
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("session %s is unknown: %w", presented.SessionID, ErrSessionRevoked)
	}
	if err != nil {
		return nil, fmt.Errorf("load session %s: %w", presented.SessionID, err)
	}
	if session.Subject != presented.Subject {
		return nil, fmt.Errorf("token subject does not match session %s: %w", session.ID, ErrInvalidToken)
	}
	if session.Revoked() {
		return nil, &SessionRevokedError{SessionID: session.ID, Reason: session.RevokedReason}
	}
	if !s.now().Before(session.ExpiresAt) {
		s.publish(ctx, RevocationEvent{SessionID: session.ID, Subject: session.Subject, Reason: RevokedExpired, At: s.now()})
		return nil, fmt.Errorf("session %s expired at %s: %w",
			session.ID, session.ExpiresAt.Format(time.RFC3339), ErrSessionExpired)
	}
	return session, nil
}

// announce publishes the revocation of a session that was just stored.
func (s *Service) announce(ctx context.Context, session *Session) {
	s.metrics.sessionRevoked(session.RevokedReason)
	s.publish(ctx, RevocationEvent{
		SessionID: session.ID,
		Subject:   session.Subject,
		Reason:    session.RevokedReason,
		At:        session.RevokedAt,
	})
}

// publish sends a revocation event to every watcher. A failure is logged and
// otherwise ignored: the revocation is already stored, and adapters re-verify
// their sockets whenever their watch stream breaks.
func (s *Service) publish(ctx context.Context, event RevocationEvent) {
	if s.publisher == nil {
		s.hub.deliver(event)
		return
	}
	if err := s.publisher.PublishRevocation(context.WithoutCancel(ctx), event); err != nil {
		s.log.Error("revocation event not published; watchers of other replicas miss it",
			"sid", event.SessionID, "sub", event.Subject, "reason", event.Reason, "error", err)
		s.hub.deliver(event)
	}
}

// mint returns the claims of a new token of session.
func (s *Service) mint(session *Session, typ TokenType, generation uint64, issuedAt, expiresAt time.Time) Claims {
	return Claims{
		Subject:    session.Subject,
		SessionID:  session.ID,
		TokenID:    newID(),
		Type:       typ,
		Generation: generation,
		IssuedAt:   issuedAt.Truncate(time.Second),
		ExpiresAt:  expiresAt.Truncate(time.Second),
		Extra:      session.Claims,
	}
}

// currentClaims rebuilds the claims of the session's current token.
func (s *Service) currentClaims(session *Session) Claims {
	typ := TypeSession
	if session.Generation == 0 {
		typ = TypeCode
	}
	return Claims{
		Subject:    session.Subject,
		SessionID:  session.ID,
		TokenID:    session.CurrentTokenID,
		Type:       typ,
		Generation: session.Generation,
		IssuedAt:   session.CurrentIssuedAt,
		ExpiresAt:  session.CurrentExpiresAt,
		Extra:      session.Claims,
	}
}

func (s *Service) encode(c Claims, session *Session) (Issued, error) {
	token, err := s.codec.Encode(c)
	if err != nil {
		return Issued{}, fmt.Errorf("encode token %s: %w", c.TokenID, err)
	}
	return Issued{Token: token, Claims: c, SessionExpiresAt: session.ExpiresAt}, nil
}

func (s *Service) now() time.Time { return s.cfg.Now() }

// setCurrent makes c the session's current token and extends the retention of
// the record to the token's expiry.
func (session *Session) setCurrent(c Claims, now time.Time) {
	session.CurrentTokenID = c.TokenID
	session.CurrentIssuedAt = c.IssuedAt
	session.CurrentExpiresAt = c.ExpiresAt
	session.Generation = c.Generation
	session.RotatedAt = now
	session.Confirmed = false
	if c.ExpiresAt.After(session.RetainUntil) {
		session.RetainUntil = c.ExpiresAt
	}
}

func validateIssueInput(subject string, claims map[string]string) error {
	switch {
	case subject == "":
		return fmt.Errorf("subject is empty: %w", ErrInvalidArgument)
	case len(subject) > MaxSubjectBytes:
		return fmt.Errorf("subject has %d bytes, max %d: %w", len(subject), MaxSubjectBytes, ErrInvalidArgument)
	case !utf8.ValidString(subject):
		return fmt.Errorf("subject is not valid UTF-8: %w", ErrInvalidArgument)
	case strings.IndexFunc(subject, unicode.IsControl) >= 0:
		return fmt.Errorf("subject %q contains a control character: %w", subject, ErrInvalidArgument)
	case len(claims) > MaxClaims:
		return fmt.Errorf("%d claims, max %d: %w", len(claims), MaxClaims, ErrInvalidArgument)
	}
	for name, value := range claims {
		switch {
		case name == "" || len(name) > MaxClaimNameBytes || !utf8.ValidString(name):
			return fmt.Errorf("claim name %q must be 1 to %d bytes of UTF-8: %w", name, MaxClaimNameBytes, ErrInvalidArgument)
		case len(value) > MaxClaimValueBytes || !utf8.ValidString(value):
			return fmt.Errorf("claim %q must be at most %d bytes of UTF-8: %w", name, MaxClaimValueBytes, ErrInvalidArgument)
		}
	}
	return nil
}

// newID returns 128 random bits in unpadded base64url, used for jti and sid.
func newID() string {
	var b [16]byte
	// crypto/rand.Read never returns an error since Go 1.24; it crashes instead.
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
