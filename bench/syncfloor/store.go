//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/sockauth/sockauth/authority"
	"github.com/sockauth/sockauth/authority/badgerstore"
)

// sessionStore is the authority's Badger store with one session per caller,
// which the store phase rotates as Authenticate does.
type sessionStore struct {
	store *badgerstore.Store
	// badger is the database of the phase with Badger's own synced writes.
	badger *syncedBadger
	// ids holds the ids of the sessions that no call is rotating, so that
	// no two calls rotate one session at once.
	ids chan string
}

// openSessionStore opens the store in dir as `sockauth serve` opens its own,
// creates the given number of sessions in it, and opens the database of
// Badger's own synced writes beside it.
func openSessionStore(dir string, sessions int) (*sessionStore, error) {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	store, err := badgerstore.Open(dir, badgerstore.Options{Logger: logger})
	if err != nil {
		return nil, err
	}
	s := &sessionStore{store: store, ids: make(chan string, sessions)}
	s.badger, err = openSyncedBadger(dir+"-synced", sessions, logger)
	if err != nil {
		return nil, errors.Join(err, store.Close())
	}
	for range sessions {
		session := newBenchSession()
		if err := store.Create(context.Background(), session); err != nil {
			return nil, errors.Join(fmt.Errorf("create a benchmark session: %w", err), s.close())
		}
		s.ids <- session.ID
	}
	return s, nil
}

// newBenchSession returns a new live session with one claim, as a login
// creates it.
func newBenchSession() *authority.Session {
	now := time.Now().Truncate(time.Second)
	return &authority.Session{
		ID: newTokenID(), Subject: "bench", Claims: map[string]string{"role": "member"},
		CurrentTokenID: newTokenID(), CurrentIssuedAt: now, CurrentExpiresAt: now.Add(time.Hour),
		RotatedAt: now, Generation: 1, CreatedAt: now, ExpiresAt: now.Add(24 * time.Hour),
		RetainUntil: now.Add(25 * time.Hour), Version: 1,
	}
}

// close closes both databases.
func (s *sessionStore) close() error {
	return errors.Join(s.store.Close(), s.badger.db.Close())
}

// rotate loads a session and stores its successor record, as a rotation
// does after its token work.
func (s *sessionStore) rotate(ctx context.Context) error {
	var id string
	select {
	case id = <-s.ids:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { s.ids <- id }()

	session, err := s.store.Get(ctx, id)
	if err != nil {
		return err
	}
	now := time.Now()
	next := *session
	next.Version++
	next.PreviousTokenID = session.CurrentTokenID
	next.CurrentTokenID = newTokenID()
	next.CurrentIssuedAt = now.Truncate(time.Second)
	next.CurrentExpiresAt = next.CurrentIssuedAt.Add(time.Hour)
	next.RotatedAt = now
	next.Confirmed = false
	next.Generation++
	return s.store.CompareAndSwap(ctx, session.Version, &next)
}

// stats returns the store's counters of writes and syncs.
func (s *sessionStore) stats() logStats {
	stats := s.store.Stats()
	return logStats{syncs: stats.Syncs, writes: stats.Writes, syncTime: stats.SyncTime}
}

// syncedBadger is a Badger database with Badger's own synced writes and the
// store's options, with one key per caller.
type syncedBadger struct {
	db   *badger.DB
	keys chan []byte
	// value is a session record as the store writes it.
	value []byte
}

// openSyncedBadger opens a database in dir with the store's options and
// SyncWrites on, and picks the given number of keys.
func openSyncedBadger(dir string, keys int, logger *slog.Logger) (*syncedBadger, error) {
	db, err := badger.Open(badgerstore.BadgerOptions(dir, badgerstore.Options{Logger: logger}).WithSyncWrites(true))
	if err != nil {
		return nil, err
	}
	// The record of a session after one rotation.
	rotated := newBenchSession()
	rotated.PreviousTokenID, rotated.RotatedAt = newTokenID(), time.Now()
	rotated.Generation, rotated.Version = 2, 2
	value, err := authority.MarshalSession(rotated)
	if err != nil {
		return nil, errors.Join(err, db.Close())
	}
	b := &syncedBadger{db: db, keys: make(chan []byte, keys), value: value}
	for range keys {
		b.keys <- []byte("s/" + newTokenID())
	}
	return b, nil
}

// rotate reads a key and writes it again in one transaction, which Badger
// commits with a sync.
func (b *syncedBadger) rotate(ctx context.Context) error {
	var key []byte
	select {
	case key = <-b.keys:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { b.keys <- key }()

	return b.db.Update(func(txn *badger.Txn) error {
		if _, err := txn.Get(key); err != nil && !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		return txn.Set(key, b.value)
	})
}
