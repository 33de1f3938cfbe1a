package serve

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sockauth/sockauth/authority"
)

// TestKeyReloaderLogsBrokenFileOnce breaks the key file, checks it several
// times, mends it and breaks it again: each break is logged once.
func TestKeyReloaderLogsBrokenFileOnce(t *testing.T) {
	dir := t.TempDir()
	keys, err := authority.LoadOrCreateKeySet(dir)
	if err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(filepath.Join(dir, authority.KeyFileName))
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	codec, err := keys.Codec(time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	r := &keyReloader{dir: dir, tokenTTL: time.Hour, codec: authority.NewReloadableCodec(codec),
		log: slog.New(slog.NewTextHandler(&logs, nil)), keys: keys, active: -1}

	// Each write gets a distinct modification time, so check reloads it.
	write := func(data []byte, at time.Time) {
		t.Helper()
		path := filepath.Join(dir, authority.KeyFileName)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, at, at); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()

	write([]byte("{broken"), start.Add(time.Second))
	for range 3 {
		r.check(time.Now())
	}
	if n := strings.Count(logs.String(), "key file invalid"); n != 1 {
		t.Fatalf("%d error lines for one broken key file, expected 1:\n%s", n, logs.String())
	}

	write(good, start.Add(2*time.Second))
	r.check(time.Now())
	write([]byte("{broken again"), start.Add(3*time.Second))
	r.check(time.Now())
	if n := strings.Count(logs.String(), "key file invalid"); n != 2 {
		t.Fatalf("%d error lines after the file broke a second time, expected 2:\n%s", n, logs.String())
	}
}

// TestKeyReloaderRaisesCopiedTokenTTL loads a key file, such as one copied
// from another replica, that records a shorter lifetime than this
// authority's tokens live. The reloader must record its own.
func TestKeyReloaderRaisesCopiedTokenTTL(t *testing.T) {
	dir := t.TempDir()
	keys, err := authority.LoadOrCreateKeySet(dir)
	if err != nil {
		t.Fatal(err)
	}
	codec, err := keys.Codec(time.Now(), 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	r := &keyReloader{dir: dir, tokenTTL: 2 * time.Hour, codec: authority.NewReloadableCodec(codec),
		log: slog.New(slog.NewTextHandler(io.Discard, nil)), keys: keys, active: -1}

	keys.TokenTTL = authority.Lifetime(time.Hour)
	if err := authority.SaveKeySet(dir, keys); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, authority.KeyFileName)
	if err := os.Chtimes(path, time.Now(), time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	r.check(time.Now())

	stored, err := authority.LoadKeySet(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := time.Duration(stored.TokenTTL); got != 2*time.Hour {
		t.Errorf("key file records %s after the reload, expected the authority's 2h0m0s", got)
	}
	if got := time.Duration(r.keys.TokenTTL); got != 2*time.Hour {
		t.Errorf("reloader holds a key set with %s, expected 2h0m0s", got)
	}
}
