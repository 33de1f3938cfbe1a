package badgerstore

import (
	"reflect"
	"testing"

	"github.com/dgraph-io/badger/v4/options"
)

func TestBadgerOptionsKeepTablesSmall(t *testing.T) {
	opts := badgerOptions(t.TempDir(), DefaultOptions())

	if opts.Compression != options.ZSTD {
		t.Errorf("table compression %v, expected ZSTD, which stores a session in about 16%% fewer bytes than Snappy", opts.Compression)
	}
	if limit := int64(4 << 20); opts.MemTableSize > limit {
		t.Errorf("memtable size %d bytes, expected at most %d", opts.MemTableSize, limit)
	}
	// Each read that a bloom filter wrongly admits maps 64 KiB of a table
	// back into the process.
	if limit := 0.0001; opts.BloomFalsePositive <= 0 || opts.BloomFalsePositive > limit {
		t.Errorf("bloom filter false positive rate %v, expected above 0 and at most %v", opts.BloomFalsePositive, limit)
	}
	// The sync stage syncs the logs once per group of writes; Badger's own
	// sync per transaction would serialise the group again.
	if opts.SyncWrites {
		t.Error("Badger syncs every transaction itself, which the store's sync stage already does once per group")
	}
}

func TestExportedBadgerOptionsMatchOpen(t *testing.T) {
	dir := t.TempDir()
	store, err := Open(dir, Options{Logger: DefaultOptions().Logger})
	if err != nil {
		t.Fatal(err)
	}
	opened := store.db.Opts()
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}

	// Without a logger the defaults' logger receives Badger's messages.
	exported := BadgerOptions(resolvedDir(dir), Options{})
	if exported.Logger == nil {
		t.Error("BadgerOptions without a logger returned options without one")
	}
	// The loggers wrap different values, and Badger derives its unexported
	// fields at Open. Every other option must match.
	exported.Logger, opened.Logger = nil, nil
	got, want := reflect.ValueOf(exported), reflect.ValueOf(opened)
	for i := range got.NumField() {
		field := got.Type().Field(i)
		if !field.IsExported() {
			continue
		}
		if !reflect.DeepEqual(got.Field(i).Interface(), want.Field(i).Interface()) {
			t.Errorf("BadgerOptions sets %s to %v, and Open used %v", field.Name, got.Field(i), want.Field(i))
		}
	}
}
