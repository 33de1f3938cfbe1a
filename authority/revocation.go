package authority

import (
	"context"
	"errors"
	"sync"
	"time"
)

// RevokedExpired is the reason of a revocation event for a session found past
// its maximum age. It is never stored: an expired session needs no revocation.
const RevokedExpired = "expired"

// RevocationEvent reports that a session died.
type RevocationEvent struct {
	SessionID string    `json:"sid"`
	Subject   string    `json:"sub"`
	Reason    string    `json:"reason"` // RevokedLogout, RevokedReused, RevokedAdmin or RevokedExpired
	At        time.Time `json:"at"`
}

// RevocationPublisher sends revocation events to every authority that shares a
// store. A Store that also implements it (such as the Redis store) carries the
// events between replicas. With any other store, the Service delivers them only
// to its own watchers.
type RevocationPublisher interface {
	// PublishRevocation sends an event to every subscriber, this process included.
	PublishRevocation(ctx context.Context, event RevocationEvent) error
	// SubscribeRevocations calls deliver for every published event until ctx
	// ends, and calls gap whenever events may have been lost, such as while a
	// connection was broken. It returns once the subscription is in place;
	// delivery goes on in the background.
	SubscribeRevocations(ctx context.Context, deliver func(RevocationEvent), gap func()) error
}

// watcherBuffer is how many events a slow watcher may fall behind before it is
// dropped; a dropped watcher reconnects and re-verifies its sockets.
const watcherBuffer = 1024

// revocationHub fans events out to the watchers of one process.
type revocationHub struct {
	mu       sync.Mutex // guards watchers
	watchers map[*Watcher]struct{}
}

// Reasons why a Watcher's Events channel was closed, returned by Watcher.Err.
var (
	// ErrEventsMissed reports a watcher that fell behind, or whose replica lost
	// its connection to the store's event feed: events may have been missed.
	ErrEventsMissed = errors.New("revocation events may have been missed")
	// ErrServiceClosed reports a watcher closed because its Service stopped.
	ErrServiceClosed = errors.New("authority service closed")
)

// Watcher receives revocation events. Events is closed when the watcher is
// closed or falls more than a buffer's worth of events behind.
type Watcher struct {
	Events <-chan RevocationEvent
	events chan RevocationEvent
	hub    *revocationHub
	once   sync.Once
	// err is set before events is closed, under hub.mu.
	err error
}

// Err returns why Events was closed: nil after Close, ErrEventsMissed or
// ErrServiceClosed. Call it only after Events was closed.
func (w *Watcher) Err() error {
	w.hub.mu.Lock()
	defer w.hub.mu.Unlock()
	return w.err
}

// Close stops delivery to the watcher. It is safe to call more than once.
func (w *Watcher) Close() {
	w.hub.mu.Lock()
	defer w.hub.mu.Unlock()
	w.closeLocked(nil)
}

// closeLocked closes the watcher with the given reason; hub.mu must be held.
func (w *Watcher) closeLocked(reason error) {
	w.once.Do(func() {
		w.err = reason
		delete(w.hub.watchers, w)
		close(w.events)
	})
}

func newRevocationHub() *revocationHub {
	return &revocationHub{watchers: map[*Watcher]struct{}{}}
}

func (h *revocationHub) watch() *Watcher {
	events := make(chan RevocationEvent, watcherBuffer)
	w := &Watcher{Events: events, events: events, hub: h}
	h.mu.Lock()
	h.watchers[w] = struct{}{}
	h.mu.Unlock()
	return w
}

// deliver hands an event to every watcher without blocking; a watcher whose
// buffer is full is closed so that it notices the gap.
func (h *revocationHub) deliver(event RevocationEvent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for w := range h.watchers {
		select {
		case w.events <- event:
		default:
			w.closeLocked(ErrEventsMissed)
		}
	}
}

// closeAll closes every watcher with reason. Watchers closed because events
// may have been lost reconnect and re-verify what they hold.
func (h *revocationHub) closeAll(reason error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for w := range h.watchers {
		w.closeLocked(reason)
	}
}

// eventsMissed closes every watcher with ErrEventsMissed; it is the gap
// callback given to a RevocationPublisher.
func (h *revocationHub) eventsMissed() { h.closeAll(ErrEventsMissed) }
