package badgerstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/sockauth/sockauth/authority"
)

// maxBatchOps bounds the writes combined into one Badger transaction.
const maxBatchOps = 256

// errClosed is returned for writes submitted after Close.
var errClosed = errors.New("badger store is closed")

// writeOp is one Create or CompareAndSwap waiting for the committer, or a
// barrier that only waits for the next sync.
type writeOp struct {
	create bool
	// barrier marks an op that writes nothing: it completes after a sync that
	// started after the op was queued.
	barrier         bool
	session         *authority.Session
	value           []byte
	expectedVersion uint64
	// done receives the outcome once the transaction holding the write has
	// been committed and a later sync has made it durable, or once the write's
	// own check failed.
	done chan error
}

// write hands op to the committer and waits for its outcome.
//
// Badger runs with SyncWrites off, and the store syncs its logs itself: the
// committer applies the queued writes in one transaction and commits it in
// memory, and the sync stage calls db.Sync and then releases the waiters of
// every transaction committed before that sync started. While one sync runs,
// the committer already applies the writes that arrive, so syncs follow each
// other without a gap and each covers every write that queued up during the
// previous one. The committer is the only writer, so its transactions never
// conflict, and each write's check-and-set sees the writes committed before
// it, synced or not.
func (s *Store) write(ctx context.Context, op *writeOp) error {
	op.done = make(chan error, 1)

	// Holding the read lock while queueing guarantees that Close, which takes
	// the write lock, sees every queued write before the committer stops.
	s.closeMu.RLock()
	if s.closing {
		s.closeMu.RUnlock()
		return errClosed
	}
	select {
	case s.ops <- op:
	case <-ctx.Done():
		s.closeMu.RUnlock()
		return ctx.Err()
	}
	s.closeMu.RUnlock()

	// Once queued, the write will land; waiting for its outcome is not
	// cancelled, so the caller never reports a failure for a stored write.
	return <-op.done
}

// committer is the state of the committer goroutine; only that goroutine
// uses it.
type committer struct {
	s *Store
	// txn is the open transaction, or nil; applied are its writes and
	// barriers, in queue order.
	txn     *badger.Txn
	applied []*writeOp
	// committed are the writes of committed transactions that wait for a sync
	// round; committedSeq is the sequence number of the newest transaction.
	committed    []*writeOp
	committedSeq uint64
	// syncing is true while a sync round runs; roundSeq is the newest
	// sequence number handed to a round.
	syncing  bool
	roundSeq uint64
}

// commitLoop is the committer goroutine. It applies queued writes to the open
// transaction and commits it whenever no sync round runs, so that the next
// round can start at once.
func (s *Store) commitLoop() {
	defer s.wg.Done()
	defer close(s.rounds)

	c := &committer{s: s}
	for {
		select {
		case op := <-s.ops:
			c.apply(op)
			c.applyQueued()
		case <-s.roundEnded:
			c.syncing = false
			c.applyQueued()
		case <-s.stop:
			c.drain()
			return
		}
		if !c.syncing {
			c.startRound()
		}
	}
}

// applyQueued applies the ops already in the queue, up to maxBatchOps of them.
func (c *committer) applyQueued() {
	for range maxBatchOps {
		select {
		case op := <-c.s.ops:
			c.apply(op)
		default:
			return
		}
	}
}

// drain applies every op still queued at Close, waits for the running round,
// and runs a last round for what remains.
func (c *committer) drain() {
	for len(c.s.ops) > 0 {
		c.apply(<-c.s.ops)
	}
	if c.syncing {
		<-c.s.roundEnded
		c.syncing = false
	}
	if c.startRound() {
		<-c.s.roundEnded
	}
}

// apply performs op's check and set in the open transaction. An op whose check
// fails receives its error at once.
func (c *committer) apply(op *writeOp) {
	if err := c.s.failure(); err != nil {
		op.done <- err
		return
	}
	if op.barrier {
		c.applied = append(c.applied, op)
		return
	}
	if len(c.applied) >= maxBatchOps {
		c.commit()
	}

	if c.txn == nil {
		c.txn = c.s.db.NewTransaction(true)
	}
	err := applyWrite(c.txn, op)
	if errors.Is(err, badger.ErrTxnTooBig) && len(c.applied) > 0 {
		c.commit()
		c.txn = c.s.db.NewTransaction(true)
		err = applyWrite(c.txn, op)
	}
	if err != nil {
		op.done <- err
		return
	}
	c.applied = append(c.applied, op)
}

// commit commits the open transaction in memory and moves its ops to the
// writes that wait for a sync. The sessions it writes are marked unsynced
// before the commit makes them visible, so that no reader acts on a record
// that a crash could still lose.
func (c *committer) commit() {
	txn, applied := c.txn, c.applied
	c.txn, c.applied = nil, nil
	if txn == nil {
		c.committed = append(c.committed, applied...)
		return
	}

	c.committedSeq++
	c.s.markUnsynced(applied, c.committedSeq)
	err := txn.Commit()
	if err != nil {
		c.s.log.Error("badger commit failed", "writes", len(applied), "error", err)
		err = fmt.Errorf("commit to badger: %w", err)
		for _, op := range applied {
			op.done <- err
		}
		return
	}
	c.s.stats.batches.Add(1)
	c.s.stats.writes.Add(uint64(len(applied)))
	c.committed = append(c.committed, applied...)
}

// startRound commits the open transaction and hands every committed write to
// the sync stage. It reports whether a round started: there is none when
// nothing was committed or marked since the last round.
func (c *committer) startRound() bool {
	if err := c.s.failure(); err != nil {
		c.abort(err)
		return false
	}
	if c.txn != nil || len(c.applied) > 0 {
		c.commit()
	}
	if len(c.committed) == 0 && c.committedSeq == c.roundSeq {
		return false
	}

	c.s.rounds <- syncRound{waiters: c.committed, seq: c.committedSeq}
	c.committed = nil
	c.roundSeq = c.committedSeq
	c.syncing = true
	return true
}

// abort fails every op that waits for a sync, after a sync failed. The open
// transaction is discarded. Committed transactions stay visible, but their
// sessions stay marked unsynced, so reads of them fail as well.
func (c *committer) abort(err error) {
	if c.txn != nil {
		c.txn.Discard()
		c.txn = nil
	}
	for _, op := range c.applied {
		op.done <- err
	}
	for _, op := range c.committed {
		op.done <- err
	}
	c.applied, c.committed = nil, nil
	c.roundSeq = c.committedSeq
}

// applyWrite performs one write's check and set inside txn.
func applyWrite(txn *badger.Txn, op *writeOp) error {
	if op.create {
		_, err := txn.Get(sessionKey(op.session.ID))
		if err == nil {
			return authority.ErrExists
		}
		if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		return setSession(txn, op.session, op.value, true)
	}

	stored, err := load(txn, op.session.ID)
	if err != nil {
		return err
	}
	if stored.Version != op.expectedVersion {
		return authority.ErrConflict
	}
	firstExchange := stored.Generation == 0 && op.session.Generation > 0
	return setSession(txn, op.session, op.value, firstExchange || stored.Subject != op.session.Subject)
}
