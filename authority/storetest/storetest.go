// Package storetest is the conformance suite that every authority.Store
// implementation must pass.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sockauth/sockauth/authority"
)

// Run runs the conformance suite. open returns an empty store and registers
// its cleanup on t.
func Run(t *testing.T, open func(t *testing.T) authority.Store) {
	t.Run("CreateThenGet", func(t *testing.T) { testCreateThenGet(t, open(t)) })
	t.Run("CreateExisting", func(t *testing.T) { testCreateExisting(t, open(t)) })
	t.Run("GetUnknown", func(t *testing.T) { testGetUnknown(t, open(t)) })
	t.Run("CompareAndSwap", func(t *testing.T) { testCompareAndSwap(t, open(t)) })
	t.Run("CompareAndSwapStale", func(t *testing.T) { testCompareAndSwapStale(t, open(t)) })
	t.Run("CompareAndSwapUnknown", func(t *testing.T) { testCompareAndSwapUnknown(t, open(t)) })
	t.Run("CompareAndSwapRace", func(t *testing.T) { testCompareAndSwapRace(t, open(t)) })
	t.Run("ListBySubject", func(t *testing.T) { testListBySubject(t, open(t)) })
	t.Run("ListBySubjectPages", func(t *testing.T) { testListBySubjectPages(t, open(t)) })
	t.Run("PublishRevocation", func(t *testing.T) {
		store := open(t)
		publisher, ok := store.(authority.RevocationPublisher)
		if !ok {
			t.Skipf("%T does not publish revocation events", store)
		}
		testPublishRevocation(t, publisher)
	})
}

var sequence atomic.Int64

// NewSession returns a session with every field set and a unique id.
func NewSession() *authority.Session {
	now := time.Now().UTC().Truncate(time.Second)
	return &authority.Session{
		ID:               fmt.Sprintf("sid-%d-%d", time.Now().UnixNano(), sequence.Add(1)),
		Subject:          "alice",
		Claims:           map[string]string{"role": "member"},
		CurrentTokenID:   "jti-2",
		CurrentIssuedAt:  now,
		CurrentExpiresAt: now.Add(time.Hour),
		PreviousTokenID:  "jti-1",
		RotatedAt:        now,
		Confirmed:        true,
		Generation:       2,
		CreatedAt:        now.Add(-time.Minute),
		ExpiresAt:        now.Add(24 * time.Hour),
		RetainUntil:      now.Add(time.Hour),
		Version:          1,
	}
}

func testCreateThenGet(t *testing.T, store authority.Store) {
	want := NewSession()
	if err := store.Create(context.Background(), want); err != nil {
		t.Fatalf("Create: %v", err)
	}

	got, err := store.Get(context.Background(), want.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if !reflect.DeepEqual(normalize(got), normalize(want)) {
		t.Fatalf("Get returned\n%+v\nexpected\n%+v", got, want)
	}
}

func testCreateExisting(t *testing.T, store authority.Store) {
	session := NewSession()
	if err := store.Create(context.Background(), session); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if err := store.Create(context.Background(), session); !errors.Is(err, authority.ErrExists) {
		t.Fatalf("second Create = %v, expected ErrExists", err)
	}
}

func testGetUnknown(t *testing.T, store authority.Store) {
	if _, err := store.Get(context.Background(), "no-such-session"); !errors.Is(err, authority.ErrNotFound) {
		t.Fatalf("Get = %v, expected ErrNotFound", err)
	}
}

func testCompareAndSwap(t *testing.T, store authority.Store) {
	session := NewSession()
	if err := store.Create(context.Background(), session); err != nil {
		t.Fatalf("Create: %v", err)
	}

	next := *session
	next.Version = 2
	next.RevokedReason = authority.RevokedLogout
	next.RevokedAt = time.Now().UTC().Truncate(time.Second)
	if err := store.CompareAndSwap(context.Background(), 1, &next); err != nil {
		t.Fatalf("CompareAndSwap: %v", err)
	}

	got, err := store.Get(context.Background(), session.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if got.Version != 2 || got.RevokedReason != authority.RevokedLogout {
		t.Fatalf("after CompareAndSwap: version %d reason %q, expected 2 and logout", got.Version, got.RevokedReason)
	}
}

func testCompareAndSwapStale(t *testing.T, store authority.Store) {
	session := NewSession()
	if err := store.Create(context.Background(), session); err != nil {
		t.Fatalf("Create: %v", err)
	}

	next := *session
	next.Version = 8
	next.Generation = 99
	if err := store.CompareAndSwap(context.Background(), 7, &next); !errors.Is(err, authority.ErrConflict) {
		t.Fatalf("CompareAndSwap with a stale version = %v, expected ErrConflict", err)
	}
	got, err := store.Get(context.Background(), session.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if got.Generation != session.Generation {
		t.Fatalf("failed CompareAndSwap changed the generation to %d", got.Generation)
	}
}

func testCompareAndSwapUnknown(t *testing.T, store authority.Store) {
	session := NewSession()
	if err := store.CompareAndSwap(context.Background(), 1, session); !errors.Is(err, authority.ErrNotFound) {
		t.Fatalf("CompareAndSwap of an unknown session = %v, expected ErrNotFound", err)
	}
}

// testCompareAndSwapRace lets 20 writers swap from the same version at once:
// exactly one may win.
func testCompareAndSwapRace(t *testing.T, store authority.Store) {
	session := NewSession()
	if err := store.Create(context.Background(), session); err != nil {
		t.Fatalf("Create: %v", err)
	}

	const writers = 20
	var (
		wg    sync.WaitGroup
		wins  atomic.Int64
		start = make(chan struct{})
	)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			next := *session
			next.Version = 2
			next.CurrentTokenID = fmt.Sprintf("writer-%d", i)
			<-start
			err := store.CompareAndSwap(context.Background(), 1, &next)
			switch {
			case err == nil:
				wins.Add(1)
			case !errors.Is(err, authority.ErrConflict):
				t.Errorf("writer %d: %v, expected nil or ErrConflict", i, err)
			}
		}()
	}
	close(start)
	wg.Wait()

	if got := wins.Load(); got != 1 {
		t.Fatalf("%d writers won the swap from version 1, expected exactly 1", got)
	}
}

func testListBySubject(t *testing.T, store authority.Store) {
	ctx := context.Background()
	subject := fmt.Sprintf("user-%d", sequence.Add(1))
	want := map[string]bool{}
	for range 3 {
		session := NewSession()
		session.Subject = subject
		if err := store.Create(ctx, session); err != nil {
			t.Fatalf("Create: %v", err)
		}
		want[session.ID] = true
	}
	other := NewSession()
	other.Subject = subject + "-other"
	if err := store.Create(ctx, other); err != nil {
		t.Fatalf("Create: %v", err)
	}

	// A swap rewrites the index entry; it must not duplicate it.
	first, _, err := store.ListBySubject(ctx, subject, "", 10)
	if err != nil {
		t.Fatalf("ListBySubject: %v", err)
	}
	revoked := *first[0]
	revoked.Version++
	revoked.RevokedReason = authority.RevokedAdmin
	if err := store.CompareAndSwap(ctx, first[0].Version, &revoked); err != nil {
		t.Fatalf("CompareAndSwap: %v", err)
	}

	sessions, next, err := store.ListBySubject(ctx, subject, "", 10)
	if err != nil {
		t.Fatalf("ListBySubject: %v", err)
	}
	got := map[string]bool{}
	for _, session := range sessions {
		if session.Subject != subject {
			t.Errorf("listed session %s of subject %q, expected %q", session.ID, session.Subject, subject)
		}
		got[session.ID] = true
	}
	if len(sessions) != len(want) || !reflect.DeepEqual(got, want) {
		t.Fatalf("ListBySubject returned %d sessions %v, expected %v", len(sessions), got, want)
	}
	if next != "" {
		t.Errorf("ListBySubject of all 3 sessions in a page of 10 returned next cursor %q, expected none", next)
	}

	none, next, err := store.ListBySubject(ctx, "nobody", "", 10)
	if err != nil || len(none) != 0 || next != "" {
		t.Fatalf("ListBySubject of an unknown subject = %v, %q, %v; expected none", none, next, err)
	}
}

// testListBySubjectPages lists a subject's 7 sessions in pages of 2, 3, 7 and
// 8. The pages together must hold each session once, also when a session of
// the first page is revoked before the next page is read.
func testListBySubjectPages(t *testing.T, store authority.Store) {
	ctx := context.Background()
	subject := fmt.Sprintf("user-%d", sequence.Add(1))
	want := map[string]bool{}
	for range 7 {
		session := NewSession()
		session.Subject = subject
		if err := store.Create(ctx, session); err != nil {
			t.Fatalf("Create: %v", err)
		}
		want[session.ID] = true
	}

	for _, limit := range []int{2, 3, 7, 8} {
		got := map[string]bool{}
		cursor := ""
		for pages := 1; ; pages++ {
			if pages > 8 {
				t.Fatalf("pages of %d: still a next cursor after 8 pages", limit)
			}
			sessions, next, err := store.ListBySubject(ctx, subject, cursor, limit)
			if err != nil {
				t.Fatalf("pages of %d: ListBySubject: %v", limit, err)
			}
			if len(sessions) > limit {
				t.Fatalf("pages of %d: a page held %d sessions", limit, len(sessions))
			}
			for _, session := range sessions {
				if got[session.ID] {
					t.Errorf("pages of %d: session %s listed twice", limit, session.ID)
				}
				got[session.ID] = true
			}
			if next == "" {
				break
			}
			if pages == 1 {
				// Revoking a listed session must not move it into a later page.
				revoked := *sessions[0]
				revoked.Version++
				revoked.RevokedReason = authority.RevokedAdmin
				if err := store.CompareAndSwap(ctx, sessions[0].Version, &revoked); err != nil {
					t.Fatalf("CompareAndSwap: %v", err)
				}
			}
			cursor = next
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("pages of %d listed %d sessions %v, expected %v", limit, len(got), got, want)
		}
	}
}

func testPublishRevocation(t *testing.T, publisher authority.RevocationPublisher) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	received := make(chan authority.RevocationEvent, 1)
	err := publisher.SubscribeRevocations(ctx, func(event authority.RevocationEvent) { received <- event }, func() {})
	if err != nil {
		t.Fatalf("SubscribeRevocations: %v", err)
	}

	want := authority.RevocationEvent{SessionID: "sid-x", Subject: "alice", Reason: authority.RevokedAdmin,
		At: time.Now().UTC().Truncate(time.Second)}
	if err := publisher.PublishRevocation(ctx, want); err != nil {
		t.Fatalf("PublishRevocation: %v", err)
	}
	select {
	case got := <-received:
		if got.SessionID != want.SessionID || got.Reason != want.Reason || !got.At.Equal(want.At) {
			t.Fatalf("received %+v, expected %+v", got, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no revocation event within 5 s of publishing")
	}
}

// normalize strips monotonic clock readings and locations so that sessions
// that went through encoding compare equal.
func normalize(s *authority.Session) authority.Session {
	c := *s
	for _, tp := range []*time.Time{&c.CurrentIssuedAt, &c.CurrentExpiresAt, &c.RotatedAt, &c.CreatedAt, &c.ExpiresAt, &c.RevokedAt, &c.RetainUntil} {
		*tp = tp.UTC().Round(0)
	}
	return c
}
