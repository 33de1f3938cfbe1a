package badgerstore

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// syncPathData opens the file at path and writes its data back to the disk
// with fdatasync. Unlike fsync it skips the modification time, which every
// write through a memory map changes, and it writes back the same pages as
// Badger's msync of its whole mapping.
func syncPathData(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	err = unix.Fdatasync(int(f.Fd()))
	if closeErr := f.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return nil
}
