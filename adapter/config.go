package adapter

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

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

	// DefaultMaxPayloadBytes leaves room for a token of DefaultMaxTokenBytes
	// in {"token": ...}.
	DefaultMaxPayloadBytes = 8 << 10
	// DefaultMaxUnauthenticatedSockets is the default cap on the sockets of
	// one Flow that wait for authentication.
	//
	// NOTE: an estimate, not measured: each waiting socket costs a timer and
	// the binding's connection, so size it for the memory of the server.
	DefaultMaxUnauthenticatedSockets = 10000
)

// Default rate limits of authenticate events.
//
// NOTE: both are estimates, not measured. A client authenticates once when
// it connects and once per token lifetime to refresh, but many clients behind
// one NAT share a client address and reconnect together after a server
// restart.
var (
	// DefaultSocketAuthenticateLimit allows 5 authenticate events at once
	// on one socket, then one every 5 seconds.
	DefaultSocketAuthenticateLimit = RateLimit{PerSecond: 0.2, Burst: 5}
	// DefaultAddressAuthenticateLimit allows 100 authenticate events at once
	// from one client address, then 20 per second.
	DefaultAddressAuthenticateLimit = RateLimit{PerSecond: 20, Burst: 100}
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

	// MaxPayloadBytes is the maximum size of an authenticate or logout
	// payload that the binding passes as raw JSON or as a string. A larger
	// payload gets unauthorized (payload_too_large) before it is decoded.
	// Payloads that the binding decoded itself, such as a map, are not
	// measured. It must be at least MaxTokenBytes. Zero means
	// DefaultMaxPayloadBytes.
	MaxPayloadBytes int

	// MaxUnauthenticatedSockets caps the sockets of the Flow that wait for
	// authentication. A socket that connects beyond it gets unauthorized
	// (too_many_connections) at once and is disconnected. Sockets admitted
	// with ConnectAuthenticated do not count. Zero means
	// DefaultMaxUnauthenticatedSockets, and a negative value turns the cap
	// off.
	MaxUnauthenticatedSockets int

	// SocketAuthenticateLimit limits the authenticate events of one socket.
	// An event over it gets unauthorized (rate_limited) and the socket is
	// disconnected. The zero value means DefaultSocketAuthenticateLimit.
	SocketAuthenticateLimit RateLimit

	// AddressAuthenticateLimit limits the authenticate events and handshake
	// authentications of all sockets of one client address together. It
	// applies to sockets that implement ClientAddresser and to handshakes
	// whose context carries WithClientAddress. The bindings of this module
	// find the client address with Flow.ClientAddress, which reads it from
	// X-Forwarded-For behind the proxies of TrustedProxies. Loopback
	// addresses are not limited, because a client on the same host is a
	// test or a tool. The zero value means DefaultAddressAuthenticateLimit.
	AddressAuthenticateLimit RateLimit

	// TrustedProxies are the networks of the reverse proxies in front of
	// the socket server. A connection from one of them gets its client
	// address from the X-Forwarded-For header (see Flow.ClientAddress);
	// any other connection's client address is its TCP peer, whatever
	// headers it sends. Without a trusted proxy, every client behind a
	// proxy has the proxy's address and shares its per-address limit. List
	// only networks that hold nothing but proxies, since a client in them
	// could name any address. Nil means DefaultTrustedProxies (loopback),
	// and an empty slice trusts no proxy.
	TrustedProxies []netip.Prefix

	// Registerer receives the Flow's Prometheus metrics (see metrics.go).
	// Several Flows on one registry need distinct labels, such as those of
	// prometheus.WrapRegistererWith. Nil registers nothing.
	Registerer prometheus.Registerer

	// Logger receives the flow's logs. Nil means slog.Default().
	Logger *slog.Logger
}

// RateLimit is a token bucket: Burst events at once, refilled at PerSecond
// events per second. The zero RateLimit means the default of the Config
// field that holds it, and a negative PerSecond turns the limit off.
type RateLimit struct {
	PerSecond float64
	Burst     int
}

// off reports whether the limit is turned off.
func (l RateLimit) off() bool {
	return l.PerSecond < 0
}

// withDefault returns l, or def when l is the zero RateLimit, or an error
// when l is invalid.
func (l RateLimit) withDefault(field string, def RateLimit) (RateLimit, error) {
	switch {
	case l == RateLimit{}:
		return def, nil
	case l.off():
		return l, nil
	case l.PerSecond == 0 || l.Burst < 1:
		return RateLimit{}, fmt.Errorf("adapter: invalid Config.%s %+v: PerSecond and Burst must be positive, or PerSecond negative to turn the limit off", field, l)
	}
	return l, nil
}

// DefaultConfig returns a Config with every optional field set to its default
// value and no Authority.
func DefaultConfig() Config {
	return Config{
		AuthTimeout:   DefaultAuthTimeout,
		CallTimeout:   DefaultCallTimeout,
		MaxTokenBytes: DefaultMaxTokenBytes,

		RevocationRetryDelay: DefaultRevocationRetryDelay,

		MaxPayloadBytes:           DefaultMaxPayloadBytes,
		MaxUnauthenticatedSockets: DefaultMaxUnauthenticatedSockets,
		SocketAuthenticateLimit:   DefaultSocketAuthenticateLimit,
		AddressAuthenticateLimit:  DefaultAddressAuthenticateLimit,
		TrustedProxies:            slices.Clone(DefaultTrustedProxies),
		Logger:                    slog.Default(),
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

	if c.MaxPayloadBytes == 0 {
		c.MaxPayloadBytes = DefaultMaxPayloadBytes
	}
	if c.MaxPayloadBytes < c.MaxTokenBytes {
		return Config{}, fmt.Errorf("adapter: invalid Config.MaxPayloadBytes %d: must be at least MaxTokenBytes (%d)", c.MaxPayloadBytes, c.MaxTokenBytes)
	}

	if c.MaxUnauthenticatedSockets == 0 {
		c.MaxUnauthenticatedSockets = DefaultMaxUnauthenticatedSockets
	}

	var err error
	if c.SocketAuthenticateLimit, err = c.SocketAuthenticateLimit.withDefault("SocketAuthenticateLimit", DefaultSocketAuthenticateLimit); err != nil {
		return Config{}, err
	}
	if c.AddressAuthenticateLimit, err = c.AddressAuthenticateLimit.withDefault("AddressAuthenticateLimit", DefaultAddressAuthenticateLimit); err != nil {
		return Config{}, err
	}

	if c.TrustedProxies, err = trustedProxiesWithDefault(c.TrustedProxies); err != nil {
		return Config{}, err
	}

	if c.Logger == nil {
		c.Logger = slog.Default()
	}

	return c, nil
}
