package serve

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/sockauth/sockauth/authority"
)

// keyReloadInterval is how often the key file is checked for a rotation and
// replaced keys for retirement.
const keyReloadInterval = time.Second

// keyReloader keeps a ReloadableCodec in step with the key file: a rotated
// signing key takes effect within a second, and a replaced key stops verifying
// once it retires.
type keyReloader struct {
	dir string
	// tokenTTL is the longest lifetime of the tokens that this authority
	// makes.
	tokenTTL time.Duration
	codec    *authority.ReloadableCodec
	log      *slog.Logger

	keys    *authority.KeySet
	modTime time.Time
	active  int // number of keys in the codec
	// lastError is the last failure logged, so that a broken key file is
	// reported once rather than every second until it is fixed.
	lastError string
}

func (r *keyReloader) run(ctx context.Context) {
	ticker := time.NewTicker(keyReloadInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			r.check(time.Now())
		}
	}
}

// check reloads the key file when it changed and rebuilds the codec when the
// set of usable keys changed. A key file that fails to load keeps the
// previous keys in force.
func (r *keyReloader) check(now time.Time) {
	info, err := os.Stat(filepath.Join(r.dir, authority.KeyFileName))
	if err != nil {
		r.logFailure("key file unreadable; keeping the previous keys", err)
		return
	}
	if !info.ModTime().Equal(r.modTime) {
		keys, err := authority.LoadKeySet(r.dir)
		if err != nil {
			r.logFailure("key file invalid; keeping the previous keys", err)
			return
		}
		// A key file copied from another replica may record a shorter
		// lifetime than this authority's tokens live.
		if time.Duration(keys.TokenTTL) < r.tokenTTL {
			keys = recordTokenTTL(r.dir, keys, r.tokenTTL, r.log)
			// The write changed the file, which need not be read again.
			if written, err := os.Stat(filepath.Join(r.dir, authority.KeyFileName)); err == nil {
				info = written
			}
		}
		r.keys, r.modTime, r.active = keys, info.ModTime(), -1
	}

	codec, err := r.keys.Codec(now, r.tokenTTL)
	if err != nil {
		r.logFailure("key file unusable; keeping the previous keys", err)
		return
	}
	r.lastError = ""
	if active := len(codec.KeyIDs()); active != r.active {
		r.codec.Replace(codec)
		r.active = active
		r.log.Info("signing keys loaded", "signing_key_id", r.keys.SigningKeyID, "verifying_key_ids", codec.KeyIDs())
	}
}

// logFailure logs a failure unless it is the same as the last one logged.
func (r *keyReloader) logFailure(message string, err error) {
	text := message + ": " + err.Error()
	if text == r.lastError {
		return
	}
	r.lastError = text
	r.log.Error(message, "error", err)
}

// recordTokenTTL records lifetime, the longest lifetime of the tokens that
// this authority makes, in the key file in dir, so that `sockauth keys
// rotate` keeps a replaced key verifying until they expire. It returns the
// key set after the change. A failure to write leaves the file as it was and
// is logged, because the authority can still serve with the keys it read.
func recordTokenTTL(dir string, keys *authority.KeySet, lifetime time.Duration, log *slog.Logger) *authority.KeySet {
	updated, changed, err := authority.RecordTokenTTL(dir, lifetime)
	if err != nil {
		log.Warn("token lifetime not recorded in the key file, so pass --token-ttl to `sockauth keys rotate`",
			"data", dir, "token_ttl", lifetime, "error", err)
		return keys
	}
	if changed {
		log.Info("token lifetime recorded in the key file", "token_ttl", lifetime)
	}
	return updated
}
