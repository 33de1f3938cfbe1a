// Package redisstore is an authority.Store on Redis, for several authority
// replicas that share one state. Each session is one hash whose key carries the
// session id as a hash tag, so every script touches one slot and runs on Redis
// Cluster too. Compare-and-swap runs as a Lua script, so it is atomic.
//
// Durability follows the Redis server's configuration: with appendonly yes and
// appendfsync always an acknowledged write survives a crash of Redis.
package redisstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sockauth/sockauth/authority"
)

// retainGrace keeps a record a little past its RetainUntil, so that clock skew
// between replicas never drops a record that a token still refers to.
const retainGrace = time.Minute

// Options configures a Store.
type Options struct {
	// Prefix starts every key; default "sockauth:". Several deployments can share
	// one Redis with different prefixes.
	Prefix string
	// Logger receives subscription failures; default slog.Default(). While
	// this Store is the newest open one in the process, Logger also receives
	// the messages that go-redis prints itself, at warn level.
	Logger *slog.Logger
}

// Store is an authority.Store on Redis. It is safe for concurrent use.
type Store struct {
	client redis.UniversalClient
	prefix string
	log    *slog.Logger
}

var _ authority.Store = (*Store)(nil)

// New returns a Store on client; the caller keeps ownership of client until
// Close, which closes it. New replaces the process-wide logger of go-redis
// (redis.SetLogger) with one that logs through the newest open Store.
func New(client redis.UniversalClient, opts Options) *Store {
	if opts.Prefix == "" {
		opts.Prefix = "sockauth:"
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Store{client: client, prefix: opts.Prefix, log: opts.Logger}
	clientLog.register(s)
	return s
}

// Open connects to the Redis server of a redis:// or rediss:// URL and pings it.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	redisOpts, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("invalid Redis URL: %w", err)
	}

	// The Store exists before the ping, so that go-redis's messages about a
	// failed first dial go to its logger too.
	s := New(redis.NewClient(redisOpts), opts)
	if err := s.client.Ping(ctx).Err(); err != nil {
		s.Close()
		return nil, fmt.Errorf("connect to Redis at %s: %w", redisOpts.Addr, err)
	}
	return s, nil
}

// createScript stores a session unless its key exists.
// KEYS[1] session key; ARGV: version, JSON record, expiry in Unix milliseconds.
// Returns 1 when created, 0 when the key exists.
var createScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'd', ARGV[2])
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
return 1
`)

// swapScript replaces a session when its stored version matches.
// KEYS[1] session key; ARGV: expected version, new version, JSON record,
// expiry in Unix milliseconds. Returns 1 when swapped, 0 on a version
// mismatch, -1 when the key is missing.
var swapScript = redis.NewScript(`
local version = redis.call('HGET', KEYS[1], 'v')
if not version then
  return -1
end
if version ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'd', ARGV[3])
redis.call('PEXPIREAT', KEYS[1], ARGV[4])
return 1
`)

// Create stores a new session, or returns authority.ErrExists.
func (s *Store) Create(ctx context.Context, session *authority.Session) error {
	value, err := authority.MarshalSession(session)
	if err != nil {
		return err
	}

	// The index entry comes first: an entry without a session is skipped when
	// listed, but a session missing from the index would escape RevokeSubject.
	if err := s.index(ctx, session); err != nil {
		return err
	}
	created, err := createScript.Run(ctx, s.client, []string{s.sessionKey(session.ID)},
		strconv.FormatUint(session.Version, 10), value, expiry(session)).Int()
	if err != nil {
		return fmt.Errorf("create session %s in Redis: %w", session.ID, err)
	}
	if created == 0 {
		return fmt.Errorf("create session %s: %w", session.ID, authority.ErrExists)
	}
	return nil
}

// Get returns the session with the given id, or authority.ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (*authority.Session, error) {
	value, err := s.client.HGet(ctx, s.sessionKey(id), "d").Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, authority.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read session %s from Redis: %w", id, err)
	}

	session, err := authority.UnmarshalSession(id, value)
	if err != nil {
		return nil, fmt.Errorf("session %s: %w", id, err)
	}
	return session, nil
}

// CompareAndSwap replaces the session when its stored version is
// expectedVersion.
func (s *Store) CompareAndSwap(ctx context.Context, expectedVersion uint64, next *authority.Session) error {
	value, err := authority.MarshalSession(next)
	if err != nil {
		return err
	}

	if err := s.index(ctx, next); err != nil {
		return err
	}
	result, err := swapScript.Run(ctx, s.client, []string{s.sessionKey(next.ID)},
		strconv.FormatUint(expectedVersion, 10), strconv.FormatUint(next.Version, 10), value, expiry(next)).Int()
	if err != nil {
		return fmt.Errorf("update session %s in Redis: %w", next.ID, err)
	}
	switch result {
	case 1:
		return nil
	case 0:
		return authority.ErrConflict
	default:
		return authority.ErrNotFound
	}
}

// ListBySubject returns a page of the stored sessions of subject, and prunes
// index entries whose records have expired. The index is a sorted set
// ordered by expiry, and by id among equal expiries, so a cursor is the
// expiry and the id of the last entry that the previous page read. A session
// whose expiry grows between two pages moves behind the cursor and can be
// listed twice.
func (s *Store) ListBySubject(ctx context.Context, subject, cursor string, limit int) ([]*authority.Session, string, error) {
	if limit <= 0 {
		return nil, "", fmt.Errorf("list sessions of %q: page size %d: %w", subject, limit, authority.ErrInvalidArgument)
	}
	after, err := parseListCursor(cursor)
	if err != nil {
		return nil, "", err
	}

	key := s.subjectKey(subject)
	if err := s.client.ZRemRangeByScore(ctx, key, "-inf", strconv.FormatInt(time.Now().UnixMilli(), 10)).Err(); err != nil {
		return nil, "", fmt.Errorf("prune session index of %q in Redis: %w", subject, err)
	}
	entries, err := s.indexAfter(ctx, key, after, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("read session index of %q from Redis: %w", subject, err)
	}

	next := ""
	if len(entries) > limit {
		entries = entries[:limit]
		last := entries[limit-1]
		next = strconv.FormatInt(int64(last.Score), 10) + ":" + memberID(last)
	}
	sessions := make([]*authority.Session, 0, len(entries))
	for _, entry := range entries {
		session, err := s.Get(ctx, memberID(entry))
		if errors.Is(err, authority.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, "", err
		}
		sessions = append(sessions, session)
	}
	return sessions, next, nil
}

// listCursor is a position in a subject's index: entries with a higher
// score, or the same score and a greater id, come after it.
type listCursor struct {
	score int64
	id    string
	// set is false for the start of the index.
	set bool
}

// parseListCursor reads a cursor that ListBySubject returned, "SCORE:ID".
func parseListCursor(cursor string) (listCursor, error) {
	if cursor == "" {
		return listCursor{}, nil
	}
	score, id, ok := strings.Cut(cursor, ":")
	value, err := strconv.ParseInt(score, 10, 64)
	if !ok || err != nil || id == "" {
		return listCursor{}, fmt.Errorf("invalid page cursor %q: %w", cursor, authority.ErrInvalidArgument)
	}
	return listCursor{score: value, id: id, set: true}, nil
}

// rangeAfterScript returns the count entries after member, with their
// scores, when member is in the sorted set with the given score, and false
// otherwise. KEYS[1] is the index, and ARGV contains member, score and count.
var rangeAfterScript = redis.NewScript(`
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) ~= tonumber(ARGV[2]) then
  return false
end
local rank = redis.call('ZRANK', KEYS[1], ARGV[1])
return redis.call('ZRANGE', KEYS[1], rank + 1, rank + tonumber(ARGV[3]), 'WITHSCORES')
`)

// indexAfter returns up to count entries of the index at key after the
// cursor, in the index's order. While the cursor's entry is in the index
// unchanged, one script reads the entries after its rank. Otherwise Redis
// selects entries by score only, so the entries with the cursor's score
// that come before the cursor are read and skipped.
func (s *Store) indexAfter(ctx context.Context, key string, after listCursor, count int) ([]redis.Z, error) {
	start := "-inf"
	if after.set {
		start = strconv.FormatInt(after.score, 10)
		reply, err := rangeAfterScript.Run(ctx, s.client, []string{key}, after.id, after.score, count).StringSlice()
		switch {
		case err == nil:
			return parseScored(reply)
		case !errors.Is(err, redis.Nil):
			return nil, err
		}
	}
	// Sessions created in one second share a score, so thousands of entries
	// can precede the cursor. Batches of at least minScanBatch keep the round
	// trips few when the page is small.
	batchSize := max(count, minScanBatch)
	var entries []redis.Z
	for offset := int64(0); len(entries) < count; {
		batch, err := s.client.ZRangeArgsWithScores(ctx, redis.ZRangeArgs{
			Key: key, Start: start, Stop: "+inf", ByScore: true, Offset: offset, Count: int64(batchSize),
		}).Result()
		if err != nil {
			return nil, err
		}
		for _, entry := range batch {
			if after.set && int64(entry.Score) == after.score && memberID(entry) <= after.id {
				continue
			}
			if len(entries) < count {
				entries = append(entries, entry)
			}
		}
		if len(batch) < batchSize {
			break
		}
		offset += int64(len(batch))
	}
	return entries, nil
}

// minScanBatch is the smallest batch of entries that indexAfter reads when it
// selects by score.
const minScanBatch = 1000

// parseScored reads a ZRANGE WITHSCORES reply of member and score pairs.
func parseScored(reply []string) ([]redis.Z, error) {
	if len(reply)%2 != 0 {
		return nil, fmt.Errorf("sorted set reply of %d strings, expected pairs", len(reply))
	}
	entries := make([]redis.Z, 0, len(reply)/2)
	for i := 0; i < len(reply); i += 2 {
		score, err := strconv.ParseFloat(reply[i+1], 64)
		if err != nil {
			return nil, fmt.Errorf("sorted set score %q: %w", reply[i+1], err)
		}
		entries = append(entries, redis.Z{Member: reply[i], Score: score})
	}
	return entries, nil
}

// memberID returns the session id of an index entry.
func memberID(entry redis.Z) string {
	id, _ := entry.Member.(string)
	return id
}

// indexScript adds a session id to its subject's sorted set, scored by the
// record's expiry, and keeps the set alive as long as its latest entry.
// KEYS[1] subject key; ARGV: session id, expiry in Unix milliseconds.
var indexScript = redis.NewScript(`
redis.call('ZADD', KEYS[1], 'GT', ARGV[2], ARGV[1])
local latest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], latest[2])
return 1
`)

// index adds the session to its subject's index.
func (s *Store) index(ctx context.Context, session *authority.Session) error {
	err := indexScript.Run(ctx, s.client, []string{s.subjectKey(session.Subject)}, session.ID, expiry(session)).Err()
	if err != nil {
		return fmt.Errorf("index session %s in Redis: %w", session.ID, err)
	}
	return nil
}

// Close closes the Redis client.
func (s *Store) Close() error {
	clientLog.unregister(s)
	return s.client.Close()
}

// sessionKey wraps the id in braces, the hash tag that Redis Cluster uses to
// pick the slot, so all keys of one session live on one node.
func (s *Store) sessionKey(id string) string {
	return s.prefix + "session:{" + id + "}"
}

// subjectKey is the sorted set of a subject's session ids.
func (s *Store) subjectKey(subject string) string {
	return s.prefix + "subject:{" + subject + "}"
}

// expiry returns when Redis may drop the record, in Unix milliseconds.
func expiry(session *authority.Session) int64 {
	until := session.RetainUntil.Add(retainGrace)
	if floor := time.Now().Add(retainGrace); until.Before(floor) {
		until = floor
	}
	return until.UnixMilli()
}
