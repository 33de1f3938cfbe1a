package badgerstore

import (
	"context"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/sockauth/sockauth/authority"
)

var _ authority.SessionCounter = (*Store)(nil)

// CountSessions returns the number of stored session records: every session
// whose newest token expired less than a minute ago, revoked ones included.
// It iterates over keys only and checks ctx every 4096 keys. Session records
// stay below the value threshold, so Badger keeps them inside the table
// blocks, and the pass still reads every block of the session tables
// through their memory maps. That would leave them all resident after each
// count for the metrics. On Linux the store therefore releases the pages of
// every table in Badger's levels afterwards. This includes pages that other
// reads mapped in, which the next reads map back.
func (s *Store) CountSessions(ctx context.Context) (int, error) {
	s.countMu.RLock()
	defer s.countMu.RUnlock()
	if s.dbClosed {
		return 0, fmt.Errorf("count sessions: %w", badger.ErrDBClosed)
	}

	count := 0
	err := s.db.View(func(txn *badger.Txn) error {
		if releaseSupported && !s.inMemory {
			hold, heldIDs, _ := s.holdTables(txn, s.tableIDs())
			defer hold.Close()
			defer func() {
				if err := s.releaseTables(heldIDs, "scanned"); err != nil {
					s.log.Warn("badger store could not release the pages of the tables it counted sessions in", "error", err)
				}
			}()
		}

		prefix := sessionKey("")
		iter := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: false})
		defer iter.Close()
		for iter.Rewind(); iter.Valid(); iter.Next() {
			count++
			if count%4096 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("count sessions: %w", err)
	}
	return count, nil
}
