package adapter

import (
	"context"
	"encoding/json"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// ClientAddresser is implemented by a Socket that can report the address of
// its client, such as the IP address of the TCP peer. The Flow applies
// Config.AddressAuthenticateLimit only to such sockets.
type ClientAddresser interface {
	// ClientAddress returns the client's address without a port, or "" when
	// it is unknown.
	ClientAddress() string
}

type clientAddressKey struct{}

// WithClientAddress returns a copy of ctx that carries the client address of
// a connection, for [Flow.AuthenticateHandshake], which runs before a Socket
// exists.
func WithClientAddress(ctx context.Context, address string) context.Context {
	return context.WithValue(ctx, clientAddressKey{}, address)
}

// clientAddressFrom returns the address that WithClientAddress stored in ctx,
// or "".
func clientAddressFrom(ctx context.Context) string {
	if ctx == nil {
		return ""
	}
	address, _ := ctx.Value(clientAddressKey{}).(string)
	return address
}

// clientAddressOf returns the client address of s, or "".
func clientAddressOf(s Socket) string {
	if addresser, ok := s.(ClientAddresser); ok {
		return addresser.ClientAddress()
	}
	return ""
}

// newLimiter returns a token bucket for l, or nil when l is off.
func newLimiter(l RateLimit) *rate.Limiter {
	if l.off() {
		return nil
	}
	return rate.NewLimiter(rate.Limit(l.PerSecond), l.Burst)
}

// addressSweepInterval is how often addressLimiters drops the buckets of
// addresses that have been quiet long enough to be full again.
const addressSweepInterval = time.Minute

// addressLimiters holds one token bucket per client address. It is safe for
// concurrent use. Its size is the number of addresses seen within about the
// time a bucket takes to refill, plus addressSweepInterval.
type addressLimiters struct {
	limit RateLimit

	mu        sync.Mutex // guards buckets and lastSweep
	buckets   map[string]*rate.Limiter
	lastSweep time.Time
}

func newAddressLimiters(limit RateLimit) *addressLimiters {
	return &addressLimiters{limit: limit, buckets: make(map[string]*rate.Limiter), lastSweep: time.Now()}
}

// allow reports whether address may authenticate now, and takes a token
// when it may. An empty or loopback address, or a limit that is off, always
// may.
func (a *addressLimiters) allow(address string, now time.Time) bool {
	if address == "" || a.limit.off() || isLoopback(address) {
		return true
	}

	a.mu.Lock()
	defer a.mu.Unlock()

	if now.Sub(a.lastSweep) >= addressSweepInterval {
		a.sweepLocked(now)
	}
	bucket, ok := a.buckets[address]
	if !ok {
		bucket = newLimiter(a.limit)
		a.buckets[address] = bucket
	}
	return bucket.AllowN(now, 1)
}

// sweepLocked drops the buckets that are full, because a new bucket for
// their address would behave the same. The caller holds a.mu.
func (a *addressLimiters) sweepLocked(now time.Time) {
	for address, bucket := range a.buckets {
		if bucket.TokensAt(now) >= float64(a.limit.Burst) {
			delete(a.buckets, address)
		}
	}
	a.lastSweep = now
}

// isLoopback reports whether address is a loopback IP address.
func isLoopback(address string) bool {
	ip, err := netip.ParseAddr(address)
	return err == nil && ip.IsLoopback()
}

// payloadSize returns the size in bytes of a payload that a binding passed
// as raw JSON or as a string. A payload that the socket.io library already
// decoded, such as a map, is measured by encoding it again as JSON, so that
// every client generation meets the same limit. It returns false when the
// payload cannot be encoded.
func payloadSize(payload any) (int, bool) {
	switch p := payload.(type) {
	case json.RawMessage:
		return len(p), true
	case []byte:
		return len(p), true
	case string:
		return len(p), true
	}
	encoded, err := json.Marshal(payload)
	if err != nil {
		return 0, false
	}
	return len(encoded), true
}
