package authority_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sockauth/sockauth/authority"
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

	revoked, err := f.service.RevokeSubject(ctx, "alice")
	if err != nil {
		t.Fatalf("RevokeSubject: %v", err)
	}
	if len(revoked) != 2 {
		t.Fatalf("RevokeSubject revoked %d sessions, expected the 2 live ones", len(revoked))
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

	sessions, err := f.service.ListSessions(ctx, "alice")
	if err != nil {
		t.Fatalf("ListSessions: %v", err)
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
	if _, err := f.service.ListSessions(ctx, ""); !errors.Is(err, authority.ErrInvalidArgument) {
		t.Errorf("ListSessions of an empty subject = %v, expected ErrInvalidArgument", err)
	}
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
