package badgerstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// syncRound is the work of one sync: the waiters to release afterwards and
// the sequence number of the newest transaction committed before it started.
type syncRound struct {
	waiters []*writeOp
	seq     uint64
	// valueLog is set when a write of the round may have gone to Badger's
	// value log, which then needs a sync as well.
	valueLog bool
}

// syncState records which sessions have committed writes that no sync has
// covered yet, and whether a sync failed.
type syncState struct {
	mu sync.Mutex // guards the fields below
	// unsynced maps the id of each session written by a committed but unsynced
	// transaction to the sequence number of the newest such transaction.
	unsynced map[string]uint64
	// ended is closed when the running sync round ends, and then replaced.
	ended chan struct{}
	// failed is set by the first failed sync, and every later write fails
	// with it.
	failed error

	// size mirrors len(unsynced), so that readers skip the lock when no write
	// is waiting for a sync.
	size atomic.Int64
}

// SyncStats counts the transactions and syncs of the store since Open.
type SyncStats struct {
	// Transactions is the number of Badger transactions committed.
	Transactions uint64
	// Writes is the number of session writes in those transactions.
	Writes uint64
	// Syncs is the number of sync rounds, each of which syncs Badger's logs
	// once.
	Syncs uint64
	// SyncTime is the time that those syncs took together.
	SyncTime time.Duration
}

// syncCounters are the atomic counters behind SyncStats.
type syncCounters struct {
	batches, writes, syncs atomic.Uint64
	syncNanos              atomic.Int64
}

// Stats returns the counters of committed transactions, writes and syncs. It
// is safe for concurrent use.
func (s *Store) Stats() SyncStats {
	return SyncStats{
		Transactions: s.stats.batches.Load(),
		Writes:       s.stats.writes.Load(),
		Syncs:        s.stats.syncs.Load(),
		SyncTime:     time.Duration(s.stats.syncNanos.Load()),
	}
}

// markUnsynced records that ops are about to become visible in the
// transaction with sequence number seq. It must run before the commit.
func (s *Store) markUnsynced(ops []*writeOp, seq uint64) {
	s.sync.mu.Lock()
	defer s.sync.mu.Unlock()
	for _, op := range ops {
		if !op.barrier && op.checkErr == nil {
			s.sync.unsynced[op.session.ID] = seq
		}
	}
	s.sync.size.Store(int64(len(s.sync.unsynced)))
}

// Err returns the error of the first failed sync, after which the store
// rejects writes until it is reopened, or nil.
func (s *Store) Err() error { return s.failure() }

// failure returns the error of the failed sync, or nil.
func (s *Store) failure() error {
	s.sync.mu.Lock()
	defer s.sync.mu.Unlock()
	return s.sync.failed
}

// waitSynced waits until no committed write of session id is waiting for a
// sync, so that a reader never acts on a record that a crash could still
// lose. It returns the sync's error when the sync covering id failed.
func (s *Store) waitSynced(ctx context.Context, id string) error {
	if s.sync.size.Load() == 0 {
		return nil
	}
	for {
		s.sync.mu.Lock()
		_, waiting := s.sync.unsynced[id]
		failed, ended := s.sync.failed, s.sync.ended
		s.sync.mu.Unlock()

		switch {
		case !waiting:
			return nil
		case failed != nil:
			return failed
		}
		select {
		case <-ended:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// syncLoop is the sync stage: for each round it makes every write committed
// before the round durable and then releases the round's waiters.
func (s *Store) syncLoop() {
	defer s.wg.Done()
	for {
		round, ok := s.nextRound()
		if !ok {
			return
		}
		start := time.Now()
		err := s.syncLogs(round.valueLog)
		took := time.Since(start)
		s.metrics.observeSync(took)
		s.stats.syncNanos.Add(int64(took))
		s.endRound(round, err)
	}
}

// endRound records the outcome of a round and releases the round's waiters.
func (s *Store) endRound(round syncRound, err error) {
	s.stats.syncs.Add(1)
	s.sync.mu.Lock()
	if err != nil {
		err = fmt.Errorf("sync badger logs: %w", err)
		if s.sync.failed == nil {
			s.sync.failed = fmt.Errorf("writes are rejected since a sync of the badger logs failed, because the "+
				"kernel may have dropped the unsynced pages; check the disk and restart the authority: %w", err)
		}
		// The sessions of the round stay marked, so that reads of them fail too.
	} else {
		for id, seq := range s.sync.unsynced {
			if seq <= round.seq {
				delete(s.sync.unsynced, id)
			}
		}
		s.sync.size.Store(int64(len(s.sync.unsynced)))
	}
	close(s.sync.ended)
	s.sync.ended = make(chan struct{})
	s.sync.mu.Unlock()

	if err != nil {
		s.log.Error("badger sync failed; the store rejects writes until the authority restarts",
			"writes", len(round.waiters), "error", err)
	}
	for _, op := range round.waiters {
		if err == nil && op.checkErr != nil {
			op.done <- op.checkErr
			continue
		}
		op.done <- err
	}
}

// syncBadgerLogs makes every committed write durable. The first round calls
// db.Sync, which syncs the write-ahead log of the active memtable and the
// newest value-log file only (badger v4.9.6, DB.Sync), and lists the folders
// for the logs that Badger switched away from. Later rounds sync the sealed
// logs and then the newest ones by name.
//
// A round whose records all stayed below Badger's value threshold, and that
// no value-log collection overlapped, wrote only to the write-ahead logs, so
// it skips the value log. On ext4 the sync of a file without changes still
// flushes the disk's cache, so skipping it saves one flush per round. In one
// rotation load on the benchmark machine, a round took 593 µs instead of
// 775 µs.
func (s *Store) syncBadgerLogs(valueLog bool) error {
	if s.inMemory {
		return nil
	}
	if !s.sealed.complete {
		if err := s.syncDB(); err != nil {
			return err
		}
		return s.sealed.sync()
	}
	// Every write of the round was committed before this point, so it is in
	// the newest logs that sync finds, or in ones it syncs as sealed.
	if err := s.sealed.sync(); err != nil {
		return err
	}
	if valueLog {
		// The value log goes first, so that this sync never makes a pointer in
		// the memtable's log durable before the value it points to.
		if err := s.sealed.syncNewest(valueLogExt); err != nil {
			return err
		}
	}
	return s.sealed.syncNewest(memtableLog)
}

// logExtensions are the suffixes of Badger's log files: the value log, and
// the write-ahead log of each memtable. Badger numbers each kind from one
// upwards, one at a time, and only the file with the highest number is still
// written to. Sealed value logs are synced first, before the memtable logs
// that may point into them.
var logExtensions = []string{valueLogExt, memtableLog}

// memtableLog is the suffix of the write-ahead log of a memtable, and
// valueLogExt that of a value-log file.
const (
	memtableLog = ".mem"
	valueLogExt = ".vlog"
)

// sealedLogs syncs the log files that Badger stopped writing to: the logs of
// memtables switched out and waiting to be flushed, and value-log files that
// were rotated. With SyncWrites off, Badger syncs neither at the switch. Only
// the sync stage uses it.
//
// The first round lists the folders. Later rounds only look for the file that
// follows the newest one of each kind, because Badger numbers its log files
// without gaps. That costs one stat per kind instead of a folder listing per
// sync. The store never calls DropAll, the one Badger call that numbers value
// logs from one again.
type sealedLogs struct {
	dirs []string
	// newest holds the newest log file of each kind in each folder that has
	// one, and complete is set once a round found every kind, after which
	// rounds no longer list the folders.
	newest   []logFile
	complete bool
	// syncFile syncs one file or folder, syncData syncs a file's data,
	// listDir lists a folder and exists reports whether a file exists. Tests
	// replace them.
	syncFile func(path string) error
	syncData func(path string) error
	listDir  func(dir string) ([]string, error)
	exists   func(path string) (bool, error)
}

// logFile is one of Badger's numbered log files.
type logFile struct {
	dir, ext string
	// id is the file's number, and width the count of digits in its name,
	// zeros in front included.
	id    uint64
	width int
}

func (f logFile) path() string {
	return filepath.Join(f.dir, fmt.Sprintf("%0*d%s", f.width, f.id, f.ext))
}

// next returns the file that Badger creates after f.
func (f logFile) next() logFile {
	f.id++
	return f
}

func newSealedLogs(dirs ...string) *sealedLogs {
	l := &sealedLogs{syncFile: syncPath, syncData: syncPathData, listDir: readDirNames, exists: fileExists}
	for _, dir := range dirs {
		if dir != "" && !slices.Contains(l.dirs, dir) {
			l.dirs = append(l.dirs, dir)
		}
	}
	return l
}

// sync syncs every log file that Badger sealed since the last call, and the
// folder of each log file it created. A file that disappears meanwhile was
// flushed into a table or collected, and needs no sync.
func (l *sealedLogs) sync() error {
	if !l.complete {
		return l.scan()
	}
	for i := range l.newest {
		if err := l.advance(&l.newest[i]); err != nil {
			return err
		}
	}
	return nil
}

// syncNewest syncs the data of the newest log file with extension ext in
// each folder, as known since the last sync or scan. A file that disappeared
// meanwhile was sealed and flushed into a table, which Badger syncs before it
// deletes the log, so it needs no sync.
func (l *sealedLogs) syncNewest(ext string) error {
	for _, f := range l.newest {
		if f.ext != ext {
			continue
		}
		err := l.syncData(f.path())
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// scan lists the folders, syncs every log file but the newest of each kind,
// and the folders, and remembers the newest files.
func (l *sealedLogs) scan() error {
	var newest []logFile
	kinds := map[string]bool{}
	for _, dir := range l.dirs {
		names, err := l.listDir(dir)
		if err != nil {
			return err
		}
		for _, ext := range logExtensions {
			file, sealed, found := splitLogs(dir, names, ext)
			for _, f := range sealed {
				if err := l.syncSealed(f); err != nil {
					return err
				}
			}
			if !found {
				continue
			}
			if err := l.syncFile(dir); err != nil {
				return err
			}
			newest = append(newest, file)
			kinds[ext] = true
		}
	}
	l.newest = newest
	l.complete = len(kinds) == len(logExtensions)
	return nil
}

// advance syncs the files that Badger sealed after *newest by creating the
// ones that follow it, and the folder they were created in.
func (l *sealedLogs) advance(newest *logFile) error {
	for {
		next := newest.next()
		created, err := l.exists(next.path())
		if err != nil || !created {
			return err
		}
		if err := l.syncSealed(*newest); err != nil {
			return err
		}
		if err := l.syncFile(next.dir); err != nil {
			return err
		}
		*newest = next
	}
}

// syncSealed syncs a sealed log file unless it is gone already.
func (l *sealedLogs) syncSealed(f logFile) error {
	err := l.syncFile(f.path())
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// splitLogs returns the newest log file in dir with extension ext among
// names, and the others. found is false when names hold none.
func splitLogs(dir string, names []string, ext string) (newest logFile, sealed []logFile, found bool) {
	for _, name := range names {
		digits, ok := strings.CutSuffix(name, ext)
		if !ok {
			continue
		}
		id, err := strconv.ParseUint(digits, 10, 64)
		if err != nil {
			continue
		}
		f := logFile{dir: dir, ext: ext, id: id, width: len(digits)}
		switch {
		case !found:
			newest, found = f, true
		case id > newest.id:
			sealed = append(sealed, newest)
			newest = f
		default:
			sealed = append(sealed, f)
		}
	}
	return newest, sealed, found
}

func fileExists(path string) (bool, error) {
	_, err := os.Lstat(path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	}
	return false, err
}

func readDirNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

// syncPath opens path, which may be a file or a folder, and fsyncs it. Badger
// writes its logs through shared memory mappings, and Linux keeps the pages
// written that way in the file's page cache, so fsync writes them back just
// as Badger's own msync does.
func syncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	err = f.Sync()
	if closeErr := f.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return nil
}
