package badgerstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/sockauth/sockauth/authority"
)

// maxBatchOps bounds the writes combined into one Badger transaction.
const maxBatchOps = 256

// errClosed is returned for writes submitted after Close.
var errClosed = errors.New("badger store is closed")

// writeOp is one Create or CompareAndSwap waiting for its sync, or a barrier
// that only waits for the next sync.
type writeOp struct {
	create bool
	// barrier marks an op that writes nothing: it completes after a sync that
	// started after the op was queued.
	barrier bool
	session *authority.Session
	value   []byte
	// stored is session as decoded from value, for the cache.
	stored          *authority.Session
	expectedVersion uint64
	// checkErr is the error of the write's own check, or nil. It is returned
	// after the next sync, because the state it was checked against may not be
	// durable yet, and a caller that retries at once would read the same state
	// again.
	checkErr error
	// done receives the outcome once the transaction holding the write has
	// been committed and a later sync has made it durable, or once the write's
	// own check failed. Its buffer of one lets the sync stage send without
	// waiting for the writer.
	done chan error
}

// newWriteOp returns the creation of session, or its replacement when the
// stored version is expectedVersion. It encodes the record, and keeps for the
// cache the session as a later read of the record would return it.
func newWriteOp(session *authority.Session, create bool, expectedVersion uint64) (*writeOp, error) {
	value, err := authority.MarshalSession(session)
	if err != nil {
		return nil, err
	}
	return &writeOp{create: create, session: session, value: value, stored: authority.StoredSession(session),
		expectedVersion: expectedVersion, done: make(chan error, 1)}, nil
}

// write applies op's check and set to the open transaction and waits until
// a sync covers it.
//
// Badger runs with SyncWrites off, and the store syncs its logs itself. Each
// writer applies its write to the open transaction, and the sync stage
// commits that transaction in memory, syncs Badger's logs and then releases the
// waiters of every transaction committed before that sync started. While one
// sync runs, writers already apply the next transaction, so syncs follow each
// other without a gap and each covers every write that arrived during the
// previous one. The open transaction is the only writer of session records,
// so transactions never conflict, and each write's check-and-set reads the
// writes committed before it, synced or not. The one other writer,
// ListBySubject's deletion of stale index keys, writes only index keys,
// which these transactions never read.
func (s *Store) write(ctx context.Context, op *writeOp) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.submit(op); err != nil {
		return err
	}

	// Once applied, the write will be committed; waiting for its outcome is
	// not cancelled, so the caller never reports a failure for a stored write.
	return <-op.done
}

// batchState is the open transaction and the writes that wait for a sync.
type batchState struct {
	mu sync.Mutex // guards the fields below
	// txn is the open transaction, or nil, and applied are its writes and
	// barriers in the order they were applied.
	txn     *badger.Txn
	applied []*writeOp
	// pending maps the id of each session written in txn to its new record,
	// which the cache does not hold before the commit.
	pending map[string]*authority.Session
	// committed are the writes of transactions committed since the last
	// round started. seq is the sequence number of the newest transaction, and
	// roundSeq is that of the newest one that a round covers.
	committed []*writeOp
	seq       uint64
	roundSeq  uint64
	// valueLog is set when a write applied since the last round started may
	// have gone to Badger's value log.
	valueLog bool
	// collecting counts the value-log collections under way. Every round
	// syncs the value log while one runs.
	collecting int
	// closing rejects new writes once Close has started.
	closing bool

	// wake signals the sync stage that there is work or that Close started.
	wake chan struct{}
}

// submit applies op to the open transaction, or returns the error that
// rejects it: its own check failed, the store is closing, or a sync failed.
func (s *Store) submit(op *writeOp) error {
	s.batch.mu.Lock()
	defer s.batch.mu.Unlock()
	if s.batch.closing {
		return errClosed
	}
	if err := s.failure(); err != nil {
		return err
	}

	if !op.barrier {
		err := s.applyLocked(op)
		switch {
		case errors.Is(err, authority.ErrConflict), errors.Is(err, authority.ErrExists),
			errors.Is(err, authority.ErrNotFound):
			op.checkErr = err
		case err != nil:
			return err
		}
	}
	s.batch.applied = append(s.batch.applied, op)
	if op.barrier || s.valueLogFrom == 0 || len(op.value) >= s.valueLogFrom {
		s.batch.valueLog = true
	}
	s.wakeSyncer()
	return nil
}

func (s *Store) wakeSyncer() {
	select {
	case s.batch.wake <- struct{}{}:
	default:
	}
}

// applyLocked performs op's check and set in the open transaction, which it
// commits first when it holds maxBatchOps ops or has no room for op.
func (s *Store) applyLocked(op *writeOp) error {
	b := &s.batch
	if len(b.applied) >= maxBatchOps {
		s.commitLocked()
	}
	if b.txn == nil {
		b.txn = s.db.NewTransaction(true)
	}

	err := s.applyWrite(b.txn, op)
	if errors.Is(err, badger.ErrTxnTooBig) && len(b.applied) > 0 {
		s.commitLocked()
		b.txn = s.db.NewTransaction(true)
		err = s.applyWrite(b.txn, op)
	}
	if err == nil {
		b.pending[op.session.ID] = op.stored
	}
	return err
}

// commitLocked commits the open transaction in memory and moves its ops to
// the writes that wait for a sync. The sessions it writes are marked unsynced
// before the commit makes them visible, so that no reader acts on a record
// that a crash could still lose.
func (s *Store) commitLocked() {
	b := &s.batch
	txn, applied := b.txn, b.applied
	b.txn, b.applied = nil, nil
	clear(b.pending)
	if txn == nil {
		b.committed = append(b.committed, applied...)
		return
	}

	b.seq++
	s.markUnsynced(applied, b.seq)
	err := txn.Commit()
	if err != nil {
		s.log.Error("badger commit failed", "writes", len(applied), "error", err)
		err = fmt.Errorf("commit to badger: %w", err)
		for _, op := range applied {
			op.done <- err
		}
		return
	}
	s.stats.batches.Add(1)
	records := make([]*authority.Session, 0, len(applied))
	for _, op := range applied {
		if !op.barrier && op.checkErr == nil {
			records = append(records, op.stored)
		}
	}
	s.stats.writes.Add(uint64(len(records)))
	s.cache.put(records, time.Now())
	b.committed = append(b.committed, applied...)
}

// nextRound commits the open transaction and returns a round of every write
// committed since the last one. It waits while there is none, and reports
// false once the store is closing and nothing is left.
func (s *Store) nextRound() (syncRound, bool) {
	for {
		s.batch.mu.Lock()
		round, ok := s.takeRoundLocked()
		closing := s.batch.closing
		s.batch.mu.Unlock()

		switch {
		case ok:
			return round, true
		case closing:
			return syncRound{}, false
		}
		<-s.batch.wake
	}
}

// takeRoundLocked commits the open transaction and takes the committed
// writes, and reports whether there was anything to sync: writes, barriers,
// or marks left by a failed commit. After a failed sync it fails every
// waiting op instead.
func (s *Store) takeRoundLocked() (syncRound, bool) {
	b := &s.batch
	if err := s.failure(); err != nil {
		s.abortLocked(err)
		return syncRound{}, false
	}
	if b.txn != nil || len(b.applied) > 0 {
		s.commitLocked()
	}
	if len(b.committed) == 0 && b.seq == b.roundSeq {
		return syncRound{}, false
	}

	round := syncRound{waiters: b.committed, seq: b.seq, valueLog: b.valueLog || b.collecting > 0}
	b.committed = nil
	b.roundSeq = b.seq
	b.valueLog = false
	return round, true
}

// abortLocked fails every op that waits for a sync, after a sync failed. The
// open transaction is discarded. Committed transactions stay visible, but
// their sessions stay marked unsynced, so reads of them fail as well.
func (s *Store) abortLocked(err error) {
	b := &s.batch
	if b.txn != nil {
		b.txn.Discard()
		b.txn = nil
	}
	clear(b.pending)
	for _, op := range b.applied {
		op.done <- err
	}
	for _, op := range b.committed {
		op.done <- err
	}
	b.applied, b.committed = nil, nil
	b.roundSeq = b.seq
}

// applyWrite performs one write's check and set inside txn.
func (s *Store) applyWrite(txn *badger.Txn, op *writeOp) error {
	if op.create {
		if _, found := s.newestLocked(op.session.ID); found {
			return authority.ErrExists
		}
		_, err := txn.Get(sessionKey(op.session.ID))
		if err == nil {
			return authority.ErrExists
		}
		if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		return setSession(txn, op.session, op.value, true)
	}

	stored, found := s.newestLocked(op.session.ID)
	if !found {
		var err error
		if stored, err = load(txn, op.session.ID); err != nil {
			return err
		}
	}
	if stored.Version != op.expectedVersion {
		return authority.ErrConflict
	}
	firstExchange := stored.Generation == 0 && op.session.Generation > 0
	return setSession(txn, op.session, op.value, firstExchange || stored.Subject != op.session.Subject)
}

// newestLocked returns the newest record of session id without reading
// Badger: written earlier in the open transaction, or cached. Finding none
// means only that Badger must be asked.
func (s *Store) newestLocked(id string) (*authority.Session, bool) {
	if session, ok := s.batch.pending[id]; ok {
		return session, true
	}
	return s.cache.peek(id, time.Now())
}
