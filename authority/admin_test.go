package authority_test

import (
	"context"
	"errors"
	"log/slog"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sockauth/sockauth/authority"
	"github.com/sockauth/sockauth/internal/logtest"
)

func receiveEvent(t *testing.T, w *authority.Watcher) authority.RevocationEvent {
	t.Helper()
	select {
	case event, ok := <-w.Events:
		if !ok {
			t.Fatal("watcher closed, expected an event")
		}
		return event
	case <-time.After(5 * time.Second):
		t.Fatal("no revocation event within 5 s")
	}
	return authority.RevocationEvent{}
}

func TestRevokeSession(t *testing.T) {
	f := newFixture(t)
	watcher := f.service.WatchRevocations()
	defer watcher.Close()
	first := f.authenticate(t, f.issue(t).Token)

	session, err := f.service.RevokeSession(context.Background(), first.Claims.SessionID)
	if err != nil {
		t.Fatalf("RevokeSession: %v", err)
	}
	if session.RevokedReason != authority.RevokedAdmin {
		t.Errorf("reason %q, expected admin", session.RevokedReason)
	}
	event := receiveEvent(t, watcher)
	if event.SessionID != first.Claims.SessionID || event.Reason != authority.RevokedAdmin || event.Subject != "alice" {
		t.Errorf("event %+v, expected alice's session revoked by admin", event)
	}
	if _, err := f.service.Authenticate(context.Background(), first.Token); !errors.Is(err, authority.ErrSessionRevoked) {
		t.Errorf("Authenticate after RevokeSession = %v, expected ErrSessionRevoked", err)
	}

	again, err := f.service.RevokeSession(context.Background(), first.Claims.SessionID)
	if err != nil || again.RevokedReason != authority.RevokedAdmin {
		t.Errorf("second RevokeSession = %+v, %v; expected the stored revocation", again, err)
	}
	if _, err := f.service.RevokeSession(context.Background(), "unknown"); !errors.Is(err, authority.ErrNotFound) {
		t.Errorf("RevokeSession of an unknown id = %v, expected ErrNotFound", err)
	}
}

func TestRevokeSubject(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	var tokens []authority.Issued
	for range 3 {
		tokens = append(tokens, f.authenticate(t, f.issue(t).Token))
	}
	bob, err := f.service.IssueCode(ctx, "bob", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.service.Logout(ctx, tokens[0].Token); err != nil {
		t.Fatal(err)
	}

	count, revoked, err := f.service.RevokeSubject(ctx, "alice")
	if err != nil {
		t.Fatalf("RevokeSubject: %v", err)
	}
	if count != 2 {
		t.Errorf("RevokeSubject counted %d sessions, expected the 2 live ones", count)
	}
	if len(revoked) != 2 {
		t.Fatalf("RevokeSubject listed %d sessions, expected the 2 live ones", len(revoked))
	}
	for i, token := range tokens {
		if _, err := f.service.Verify(ctx, token.Token); !errors.Is(err, authority.ErrSessionRevoked) {
			t.Errorf("token %d after RevokeSubject: %v, expected ErrSessionRevoked", i, err)
		}
	}
	if _, err := f.service.Authenticate(ctx, bob.Token); err != nil {
		t.Errorf("bob's code after revoking alice: %v", err)
	}
}

func TestListSessions(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	first := f.authenticate(t, f.issue(t).Token)
	f.issue(t)
	if _, err := f.service.Logout(ctx, first.Token); err != nil {
		t.Fatal(err)
	}

	sessions, next, err := f.service.ListSessions(ctx, "alice", "", 0)
	if err != nil {
		t.Fatalf("ListSessions: %v", err)
	}
	if next != "" {
		t.Errorf("ListSessions of 2 sessions returned next page token %q, expected none", next)
	}
	if len(sessions) != 2 {
		t.Fatalf("ListSessions returned %d sessions, expected 2", len(sessions))
	}
	revoked := 0
	for _, session := range sessions {
		if session.Revoked() {
			revoked++
		}
	}
	if revoked != 1 {
		t.Errorf("%d revoked sessions listed, expected 1", revoked)
	}
	if _, _, err := f.service.ListSessions(ctx, "", "", 0); !errors.Is(err, authority.ErrInvalidArgument) {
		t.Errorf("ListSessions of an empty subject = %v, expected ErrInvalidArgument", err)
	}
}

// smallPages is a Store whose ListBySubject records the limits it gets and
// returns pages of at most 2 sessions.
type smallPages struct {
	authority.Store
	mu     sync.Mutex
	limits []int
}

func (p *smallPages) ListBySubject(ctx context.Context, subject, cursor string, limit int) ([]*authority.Session, string, error) {
	p.mu.Lock()
	p.limits = append(p.limits, limit)
	p.mu.Unlock()
	return p.Store.ListBySubject(ctx, subject, cursor, min(limit, 2))
}

func (p *smallPages) lastLimit() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.limits[len(p.limits)-1]
}

// newPagedFixture returns a fixture whose store lists pages of at most 2
// sessions, and that store.
func newPagedFixture(t *testing.T) (*fixture, *smallPages) {
	t.Helper()

	pages := &smallPages{}
	f := newFixtureOn(t, func(store authority.Store) authority.Store {
		pages.Store = store
		return pages
	}, discardLogger())
	return f, pages
}

// listAll returns every session of subject, page by page, and fails the test
// when the pages do not end within 100 calls.
func listAll(t *testing.T, service *authority.Service, subject string) []*authority.Session {
	t.Helper()
	var all []*authority.Session
	token := ""
	for range 100 {
		sessions, next, err := service.ListSessions(context.Background(), subject, token, 0)
		if err != nil {
			t.Fatalf("ListSessions: %v", err)
		}
		all = append(all, sessions...)
		if next == "" {
			return all
		}
		token = next
	}
	t.Fatalf("ListSessions of %q still returned a next page token after 100 pages", subject)
	return nil
}

func TestListSessionsPages(t *testing.T) {
	f, pages := newPagedFixture(t)
	ctx := context.Background()
	want := map[string]bool{}
	for range 5 {
		want[f.issue(t).Claims.SessionID] = true
	}

	got := map[string]bool{}
	for _, session := range listAll(t, f.service, "alice") {
		got[session.ID] = true
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("pages of 2 listed %v, expected %v", got, want)
	}

	for _, c := range []struct{ requested, passed int }{
		{0, authority.DefaultListPageSize},
		{50, 50},
		{authority.MaxListPageSize + 1, authority.MaxListPageSize},
	} {
		if _, _, err := f.service.ListSessions(ctx, "alice", "", c.requested); err != nil {
			t.Fatalf("ListSessions with page size %d: %v", c.requested, err)
		}
		if limit := pages.lastLimit(); limit != c.passed {
			t.Errorf("page size %d reached the store as %d, expected %d", c.requested, limit, c.passed)
		}
	}
	if _, _, err := f.service.ListSessions(ctx, "alice", "", -1); !errors.Is(err, authority.ErrInvalidArgument) {
		t.Errorf("ListSessions with page size -1 = %v, expected ErrInvalidArgument", err)
	}
	if _, _, err := f.service.ListSessions(ctx, "alice", "not base64!", 0); !errors.Is(err, authority.ErrInvalidArgument) {
		t.Errorf("ListSessions with a malformed page token = %v, expected ErrInvalidArgument", err)
	}

	_, next, err := f.service.ListSessions(ctx, "alice", "", 0)
	if err != nil || next == "" {
		t.Fatalf("first page of alice = next %q, %v; expected a next page token", next, err)
	}
	if _, _, err := f.service.ListSessions(ctx, "bob", next, 0); !errors.Is(err, authority.ErrInvalidArgument) {
		t.Errorf("ListSessions of bob with a page token of alice = %v, expected ErrInvalidArgument", err)
	}
	for _, token := range []string{next[:12], "c2lkLTE"} {
		if _, _, err := f.service.ListSessions(ctx, "alice", token, 0); !errors.Is(err, authority.ErrInvalidArgument) {
			t.Errorf("ListSessions with page token %q = %v, expected ErrInvalidArgument", token, err)
		}
	}
}

func TestRevokeSubjectRevokesEveryPage(t *testing.T) {
	f, _ := newPagedFixture(t)
	ctx := context.Background()
	for range 5 {
		f.issue(t)
	}

	count, revoked, err := f.service.RevokeSubject(ctx, "alice")
	if err != nil {
		t.Fatalf("RevokeSubject: %v", err)
	}
	if count != 5 || len(revoked) != 5 {
		t.Errorf("RevokeSubject counted %d and listed %d sessions in pages of 2, expected 5", count, len(revoked))
	}
	for _, session := range listAll(t, f.service, "alice") {
		if !session.Revoked() {
			t.Errorf("session %s is live after RevokeSubject", session.ID)
		}
	}
}

func TestRevokeSubjectListsFirstSessions(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	const sessions = authority.MaxRevokedListed + 7
	var wg sync.WaitGroup
	errs := make(chan error, sessions)
	for range sessions {
		wg.Go(func() {
			if _, err := f.service.IssueCode(ctx, "alice", nil); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("IssueCode: %v", err)
	}

	count, revoked, err := f.service.RevokeSubject(ctx, "alice")
	if err != nil {
		t.Fatalf("RevokeSubject: %v", err)
	}
	if count != sessions {
		t.Errorf("RevokeSubject counted %d sessions, expected %d", count, sessions)
	}
	if len(revoked) != authority.MaxRevokedListed {
		t.Errorf("RevokeSubject listed %d sessions, expected the first %d", len(revoked), authority.MaxRevokedListed)
	}
	all := listAll(t, f.service, "alice")
	for i, session := range revoked {
		if !session.Revoked() {
			t.Fatalf("listed session %s is not revoked", session.ID)
		}
		if session.ID != all[i].ID {
			t.Fatalf("listed session %d is %s, expected %s, in the order of ListSessions", i, session.ID, all[i].ID)
		}
	}
	for _, session := range all {
		if !session.Revoked() {
			t.Fatalf("session %s is live after RevokeSubject", session.ID)
		}
	}
}

func TestRevokeSubjectLogsSessionsAtDebug(t *testing.T) {
	recorder := &logtest.Recorder{}
	f := newFixtureOn(t, nil, slog.New(recorder))
	ctx := context.Background()
	for range 3 {
		f.issue(t)
	}
	single := f.issue(t)

	if _, err := f.service.RevokeSession(ctx, single.Claims.SessionID); err != nil {
		t.Fatalf("RevokeSession: %v", err)
	}
	if _, _, err := f.service.RevokeSubject(ctx, "alice"); err != nil {
		t.Fatalf("RevokeSubject: %v", err)
	}

	count := func(level slog.Level) int {
		n := 0
		for _, record := range recorder.Records(level) {
			if record.Level == level && record.Message == "session revoked by administrator" {
				n++
			}
		}
		return n
	}
	if got := count(slog.LevelInfo); got != 1 {
		t.Errorf("%d session revocations logged at info, expected 1, from RevokeSession", got)
	}
	if got := count(slog.LevelDebug); got != 3 {
		t.Errorf("%d session revocations logged at debug, expected the 3 of RevokeSubject", got)
	}
}

func TestRevokeSubjectCountsUntilStoreFails(t *testing.T) {
	failing := &failingRevokes{}
	f := newFixtureOn(t, func(store authority.Store) authority.Store {
		failing.Store = store
		return failing
	}, discardLogger())
	ctx := context.Background()
	const sessions, allowed = 200, 10
	for range sessions {
		f.issue(t)
	}
	failing.allowed.Store(allowed)
	failing.fail.Store(true)

	count, revoked, err := f.service.RevokeSubject(ctx, "alice")
	if !errors.Is(err, errDiskFull) {
		t.Errorf("RevokeSubject with a failing store = %v, expected the store's error", err)
	}
	if count != allowed || len(revoked) != allowed {
		t.Errorf("RevokeSubject counted %d and listed %d sessions, expected the %d that the store took", count, len(revoked), allowed)
	}
	live := 0
	for _, session := range listAll(t, f.service, "alice") {
		if !session.Revoked() {
			live++
		}
	}
	if live != sessions-allowed {
		t.Errorf("%d sessions live after the failure, expected %d", live, sessions-allowed)
	}
	// The revocations under way when the first one failed may still run, but
	// no new ones start.
	if attempts := failing.attempts.Load(); attempts > allowed+64 {
		t.Errorf("the store got %d revocations of %d sessions after it failed from the 11th on, expected RevokeSubject to stop", attempts, sessions)
	}
}

// errDiskFull is the error of failingRevokes.
var errDiskFull = errors.New("disk full")

// failingRevokes is a store whose CompareAndSwap, once fail is set, writes
// allowed more sessions and then fails with errDiskFull.
type failingRevokes struct {
	authority.Store
	fail     atomic.Bool
	allowed  atomic.Int64
	attempts atomic.Int64
}

func (f *failingRevokes) CompareAndSwap(ctx context.Context, version uint64, session *authority.Session) error {
	if f.fail.Load() {
		f.attempts.Add(1)
		if f.allowed.Add(-1) < 0 {
			return errDiskFull
		}
	}
	return f.Store.CompareAndSwap(ctx, version, session)
}

func TestWatchRevocationsReasons(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	watcher := f.service.WatchRevocations()
	defer watcher.Close()

	loggedOut := f.authenticate(t, f.issue(t).Token)
	if _, err := f.service.Logout(ctx, loggedOut.Token); err != nil {
		t.Fatal(err)
	}
	if event := receiveEvent(t, watcher); event.Reason != authority.RevokedLogout || event.SessionID != loggedOut.Claims.SessionID {
		t.Errorf("event %+v, expected logout of %s", event, loggedOut.Claims.SessionID)
	}

	code := f.issue(t)
	reused := f.authenticate(t, code.Token)
	f.confirm(t, reused.Token)
	if _, err := f.service.Authenticate(ctx, code.Token); !errors.Is(err, authority.ErrTokenReused) {
		t.Fatal(err)
	}
	if event := receiveEvent(t, watcher); event.Reason != authority.RevokedReused || event.SessionID != reused.Claims.SessionID {
		t.Errorf("event %+v, expected reuse of %s", event, reused.Claims.SessionID)
	}

	watcher.Close()
	if _, ok := <-watcher.Events; ok {
		t.Error("Events still open after Close")
	}
}

func TestSlowWatcherIsDropped(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	watcher := f.service.WatchRevocations()
	defer watcher.Close()

	// More revocations than the watcher's buffer, none read.
	for range 1030 {
		if _, err := f.service.RevokeSession(ctx, f.issue(t).Claims.SessionID); err != nil {
			t.Fatal(err)
		}
	}
	count := 0
	for range watcher.Events {
		count++
	}
	if count >= 1030 {
		t.Fatalf("watcher received all %d events, expected it to be closed once its buffer was full", count)
	}
	if !errors.Is(watcher.Err(), authority.ErrEventsMissed) {
		t.Fatalf("Err of a dropped watcher = %v, expected ErrEventsMissed", watcher.Err())
	}
}

func TestServiceCloseEndsWatchers(t *testing.T) {
	f := newFixture(t)
	watcher := f.service.WatchRevocations()

	f.service.Close()
	if _, ok := <-watcher.Events; ok {
		t.Fatal("Events still open after the Service closed")
	}
	if !errors.Is(watcher.Err(), authority.ErrServiceClosed) {
		t.Fatalf("Err = %v, expected ErrServiceClosed", watcher.Err())
	}
}

func TestIssueCodeRejectsControlCharacter(t *testing.T) {
	f := newFixture(t)
	if _, err := f.service.IssueCode(context.Background(), "ali\x00ce", nil); !errors.Is(err, authority.ErrInvalidArgument) {
		t.Fatalf("IssueCode with NUL = %v, expected ErrInvalidArgument", err)
	}
}
