//go:build unix && !aix

package authority

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// keyLockFileName is the file in the data folder that processes lock while
// they create or change the key file. It stays in place, because removing a
// lock file lets two processes lock two different files.
const keyLockFileName = KeyFileName + ".lock"

// lockKeyFile waits for an exclusive lock on the key lock file in dir, and
// returns the function that releases it.
func lockKeyFile(dir string) (unlock func(), err error) {
	path := filepath.Join(dir, keyLockFileName)
	file, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open key lock file: %w", err)
	}
	if err := unix.Flock(int(file.Fd()), unix.LOCK_EX); err != nil {
		file.Close()
		return nil, fmt.Errorf("lock key lock file %q: %w", path, err)
	}
	// Closing the file releases the lock.
	return func() { file.Close() }, nil
}
