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
	"cmp"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"os"
	"slices"
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
// are ignored. Each name and each secret may appear once.
func ParseKeyFile(data []byte) (*KeySet, error) {
	set, err := parseKeyLines(data)
	if err != nil {
		return nil, err
	}
	if len(set.keys) == 0 {
		return nil, errors.New("the key file contains no keys")
	}
	return set, nil
}

// parseKeyLines parses every line of a key file. It returns the keys of the
// valid lines even when other lines are invalid, together with the error of
// the first invalid line.
func parseKeyLines(data []byte) (*KeySet, error) {
	set := &KeySet{}
	var firstErr error
	names := map[string]bool{}
	secrets := map[[sha256.Size]byte]string{}
	scanner := bufio.NewScanner(bytes.NewReader(data))
	for number := 1; scanner.Scan(); number++ {
		line := strings.TrimSpace(scanner.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}

		scope, rest, ok1 := strings.Cut(line, ":")
		name, secret, ok2 := strings.Cut(rest, ":")
		digest := sha256.Sum256([]byte(secret))
		var err error
		switch {
		case !ok1 || !ok2:
			err = fmt.Errorf("line %d: expected SCOPE:NAME:SECRET", number)
		case scopeRank[scope] == 0:
			err = fmt.Errorf("line %d: unknown scope %q, expected socket, token or admin", number, scope)
		case name == "":
			err = fmt.Errorf("line %d: the key name is empty", number)
		case names[name]:
			err = fmt.Errorf("line %d: key name %q is used twice", number, name)
		case len(secret) < MinKeyBytes:
			err = fmt.Errorf("line %d: key %q is shorter than %d bytes", number, name, MinKeyBytes)
		case secrets[digest] != "":
			err = fmt.Errorf("line %d: key %q has the same secret as key %q; give each caller a secret of its own",
				number, name, secrets[digest])
		}
		if err != nil {
			firstErr = cmp.Or(firstErr, err)
			continue
		}
		names[name] = true
		secrets[digest] = name
		set.keys = append(set.keys, Key{Scope: scope, Name: name, digest: digest})
	}
	if err := scanner.Err(); err != nil {
		return nil, err
	}
	return set, firstErr
}

// retain returns the keys of s that have a line of their own, with the same
// scope, name and secret, in next.
func (s *KeySet) retain(next *KeySet) *KeySet {
	retained := &KeySet{}
	for _, key := range s.keys {
		if slices.Contains(next.keys, key) {
			retained.keys = append(retained.keys, key)
		}
	}
	return retained
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
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("service key file: %w", err)
	}
	if mode := info.Mode().Perm(); mode&0o077 != 0 {
		// The keys it lists may be known to others, but the keys it no
		// longer lists are removed all the same.
		return nil, &invalidKeyFileError{path: path, valid: validKeys(data),
			err: fmt.Errorf("mode %04o lets other users read it; run chmod 600 on it", mode)}
	}
	set, err := ParseKeyFile(data)
	if err != nil {
		return nil, &invalidKeyFileError{path: path, err: err, valid: validKeys(data)}
	}
	return set, nil
}

// invalidKeyFileError is the error of a key file that was read but has an
// invalid line. valid holds the keys of its valid lines.
type invalidKeyFileError struct {
	path  string
	err   error
	valid *KeySet
}

func (e *invalidKeyFileError) Error() string {
	return fmt.Sprintf("service key file %q: %v", e.path, e.err)
}

func (e *invalidKeyFileError) Unwrap() error { return e.err }

// validKeys returns the keys of the valid lines of a key file.
func validKeys(data []byte) *KeySet {
	set, _ := parseKeyLines(data)
	if set == nil {
		return &KeySet{}
	}
	return set
}
