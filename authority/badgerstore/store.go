// Package badgerstore is the default authority.Store: session records in an
// embedded Badger database with synced writes, so an acknowledged rotation or
// revocation survives a crash of the process or the machine.
package badgerstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/sockauth/sockauth/authority"
)

// retainGrace keeps a record a little past its RetainUntil, so that clock skew
// between replicas and Badger's whole-second TTLs never drop a record that a
// token still refers to.
const retainGrace = time.Minute

// Options configures a Store. Zero values take the defaults of DefaultOptions.
type Options struct {
	// Logger receives Badger's warnings and errors and value-log GC results;
	// default slog.Default().
	Logger *slog.Logger
	// GCInterval is the period of value-log garbage collection; default 10 min.
	GCInterval time.Duration
	// InMemory keeps the database in memory only, for tests; Dir is ignored.
	InMemory bool
	// CacheSessions is how many recently written sessions are kept in memory
	// for reads; default DefaultCacheSessions, and a negative value turns the
	// cache off.
	CacheSessions int

	// wrapSync, when set, runs each sync round in place of the real sync,
	// which it receives; tests use it to delay or fail syncs.
	wrapSync func(sync func() error) error
	// releaseInterval is the period of the release of written tables'
	// pages; default defaultReleaseInterval.
	releaseInterval time.Duration
	// tuneBadger, when set, changes the Badger options before Open; tests
	// use it for small files.
	tuneBadger func(badger.Options) badger.Options
}

// DefaultOptions returns the default options.
func DefaultOptions() Options {
	return Options{Logger: slog.Default(), GCInterval: 10 * time.Minute, CacheSessions: DefaultCacheSessions}
}

// Store is an authority.Store on Badger. It is safe for concurrent use within
// one process; Badger locks the folder against other processes.
type Store struct {
	db       *badger.DB
	log      *slog.Logger
	inMemory bool
	batch    batchState
	sync     syncState
	cache    *sessionCache
	// sealed is used by the sync stage only.
	sealed *sealedLogs
	// valueLogFrom is the smallest value that Badger writes to its value log
	// instead of the memtable's write-ahead log, or 0 when Badger chooses
	// the threshold itself.
	valueLogFrom int
	// syncLogs runs the sync of one round. Its argument is set when a write
	// of the round may have gone to the value log.
	syncLogs func(valueLog bool) error
	// syncDB is db.Sync, which syncs the active memtable's write-ahead log
	// and the value log. Tests count its calls.
	syncDB  func() error
	stats   syncCounters
	metrics *storeMetrics
	// beforeRewrite and afterRewrite, when set, run just before and just
	// after Badger's value-log collection. Tests use them to interleave
	// writes.
	beforeRewrite, afterRewrite func()
	// beforeRelease, when set, runs after a pass over written tables has
	// taken hold of the tables it is about to release, with their ids.
	// Tests use it to delete the tables meanwhile.
	beforeRelease func(ids map[uint64]bool)

	// tableDir is the folder of Badger's tables as /proc/self/maps names it,
	// fixed at Open. released holds the ids of the tables whose written pages
	// the store released or that were present at Open, and only the release
	// loop uses it.
	tableDir string
	released map[uint64]bool
	// warnedUnmapped is set once a release found none of its tables mapped
	// under tableDir and logged so.
	warnedUnmapped atomic.Bool
	// countMu is held for reading by each count of the sessions and for
	// writing by Close around Badger's close. Badger unmaps every table at
	// close, referenced or not, so a count's release must not overlap it.
	countMu sync.RWMutex
	// dbClosed is set under countMu once Badger is closed.
	dbClosed bool

	// stopBackground ends garbage collection and the release of table pages,
	// which Close waits for in background before it stops the sync stage.
	stopBackground chan struct{}
	background     sync.WaitGroup
	closed         sync.Once
	// wg waits for the sync stage.
	wg sync.WaitGroup
}

var _ authority.Store = (*Store)(nil)

// Open opens or creates the database in dir.
func Open(dir string, opts Options) (*Store, error) {
	defaults := DefaultOptions()
	if opts.Logger == nil {
		opts.Logger = defaults.Logger
	}
	if opts.GCInterval == 0 {
		opts.GCInterval = defaults.GCInterval
	}
	if opts.CacheSessions == 0 {
		opts.CacheSessions = defaults.CacheSessions
	}
	if opts.releaseInterval == 0 {
		opts.releaseInterval = defaultReleaseInterval
	}

	// Badger v4.9.6 names its pid file with filepath.Abs, which follows
	// $PWD through symbolic links, while the kernel resolves a leading ".."
	// from the real working folder. The resolved path gives both one folder.
	badgerOpts := badgerOptions(resolvedDir(dir), opts)
	if opts.tuneBadger != nil {
		badgerOpts = opts.tuneBadger(badgerOpts)
	}
	db, err := badger.Open(badgerOpts)
	if err != nil {
		return nil, fmt.Errorf("open badger database in %q: %w", dir, err)
	}

	s := &Store{
		db:             db,
		log:            opts.Logger,
		inMemory:       opts.InMemory,
		batch:          batchState{wake: make(chan struct{}, 1), pending: map[string]*authority.Session{}},
		cache:          newSessionCache(opts.CacheSessions),
		sync:           syncState{unsynced: map[string]uint64{}, ended: make(chan struct{})},
		sealed:         newSealedLogs(db.Opts().Dir, db.Opts().ValueDir),
		tableDir:       resolvedDir(db.Opts().Dir),
		stopBackground: make(chan struct{}),
	}
	if db.Opts().VLogPercentile == 0 {
		s.valueLogFrom = int(db.Opts().ValueThreshold)
	}
	s.metrics = newStoreMetrics(s)
	s.syncDB = db.Sync
	s.syncLogs = s.syncBadgerLogs
	if opts.wrapSync != nil {
		s.syncLogs = func(valueLog bool) error {
			return opts.wrapSync(func() error { return s.syncBadgerLogs(valueLog) })
		}
	}

	s.wg.Add(1)
	go s.syncLoop()
	if !opts.InMemory {
		s.background.Add(1)
		go s.runEvery(opts.GCInterval, s.collectGarbage)
		if releaseSupported {
			s.released = s.tableIDs()
			s.background.Add(1)
			go s.runEvery(opts.releaseInterval, s.releaseWrittenTablesOrStop)
		}
	}
	return s, nil
}

// Create stores a new session, or returns authority.ErrExists.
func (s *Store) Create(ctx context.Context, session *authority.Session) error {
	op, err := newWriteOp(session, true, 0)
	if err != nil {
		return err
	}
	if err := s.write(ctx, op); err != nil {
		return fmt.Errorf("create session %s: %w", session.ID, err)
	}
	return nil
}

// Get returns the session with the given id, or authority.ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (*authority.Session, error) {
	// The record is read before waitSynced checks the marks, which are set
	// before a commit makes a record visible, in Badger and in the cache.
	session, cached := s.cache.get(id, time.Now())
	if !cached {
		err := s.db.View(func(txn *badger.Txn) error {
			var err error
			session, err = load(txn, id)
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	if err := s.waitSynced(ctx, id); err != nil {
		return nil, fmt.Errorf("session %s: %w", id, err)
	}
	return session, nil
}

// CompareAndSwap replaces the session when its stored version is
// expectedVersion.
func (s *Store) CompareAndSwap(ctx context.Context, expectedVersion uint64, next *authority.Session) error {
	op, err := newWriteOp(next, false, expectedVersion)
	if err != nil {
		return err
	}
	return s.write(ctx, op)
}

// maxStaleIndexKeys bounds how many index keys without a record one page of
// ListBySubject reads besides its sessions, so that a page of a subject with
// very many forgotten sessions still returns soon. Such a page can be short,
// even empty, with a next cursor.
const maxStaleIndexKeys = 10000

// ListBySubject returns a page of the stored sessions of subject from its
// index keys, in the order of their ids. A cursor is the id of the last
// index key that the previous page read.
//
// An index key outlives its record, which Badger drops once the session is
// forgotten. ListBySubject deletes the index keys that it finds without a
// record, so that later pages and listings skip them.
func (s *Store) ListBySubject(ctx context.Context, subject, cursor string, limit int) ([]*authority.Session, string, error) {
	if limit <= 0 {
		return nil, "", fmt.Errorf("list sessions of %q: page size %d: %w", subject, limit, authority.ErrInvalidArgument)
	}

	var (
		sessions []*authority.Session
		stale    [][]byte
		next     string
	)
	err := s.db.View(func(txn *badger.Txn) error {
		prefix := subjectPrefix(subject)
		iter := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer iter.Close()

		last := ""
		for iter.Seek(append(bytes.Clone(prefix), cursor...)); iter.Valid(); iter.Next() {
			id := string(iter.Item().Key()[len(prefix):])
			if cursor != "" && id == cursor {
				continue
			}
			if len(sessions) == limit || len(stale) == maxStaleIndexKeys {
				next = last
				break
			}
			last = id

			session, err := load(txn, id)
			if errors.Is(err, authority.ErrNotFound) {
				stale = append(stale, iter.Item().KeyCopy(nil))
				continue
			}
			if err != nil {
				return err
			}
			sessions = append(sessions, session)
		}
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("list sessions of %q: %w", subject, err)
	}
	s.deleteStaleIndexKeys(subject, stale)
	for _, session := range sessions {
		if err := s.waitSynced(ctx, session.ID); err != nil {
			return nil, "", fmt.Errorf("list sessions of %q: session %s: %w", subject, session.ID, err)
		}
	}
	return sessions, next, nil
}

// deleteStaleIndexKeys deletes index keys whose records are gone. A record
// never comes back once Badger has dropped it, because session ids are not
// reused. The deletes need no sync: one that a crash loses is repeated by
// a later listing. A failure is logged, and the listing goes on.
func (s *Store) deleteStaleIndexKeys(subject string, keys [][]byte) {
	if len(keys) == 0 {
		return
	}
	batch := s.db.NewWriteBatch()
	defer batch.Cancel()
	for _, key := range keys {
		if err := batch.Delete(key); err != nil {
			s.log.Warn("deleting index keys of forgotten sessions failed", "sub", subject, "keys", len(keys), "error", err)
			return
		}
	}
	if err := batch.Flush(); err != nil {
		s.log.Warn("deleting index keys of forgotten sessions failed", "sub", subject, "keys", len(keys), "error", err)
		return
	}
	s.log.Debug("index keys of forgotten sessions deleted", "sub", subject, "keys", len(keys))
}

// Close stops garbage collection, commits and syncs the writes already
// queued, releases their waiters and closes the database. Writes submitted
// after Close starts fail. It is safe to call more than once.
func (s *Store) Close() error {
	var err error
	s.closed.Do(func() {
		close(s.stopBackground)
		s.background.Wait()

		s.batch.mu.Lock()
		s.batch.closing = true
		s.batch.mu.Unlock()
		s.wakeSyncer()
		s.wg.Wait()

		stats := s.Stats()
		s.log.Info("badger store closed", "transactions", stats.Transactions, "writes", stats.Writes,
			"syncs", stats.Syncs)
		s.countMu.Lock()
		defer s.countMu.Unlock()
		s.dbClosed = true
		err = s.db.Close()
	})
	return err
}

// runEvery calls work every interval until Close, or until work returns
// false. It runs as one of the store's background goroutines.
func (s *Store) runEvery(interval time.Duration, work func() bool) {
	defer s.background.Done()
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-s.stopBackground:
			return
		case <-ticker.C:
		}
		if !work() {
			return
		}
	}
}

// collectGarbage runs value-log garbage collection until no file is worth
// rewriting. Each successful run rewrites one value-log file.
func (s *Store) collectGarbage() bool {
	for {
		err := s.runValueLogGC()
		if err == nil {
			continue
		}
		if !errors.Is(err, badger.ErrNoRewrite) && !errors.Is(err, badger.ErrRejected) {
			s.log.Warn("badger value-log garbage collection failed", "error", err)
		}
		return true
	}
}

// runValueLogGC runs one value-log garbage collection and syncs its writes.
//
// Badger copies the live values of the chosen file into the newest value-log
// file and then deletes the old file, at once unless an iterator is open, in
// which case the last iterator to close deletes it (badger v4.9.6,
// valueLog.rewrite). With SyncWrites off the copies are not durable when the
// deletion would happen, so an iterator stays open until a sync covered them.
//
// NOTE: a test runs collections that rewrite and delete files and checks
// the sessions after a reopen, but none crashes the process during one, so
// the order of the copies' sync and the deletion relies on reading the
// Badger source. A power loss during a collection can still lose moved
// values: the kernel's own write-back, or a memtable flush, can make a
// pointer in the memtable's log durable before the store syncs the value it
// points to. When the closing sync fails, closing the iterator still lets
// Badger delete the old file.
func (s *Store) runValueLogGC() error {
	// The collection moves live values into the newest value-log file and
	// writes pointers to them into the memtable's log. Rounds sync the value
	// log while it runs, and the first barrier waits for a round that started
	// earlier and may sync the memtable's log alone.
	s.batch.mu.Lock()
	s.batch.collecting++
	s.batch.mu.Unlock()
	defer func() {
		s.batch.mu.Lock()
		s.batch.collecting--
		s.batch.mu.Unlock()
	}()
	if err := s.write(context.Background(), newBarrier()); err != nil {
		return fmt.Errorf("sync before value-log garbage collection: %w", err)
	}

	txn := s.db.NewTransaction(false)
	defer txn.Discard()
	iter := txn.NewIterator(badger.IteratorOptions{Prefix: []byte("gc-hold/")})
	defer iter.Close()

	if s.beforeRewrite != nil {
		s.beforeRewrite()
	}
	err := s.db.RunValueLogGC(0.5)
	if errors.Is(err, badger.ErrNoRewrite) || errors.Is(err, badger.ErrRejected) {
		return err
	}
	if s.afterRewrite != nil {
		s.afterRewrite()
	}
	if syncErr := s.write(context.Background(), newBarrier()); syncErr != nil {
		return errors.Join(err, fmt.Errorf("sync after value-log garbage collection: %w", syncErr))
	}
	return err
}

// newBarrier returns an op that writes nothing and completes after the next
// sync that starts once it is queued.
func newBarrier() *writeOp {
	return &writeOp{barrier: true, done: make(chan error, 1)}
}

func load(txn *badger.Txn, id string) (*authority.Session, error) {
	item, err := txn.Get(sessionKey(id))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, authority.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read session %s: %w", id, err)
	}

	var session *authority.Session
	err = item.Value(func(value []byte) error {
		session, err = authority.UnmarshalSession(id, value)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("session %s: %w", id, err)
	}
	return session, nil
}

// recordTTL returns how long Badger keeps a record: until its RetainUntil,
// plus a grace period.
func recordTTL(session *authority.Session) time.Duration {
	return max(time.Until(session.RetainUntil)+retainGrace, retainGrace)
}

// setSession writes the record. The subject index key is written with the
// record when withIndex is set: at creation, with the code's lifetime, and at
// the code's exchange, with the session's maximum age, which no later
// rotation exceeds. Rotations in between skip the second write.
func setSession(txn *badger.Txn, session *authority.Session, value []byte, withIndex bool) error {
	if err := txn.SetEntry(badger.NewEntry(sessionKey(session.ID), value).WithTTL(recordTTL(session))); err != nil {
		return err
	}
	if !withIndex {
		return nil
	}
	ttl := recordTTL(session)
	if session.Generation > 0 {
		ttl = max(time.Until(session.ExpiresAt)+retainGrace, ttl)
	}
	indexKey := append(subjectPrefix(session.Subject), session.ID...)
	return txn.SetEntry(badger.NewEntry(indexKey, nil).WithTTL(ttl))
}

func sessionKey(id string) []byte {
	return append([]byte("session/"), id...)
}

// subjectPrefix starts the index keys of a subject. Subjects contain no
// control characters, so the NUL byte ends the subject unambiguously.
func subjectPrefix(subject string) []byte {
	key := append([]byte("subject/"), subject...)
	return append(key, 0)
}

// badgerLogger forwards Badger's log lines to slog; its info and debug lines
// are too chatty for a service log and go to debug.
type badgerLogger struct{ log *slog.Logger }

func (l badgerLogger) Errorf(format string, args ...any) {
	l.log.Error("badger: " + trimNewline(fmt.Sprintf(format, args...)))
}

func (l badgerLogger) Warningf(format string, args ...any) {
	l.log.Warn("badger: " + trimNewline(fmt.Sprintf(format, args...)))
}

func (l badgerLogger) Infof(format string, args ...any) { l.debugf(format, args...) }

func (l badgerLogger) Debugf(format string, args ...any) { l.debugf(format, args...) }

// debugf formats a line only when debug logging is on, because Badger's
// write goroutine logs several debug lines for every batch of writes.
func (l badgerLogger) debugf(format string, args ...any) {
	if !l.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	l.log.Debug("badger: " + trimNewline(fmt.Sprintf(format, args...)))
}

func trimNewline(s string) string {
	for len(s) > 0 && s[len(s)-1] == '\n' {
		s = s[:len(s)-1]
	}
	return s
}
