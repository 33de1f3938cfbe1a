package badgerstore

import "github.com/dgraph-io/badger/v4"

// badgerOptions returns the Badger options of a Store in dir.
func badgerOptions(dir string, opts Options) badger.Options {
	badgerOpts := badger.DefaultOptions(dir).
		WithSyncWrites(true).
		WithLogger(badgerLogger{opts.Logger}).
		WithInMemory(opts.InMemory).
		// Session records are a few hundred bytes: small memtables, tables and
		// caches keep the resident memory of a service holding a million
		// sessions near 150 MiB (measured with make bench).
		WithMemTableSize(8 << 20).
		WithNumMemtables(2).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(8).
		WithBaseTableSize(1 << 20).
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
