package badgerstore

import (
	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// badgerOptions returns the Badger options of a Store in dir.
func badgerOptions(dir string, opts Options) badger.Options {
	badgerOpts := badger.DefaultOptions(dir).
		// The store syncs Badger's logs itself, once per group of writes,
		// and acknowledges a write only after the sync that covers it
		// (batch.go and sync.go).
		WithSyncWrites(false).
		WithLogger(badgerLogger{opts.Logger}).
		WithInMemory(opts.InMemory).
		// Session records are about 100 bytes. Small memtables, tables and
		// caches keep the Go heap small, but Badger maps its tables into
		// memory and writes them through the map, so every table byte stays
		// resident: 126 MiB of tables for a million sessions, measured as
		// bench/run.sh does.
		WithMemTableSize(4 << 20).
		WithNumMemtables(2).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(8).
		WithBaseTableSize(1 << 20).
		// Random token and session ids leave little to compress, but ZSTD
		// still stores a session in about 16% fewer bytes than Snappy.
		WithCompression(options.ZSTD).
		WithZSTDCompressionLevel(1).
		// A read of a key that a table's bloom filter wrongly admits reads a
		// block of the table through its memory map, and Linux maps up to
		// 64 KiB around it into the process (fault_around_bytes). Creating a
		// session first checks that its key is new, so at Badger's default
		// of 1% such reads made most table pages resident again. At 0.01%
		// the filters take twice the bits per key, about 5 MB for a million
		// sessions, and the authority that wrote them kept 20 instead of
		// 86 MiB of table pages (docs/BENCHMARKS.md).
		WithBloomFalsePositive(0.0001).
		WithBlockCacheSize(8 << 20).
		WithIndexCacheSize(4 << 20).
		WithValueLogFileSize(64 << 20).
		WithValueThreshold(1 << 10).
		WithNumCompactors(2).
		WithCompactL0OnClose(true)
	if opts.InMemory {
		badgerOpts = badgerOpts.WithDir("").WithValueDir("")
	}
	return badgerOpts
}

// BadgerOptions returns the Badger options that Open uses for a Store in
// dir with opts, SyncWrites off included. Benchmarks use them to compare the
// store with Badger alone.
func BadgerOptions(dir string, opts Options) badger.Options {
	if opts.Logger == nil {
		opts.Logger = DefaultOptions().Logger
	}
	return badgerOptions(dir, opts)
}
