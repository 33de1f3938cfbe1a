package adapter

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// ErrClosed is returned by [Flow.Connect] after [Flow.Close].
var ErrClosed = errors.New("adapter: flow closed")

// Socket is the interface of one socket.io connection in one namespace, as a
// Flow uses it. A binding implements it for its socket.io library.
// Implementations must be safe for concurrent use.
type Socket interface {
	// ID returns the connection id. It must be unique among the sockets
	// connected to one Flow and hard to guess.
	ID() string

	// EmitWithAck emits event with args and an ack callback. The
	// implementation must call ack at most once, when the client
	// acknowledges the event. It may call ack on any goroutine.
	EmitWithAck(event string, ack func(), args ...any) error

	// Disconnect emits event with payload as the socket's last packet and
	// disconnects the socket. It must not wait for the client, and it must
	// eventually make the binding call [Flow.Disconnected].
	Disconnect(event string, payload any) error
}

// Hooks are the Flow's callbacks into the application. Nil hooks are
// skipped. Hooks run on the goroutine that delivered the event.
type Hooks struct {
	// Authenticated is called after the server emitted authenticated to a
	// socket that had no session before, or whose authenticate switched it
	// to another session. Refreshes within one session do not call it.
	Authenticated func(s Socket, id Identity)
}

// phase is the state of one socket.
type phase int

const (
	// phaseWaiting: connected, no valid authenticate yet.
	phaseWaiting phase = iota
	// phaseAuthenticated: the last authenticate succeeded and the token has
	// not expired.
	phaseAuthenticated
	// phaseClosed: rejected or logged out; the disconnect is under way.
	phaseClosed
)

// socketState is the state machine of one socket. Its fields are guarded by
// Flow.mu.
type socketState struct {
	socket   Socket
	phase    phase
	identity Identity

	// token is the socket's current session token, kept for a logout without
	// a token. It is never logged.
	token string

	// limiter is the socket's bucket of Config.SocketAuthenticateLimit, or
	// nil when that limit is off.
	limiter *rate.Limiter

	// timer runs the authentication timeout while waiting and the expiry
	// while authenticated. timerSeq changes whenever timer is replaced, so a
	// callback of a stopped timer that already started does nothing.
	timer    *time.Timer
	timerSeq uint64
}

// Flow runs the authentication flow for the sockets of one namespace. It is
// safe for concurrent use. Build it with [NewFlow] and stop it with
// [Flow.Close].
type Flow struct {
	cfg   Config
	log   *slog.Logger
	hooks Hooks

	// mu guards sockets, sessions, phaseCounts, closed and every
	// socketState.
	mu      sync.Mutex
	sockets map[string]*socketState // by socket id
	// sessions lists the sockets of each session id. A session rarely has
	// more than a few sockets on one server, and a slice of one costs about
	// 32 bytes with its header, where a map of one costs a few hundred.
	sessions map[string][]*socketState
	closed   bool
	// phaseCounts counts the sockets in f.sockets by phase.
	phaseCounts [phaseClosed + 1]int

	metrics   *metrics
	addresses *addressLimiters

	// capRejections counts the sockets rejected by
	// Config.MaxUnauthenticatedSockets, and capLog limits their log lines.
	capRejections atomic.Uint64
	capLog        rate.Sometimes

	// recent holds the sessions revoked in the last 2×CallTimeout, guarded
	// by mu. See revocations.go.
	recent recentRevocations

	dropped atomic.Uint64

	// watchEpoch counts the openings and closings of the revocation stream,
	// so it is odd while a stream is open.
	watchEpoch atomic.Uint64

	// verifyRequests wakes the session checker for a pass outside its
	// interval. Its buffer of one merges the requests made during a pass
	// into one more pass.
	verifyRequests chan struct{}

	// background counts timer callbacks in progress, the session checker and
	// the revocation watcher, so that Close can wait for them.
	background sync.WaitGroup
	// stop is closed and ctx canceled by Close.
	stop   chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
}

// NewFlow checks cfg, fills in its defaults and returns a Flow. Unless
// cfg.DisableRevocationWatch is set, it starts a goroutine that watches
// revocations and one that verifies sessions after a gap in the watch. The
// second one also runs when cfg.SessionCheckInterval is positive.
func NewFlow(cfg Config, hooks Hooks) (*Flow, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}

	ctx, cancel := context.WithCancel(context.Background())
	f := &Flow{
		cfg:            cfg,
		log:            cfg.Logger,
		hooks:          hooks,
		sockets:        make(map[string]*socketState),
		sessions:       make(map[string][]*socketState),
		recent:         newRecentRevocations(2 * cfg.CallTimeout),
		addresses:      newAddressLimiters(cfg.AddressAuthenticateLimit),
		capLog:         rate.Sometimes{First: 1, Interval: 10 * time.Second},
		verifyRequests: make(chan struct{}, 1),
		stop:           make(chan struct{}),
		ctx:            ctx,
		cancel:         cancel,
	}
	f.metrics, err = newMetrics(cfg.Registerer, f)
	if err != nil {
		cancel()
		return nil, err
	}
	for _, network := range cfg.TrustedProxies {
		if network.Bits() == 0 {
			f.log.Warn("Config.TrustedProxies trusts every peer of its address family, so any client can name its own address in X-Forwarded-For and escape the per-address limit",
				"network", network.String())
		}
	}

	if cfg.SessionCheckInterval > 0 || !cfg.DisableRevocationWatch {
		f.background.Add(1)
		go f.checkSessions()
	}
	if !cfg.DisableRevocationWatch {
		f.background.Add(1)
		go f.watchRevocations()
	}
	return f, nil
}

// Config returns the configuration in use, with defaults filled in.
func (f *Flow) Config() Config {
	return f.cfg
}

// Connect registers a new socket and starts its authentication timeout. It
// emits nothing, so a binding may call it where emitting would block. It
// returns ErrClosed after Close.
//
// When Config.MaxUnauthenticatedSockets sockets already wait for
// authentication, Connect disconnects s at once with unauthorized
// (too_many_connections) and returns nil. The binding then handles the
// socket's disconnect as after any other rejection.
func (f *Flow) Connect(s Socket) error {
	return f.connect(s, true)
}

// connect is Connect, with the cap of unauthenticated sockets applied only
// when capped is true.
func (f *Flow) connect(s Socket, capped bool) error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return ErrClosed
	}

	if old, ok := f.sockets[s.ID()]; ok {
		f.log.Warn("socket connected twice; dropping the old state", "socket", s.ID())
		f.closeLocked(old)
		f.phaseCounts[old.phase]--
	}

	st := &socketState{socket: s, phase: phaseWaiting, limiter: newLimiter(f.cfg.SocketAuthenticateLimit)}
	overCap := capped && f.cfg.MaxUnauthenticatedSockets > 0 && f.phaseCounts[phaseWaiting] >= f.cfg.MaxUnauthenticatedSockets
	if overCap {
		// The rejected socket stays registered as closed until the binding
		// reports its disconnect.
		st.phase = phaseClosed
	}
	f.sockets[s.ID()] = st
	f.phaseCounts[st.phase]++
	if !overCap {
		f.armTimerLocked(st, f.cfg.AuthTimeout, CodeAuthenticationTimeout)
	}
	f.mu.Unlock()

	if overCap {
		f.rejectOverCap(st)
		return nil
	}
	if f.logs(slog.LevelDebug) {
		f.log.Debug("socket connected", "socket", s.ID())
	}
	return nil
}

// rejectOverCap disconnects a socket that connected beyond
// Config.MaxUnauthenticatedSockets, and logs at most one line every 10
// seconds with the count of such sockets.
func (f *Flow) rejectOverCap(st *socketState) {
	rejected := f.capRejections.Add(1)
	f.capLog.Do(func() {
		f.log.Warn("too many unauthenticated sockets; rejecting new connections",
			"socket", st.socket.ID(), "max_unauthenticated_sockets", f.cfg.MaxUnauthenticatedSockets, "rejected_total", rejected)
	})
	f.disconnectAll([]*socketState{st}, rejection(CodeTooManyConnections), "")
}

// socketCounts returns the number of sockets waiting for authentication and
// the number of authenticated sockets.
func (f *Flow) socketCounts() (waiting, authenticated int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.phaseCounts[phaseWaiting], f.phaseCounts[phaseAuthenticated]
}

// Disconnected removes the state of a socket after its binding saw it
// disconnect, and stops its timer. It returns the socket's last identity (the zero Identity
// when it never authenticated) and true, or false when the socket is unknown,
// for example because Disconnected was already called for it.
func (f *Flow) Disconnected(socketID string) (Identity, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()

	st, ok := f.sockets[socketID]
	if !ok {
		return Identity{}, false
	}

	f.closeLocked(st)
	delete(f.sockets, socketID)
	f.phaseCounts[st.phase]--

	if f.logs(slog.LevelDebug) {
		f.log.Debug("socket disconnected", socketAttrs(socketID, st.identity)...)
	}
	return st.identity.clone(), true
}

// Admit reports whether an application event from the socket may reach the
// application's handlers, and returns the socket's identity when it may.
// Only authenticated sockets are admitted. A rejected event is counted and
// logged at debug level.
func (f *Flow) Admit(socketID, event string) (Identity, bool) {
	f.mu.Lock()
	st, ok := f.sockets[socketID]
	admitted := ok && st.phase == phaseAuthenticated
	var id Identity
	if admitted {
		id = st.identity.clone()
	}
	f.mu.Unlock()

	if !admitted {
		f.dropped.Add(1)
		f.log.Debug("event from unauthenticated socket dropped", "socket", socketID, "event", event)
	}
	return id, admitted
}

// Identity returns the identity of an authenticated socket, or false when
// the socket is unknown or not authenticated.
func (f *Flow) Identity(socketID string) (Identity, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()

	st, ok := f.sockets[socketID]
	if !ok || st.phase != phaseAuthenticated {
		return Identity{}, false
	}
	return st.identity.clone(), true
}

// Dropped returns how many application events from unauthenticated sockets
// Admit has rejected.
func (f *Flow) Dropped() uint64 {
	return f.dropped.Load()
}

// Close stops every timer, the session checker and the revocation watch,
// and waits for the callbacks in progress. It disconnects no socket: sockets
// still connected are no longer timed out. Connect fails after Close. Close
// is idempotent.
func (f *Flow) Close() {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return
	}
	f.closed = true
	for _, st := range f.sockets {
		f.stopTimerLocked(st)
	}
	f.mu.Unlock()

	f.cancel()
	close(f.stop)
	f.background.Wait()
}

// reject emits unauthorized with code and disconnects the socket, unless it
// is already closed.
func (f *Flow) reject(st *socketState, code Code) {
	f.mu.Lock()
	if st.phase == phaseClosed {
		f.mu.Unlock()
		return
	}
	f.closeLocked(st)
	id := st.identity
	f.mu.Unlock()

	attrs := append(socketAttrs(st.socket.ID(), id), "reason", string(code))
	if address := clientAddressOf(st.socket); address != "" {
		attrs = append(attrs, "address", address)
	}
	f.log.Info("socket unauthorized", attrs...)
	f.metrics.rejected(code)

	if err := st.socket.Disconnect(EventUnauthorized, unauthorizedPayload(code)); err != nil {
		f.log.Warn("disconnecting unauthorized socket failed", "socket", st.socket.ID(), "reason", string(code), "error", err)
	}
}

// end closes the socket's state and disconnects it with end, unless it is
// already closed.
func (f *Flow) end(st *socketState, end ending) {
	f.mu.Lock()
	if st.phase == phaseClosed {
		f.mu.Unlock()
		return
	}
	f.closeLocked(st)
	id := st.identity
	f.mu.Unlock()

	f.log.Info("socket ended", append(socketAttrs(st.socket.ID(), id), "event", end.event)...)
	f.disconnectAll([]*socketState{st}, end, id.SessionID)
}

// unauthorizedPayload builds the unauthorized event in the shape that
// socketio-jwt clients handle.
func unauthorizedPayload(code Code) map[string]any {
	message := code.message()
	return map[string]any{
		"message": message,
		"data": map[string]any{
			"message": message,
			"code":    string(code),
			"type":    "UnauthorizedError",
		},
	}
}

// closeLocked moves st to phaseClosed, stops its timer and removes it from
// the session index. The caller holds f.mu.
func (f *Flow) closeLocked(st *socketState) {
	f.setPhaseLocked(st, phaseClosed)
	f.stopTimerLocked(st)
	f.unindexLocked(st)
}

// setPhaseLocked moves st to phase p and keeps f.phaseCounts in step for a
// socket in f.sockets. The caller holds f.mu.
func (f *Flow) setPhaseLocked(st *socketState, p phase) {
	if f.sockets[st.socket.ID()] == st {
		f.phaseCounts[st.phase]--
		f.phaseCounts[p]++
	}
	st.phase = p
}

// takeSessionLocked closes every open socket of session sid and returns
// them, so that the caller can send their last events after it unlocks
// f.mu. The caller holds f.mu.
func (f *Flow) takeSessionLocked(sid string) []*socketState {
	var targets []*socketState
	for _, st := range f.sessions[sid] {
		if st.phase != phaseClosed {
			targets = append(targets, st)
		}
	}
	for _, st := range targets {
		f.closeLocked(st)
	}
	return targets
}

// disconnectAll sends end to each of targets as its last event and
// disconnects it. The targets must be closed already. sid is logged on
// failure.
func (f *Flow) disconnectAll(targets []*socketState, end ending, sid string) {
	for _, st := range targets {
		if end.code != "" {
			f.metrics.rejected(end.code)
		}
		if err := st.socket.Disconnect(end.event, end.payload); err != nil {
			f.log.Warn("disconnecting socket failed", "socket", st.socket.ID(), "sid", sid, "event", end.event, "error", err)
		}
	}
}

// indexLocked files st under the session of its identity. st must not be
// filed yet: a socket is filed once it authenticates, and taken out before
// it authenticates again. The caller holds f.mu.
func (f *Flow) indexLocked(st *socketState) {
	sid := st.identity.SessionID
	f.sessions[sid] = append(f.sessions[sid], st)
}

// unindexLocked removes st from the session of its identity. The caller
// holds f.mu.
func (f *Flow) unindexLocked(st *socketState) {
	sid := st.identity.SessionID
	members := f.sessions[sid]
	i := slices.Index(members, st)
	switch {
	case i < 0:
		return
	case len(members) == 1:
		delete(f.sessions, sid)
		return
	}
	last := len(members) - 1
	members[i] = members[last]
	members[last] = nil
	f.sessions[sid] = members[:last]
}

// armTimerLocked replaces the socket's timer with one that rejects it with
// code after d. The caller holds f.mu.
func (f *Flow) armTimerLocked(st *socketState, d time.Duration, code Code) {
	f.stopTimerLocked(st)
	if f.closed {
		return
	}

	seq := st.timerSeq
	st.timer = time.AfterFunc(d, func() { f.timerFired(st, seq, code) })
}

// stopTimerLocked stops the socket's timer and invalidates a callback that
// already started. The caller holds f.mu.
func (f *Flow) stopTimerLocked(st *socketState) {
	st.timerSeq++
	if st.timer != nil {
		st.timer.Stop()
		st.timer = nil
	}
}

func (f *Flow) timerFired(st *socketState, seq uint64, code Code) {
	f.mu.Lock()
	if f.closed || st.timerSeq != seq || st.phase == phaseClosed {
		f.mu.Unlock()
		return
	}
	f.background.Add(1)
	f.mu.Unlock()
	defer f.background.Done()

	f.reject(st, code)
}

// logs reports whether the Flow's logger writes records of level. The calls
// made for every handshake check it first, so that they build no attributes
// for a disabled level.
func (f *Flow) logs(level slog.Level) bool {
	return f.log.Enabled(context.Background(), level)
}

// socketAttrs returns the log attributes of a socket and of its identity,
// which a socket that never authenticated does not have.
func socketAttrs(socketID string, id Identity) []any {
	attrs := []any{"socket", socketID}
	if id.SessionID != "" {
		attrs = append(attrs, "jti", id.TokenID, "sid", id.SessionID, "subject", id.Subject)
	}
	return attrs
}

// callContext returns the context of one authority call.
func (f *Flow) callContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if ctx == nil {
		ctx = context.Background()
	}
	return context.WithTimeout(ctx, f.cfg.CallTimeout)
}

// lookup returns the state of a socket that is not closed.
func (f *Flow) lookup(socketID string) (*socketState, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()

	st, ok := f.sockets[socketID]
	if !ok || st.phase == phaseClosed {
		return nil, false
	}
	return st, true
}
