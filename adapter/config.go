package adapter

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	sockauthv1 "github.com/sockauth/sockauth/gen/sockauth/v1"
)

// Defaults used by [DefaultConfig] and for the zero values of [Config].
const (
	DefaultAuthTimeout   = 5 * time.Second
	DefaultCallTimeout   = 3 * time.Second
	DefaultMaxTokenBytes = 4096

	// DefaultRevocationRetryDelay is the first delay before a broken
	// revocation stream is reconnected.
	DefaultRevocationRetryDelay = 250 * time.Millisecond
	// MaxRevocationRetryDelay caps the doubling of Config.RevocationRetryDelay
	// between failed attempts, unless that field is larger.
	MaxRevocationRetryDelay = 10 * time.Second
)

// Config configures a [Flow]. Only Authority is required; every other zero
// value is replaced by its default when the Flow is built.
type Config struct {
	// Authority is the gRPC client of the sockauth authority. Required.
	Authority sockauthv1.AuthorityServiceClient

	// AuthTimeout is how long a new socket may stay unauthenticated before it
	// receives unauthorized (authentication_timeout) and is disconnected.
	// Zero means DefaultAuthTimeout.
	AuthTimeout time.Duration

	// CallTimeout is the deadline of each authority call. A call that passes
	// it fails with authority_unavailable. Zero means DefaultCallTimeout.
	CallTimeout time.Duration

	// MaxTokenBytes is the maximum length of a token in a payload. Longer
	// tokens are rejected as invalid_token without calling the authority.
	// Zero means DefaultMaxTokenBytes.
	MaxTokenBytes int

	// SessionCheckInterval, when positive, is the interval at which the Flow
	// calls Verify for each session of its authenticated sockets. A logout or
	// revocation made through another socket server then also disconnects
	// the sockets of this one. Zero disables the check.
	SessionCheckInterval time.Duration

	// DisableRevocationWatch turns off the revocation stream. By default the
	// Flow keeps a WatchRevocations stream open to the authority and
	// disconnects its sockets of every revoked session as soon as any
	// replica reports the revocation. After the stream breaks, or before it
	// first connects, the Flow verifies the sessions of its sockets again.
	// Turn the stream off only for an authority that does not serve it, and
	// set SessionCheckInterval instead.
	DisableRevocationWatch bool

	// RevocationRetryDelay is the delay before the Flow reconnects a broken
	// revocation stream, or verifies again sessions whose check after a
	// break failed. It doubles after every failed attempt, up to
	// MaxRevocationRetryDelay or RevocationRetryDelay, whichever is larger,
	// and each wait varies by up to 20% so that many socket servers do not
	// reconnect in step. Zero means DefaultRevocationRetryDelay.
	RevocationRetryDelay time.Duration

	// Logger receives the flow's logs. Nil means slog.Default().
	Logger *slog.Logger
}

// DefaultConfig returns a Config with every optional field set to its default
// value and no Authority.
func DefaultConfig() Config {
	return Config{
		AuthTimeout:   DefaultAuthTimeout,
		CallTimeout:   DefaultCallTimeout,
		MaxTokenBytes: DefaultMaxTokenBytes,

		RevocationRetryDelay: DefaultRevocationRetryDelay,
		Logger:               slog.Default(),
	}
}

// withDefaults returns a copy of c whose zero values are replaced by the
// defaults, or an error when a field is invalid.
func (c Config) withDefaults() (Config, error) {
	if c.Authority == nil {
		return Config{}, errors.New("adapter: missing Config.Authority")
	}

	if c.AuthTimeout < 0 {
		return Config{}, fmt.Errorf("adapter: invalid Config.AuthTimeout %v: must not be negative", c.AuthTimeout)
	}
	if c.AuthTimeout == 0 {
		c.AuthTimeout = DefaultAuthTimeout
	}

	if c.CallTimeout < 0 {
		return Config{}, fmt.Errorf("adapter: invalid Config.CallTimeout %v: must not be negative", c.CallTimeout)
	}
	if c.CallTimeout == 0 {
		c.CallTimeout = DefaultCallTimeout
	}

	if c.MaxTokenBytes < 0 {
		return Config{}, fmt.Errorf("adapter: invalid Config.MaxTokenBytes %d: must not be negative", c.MaxTokenBytes)
	}
	if c.MaxTokenBytes == 0 {
		c.MaxTokenBytes = DefaultMaxTokenBytes
	}

	if c.SessionCheckInterval < 0 {
		return Config{}, fmt.Errorf("adapter: invalid Config.SessionCheckInterval %v: must not be negative", c.SessionCheckInterval)
	}

	if c.RevocationRetryDelay < 0 {
		return Config{}, fmt.Errorf("adapter: invalid Config.RevocationRetryDelay %v: must not be negative", c.RevocationRetryDelay)
	}
	if c.RevocationRetryDelay == 0 {
		c.RevocationRetryDelay = DefaultRevocationRetryDelay
	}

	if c.Logger == nil {
		c.Logger = slog.Default()
	}

	return c, nil
}
