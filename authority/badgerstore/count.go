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
// It reads keys only, so it costs one pass over the key index and no value
// reads; ctx is checked every 4096 keys.
func (s *Store) CountSessions(ctx context.Context) (int, error) {
	count := 0
	err := s.db.View(func(txn *badger.Txn) error {
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
