package badgerstore

import (
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sockauth/sockauth/authority"
)

// DefaultCacheSessions is how many recently written sessions a Store keeps
// in memory by default. At an estimated half a kilobyte each (the decoded
// record with its strings), 8,192 of them take about 4 MiB.
const DefaultCacheSessions = 8192

// sessionCache holds the newest committed record of recently written
// sessions. A Badger read of a key that was rewritten often is slow: unless
// the newest version is in a memtable with exactly the read's timestamp,
// Badger looks the key up in every table that holds an older version. A
// rotation reads its session twice, once to check the token and once to
// check its version inside the write, so the store serves both from here.
//
// Only the write path fills the cache, in commitLocked right after the
// commit that makes a record visible in Badger, so an entry is never older
// than what Badger would return. Reads never fill it, because a read that
// raced a commit could put back a replaced record.
type sessionCache struct {
	mu sync.RWMutex // guards entries
	// entries maps session ids to records, each decoded once and never
	// modified.
	entries map[string]cachedSession
	limit   int

	hits, misses atomic.Uint64
}

type cachedSession struct {
	session *authority.Session
	// until is a little before Badger's expiry of the record. A read after it
	// goes to Badger, which by then may no longer have the record.
	until time.Time
}

func newSessionCache(limit int) *sessionCache {
	return &sessionCache{entries: make(map[string]cachedSession, min(limit, 1024)), limit: limit}
}

// get returns a copy of the cached record of id that is still held at now,
// and counts the read as a hit or a miss.
func (c *sessionCache) get(id string, now time.Time) (*authority.Session, bool) {
	cached, ok := c.peek(id, now)
	if !ok {
		c.misses.Add(1)
		return nil, false
	}
	c.hits.Add(1)
	session := *cached
	session.Claims = maps.Clone(cached.Claims)
	return &session, true
}

// peek returns the cached record itself, for the write path's checks, which
// only read it.
func (c *sessionCache) peek(id string, now time.Time) (*authority.Session, bool) {
	if c.limit <= 0 {
		return nil, false
	}
	c.mu.RLock()
	entry, ok := c.entries[id]
	c.mu.RUnlock()
	if !ok || !now.Before(entry.until) {
		return nil, false
	}
	return entry.session, true
}

// put stores the committed records of a transaction. When the cache is full,
// an arbitrary entry makes room for each new one: Go's map iteration starts
// at a random place.
func (c *sessionCache) put(records []*authority.Session, now time.Time) {
	if c.limit <= 0 || len(records) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, session := range records {
		if _, present := c.entries[session.ID]; !present && len(c.entries) >= c.limit {
			for victim := range c.entries {
				delete(c.entries, victim)
				break
			}
		}
		// Badger counts a record's lifetime in whole seconds from the write,
		// so the entry ends a second early rather than outlive the record.
		c.entries[session.ID] = cachedSession{session: session, until: now.Add(recordTTL(session) - time.Second)}
	}
}

// CacheStats counts the reads of the store's session cache since Open.
type CacheStats struct {
	// Hits and Misses count the reads by Get that the cache served and
	// those that went to Badger.
	Hits, Misses uint64
	// Sessions is the number of sessions cached now.
	Sessions int
}

// CacheStats returns the counters of the session cache. It is safe for
// concurrent use.
func (s *Store) CacheStats() CacheStats {
	s.cache.mu.RLock()
	defer s.cache.mu.RUnlock()
	return CacheStats{Hits: s.cache.hits.Load(), Misses: s.cache.misses.Load(), Sessions: len(s.cache.entries)}
}
