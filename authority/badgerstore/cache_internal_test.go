package badgerstore

import (
	"testing"
	"time"

	"github.com/sockauth/sockauth/authority"
)

func TestCacheEntryEndsBeforeBadgerExpiry(t *testing.T) {
	cache := newSessionCache(8)
	now := time.Now()
	session := &authority.Session{ID: "s1", RetainUntil: now.Add(10 * time.Second)}
	cache.put([]*authority.Session{session}, now)

	// Badger keeps the record for recordTTL, 10 s plus retainGrace, counted
	// in whole seconds from the write.
	badgerExpiry := now.Add(10*time.Second + retainGrace)
	if _, ok := cache.get("s1", badgerExpiry.Add(-2*time.Second)); !ok {
		t.Fatal("entry missing two seconds before Badger drops the record")
	}
	if _, ok := cache.get("s1", badgerExpiry.Add(-time.Second)); ok {
		t.Fatal("entry still answered one second before Badger drops the record")
	}
	if _, ok := cache.peek("s1", badgerExpiry); ok {
		t.Fatal("peek answered after Badger dropped the record")
	}
}
