// Package callerauth authenticates the services that call the authority. Each
// caller sends a service key as "authorization: Bearer KEY" gRPC metadata. The
// authority compares it in constant time with the keys of a key file that it
// re-reads when the file changes, so keys rotate without a restart.
//
// A key has a scope: "socket" keys may call the AuthorityService RPCs that a
// socket server needs (all but IssueCode), "token" keys every AuthorityService
// RPC, and "admin" keys AdminService as well. Health and reflection need no key.
package callerauth

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"os"
	"strings"
)

// Scopes of a service key, each allowing more than the one before.
const (
	ScopeSocket = "socket"
	ScopeToken  = "token"
	ScopeAdmin  = "admin"
)

// scopeRank orders the scopes by what they allow.
var scopeRank = map[string]int{ScopeSocket: 1, ScopeToken: 2, ScopeAdmin: 3}

// MinKeyBytes is the shortest service key accepted: 16 bytes is 128 bits when
// the key is random, such as `openssl rand -hex 32` makes.
const MinKeyBytes = 16

// Key is one service key of the key file.
type Key struct {
	Scope string
	// Name identifies the caller in logs; it is not secret.
	Name string
	// digest is the SHA-256 of the secret, so that comparisons take the same
	// time whatever the length of the presented key.
	digest [sha256.Size]byte
}

// KeySet is the parsed content of a key file.
type KeySet struct {
	keys []Key
}

// ParseKeyFile parses a key file with one key per line as SCOPE:NAME:SECRET,
// where SCOPE is socket, token or admin. Blank lines and lines starting with #
// are ignored.
func ParseKeyFile(data []byte) (*KeySet, error) {
	set := &KeySet{}
	names := map[string]bool{}
	scanner := bufio.NewScanner(bytes.NewReader(data))
	for number := 1; scanner.Scan(); number++ {
		line := strings.TrimSpace(scanner.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}

		scope, rest, ok1 := strings.Cut(line, ":")
		name, secret, ok2 := strings.Cut(rest, ":")
		switch {
		case !ok1 || !ok2:
			return nil, fmt.Errorf("line %d: expected SCOPE:NAME:SECRET", number)
		case scopeRank[scope] == 0:
			return nil, fmt.Errorf("line %d: unknown scope %q, expected socket, token or admin", number, scope)
		case name == "":
			return nil, fmt.Errorf("line %d: the key name is empty", number)
		case names[name]:
			return nil, fmt.Errorf("line %d: key name %q is used twice", number, name)
		case len(secret) < MinKeyBytes:
			return nil, fmt.Errorf("line %d: key %q is shorter than %d bytes", number, name, MinKeyBytes)
		}
		names[name] = true
		set.keys = append(set.keys, Key{Scope: scope, Name: name, digest: sha256.Sum256([]byte(secret))})
	}
	if err := scanner.Err(); err != nil {
		return nil, err
	}
	if len(set.keys) == 0 {
		return nil, errors.New("the key file contains no keys")
	}
	return set, nil
}

// Match returns the key whose secret equals presented. It compares against
// every key, in constant time for each, so the time taken does not reveal
// which key or how much of it matched.
func (s *KeySet) Match(presented string) (Key, bool) {
	digest := sha256.Sum256([]byte(presented))
	var (
		found Key
		ok    bool
	)
	for _, key := range s.keys {
		if subtle.ConstantTimeCompare(digest[:], key.digest[:]) == 1 {
			found, ok = key, true
		}
	}
	return found, ok
}

// Len returns the number of keys.
func (s *KeySet) Len() int { return len(s.keys) }

// readKeyFile reads and parses path, rejecting a file that other users may read.
func readKeyFile(path string) (*KeySet, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("service key file: %w", err)
	}
	if info.IsDir() {
		return nil, fmt.Errorf("service key file %q is a folder, expected a file", path)
	}
	if mode := info.Mode().Perm(); mode&0o077 != 0 {
		return nil, fmt.Errorf("service key file %q has mode %04o, which lets other users read it; run chmod 600 on it", path, mode)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("service key file: %w", err)
	}
	set, err := ParseKeyFile(data)
	if err != nil {
		return nil, fmt.Errorf("service key file %q: %w", path, err)
	}
	return set, nil
}
