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
// index entries whose records have expired. A subject has two indexes of the
// same session ids: one sorted by expiry, which pruning reads, and one with
// every score zero, which Redis sorts by id and which pages read. A cursor is
// the id of the last session that the previous page read, so a session whose
// expiry grows between two pages is listed once.
func (s *Store) ListBySubject(ctx context.Context, subject, cursor string, limit int) ([]*authority.Session, string, error) {
	if limit <= 0 {
		return nil, "", fmt.Errorf("list sessions of %q: page size %d: %w", subject, limit, authority.ErrInvalidArgument)
	}
	after, err := parseListCursor(cursor)
	if err != nil {
		return nil, "", err
	}

	keys := []string{s.subjectKey(subject), s.subjectIDsKey(subject)}
	if err := pruneScript.Run(ctx, s.client, keys, time.Now().UnixMilli()).Err(); err != nil {
		return nil, "", fmt.Errorf("prune session index of %q in Redis: %w", subject, err)
	}
	start := "-"
	if after != "" {
		start = "(" + after
	}
	ids, err := s.client.ZRangeArgs(ctx, redis.ZRangeArgs{
		Key: keys[1], Start: start, Stop: "+", ByLex: true, Count: int64(limit) + 1,
	}).Result()
	if err != nil {
		return nil, "", fmt.Errorf("read session index of %q from Redis: %w", subject, err)
	}

	next := ""
	if len(ids) > limit {
		ids = ids[:limit]
		next = ids[limit-1]
	}
	sessions := make([]*authority.Session, 0, len(ids))
	for _, id := range ids {
		session, err := s.Get(ctx, id)
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

// parseListCursor reads a cursor that ListBySubject returned: a session id,
// or "EXPIRY:ID" from versions that paged by expiry, of which the id is used.
func parseListCursor(cursor string) (string, error) {
	if cursor == "" {
		return "", nil
	}
	id := cursor
	if expiry, rest, found := strings.Cut(cursor, ":"); found {
		if _, err := strconv.ParseInt(expiry, 10, 64); err != nil {
			return "", fmt.Errorf("invalid page cursor %q (start again with an empty cursor): %w", cursor, authority.ErrInvalidArgument)
		}
		id = rest
	}
	if id == "" || strings.ContainsFunc(id, func(r rune) bool { return !isIDRune(r) }) {
		return "", fmt.Errorf("invalid page cursor %q (start again with an empty cursor): %w", cursor, authority.ErrInvalidArgument)
	}
	return id, nil
}

// isIDRune reports whether r can appear in a session id, which is base64url.
func isIDRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_'
}

// pruneScript removes the sessions whose records have expired from both
// indexes of a subject. It also fills the index by id from the index by
// expiry when that holds more, as after an upgrade from a version that kept
// only the latter. KEYS: index by expiry, index by id; ARGV: now in Unix
// milliseconds.
var pruneScript = redis.NewScript(`
local expired = redis.call('ZRANGE', KEYS[1], '-inf', ARGV[1], 'BYSCORE')
for i = 1, #expired, 1000 do
  local batch = {unpack(expired, i, math.min(i + 999, #expired))}
  redis.call('ZREM', KEYS[1], unpack(batch))
  redis.call('ZREM', KEYS[2], unpack(batch))
end
if redis.call('ZCARD', KEYS[2]) < redis.call('ZCARD', KEYS[1]) then
  local ids = redis.call('ZRANGE', KEYS[1], 0, -1)
  for i = 1, #ids, 1000 do
    local args = {}
    for j = i, math.min(i + 999, #ids) do
      args[#args + 1] = 0
      args[#args + 1] = ids[j]
    end
    redis.call('ZADD', KEYS[2], 'NX', unpack(args))
  end
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl > 0 then
    redis.call('PEXPIRE', KEYS[2], ttl)
  end
end
return #expired
`)

// indexScript adds a session id to both indexes of its subject: the one
// scored by the record's expiry and the one sorted by id. It keeps both
// alive as long as the latest expiry. KEYS: index by expiry, index by id;
// ARGV: session id, expiry in Unix milliseconds.
var indexScript = redis.NewScript(`
redis.call('ZADD', KEYS[1], 'GT', ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[2], 'NX', 0, ARGV[1])
local latest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], latest[2])
redis.call('PEXPIREAT', KEYS[2], latest[2])
return 1
`)

// index adds the session to its subject's indexes.
func (s *Store) index(ctx context.Context, session *authority.Session) error {
	keys := []string{s.subjectKey(session.Subject), s.subjectIDsKey(session.Subject)}
	err := indexScript.Run(ctx, s.client, keys, session.ID, expiry(session)).Err()
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

// subjectKey is the sorted set of a subject's session ids, scored by the
// expiry of their records.
func (s *Store) subjectKey(subject string) string {
	return s.prefix + "subject:{" + subject + "}"
}

// subjectIDsKey is the sorted set of a subject's session ids, all scored
// zero, so that Redis sorts them by id. It shares subjectKey's hash tag, so
// that both live on one Redis Cluster node.
func (s *Store) subjectIDsKey(subject string) string {
	return s.prefix + "subject-ids:{" + subject + "}"
}

// expiry returns when Redis may drop the record, in Unix milliseconds.
func expiry(session *authority.Session) int64 {
	until := session.RetainUntil.Add(retainGrace)
	if floor := time.Now().Add(retainGrace); until.Before(floor) {
		until = floor
	}
	return until.UnixMilli()
}
