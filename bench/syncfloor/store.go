//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/sys/unix"

	"github.com/sockauth/sockauth/authority"
	"github.com/sockauth/sockauth/authority/badgerstore"
)

// sessionStore is the authority's Badger store with one session per caller,
// which the store phase rotates as Authenticate does.
type sessionStore struct {
	store *badgerstore.Store
	// badger is the database of the phase with Badger's own synced writes,
	// and group that of the phase with the store's group commit alone.
	badger *syncedBadger
	group  *groupBadger
	// ids holds the ids of the sessions that no call is rotating, so that
	// no two calls rotate one session at once.
	ids chan string
}

// openSessionStore opens the store in dir as `sockauth serve` opens its own,
// creates the given number of sessions in it, and opens the databases of
// the two other Badger phases beside it.
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
	s.group, err = openGroupBadger(dir+"-group", sessions, logger)
	if err != nil {
		return nil, errors.Join(err, store.Close(), s.badger.db.Close())
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

// rotatedRecord returns the encoded record of a session after one
// rotation.
func rotatedRecord() ([]byte, error) {
	rotated := newBenchSession()
	rotated.PreviousTokenID, rotated.RotatedAt = newTokenID(), time.Now()
	rotated.Generation, rotated.Version = 2, 2
	return authority.MarshalSession(rotated)
}

// close closes the three databases.
func (s *sessionStore) close() error {
	err := errors.Join(s.store.Close(), s.badger.db.Close())
	if s.group != nil {
		err = errors.Join(err, s.group.close())
	}
	return err
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

// stats returns the counters of writes and syncs of the store and of the
// group-commit database, added together.
func (s *sessionStore) stats() logStats {
	stats := s.store.Stats()
	group := s.group.stats()
	return logStats{syncs: stats.Syncs + group.syncs, writes: stats.Writes + group.writes,
		syncTime: stats.SyncTime + group.syncTime}
}

// newKeys returns a channel that contains the given number of random keys.
func newKeys(count int) chan []byte {
	keys := make(chan []byte, count)
	for range count {
		keys <- []byte("s/" + newTokenID())
	}
	return keys
}

// takeKey takes a key that no other call writes, waiting for one until ctx
// ends. The caller puts it back when its write is done.
func takeKey(ctx context.Context, keys chan []byte) ([]byte, error) {
	select {
	case key := <-keys:
		return key, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
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
	value, err := rotatedRecord()
	if err != nil {
		return nil, errors.Join(err, db.Close())
	}
	return &syncedBadger{db: db, keys: newKeys(keys), value: value}, nil
}

// rotate reads a key and writes it again in one transaction, which Badger
// commits with a sync.
func (b *syncedBadger) rotate(ctx context.Context) error {
	key, err := takeKey(ctx, b.keys)
	if err != nil {
		return err
	}
	defer func() { b.keys <- key }()

	return b.db.Update(func(txn *badger.Txn) error {
		if _, err := txn.Get(key); err != nil && !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		return txn.Set(key, b.value)
	})
}

// maxGroupWrites bounds the writes of one transaction of groupBadger, as
// the store bounds its own.
const maxGroupWrites = 256

// groupBadger is a Badger database with the store's options that commits
// the writes of every waiting call in one transaction and then syncs the
// memtable's write-ahead log once for all of them, as the store's sync stage
// does. It leaves out the store's own work: the version check, the record's
// encoding, the cache and the marks of unsynced sessions.
type groupBadger struct {
	db    *badger.DB
	dir   string
	keys  chan []byte
	value []byte

	mu sync.Mutex // guards the fields below and the sends to wake
	// txn is the open transaction, or nil, and open are the calls that wrote
	// to it. committed are the calls of transactions committed by a writer
	// because txn was full, which the next sync covers.
	txn       *badger.Txn
	open      []chan error
	committed []chan error
	closed    bool
	// failed is the error of the first failed sync. Later writes fail with
	// it, as the store rejects writes once a sync failed, because the
	// kernel may have dropped the pages that the sync did not write.
	failed error
	// wake receives a value after a write, and closes when the database
	// closes.
	wake    chan struct{}
	stopped chan struct{}

	// wal is the newest write-ahead log of a memtable, which only the sync
	// loop uses, and walID its number.
	wal   *os.File
	walID uint64
	// syncFile makes a file's data durable, and syncName the name of the
	// file at a path. Tests replace them before the first write.
	syncFile func(*os.File) error
	syncName func(path string) error

	syncCounters
}

// openGroupBadger opens a database in dir with the store's options, picks
// the given number of keys and starts the sync loop.
func openGroupBadger(dir string, keys int, logger *slog.Logger) (*groupBadger, error) {
	db, err := badger.Open(badgerstore.BadgerOptions(dir, badgerstore.Options{Logger: logger}))
	if err != nil {
		return nil, err
	}
	value, err := rotatedRecord()
	if err != nil {
		return nil, errors.Join(err, db.Close())
	}
	g := &groupBadger{db: db, dir: dir, keys: newKeys(keys), value: value,
		wake: make(chan struct{}, 1), stopped: make(chan struct{}),
		syncFile: fdatasync, syncName: syncFolder}
	if err := g.openNewestWAL(); err != nil {
		return nil, errors.Join(err, db.Close())
	}
	go g.syncLoop()
	return g, nil
}

// openNewestWAL opens the memtable log with the highest number in the
// database's folder.
func (g *groupBadger) openNewestWAL() error {
	names, err := os.ReadDir(g.dir)
	if err != nil {
		return err
	}
	found := false
	for _, entry := range names {
		digits, ok := strings.CutSuffix(entry.Name(), ".mem")
		if !ok {
			continue
		}
		id, err := strconv.ParseUint(digits, 10, 64)
		if err == nil && (!found || id > g.walID) {
			g.walID, found = id, true
		}
	}
	if !found {
		return fmt.Errorf("no memtable log (*.mem) found in %s after Badger opened it", g.dir)
	}
	g.wal, err = os.Open(g.walPath(g.walID))
	return err
}

// walPath returns the path of memtable log id, named as badger v4.9.6
// names it.
func (g *groupBadger) walPath(id uint64) string {
	return filepath.Join(g.dir, fmt.Sprintf("%05d.mem", id))
}

// rotate writes the key of one caller into the open transaction and waits
// until a sync covers it.
func (g *groupBadger) rotate(ctx context.Context) error {
	key, err := takeKey(ctx, g.keys)
	if err != nil {
		return err
	}
	defer func() { g.keys <- key }()

	done := make(chan error, 1)
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return errLogClosed
	}
	if g.failed != nil {
		g.mu.Unlock()
		return g.failed
	}
	err = g.setLocked(key)
	if err == nil {
		g.open = append(g.open, done)
		select {
		case g.wake <- struct{}{}:
		default:
		}
	}
	g.mu.Unlock()
	if err != nil {
		return err
	}
	return <-done
}

// setLocked sets key in the open transaction, and first commits a full one.
func (g *groupBadger) setLocked(key []byte) error {
	if len(g.open) >= maxGroupWrites {
		if err := g.commitLocked(); err != nil {
			return err
		}
	}
	if g.txn == nil {
		g.txn = g.db.NewTransaction(true)
	}
	return g.txn.Set(key, g.value)
}

// commitLocked commits the open transaction in memory. Its calls then wait
// for the next sync, or receive the commit's error.
func (g *groupBadger) commitLocked() error {
	txn, open := g.txn, g.open
	g.txn, g.open = nil, nil
	if txn == nil {
		return nil
	}
	if err := txn.Commit(); err != nil {
		err = fmt.Errorf("commit to badger: %w", err)
		for _, done := range open {
			done <- err
		}
		return err
	}
	g.writes.Add(uint64(len(open)))
	g.committed = append(g.committed, open...)
	return nil
}

// syncLoop commits the open transaction, syncs the memtable's log and
// releases the calls, until close closes wake. A failed commit fails only
// its own calls, which never reach the sync, and the calls of earlier
// commits still wait for it.
func (g *groupBadger) syncLoop() {
	defer close(g.stopped)
	for range g.wake {
		g.mu.Lock()
		_ = g.commitLocked() // the calls of a failed commit received its error
		waiters, failed := g.committed, g.failed
		g.committed = nil
		g.mu.Unlock()
		if len(waiters) == 0 {
			continue
		}
		// Writes committed after a failed sync fail too, as in the store:
		// a later sync that succeeds does not bring back the lost pages.
		if failed != nil {
			for _, done := range waiters {
				done <- failed
			}
			continue
		}

		start := time.Now()
		err := g.syncWAL()
		if err != nil {
			err = fmt.Errorf("sync the memtable log of %s: %w", g.dir, err)
			g.mu.Lock()
			if g.failed == nil {
				g.failed = fmt.Errorf("writes are rejected since a sync failed: %w", err)
			}
			g.mu.Unlock()
		} else {
			g.addSync(time.Since(start))
		}
		for _, done := range waiters {
			done <- err
		}
	}
}

// syncWAL syncs the newest memtable log. When Badger has started newer ones
// since the last sync, it opens the next one, syncs the older one, syncs the
// folder for the new file's name and moves on.
func (g *groupBadger) syncWAL() error {
	for {
		path := g.walPath(g.walID + 1)
		next, err := os.Open(path)
		if errors.Is(err, fs.ErrNotExist) {
			break
		}
		if err != nil {
			return err
		}
		err = errors.Join(g.syncFile(g.wal), g.syncName(path))
		if err != nil {
			return errors.Join(err, next.Close())
		}
		// The older log is durable now, so an error in closing it loses
		// nothing.
		_ = g.wal.Close()
		g.wal, g.walID = next, g.walID+1
	}
	return g.syncFile(g.wal)
}

// fdatasync makes the data of f durable.
func fdatasync(f *os.File) error {
	if err := unix.Fdatasync(int(f.Fd())); err != nil {
		return fmt.Errorf("sync %s: %w", f.Name(), err)
	}
	return nil
}

// close stops the sync loop, fails the writes it did not take and closes
// the database. It must be called once.
func (g *groupBadger) close() error {
	g.mu.Lock()
	g.closed = true
	close(g.wake)
	g.mu.Unlock()
	<-g.stopped

	g.mu.Lock()
	left := append(g.committed, g.open...)
	if g.txn != nil {
		g.txn.Discard()
	}
	g.txn, g.open, g.committed = nil, nil, nil
	g.mu.Unlock()
	for _, done := range left {
		done <- errLogClosed
	}
	return errors.Join(g.wal.Close(), g.db.Close())
}
