package badgerstore

import (
	"context"
	"encoding/hex"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/sockauth/sockauth/authority"
)

// earlierRecord is a session record as the store wrote it before records left
// out the session id and stored token ids as bytes: every field as text or
// nanoseconds. It belongs to session earlierSessionID of subject "alice",
// at version 3, revoked at logout.
const (
	earlierSessionID = "q3V5Ib0sS2mRjmTn8bHp-w"
	earlierRecord    = "0a16713356354962307353326d526a6d546e386248702d771205616c6963651a0d0a04726f6c65120561646d696e" +
		"2216596332566233486b324f6534655964396a336259714128809cebc3a887bad6183080dccdc98bf0bad6183a056a74692d31" +
		"4095b6dafea887bad6184801500158958e84c5a187bad61860958e8cffb1b487db186a066c6f676f75747095bea1878189bad618" +
		"7880dccdc98bf0bad618800103"
)

func TestEarlierRecordStaysReadable(t *testing.T) {
	store, err := Open(t.TempDir(), Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { store.Close() })
	value, err := hex.DecodeString(earlierRecord)
	if err != nil {
		t.Fatal(err)
	}
	err = store.db.Update(func(txn *badger.Txn) error {
		if err := txn.Set(sessionKey(earlierSessionID), value); err != nil {
			return err
		}
		return txn.Set(append(subjectPrefix("alice"), earlierSessionID...), nil)
	})
	if err != nil {
		t.Fatalf("write the earlier record: %v", err)
	}

	got, err := store.Get(context.Background(), earlierSessionID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if got.ID != earlierSessionID || got.Subject != "alice" || got.Version != 3 || got.RevokedReason != authority.RevokedLogout {
		t.Errorf("Get returned id %q, subject %q, version %d, revoked %q; expected %q, alice, 3, logout",
			got.ID, got.Subject, got.Version, got.RevokedReason, earlierSessionID)
	}
	if want := time.Date(2026, 5, 6, 7, 8, 9, 123456789, time.UTC); !got.CreatedAt.Equal(want) {
		t.Errorf("created at %v, expected %v", got.CreatedAt, want)
	}

	// A rotation rewrites the record in the compact form; it must read back.
	next := *got
	next.Version++
	next.PreviousTokenID = got.CurrentTokenID
	next.CurrentTokenID = "Zm9vYmFyYmF6cXV4cXV1eA"
	if err := store.CompareAndSwap(context.Background(), got.Version, &next); err != nil {
		t.Fatalf("CompareAndSwap: %v", err)
	}
	listed, _, err := store.ListBySubject(context.Background(), "alice", "", 10)
	if err != nil {
		t.Fatalf("ListBySubject: %v", err)
	}
	if len(listed) != 1 || listed[0].CurrentTokenID != next.CurrentTokenID || listed[0].PreviousTokenID != got.CurrentTokenID {
		t.Fatalf("ListBySubject returned %+v, expected the rotated session %+v", listed, next)
	}
}
