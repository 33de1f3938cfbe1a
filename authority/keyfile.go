package authority

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// KeyFileName is the name of the key file inside the data folder.
const KeyFileName = "keys.json"

// KeySet is the content of the key file: every key that may decrypt tokens and
// the id of the one that encrypts new tokens.
type KeySet struct {
	SigningKeyID string      `json:"signing_key_id"`
	Keys         []KeyRecord `json:"keys"`
	// TokenTTL is the longest token lifetime recorded in this copy of the
	// file: the longer of the session token and login code lifetimes of each
	// authority that used it, and any longer --token-ttl given to a key
	// rotation. Files that older versions wrote have none. A replaced key
	// verifies for at least this long, whatever lifetime the callers of
	// Rotate and Codec pass.
	TokenTTL Lifetime `json:"token_ttl,omitzero"`
}

// MaxLifetime bounds every token and session lifetime, 100 years of 365
// days, so that a key's retirement time cannot overflow.
const MaxLifetime = 100 * 365 * 24 * time.Hour

// Lifetime is a duration that the key file spells as Go does, such as "1h0m0s".
type Lifetime time.Duration

// lifetimeHint is the advice for fixing an invalid token_ttl.
const lifetimeHint = `set a duration such as "1h0m0s", or remove the field`

// UnmarshalJSON implements json.Unmarshaler. It accepts only a JSON string,
// so that a number or another type gets the same hint as a bad string.
func (l *Lifetime) UnmarshalJSON(data []byte) error {
	var text string
	if err := json.Unmarshal(data, &text); err != nil {
		return fmt.Errorf("invalid token_ttl %s: %s", data, lifetimeHint)
	}
	return l.UnmarshalText([]byte(text))
}

// MarshalText implements encoding.TextMarshaler.
func (l Lifetime) MarshalText() ([]byte, error) { return []byte(time.Duration(l).String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (l *Lifetime) UnmarshalText(text []byte) error {
	d, err := time.ParseDuration(string(text))
	if err != nil {
		return fmt.Errorf("invalid token_ttl %q: %s: %w", text, lifetimeHint, err)
	}
	if d < 0 || d > MaxLifetime {
		return fmt.Errorf("invalid token_ttl %q: expected a lifetime from 0 to %v, so %s", text, MaxLifetime, lifetimeHint)
	}
	*l = Lifetime(d)
	return nil
}

// RetirementTTL returns the token lifetime after which a replaced key
// retires: the longer of tokenTTL and the lifetime recorded in the file.
func (k *KeySet) RetirementTTL(tokenTTL time.Duration) time.Duration {
	return max(tokenTTL, time.Duration(k.TokenTTL))
}

// KeyRecord is one symmetric key of the key file.
type KeyRecord struct {
	ID        string    `json:"id"`
	Secret    []byte    `json:"secret"`
	CreatedAt time.Time `json:"created_at"`
	// SigningEndedAt is when another key took over signing; zero while the key
	// signs or has never been replaced.
	SigningEndedAt time.Time `json:"signing_ended_at,omitzero"`
}

// keyRetirementMargin is added to the token lifetime before a replaced key
// stops verifying, to cover clock skew and replicas that reload the key file
// up to a second late.
const keyRetirementMargin = time.Minute

// RetiresAt returns when a replaced key stops verifying: once every token it
// signed has expired. It returns the zero time for a key that was never
// replaced.
func (r *KeyRecord) RetiresAt(tokenTTL time.Duration) time.Time {
	if r.SigningEndedAt.IsZero() {
		return time.Time{}
	}
	return r.SigningEndedAt.Add(tokenTTL + keyRetirementMargin)
}

// Map returns the keys by id, as NewPasetoV2 takes them.
func (k *KeySet) Map() map[string][]byte {
	keys := make(map[string][]byte, len(k.Keys))
	for _, record := range k.Keys {
		keys[record.ID] = record.Secret
	}
	return keys
}

// Codec returns a codec with the signing key and every key that has not yet
// retired at now, given the caller's token lifetime and the one recorded in
// the file.
func (k *KeySet) Codec(now time.Time, tokenTTL time.Duration) (*PasetoV2, error) {
	tokenTTL = k.RetirementTTL(tokenTTL)
	keys := make(map[string][]byte, len(k.Keys))
	for _, record := range k.Keys {
		retires := record.RetiresAt(tokenTTL)
		if record.ID == k.SigningKeyID || retires.IsZero() || now.Before(retires) {
			keys[record.ID] = record.Secret
		}
	}
	return NewPasetoV2(keys, k.SigningKeyID)
}

// Rotate adds a fresh key that signs from now on, marks the previous signing
// key as replaced at now, and drops keys that retired before now, given the
// longer of tokenTTL and the lifetime recorded in the file. It returns the
// new key's id.
//
// NOTE: in a file without a recorded lifetime, tokenTTL alone decides, so a
// value shorter than the authority's drops keys whose tokens are still valid.
func (k *KeySet) Rotate(now time.Time, tokenTTL time.Duration) (string, error) {
	record, err := newKeyRecord(now)
	if err != nil {
		return "", err
	}
	tokenTTL = k.RetirementTTL(tokenTTL)

	retained := k.Keys[:0]
	for _, old := range k.Keys {
		if old.ID == k.SigningKeyID {
			old.SigningEndedAt = now
		}
		if retires := old.RetiresAt(tokenTTL); !retires.IsZero() && !now.Before(retires) {
			continue
		}
		retained = append(retained, old)
	}
	k.Keys = append(retained, record)
	k.SigningKeyID = record.ID
	return record.ID, nil
}

// RecordTokenTTL raises the token lifetime recorded in the key file in dir to
// tokenTTL, and leaves a longer one in place. It returns the key set that the
// file contains afterwards, and whether it changed the file. An authority
// calls it at its start, so that key rotations keep replaced keys for as long
// as its tokens live, even when the operator passes no or a shorter lifetime
// to the rotation.
func RecordTokenTTL(dir string, tokenTTL time.Duration) (*KeySet, bool, error) {
	if tokenTTL < 0 || tokenTTL > MaxLifetime {
		return nil, false, fmt.Errorf("token lifetime %v is outside 0 to %v", tokenTTL, MaxLifetime)
	}
	keys, err := LoadKeySet(dir)
	if err != nil {
		return nil, false, err
	}
	if time.Duration(keys.TokenTTL) >= tokenTTL {
		return keys, false, nil
	}
	changed := false
	keys, err = UpdateKeySet(dir, func(keys *KeySet) error {
		if time.Duration(keys.TokenTTL) < tokenTTL {
			keys.TokenTTL = Lifetime(tokenTTL)
			changed = true
		}
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("record the token lifetime in the key file: %w", err)
	}
	return keys, changed, nil
}

// LoadKeySet reads the key file in dir.
func LoadKeySet(dir string) (*KeySet, error) {
	return readKeySet(filepath.Join(dir, KeyFileName))
}

// UpdateKeySet reads the key file in dir, applies update to it and saves the
// result, and returns it. An exclusive lock on the folder's key lock file
// covers the whole sequence, so that concurrent updates, such as two key
// rotations, apply one after the other instead of one losing the other's key.
func UpdateKeySet(dir string, update func(*KeySet) error) (*KeySet, error) {
	// A folder without a key file gets no lock file either.
	if _, err := os.Stat(filepath.Join(dir, KeyFileName)); err != nil {
		return nil, err
	}
	unlock, err := lockKeyFile(dir)
	if err != nil {
		return nil, err
	}
	defer unlock()

	keys, err := LoadKeySet(dir)
	if err != nil {
		return nil, err
	}
	if err := update(keys); err != nil {
		return nil, err
	}
	if err := SaveKeySet(dir, keys); err != nil {
		return nil, err
	}
	return keys, nil
}

// SaveKeySet replaces the key file in dir atomically: a reader sees the old
// file or the new one, never a mix, and the new one survives a crash once
// SaveKeySet returns. Use UpdateKeySet to change a key file that other
// processes may change too.
func SaveKeySet(dir string, keys *KeySet) error {
	path := filepath.Join(dir, KeyFileName)
	tmp, err := writeTempKeyFile(path, keys)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("replace key file %q: %w", path, err)
	}
	return syncDir(dir)
}

// LoadOrCreateKeySet reads the key file in dir, or creates it with one fresh key
// and mode 0600 when it does not exist. It rejects a key file that other users
// may read or write. Processes that start together on one empty folder all
// end up with the key file that the first of them created.
func LoadOrCreateKeySet(dir string) (*KeySet, error) {
	path := filepath.Join(dir, KeyFileName)

	keys, err := readKeySet(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return keys, err
	}

	unlock, err := lockKeyFile(dir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	// Another process may have created the file while this one waited.
	keys, err = readKeySet(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return keys, err
	}

	keys, err = newKeySet()
	if err != nil {
		return nil, err
	}
	err = writeNewKeyFile(path, keys)
	if errors.Is(err, fs.ErrExist) {
		// Without a working lock, another process can still win the race.
		return readKeySet(path)
	}
	if err != nil {
		return nil, err
	}
	return keys, nil
}

func readKeySet(path string) (*KeySet, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if info.IsDir() {
		return nil, fmt.Errorf("key file %q is a folder, expected a file", path)
	}
	if mode := info.Mode().Perm(); mode&0o077 != 0 {
		return nil, fmt.Errorf("key file %q has mode %04o, which lets other users read it; run chmod 600 on it", path, mode)
	}

	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read key file: %w", err)
	}

	var keys KeySet
	if err := json.Unmarshal(data, &keys); err != nil {
		var syntaxErr *json.SyntaxError
		if errors.As(err, &syntaxErr) {
			return nil, fmt.Errorf("key file %q is not valid JSON: %w", path, err)
		}
		return nil, fmt.Errorf("key file %q is invalid: %w", path, err)
	}
	if len(keys.Keys) == 0 {
		return nil, fmt.Errorf("key file %q contains no keys", path)
	}
	if _, err := NewPasetoV2(keys.Map(), keys.SigningKeyID); err != nil {
		return nil, fmt.Errorf("key file %q: %w", path, err)
	}
	return &keys, nil
}

func newKeySet() (*KeySet, error) {
	record, err := newKeyRecord(time.Now())
	if err != nil {
		return nil, err
	}
	return &KeySet{SigningKeyID: record.ID, Keys: []KeyRecord{record}}, nil
}

func newKeyRecord(now time.Time) (KeyRecord, error) {
	secret := make([]byte, KeySize)
	if _, err := rand.Read(secret); err != nil {
		return KeyRecord{}, fmt.Errorf("generate key: %w", err)
	}
	id := make([]byte, 6)
	if _, err := rand.Read(id); err != nil {
		return KeyRecord{}, fmt.Errorf("generate key id: %w", err)
	}
	return KeyRecord{ID: hex.EncodeToString(id), Secret: secret, CreatedAt: now.UTC().Truncate(time.Second)}, nil
}

// writeTempKeyFile writes keys to a new file of its own beside path, with
// mode 0600, syncs the file and returns its name. Each call gets another
// name, so that concurrent writers never write into one file.
func writeTempKeyFile(path string, keys *KeySet) (string, error) {
	data, err := json.MarshalIndent(keys, "", "  ")
	if err != nil {
		return "", fmt.Errorf("encode key file: %w", err)
	}

	file, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp-*")
	if err != nil {
		return "", fmt.Errorf("create key file: %w", err)
	}
	tmp := file.Name()
	if _, err := file.Write(append(data, '\n')); err != nil {
		file.Close()
		os.Remove(tmp)
		return "", fmt.Errorf("write key file %q: %w", tmp, err)
	}
	if err := file.Sync(); err != nil {
		file.Close()
		os.Remove(tmp)
		return "", fmt.Errorf("sync key file %q: %w", tmp, err)
	}
	if err := file.Close(); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("close key file %q: %w", tmp, err)
	}
	return tmp, nil
}

// writeNewKeyFile creates path exclusively with mode 0600 and syncs it, so a
// crash never leaves a half-written key that tokens were already made with.
// It returns an error matching fs.ErrExist when path exists already.
func writeNewKeyFile(path string, keys *KeySet) error {
	tmp, err := writeTempKeyFile(path, keys)
	if err != nil {
		return err
	}

	// A link fails when another process created the key file meanwhile, so
	// two starts never end up with different keys.
	if err := os.Link(tmp, path); err != nil {
		os.Remove(tmp)
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("key file %q was created concurrently: %w", path, err)
		}
		return fmt.Errorf("install key file %q: %w", path, err)
	}
	os.Remove(tmp)
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open folder %q: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync folder %q: %w", dir, err)
	}
	return nil
}
