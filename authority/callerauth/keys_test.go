package callerauth

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseKeyFile(t *testing.T) {
	good := "# comment\n\ntoken:chat:0123456789abcdef0123\nadmin:ops:fedcba9876543210fedc\n"
	set, err := ParseKeyFile([]byte(good))
	if err != nil {
		t.Fatalf("ParseKeyFile: %v", err)
	}
	if set.Len() != 2 {
		t.Fatalf("Len = %d, expected 2", set.Len())
	}
	key, ok := set.Match("fedcba9876543210fedc")
	if !ok || key.Name != "ops" || key.Scope != ScopeAdmin {
		t.Fatalf("Match = %+v, %v; expected the admin key ops", key, ok)
	}
	if _, ok := set.Match("fedcba9876543210fed"); ok {
		t.Fatal("Match accepted a prefix of a key")
	}
	if _, ok := set.Match(""); ok {
		t.Fatal("Match accepted an empty key")
	}
}

func TestParseKeyFileErrors(t *testing.T) {
	tests := []struct {
		name string
		data string
		want string
	}{
		{"empty", "# nothing\n", "no keys"},
		{"missing secret", "token:chat\n", "SCOPE:NAME:SECRET"},
		{"unknown scope", "root:chat:0123456789abcdef0123\n", `unknown scope "root"`},
		{"scope case", "Token:chat:0123456789abcdef0123\n", `unknown scope "Token"`},
		{"empty name", "token::0123456789abcdef0123\n", "name is empty"},
		{"short secret", "token:chat:short\n", "shorter than 16"},
		{"duplicate name", "token:a:0123456789abcdef0123\nadmin:a:0123456789abcdef0124\n", "used twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseKeyFile([]byte(tt.data))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseKeyFile = %v, expected an error containing %q", err, tt.want)
			}
		})
	}
}

func TestSecretColonsKept(t *testing.T) {
	set, err := ParseKeyFile([]byte("token:chat:abc:def:0123456789abcdef\n"))
	if err != nil {
		t.Fatalf("ParseKeyFile: %v", err)
	}
	if _, ok := set.Match("abc:def:0123456789abcdef"); !ok {
		t.Fatal("a secret containing colons did not match")
	}
}

func TestReadServiceKeyRejectsReadableFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(path, []byte("0123456789abcdef0123\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadServiceKey(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("ReadServiceKey of a mode 0644 file = %v, expected an error with the fix", err)
	}

	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadServiceKey(path); err != nil {
		t.Fatalf("ReadServiceKey of a mode 0600 file: %v", err)
	}
}

func TestKeyFilesRejectFolder(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadServiceKey(dir); err == nil || !strings.Contains(err.Error(), "is a folder, expected a file") {
		t.Errorf("ReadServiceKey on a folder returned %v, expected an error naming the folder", err)
	}
	if _, err := readKeyFile(dir); err == nil || !strings.Contains(err.Error(), "is a folder, expected a file") {
		t.Errorf("readKeyFile on a folder returned %v, expected an error naming the folder", err)
	}
}

func TestParseKeyFileRejectsSharedSecret(t *testing.T) {
	_, err := ParseKeyFile([]byte("token:a:0123456789abcdef\nsocket:b:0123456789abcdef\n"))
	if err == nil || !strings.Contains(err.Error(), `key "b" has the same secret as key "a"`) {
		t.Fatalf("ParseKeyFile of two keys with one secret = %v, expected an error naming both", err)
	}
}

func TestRetainKeepsUnchangedLines(t *testing.T) {
	previous, err := ParseKeyFile([]byte("token:a:0123456789abcdef\nsocket:b:fedcba9876543210\nadmin:c:aaaaaaaaaaaaaaaa\n"))
	if err != nil {
		t.Fatal(err)
	}
	// b is removed, c changes scope, and a broken line is added.
	next, err := parseKeyLines([]byte("token:a:0123456789abcdef\nsocket:c:aaaaaaaaaaaaaaaa\nsocket:d:short\n"))
	if err == nil {
		t.Fatal("parseKeyLines accepted a key shorter than the minimum")
	}
	retained := previous.retain(next)
	if retained.Len() != 1 {
		t.Fatalf("retain retained %d keys, expected only a", retained.Len())
	}
	if key, ok := retained.Match("0123456789abcdef"); !ok || key.Name != "a" {
		t.Errorf("retain retained %+v (found %v), expected key a", key, ok)
	}
}
