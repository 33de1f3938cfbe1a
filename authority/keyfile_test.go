package authority

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestKeySetRotateAndRetire(t *testing.T) {
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	keys, err := newKeySet()
	if err != nil {
		t.Fatal(err)
	}
	first := keys.SigningKeyID
	oldCodec, err := keys.Codec(start, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	claims := sampleClaims()
	oldToken, err := oldCodec.Encode(claims)
	if err != nil {
		t.Fatal(err)
	}

	second, err := keys.Rotate(start, time.Hour)
	if err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	if second == first || keys.SigningKeyID != second {
		t.Fatalf("signing key %s after rotation, expected the new key %s", keys.SigningKeyID, second)
	}

	// Inside the token lifetime both keys verify and the new one signs.
	during, err := keys.Codec(start.Add(30*time.Minute), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if got := during.KeyIDs(); !slices.Contains(got, first) || !slices.Contains(got, second) {
		t.Fatalf("keys during the lifetime %v, expected %s and %s", got, first, second)
	}
	if _, err := during.Decode(oldToken); err != nil {
		t.Fatalf("token of the replaced key rejected inside its lifetime: %v", err)
	}

	// After the lifetime and margin the replaced key is retired.
	after, err := keys.Codec(start.Add(time.Hour+keyRetirementMargin), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if got := after.KeyIDs(); slices.Contains(got, first) {
		t.Fatalf("keys after retirement %v still contain %s", got, first)
	}
	if _, err := after.Decode(oldToken); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("token of a retired key = %v, expected ErrInvalidToken", err)
	}

	// A later rotation drops the retired key from the file.
	if _, err := keys.Rotate(start.Add(2*time.Hour), time.Hour); err != nil {
		t.Fatal(err)
	}
	for _, record := range keys.Keys {
		if record.ID == first {
			t.Fatalf("retired key %s still in the key set after a later rotation", first)
		}
	}
	if len(keys.Keys) != 2 {
		t.Fatalf("%d keys after two rotations, expected the signing key and its predecessor", len(keys.Keys))
	}
}

// TestKeySetRecordedTokenTTLKeepsReplacedKeys rotates with a lifetime shorter
// than the one recorded in the key set. The replaced key must keep verifying
// for the recorded lifetime.
func TestKeySetRecordedTokenTTLKeepsReplacedKeys(t *testing.T) {
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	keys, err := newKeySet()
	if err != nil {
		t.Fatal(err)
	}
	keys.TokenTTL = Lifetime(2 * time.Hour)
	first := keys.SigningKeyID
	if _, err := keys.Rotate(start, time.Minute); err != nil {
		t.Fatal(err)
	}

	// 30 min later a lifetime of 1 min alone would retire the first key.
	later := start.Add(30 * time.Minute)
	codec, err := keys.Codec(later, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(codec.KeyIDs(), first) {
		t.Errorf("codec keys %v 30 min after the rotation lack %s, which the recorded 2 h keep", codec.KeyIDs(), first)
	}
	if _, err := keys.Rotate(later, time.Minute); err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(keys.Keys, func(r KeyRecord) bool { return r.ID == first }) {
		t.Errorf("a rotation 30 min after the first dropped key %s, which the recorded 2 h keep", first)
	}

	// After the recorded lifetime and the margin the key goes.
	if _, err := keys.Rotate(start.Add(2*time.Hour+keyRetirementMargin), time.Minute); err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(keys.Keys, func(r KeyRecord) bool { return r.ID == first }) {
		t.Errorf("key %s still in the key set after the recorded lifetime", first)
	}
}

func TestRecordTokenTTL(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadOrCreateKeySet(dir); err != nil {
		t.Fatal(err)
	}

	_, changed, err := RecordTokenTTL(dir, 2*time.Hour)
	if err != nil || !changed {
		t.Fatalf("RecordTokenTTL(2h) on a new key file = %v, %v; expected a change", changed, err)
	}
	data, err := os.ReadFile(filepath.Join(dir, KeyFileName))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), `"token_ttl": "2h0m0s"`) {
		t.Errorf("key file lacks the recorded lifetime:\n%s", data)
	}

	// A shorter lifetime leaves the longer one in place.
	returned, changed, err := RecordTokenTTL(dir, time.Hour)
	if err != nil || changed {
		t.Fatalf("RecordTokenTTL(1h) after 2 h = %v, %v; expected no change", changed, err)
	}
	if got := time.Duration(returned.TokenTTL); got != 2*time.Hour {
		t.Errorf("RecordTokenTTL returned a key set with %s, expected the stored 2h0m0s", got)
	}
	keys, err := LoadKeySet(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := time.Duration(keys.TokenTTL); got != 2*time.Hour {
		t.Errorf("recorded lifetime %s after a shorter one was offered, expected 2h0m0s", got)
	}
}

func TestLoadKeySetRejectsBadTokenTTL(t *testing.T) {
	for _, value := range []string{`"soon"`, `"-1h"`, `"900000h"`, `3600`, `true`, `{}`} {
		dir := t.TempDir()
		keys, err := LoadOrCreateKeySet(dir)
		if err != nil {
			t.Fatal(err)
		}
		data, err := json.Marshal(keys)
		if err != nil {
			t.Fatal(err)
		}
		data = []byte(strings.Replace(string(data), "{", `{"token_ttl":`+value+",", 1))
		if err := os.WriteFile(filepath.Join(dir, KeyFileName), data, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err = LoadKeySet(dir)
		if err == nil || !strings.Contains(err.Error(), "token_ttl") {
			t.Errorf("LoadKeySet with token_ttl %s = %v, expected an error naming token_ttl", value, err)
			continue
		}
		if !strings.Contains(err.Error(), "is invalid") || strings.Contains(err.Error(), "not valid JSON") {
			t.Errorf("LoadKeySet with token_ttl %s = %v, expected \"is invalid\" for valid JSON", value, err)
		}
		if !strings.Contains(err.Error(), "set a duration such as") {
			t.Errorf("LoadKeySet with token_ttl %s = %v, expected the hint", value, err)
		}
	}
}

func TestSaveKeySetReplacesFile(t *testing.T) {
	dir := t.TempDir()
	keys, err := LoadOrCreateKeySet(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Rotate(time.Now(), time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := SaveKeySet(dir, keys); err != nil {
		t.Fatalf("SaveKeySet: %v", err)
	}

	loaded, err := LoadKeySet(dir)
	if err != nil {
		t.Fatalf("LoadKeySet: %v", err)
	}
	if loaded.SigningKeyID != keys.SigningKeyID || len(loaded.Keys) != 2 {
		t.Fatalf("loaded signing key %s with %d keys, expected %s with 2", loaded.SigningKeyID, len(loaded.Keys), keys.SigningKeyID)
	}
	info, err := os.Stat(filepath.Join(dir, KeyFileName))
	if err != nil {
		t.Fatal(err)
	}
	if mode := info.Mode().Perm(); mode != 0o600 {
		t.Fatalf("key file mode %04o after SaveKeySet, expected 0600", mode)
	}
	if _, err := os.Stat(filepath.Join(dir, KeyFileName+".tmp")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temporary key file left behind: %v", err)
	}
}

func TestLoadKeySetRejectsFolder(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, KeyFileName), 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := LoadKeySet(dir)
	if err == nil || !strings.Contains(err.Error(), "is a folder, expected a file") {
		t.Fatalf("LoadKeySet with a folder for its key file returned %v, expected an error naming the folder", err)
	}
}

// TestLoadOrCreateKeySetConcurrently starts several loaders on one empty
// folder at once. Every one must return the key set that ends up on disk.
func TestLoadOrCreateKeySetConcurrently(t *testing.T) {
	for attempt := range 20 {
		dir := t.TempDir()
		const loaders = 6
		results := make([]*KeySet, loaders)
		errs := make([]error, loaders)
		var wg sync.WaitGroup
		for i := range loaders {
			wg.Go(func() { results[i], errs[i] = LoadOrCreateKeySet(dir) })
		}
		wg.Wait()

		onDisk, err := LoadKeySet(dir)
		if err != nil {
			t.Fatalf("attempt %d: read the key file: %v", attempt, err)
		}
		for i := range loaders {
			if errs[i] != nil {
				t.Fatalf("attempt %d: loader %d: %v", attempt, i, errs[i])
			}
			if results[i].SigningKeyID != onDisk.SigningKeyID {
				t.Fatalf("attempt %d: loader %d signs with key %s, but the key file holds %s",
					attempt, i, results[i].SigningKeyID, onDisk.SigningKeyID)
			}
		}
		names, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, entry := range names {
			if strings.Contains(entry.Name(), ".tmp") {
				t.Fatalf("attempt %d: temporary file %s was left behind", attempt, entry.Name())
			}
		}
	}
}

// TestUpdateKeySetConcurrently rotates the keys of one folder from several
// goroutines at once. Every new key must survive in the key file.
func TestUpdateKeySetConcurrently(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadOrCreateKeySet(dir); err != nil {
		t.Fatal(err)
	}
	const rotations = 8
	ids := make([]string, rotations)
	errs := make([]error, rotations)
	var wg sync.WaitGroup
	for i := range rotations {
		wg.Go(func() {
			_, errs[i] = UpdateKeySet(dir, func(keys *KeySet) error {
				var err error
				ids[i], err = keys.Rotate(time.Now(), time.Hour)
				return err
			})
		})
	}
	wg.Wait()

	keys, err := LoadKeySet(dir)
	if err != nil {
		t.Fatal(err)
	}
	stored := keys.Map()
	for i := range rotations {
		if errs[i] != nil {
			t.Fatalf("rotation %d: %v", i, errs[i])
		}
		if _, ok := stored[ids[i]]; !ok {
			t.Errorf("rotation %d added key %s, which the key file lost", i, ids[i])
		}
	}
	if len(stored) != rotations+1 {
		t.Errorf("the key file holds %d keys, expected %d", len(stored), rotations+1)
	}
}

// TestUpdateKeySetWithoutKeyFile checks that a folder without a key file
// reports it and gets no lock file.
func TestUpdateKeySetWithoutKeyFile(t *testing.T) {
	dir := t.TempDir()
	_, err := UpdateKeySet(dir, func(*KeySet) error { return nil })
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("UpdateKeySet in an empty folder: %v, expected a missing file", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("UpdateKeySet left %d files in a folder without a key file", len(entries))
	}
}

func TestLongestTokenTTLTakesTokenOrCode(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want time.Duration
	}{
		{"defaults", Config{}, time.Hour},
		{"token longer", Config{TokenTTL: 3 * time.Hour, CodeTTL: time.Minute}, 3 * time.Hour},
		{"code longer", Config{TokenTTL: time.Minute, CodeTTL: 5 * time.Minute}, 5 * time.Minute},
	}
	for _, tt := range tests {
		if got := tt.cfg.LongestTokenTTL(); got != tt.want {
			t.Errorf("%s: LongestTokenTTL = %s, want %s", tt.name, got, tt.want)
		}
	}
}
