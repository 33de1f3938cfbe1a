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

// writeOp is one Create or CompareAndSwap waiting for the committer.
type writeOp struct {
	create          bool
	session         *authority.Session
	value           []byte
	expectedVersion uint64
	// done receives the outcome once the transaction holding the write has
	// been committed and synced, or the write's own check failed.
	done chan error
}

// write hands op to the committer and waits for its outcome.
//
// Badger with synced writes syncs its write-ahead log once per transaction,
// so concurrent rotations would each wait for their own fsync. The committer
// instead applies every write that queued up during the previous commit in
// one transaction and syncs once for all of them. It is the only writer, so
// its transactions never conflict, and each write's check-and-set still sees
// the writes before it in the same transaction.
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

// commitLoop is the committer goroutine.
func (s *Store) commitLoop() {
	defer s.wg.Done()
	for {
		var first *writeOp
		select {
		case first = <-s.ops:
		case <-s.stop:
			s.commitRemaining()
			return
		}

		batch := []*writeOp{first}
	collect:
		for len(batch) < maxBatchOps {
			select {
			case op := <-s.ops:
				batch = append(batch, op)
			default:
				break collect
			}
		}
		s.commitBatch(batch)
	}
}

// commitRemaining commits the writes that were queued when Close was called.
func (s *Store) commitRemaining() {
	var batch []*writeOp
	for {
		select {
		case op := <-s.ops:
			batch = append(batch, op)
		default:
			s.commitBatch(batch)
			return
		}
	}
}

// commitBatch applies the writes in order within transactions and commits.
func (s *Store) commitBatch(batch []*writeOp) {
	for len(batch) > 0 {
		txn := s.db.NewTransaction(true)
		var applied []*writeOp
		rest := batch[:0:0]

		for i, op := range batch {
			err := apply(txn, op)
			if errors.Is(err, badger.ErrTxnTooBig) && len(applied) > 0 {
				rest = batch[i:]
				break
			}
			if err != nil {
				op.done <- err
				continue
			}
			applied = append(applied, op)
		}

		err := txn.Commit()
		if err != nil {
			s.log.Error("badger commit failed", "writes", len(applied), "error", err)
			err = fmt.Errorf("commit to badger: %w", err)
		}
		for _, op := range applied {
			op.done <- err
		}
		batch = rest
	}
}

// apply performs one write's check and set inside txn.
func apply(txn *badger.Txn, op *writeOp) error {
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
