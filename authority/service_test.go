package authority_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sockauth/sockauth/authority"
	"github.com/sockauth/sockauth/authority/badgerstore"
)

// fakeClock is a settable clock shared by a test and its Service.
type fakeClock struct {
	mu  sync.Mutex // guards now
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type fixture struct {
	service *authority.Service
	store   authority.Store
	clock   *fakeClock
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	return newFixtureOn(t, nil, discardLogger())
}

// newFixtureOn builds a fixture whose Service logs to logger. Its store is the
// in-memory store as wrap returns it, or the store itself when wrap is nil.
func newFixtureOn(t testing.TB, wrap func(authority.Store) authority.Store, logger *slog.Logger) *fixture {
	t.Helper()
	badger, err := badgerstore.Open("", badgerstore.Options{InMemory: true, Logger: discardLogger()})
	if err != nil {
		t.Fatalf("open in-memory store: %v", err)
	}
	t.Cleanup(func() { badger.Close() })
	var store authority.Store = badger
	if wrap != nil {
		store = wrap(badger)
	}

	codec, err := authority.NewPasetoV2(map[string][]byte{"k1": make([]byte, authority.KeySize)}, "k1")
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{now: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)}
	service, err := authority.NewService(codec, store, authority.Config{
		CodeTTL:        30 * time.Second,
		TokenTTL:       time.Hour,
		SessionMaxAge:  24 * time.Hour,
		RotationLeeway: 30 * time.Second,
		Now:            clock.Now,
		Logger:         logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{service: service, store: store, clock: clock}
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func (f *fixture) issue(t testing.TB) authority.Issued {
	t.Helper()
	code, err := f.service.IssueCode(context.Background(), "alice", map[string]string{"role": "member"})
	if err != nil {
		t.Fatalf("IssueCode: %v", err)
	}
	return code
}

func (f *fixture) authenticate(t testing.TB, token string) authority.Issued {
	t.Helper()
	issued, err := f.service.Authenticate(context.Background(), token)
	if err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	return issued
}

func (f *fixture) confirm(t testing.TB, token string) bool {
	t.Helper()
	confirmed, err := f.service.ConfirmRotation(context.Background(), token)
	if err != nil {
		t.Fatalf("ConfirmRotation: %v", err)
	}
	return confirmed
}

func TestIssueCode(t *testing.T) {
	f := newFixture(t)
	code := f.issue(t)

	if code.Claims.Type != authority.TypeCode || code.Claims.Generation != 0 {
		t.Errorf("code claims typ=%s gen=%d, expected code and 0", code.Claims.Type, code.Claims.Generation)
	}
	if got, want := code.Claims.ExpiresAt.Sub(f.clock.Now()), 30*time.Second; got != want {
		t.Errorf("code lifetime %v, expected %v", got, want)
	}
	if code.Claims.Extra["role"] != "member" {
		t.Errorf("code claims %v lack the application claim role=member", code.Claims.Extra)
	}
	session, err := f.store.Get(context.Background(), code.Claims.SessionID)
	if err != nil {
		t.Fatalf("Get session: %v", err)
	}
	if session.CurrentTokenID != code.Claims.TokenID || session.Subject != "alice" {
		t.Errorf("stored session %+v does not hold the code", session)
	}
}

func TestIssueCodeRejectsBadInput(t *testing.T) {
	long := make([]byte, authority.MaxSubjectBytes+1)
	for i := range long {
		long[i] = 'a'
	}
	tooMany := map[string]string{}
	for i := range authority.MaxClaims + 1 {
		tooMany[string(rune('a'+i))] = "v"
	}
	tests := []struct {
		name    string
		subject string
		claims  map[string]string
	}{
		{"empty subject", "", nil},
		{"long subject", string(long), nil},
		{"invalid UTF-8 subject", "al\xffice", nil},
		{"too many claims", "alice", tooMany},
		{"empty claim name", "alice", map[string]string{"": "v"}},
		{"invalid UTF-8 claim", "alice", map[string]string{"role": "\xff"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			_, err := f.service.IssueCode(context.Background(), tt.subject, tt.claims)
			if !errors.Is(err, authority.ErrInvalidArgument) {
				t.Fatalf("IssueCode = %v, expected ErrInvalidArgument", err)
			}
		})
	}
}

// TestRotation walks the rotation state machine: each case sets up a chain of
// tokens, then presents one and checks the outcome and the session's state.
func TestRotation(t *testing.T) {
	type chain struct {
		code, first, second authority.Issued
	}
	tests := []struct {
		name string
		// run builds the chain and returns the token to present.
		run func(t *testing.T, f *fixture) (present string, c chain)
		// wantErr is nil when Authenticate must succeed.
		wantErr error
		// wantSame names the token whose jti the result must carry; nil means a
		// fresh successor.
		wantSame func(c chain) authority.Claims
		// revoked reports whether the session must end up revoked.
		revoked bool
	}{
		{
			name: "code exchanged for session token",
			run: func(t *testing.T, f *fixture) (string, chain) {
				return f.issue(t).Token, chain{}
			},
		},
		{
			name: "current session token rotates",
			run: func(t *testing.T, f *fixture) (string, chain) {
				c := chain{code: f.issue(t)}
				c.first = f.authenticate(t, c.code.Token)
				f.confirm(t, c.first.Token)
				return c.first.Token, c
			},
		},
		{
			name: "unconfirmed predecessor inside leeway gets the successor again",
			run: func(t *testing.T, f *fixture) (string, chain) {
				c := chain{code: f.issue(t)}
				c.first = f.authenticate(t, c.code.Token)
				f.clock.Advance(29 * time.Second)
				return c.code.Token, c
			},
			wantSame: func(c chain) authority.Claims { return c.first.Claims },
		},
		{
			name: "unconfirmed predecessor after leeway is reuse",
			run: func(t *testing.T, f *fixture) (string, chain) {
				c := chain{code: f.issue(t)}
				c.first = f.authenticate(t, c.code.Token)
				f.clock.Advance(30 * time.Second)
				c.second = f.authenticate(t, c.first.Token)
				f.confirm(t, c.second.Token)
				f.clock.Advance(31 * time.Second)
				return c.first.Token, c
			},
			wantErr: authority.ErrTokenReused,
			revoked: true,
		},
		{
			name: "confirmed predecessor is reuse even inside leeway",
			run: func(t *testing.T, f *fixture) (string, chain) {
				c := chain{code: f.issue(t)}
				c.first = f.authenticate(t, c.code.Token)
				f.confirm(t, c.first.Token)
				return c.code.Token, c
			},
			wantErr: authority.ErrTokenReused,
			revoked: true,
		},
		{
			name: "grandparent token is reuse",
			run: func(t *testing.T, f *fixture) (string, chain) {
				c := chain{code: f.issue(t)}
				c.first = f.authenticate(t, c.code.Token)
				c.second = f.authenticate(t, c.first.Token)
				return c.code.Token, c
			},
			wantErr: authority.ErrTokenReused,
			revoked: true,
		},
		{
			name: "code after its lifetime is expired",
			run: func(t *testing.T, f *fixture) (string, chain) {
				c := chain{code: f.issue(t)}
				f.clock.Advance(30 * time.Second)
				return c.code.Token, c
			},
			wantErr: authority.ErrTokenExpired,
		},
		{
			name: "session token after its lifetime is expired",
			run: func(t *testing.T, f *fixture) (string, chain) {
				c := chain{code: f.issue(t)}
				c.first = f.authenticate(t, c.code.Token)
				f.clock.Advance(time.Hour)
				return c.first.Token, c
			},
			wantErr: authority.ErrTokenExpired,
		},
		{
			name: "token of a logged-out session",
			run: func(t *testing.T, f *fixture) (string, chain) {
				c := chain{code: f.issue(t)}
				c.first = f.authenticate(t, c.code.Token)
				if _, err := f.service.Logout(context.Background(), c.first.Token); err != nil {
					t.Fatalf("Logout: %v", err)
				}
				return c.first.Token, c
			},
			wantErr: authority.ErrSessionRevoked,
			revoked: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			present, c := tt.run(t, f)

			got, err := f.service.Authenticate(context.Background(), present)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Authenticate = %v, expected %v", err, tt.wantErr)
				}
			} else {
				if err != nil {
					t.Fatalf("Authenticate: %v", err)
				}
				if got.Token == present {
					t.Error("Authenticate returned the presented token string")
				}
				if got.Claims.Type != authority.TypeSession {
					t.Errorf("result typ %s, expected session", got.Claims.Type)
				}
				if tt.wantSame != nil {
					want := tt.wantSame(c)
					if got.Claims.TokenID != want.TokenID || got.Claims.Generation != want.Generation {
						t.Errorf("result jti %s gen %d, expected the existing successor %s gen %d",
							got.Claims.TokenID, got.Claims.Generation, want.TokenID, want.Generation)
					}
				}
			}

			sessionID := c.code.Claims.SessionID
			if sessionID == "" {
				sessionID = got.Claims.SessionID
			}
			session, err := f.store.Get(context.Background(), sessionID)
			if err != nil {
				t.Fatalf("Get session: %v", err)
			}
			if session.Revoked() != tt.revoked {
				t.Errorf("session revoked = %v (reason %q), expected %v", session.Revoked(), session.RevokedReason, tt.revoked)
			}
		})
	}
}

func TestReuseRevokesCurrentToken(t *testing.T) {
	f := newFixture(t)
	code := f.issue(t)
	first := f.authenticate(t, code.Token)
	f.confirm(t, first.Token)

	if _, err := f.service.Authenticate(context.Background(), code.Token); !errors.Is(err, authority.ErrTokenReused) {
		t.Fatalf("replayed code: %v, expected ErrTokenReused", err)
	}
	if _, err := f.service.Authenticate(context.Background(), first.Token); !errors.Is(err, authority.ErrSessionRevoked) {
		t.Fatalf("current token after reuse: %v, expected ErrSessionRevoked", err)
	}
	if _, err := f.service.Verify(context.Background(), first.Token); !errors.Is(err, authority.ErrSessionRevoked) {
		t.Fatalf("Verify after reuse: %v, expected ErrSessionRevoked", err)
	}
}

func TestSuccessorAuthenticationConfirms(t *testing.T) {
	f := newFixture(t)
	code := f.issue(t)
	first := f.authenticate(t, code.Token)
	second := f.authenticate(t, first.Token)

	// first is now the unconfirmed predecessor of second, so it still works
	// inside the leeway and returns second again.
	again := f.authenticate(t, first.Token)
	if again.Claims.TokenID != second.Claims.TokenID {
		t.Fatalf("predecessor returned jti %s, expected %s", again.Claims.TokenID, second.Claims.TokenID)
	}
	// The code is two generations back and must be reuse.
	if _, err := f.service.Authenticate(context.Background(), code.Token); !errors.Is(err, authority.ErrTokenReused) {
		t.Fatalf("code after two rotations: %v, expected ErrTokenReused", err)
	}
}

func TestConfirmRotation(t *testing.T) {
	f := newFixture(t)
	code := f.issue(t)
	first := f.authenticate(t, code.Token)

	if !f.confirm(t, first.Token) {
		t.Error("first confirmation of the current token returned false")
	}
	if f.confirm(t, first.Token) {
		t.Error("second confirmation of the same token returned true")
	}
	second := f.authenticate(t, first.Token)
	if f.confirm(t, first.Token) {
		t.Error("confirmation of a replaced token returned true")
	}
	if !f.confirm(t, second.Token) {
		t.Error("confirmation of the new current token returned false")
	}
	if _, err := f.service.ConfirmRotation(context.Background(), "v2.local.bogus"); !errors.Is(err, authority.ErrInvalidToken) {
		t.Errorf("confirmation of garbage = %v, expected ErrInvalidToken", err)
	}
}

func TestVerify(t *testing.T) {
	f := newFixture(t)
	code := f.issue(t)
	first := f.authenticate(t, code.Token)

	if _, err := f.service.Verify(context.Background(), code.Token); !errors.Is(err, authority.ErrInvalidToken) {
		t.Errorf("Verify of a code = %v, expected ErrInvalidToken", err)
	}

	verified, err := f.service.Verify(context.Background(), first.Token)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if !verified.Current || verified.Claims.Subject != "alice" {
		t.Errorf("Verify = %+v, expected current token of alice", verified)
	}

	// Another connection of the session rotates; the first token still
	// verifies because its session is alive.
	second := f.authenticate(t, first.Token)
	f.confirm(t, second.Token)
	verified, err = f.service.Verify(context.Background(), first.Token)
	if err != nil {
		t.Fatalf("Verify of a replaced token of a live session: %v", err)
	}
	if verified.Current {
		t.Error("Verify reported a replaced token as current")
	}
}

func TestSessionMaxAge(t *testing.T) {
	f := newFixture(t)
	code := f.issue(t)
	token := f.authenticate(t, code.Token)
	for range 24 {
		f.clock.Advance(time.Hour - time.Minute)
		token = f.authenticate(t, token.Token)
		f.confirm(t, token.Token)
	}

	// The session ends 24 h after the login, 36 min before the last token's
	// TTL would run out, so that token expires with its session.
	sessionEnd := code.Claims.IssuedAt.Add(24 * time.Hour)
	if !token.Claims.ExpiresAt.Equal(sessionEnd) {
		t.Fatalf("last token expires at %v, expected the session's end %v", token.Claims.ExpiresAt, sessionEnd)
	}
	f.clock.Advance(time.Hour)
	if _, err := f.service.Authenticate(context.Background(), token.Token); !errors.Is(err, authority.ErrSessionExpired) {
		t.Fatalf("Authenticate after the session's end = %v, expected ErrSessionExpired", err)
	}
}

// presentToken presents token to each Service call that takes one and
// returns their errors by call name.
func presentToken(f *fixture, token string) map[string]error {
	ctx := context.Background()
	_, authenticateErr := f.service.Authenticate(ctx, token)
	_, confirmErr := f.service.ConfirmRotation(ctx, token)
	_, verifyErr := f.service.Verify(ctx, token)
	_, logoutErr := f.service.Logout(ctx, token)
	return map[string]error{
		"Authenticate":    authenticateErr,
		"ConfirmRotation": confirmErr,
		"Verify":          verifyErr,
		"Logout":          logoutErr,
	}
}

// TestExpiredTokenReason checks which reason an expired token gets: the
// session's end, as stored, turns ErrTokenExpired into ErrSessionExpired.
func TestExpiredTokenReason(t *testing.T) {
	tests := []struct {
		name string
		// start is how far past a whole second the login happens.
		start time.Duration
		// replaced presents the first session token, which the last one
		// replaced, instead of the last.
		replaced bool
		revoke   bool
		// at is when the token is presented, after the whole second of the login.
		at   time.Duration
		want error
	}{
		{name: "expired token of live session", replaced: true, at: 70 * time.Minute, want: authority.ErrTokenExpired},
		{name: "at the session's end", at: 90 * time.Minute, want: authority.ErrSessionExpired},
		{name: "after the session's end", at: 3 * time.Hour, want: authority.ErrSessionExpired},
		{name: "replaced token after the end", replaced: true, at: 3 * time.Hour, want: authority.ErrSessionExpired},
		{name: "revoked session after its end", revoke: true, at: 3 * time.Hour, want: authority.ErrTokenExpired},
		// The last token's exp is the session's end rounded down to the
		// second, and the session counts as ended from then on.
		{name: "end within a second", start: 500 * time.Millisecond, at: 90 * time.Minute, want: authority.ErrSessionExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			base := f.clock.Now()
			f.clock.Advance(tt.start)
			code := f.issue(t)

			// Shorten the stored maximum age to 90 min, below the 1 h TTL of
			// the token issued at 50 min, so that this token ends with the
			// session.
			session, err := f.store.Get(context.Background(), code.Claims.SessionID)
			if err != nil {
				t.Fatal(err)
			}
			next := *session
			next.Version++
			next.ExpiresAt = base.Add(tt.start + 90*time.Minute)
			if err := f.store.CompareAndSwap(context.Background(), session.Version, &next); err != nil {
				t.Fatal(err)
			}

			first := f.authenticate(t, code.Token)
			f.confirm(t, first.Token)
			f.clock.Advance(50 * time.Minute)
			last := f.authenticate(t, first.Token)
			f.confirm(t, last.Token)
			if want := base.Add(90 * time.Minute); !last.Claims.ExpiresAt.Equal(want) {
				t.Fatalf("last token expires at %v, expected %v", last.Claims.ExpiresAt, want)
			}
			if tt.revoke {
				if _, err := f.service.Logout(context.Background(), last.Token); err != nil {
					t.Fatalf("Logout: %v", err)
				}
			}

			presented := last
			if tt.replaced {
				presented = first
			}
			f.clock.Advance(base.Add(tt.at).Sub(f.clock.Now()))
			for call, err := range presentToken(f, presented.Token) {
				if !errors.Is(err, tt.want) {
					t.Errorf("%s = %v, expected %v", call, err, tt.want)
				}
			}

			stored, err := f.store.Get(context.Background(), code.Claims.SessionID)
			if err != nil {
				t.Fatal(err)
			}
			if stored.Revoked() != tt.revoke {
				t.Errorf("session revoked = %v (reason %q) after the expired token, expected %v",
					stored.Revoked(), stored.RevokedReason, tt.revoke)
			}
		})
	}
}

// failingGetStore is a store whose Get fails once fail is set.
type failingGetStore struct {
	authority.Store
	mu   sync.Mutex // guards fail
	fail bool
}

func (s *failingGetStore) Get(ctx context.Context, id string) (*authority.Session, error) {
	s.mu.Lock()
	fail := s.fail
	s.mu.Unlock()
	if fail {
		return nil, errors.New("store unreachable")
	}
	return s.Store.Get(ctx, id)
}

func TestExpiredTokenStoreFailure(t *testing.T) {
	var failing *failingGetStore
	wrap := func(store authority.Store) authority.Store {
		failing = &failingGetStore{Store: store}
		return failing
	}
	var logs bytes.Buffer
	f := newFixtureOn(t, wrap, slog.New(slog.NewTextHandler(&logs, nil)))
	code := f.issue(t)
	token := f.authenticate(t, code.Token)

	// Past the session's end, a store that cannot tell the session's state
	// leaves the reason at the token's expiry.
	f.clock.Advance(25 * time.Hour)
	failing.mu.Lock()
	failing.fail = true
	failing.mu.Unlock()
	if _, err := f.service.Authenticate(context.Background(), token.Token); !errors.Is(err, authority.ErrTokenExpired) {
		t.Fatalf("Authenticate with a failing store = %v, expected ErrTokenExpired", err)
	}
	if !strings.Contains(logs.String(), "session of an expired token could not be loaded") {
		t.Errorf("log lacks the store failure:\n%s", logs.String())
	}
}

func TestSessionExpiredInStore(t *testing.T) {
	f := newFixture(t)
	code := f.issue(t)
	first := f.authenticate(t, code.Token)

	// Shorten the stored maximum age, as a change of configuration would.
	session, err := f.store.Get(context.Background(), first.Claims.SessionID)
	if err != nil {
		t.Fatal(err)
	}
	next := *session
	next.Version++
	next.ExpiresAt = f.clock.Now().Add(time.Minute)
	if err := f.store.CompareAndSwap(context.Background(), session.Version, &next); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(2 * time.Minute)

	if _, err := f.service.Authenticate(context.Background(), first.Token); !errors.Is(err, authority.ErrSessionExpired) {
		t.Fatalf("Authenticate = %v, expected ErrSessionExpired", err)
	}
}

func TestLogout(t *testing.T) {
	f := newFixture(t)
	code := f.issue(t)

	if _, err := f.service.Logout(context.Background(), code.Token); !errors.Is(err, authority.ErrInvalidToken) {
		t.Errorf("Logout with a code = %v, expected ErrInvalidToken", err)
	}

	first := f.authenticate(t, code.Token)
	session, err := f.service.Logout(context.Background(), first.Token)
	if err != nil {
		t.Fatalf("Logout: %v", err)
	}
	if session.RevokedReason != authority.RevokedLogout || session.Subject != "alice" {
		t.Errorf("Logout returned %+v, expected alice's session revoked by logout", session)
	}
	if _, err := f.service.Logout(context.Background(), first.Token); !errors.Is(err, authority.ErrSessionRevoked) {
		t.Errorf("second Logout = %v, expected ErrSessionRevoked", err)
	}
}

// TestConcurrentAuthenticateOneSuccessor presents one token from 50 goroutines
// at once: exactly one successor may exist, and every caller inside the leeway
// receives it.
func TestConcurrentAuthenticateOneSuccessor(t *testing.T) {
	f := newFixture(t)
	code := f.issue(t)
	first := f.authenticate(t, code.Token)
	f.confirm(t, first.Token)

	const callers = 50
	var (
		wg      sync.WaitGroup
		start   = make(chan struct{})
		results = make([]authority.Issued, callers)
		errs    = make([]error, callers)
	)
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i], errs[i] = f.service.Authenticate(context.Background(), first.Token)
		}()
	}
	close(start)
	wg.Wait()

	successors := map[string]int{}
	for i := range callers {
		if errs[i] != nil {
			t.Errorf("caller %d: %v", i, errs[i])
			continue
		}
		successors[results[i].Claims.TokenID]++
	}
	if len(successors) != 1 {
		t.Fatalf("%d distinct successor jtis %v, expected exactly 1", len(successors), successors)
	}

	session, err := f.store.Get(context.Background(), first.Claims.SessionID)
	if err != nil {
		t.Fatal(err)
	}
	if session.Generation != 2 || session.Revoked() {
		t.Fatalf("session gen %d revoked %q, expected gen 2 and alive", session.Generation, session.RevokedReason)
	}
}

func TestNewServiceRejectsBadConfig(t *testing.T) {
	codec, err := authority.NewPasetoV2(map[string][]byte{"k1": make([]byte, authority.KeySize)}, "k1")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  authority.Config
	}{
		{"sub-second token TTL", authority.Config{TokenTTL: time.Millisecond}},
		{"max age below token TTL", authority.Config{TokenTTL: 2 * time.Hour, SessionMaxAge: time.Hour}},
		{"negative leeway", authority.Config{RotationLeeway: -time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := authority.NewService(codec, nil, tt.cfg); err == nil {
				t.Fatal("NewService accepted the configuration")
			}
		})
	}
}

func TestTokenNotYetValid(t *testing.T) {
	f := newFixture(t)
	code := f.issue(t)

	// Move the clock back, as if the token came from a replica whose clock
	// runs two minutes ahead.
	f.clock.Advance(-2 * time.Minute)
	if _, err := f.service.Authenticate(context.Background(), code.Token); !errors.Is(err, authority.ErrInvalidToken) {
		t.Fatalf("Authenticate of a token issued in the future = %v, expected ErrInvalidToken", err)
	}

	// Within the allowed skew the token works.
	f.clock.Advance(90 * time.Second)
	if _, err := f.service.Authenticate(context.Background(), code.Token); err != nil {
		t.Fatalf("Authenticate 30 s before iat: %v", err)
	}
}
