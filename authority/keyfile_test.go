package authority

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
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
