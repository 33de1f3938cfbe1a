//go:build linux

package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// writeMode is the way that groupLog puts a record into its file.
type writeMode string

const (
	// writePwrite writes each record with pwrite, as a database with its own
	// log writer does.
	writePwrite writeMode = "pwrite"
	// writeMapped copies each record into a shared memory mapping of the
	// file, as Badger writes its write-ahead logs.
	writeMapped writeMode = "mmap"
)

// logConfig is the layout and sync design of a groupLog.
type logConfig struct {
	size    int64
	mode    writeMode
	syncers int
	// overlapAfter, when positive, holds a sync loop back while another
	// sync runs, until that sync has run for overlapAfter.
	overlapAfter time.Duration
	// sparse creates the file by truncating it, as Badger creates its
	// write-ahead logs, so that the first write to each block allocates it
	// and the sync that covers it writes file metadata too.
	sparse bool
}

// errLogClosed is the error of an append to a closed log.
var errLogClosed = errors.New("the log is closed")

// groupLog appends records to a file of fixed size and makes them durable
// with group commit. Sync goroutines each sync the file in a loop. Each sync
// releases the appends that wrote their records before it started and that
// no other sync took. With one sync goroutine, one sync runs at a time, as in
// the authority's Badger store.
//
// Unless config.sparse is set, the file is filled with zeros and synced
// before any append, and appends wrap around to its start, so a sync never
// has to write file metadata.
type groupLog struct {
	file    *os.File
	mapping []byte // the shared mapping in writeMapped mode, else nil
	config  logConfig
	// sync makes the file's data durable. claimed is the time that
	// claimStart returned for this sync. Tests replace sync before start.
	sync func(claimed time.Time) error

	mu      sync.Mutex // guards offset, pending, closed and the writes to file, mapping and wake
	offset  int64
	pending []chan error
	closed  bool
	// wake receives a value after an append adds to pending. Its buffer of
	// one keeps a wake-up sent while a sync runs.
	wake  chan struct{}
	loops sync.WaitGroup // the running sync loops

	syncCounters

	// startMu makes the check for a running sync and the start of the next
	// one a single step.
	startMu   sync.Mutex
	running   int       // syncs in progress, guarded by startMu
	lastStart time.Time // start of the newest sync, guarded by startMu
}

// syncCounters counts the writes and syncs of a log. It is safe for
// concurrent use.
type syncCounters struct {
	syncs, writes atomic.Uint64
	syncNanos     atomic.Int64
}

// addSync counts one sync that took d.
func (c *syncCounters) addSync(d time.Duration) {
	c.syncNanos.Add(int64(d))
	c.syncs.Add(1)
}

// stats returns the counters at this moment.
func (c *syncCounters) stats() logStats {
	return logStats{syncs: c.syncs.Load(), writes: c.writes.Load(), syncTime: time.Duration(c.syncNanos.Load())}
}

// logStats are the counters of a log at one moment.
type logStats struct {
	syncs, writes uint64
	syncTime      time.Duration
}

// since returns the counts between before and s.
func (s logStats) since(before logStats) logStats {
	return logStats{syncs: s.syncs - before.syncs, writes: s.writes - before.writes, syncTime: s.syncTime - before.syncTime}
}

// openGroupLog creates path with config.size bytes of zeros, syncs it and
// its folder, and starts the sync loops.
func openGroupLog(path string, config logConfig) (*groupLog, error) {
	l, err := createGroupLog(path, config)
	if err != nil {
		return nil, err
	}
	l.start()
	return l, nil
}

// createGroupLog creates and fills the log file but starts no sync loop.
func createGroupLog(path string, config logConfig) (*groupLog, error) {
	if config.mode != writePwrite && config.mode != writeMapped {
		return nil, fmt.Errorf("invalid write mode %q: use %s or %s", config.mode, writePwrite, writeMapped)
	}
	if config.syncers < 1 {
		return nil, fmt.Errorf("invalid count of sync loops %d: it must be positive", config.syncers)
	}
	if config.size < 1 {
		return nil, fmt.Errorf("invalid log size %d: it must be positive", config.size)
	}
	file, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	l := &groupLog{file: file, config: config, wake: make(chan struct{}, 1)}
	l.sync = func(time.Time) error { return unix.Fdatasync(int(file.Fd())) }
	if err := l.prepare(); err != nil {
		file.Close()
		return nil, err
	}
	return l, nil
}

// start starts the sync loops.
func (l *groupLog) start() {
	for range l.config.syncers {
		l.loops.Go(l.syncLoop)
	}
}

// prepare fills the file with zeros, so that its blocks are allocated and
// written, or only sets its size when config.sparse is set. It syncs the file
// and its folder, and maps the file in writeMapped mode.
func (l *groupLog) prepare() error {
	if l.config.sparse {
		if err := l.file.Truncate(l.config.size); err != nil {
			return fmt.Errorf("set the size of %s: %w", l.file.Name(), err)
		}
	} else if err := l.fill(); err != nil {
		return err
	}
	if err := l.file.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", l.file.Name(), err)
	}
	if err := syncFolder(l.file.Name()); err != nil {
		return err
	}
	if l.config.mode == writeMapped {
		mapping, err := unix.Mmap(int(l.file.Fd()), 0, int(l.config.size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
		if err != nil {
			return fmt.Errorf("map %s: %w", l.file.Name(), err)
		}
		l.mapping = mapping
	}
	return nil
}

// fill writes zeros over the whole file.
func (l *groupLog) fill() error {
	zeros := make([]byte, 1<<20)
	for written := int64(0); written < l.config.size; written += int64(len(zeros)) {
		chunk := zeros[:min(int64(len(zeros)), l.config.size-written)]
		if _, err := l.file.WriteAt(chunk, written); err != nil {
			return fmt.Errorf("fill %s: %w", l.file.Name(), err)
		}
	}
	return nil
}

// appendRecord writes record and returns once a sync that started after the
// write has ended, with that sync's error. After close it returns
// errLogClosed.
func (l *groupLog) appendRecord(record []byte) error {
	if int64(len(record)) > l.config.size {
		return fmt.Errorf("a record of %d bytes does not fit a log of %d bytes", len(record), l.config.size)
	}
	done := make(chan error, 1)

	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return errLogClosed
	}
	if l.offset+int64(len(record)) > l.config.size {
		l.offset = 0
	}
	var err error
	if l.mapping != nil {
		copy(l.mapping[l.offset:], record)
	} else {
		_, err = l.file.WriteAt(record, l.offset)
	}
	if err == nil {
		l.offset += int64(len(record))
		l.pending = append(l.pending, done)
		// The send happens under mu, so that close never closes wake
		// between the append and its wake-up.
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
	l.mu.Unlock()
	if err != nil {
		return fmt.Errorf("write to %s: %w", l.file.Name(), err)
	}
	return <-done
}

// syncLoop runs until close closes wake. Each pass takes every pending
// append, syncs the file once and releases them.
func (l *groupLog) syncLoop() {
	for range l.wake {
		// The start is claimed before the batch is taken, so that the batch
		// holds every write made before the sync starts.
		start := l.claimStart()
		l.mu.Lock()
		batch := l.pending
		l.pending = nil
		l.mu.Unlock()
		if len(batch) == 0 {
			l.endSync()
			continue
		}

		err := l.sync(start)
		l.endSync()
		l.addSync(time.Since(start))
		l.writes.Add(uint64(len(batch)))
		for _, done := range batch {
			done <- err
		}
	}
}

// claimStart records the start of a sync and returns its time. With
// config.overlapAfter it first waits while another sync runs that started
// less than overlapAfter ago.
func (l *groupLog) claimStart() time.Time {
	l.startMu.Lock()
	defer l.startMu.Unlock()
	for l.config.overlapAfter > 0 && l.running > 0 {
		wait := time.Until(l.lastStart.Add(l.config.overlapAfter))
		if wait <= 0 {
			break
		}
		// Short sleeps notice a sync that ends before the wait is over.
		l.startMu.Unlock()
		time.Sleep(min(wait, 20*time.Microsecond))
		l.startMu.Lock()
	}
	l.running++
	l.lastStart = time.Now()
	return l.lastStart
}

// endSync records the end of a sync that claimStart started.
func (l *groupLog) endSync() {
	l.startMu.Lock()
	l.running--
	l.startMu.Unlock()
}

// close rejects further appends, lets the sync loops release the appends
// that wait, stops the loops and closes the file. It must be called once.
func (l *groupLog) close() error {
	l.mu.Lock()
	l.closed = true
	close(l.wake)
	l.mu.Unlock()
	l.loops.Wait()

	// The loops take every append that woke them, so none should be left.
	l.mu.Lock()
	left := l.pending
	l.pending = nil
	l.mu.Unlock()
	for _, done := range left {
		done <- errLogClosed
	}

	var err error
	if l.mapping != nil {
		err = unix.Munmap(l.mapping)
	}
	return errors.Join(err, l.file.Close())
}

// syncFolder syncs the folder of path, so that the file's name is durable.
func syncFolder(path string) error {
	dir, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	err = dir.Sync()
	return errors.Join(err, dir.Close())
}
