package badgerstore

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// releaseSupported reports whether releaseTableMappings can release pages.
const releaseSupported = true

// releaseTableMappings drops this process's mappings of the pages of the
// table files in dir whose ids are in ids. The caller must keep those tables
// mapped until it returns, as holdTables does. It returns an error only when
// /proc/self/maps cannot be read or parsed. A failed madvise of one table
// goes to the result's failures instead.
func releaseTableMappings(dir string, ids map[uint64]bool) (releaseResult, error) {
	var result releaseResult
	if len(ids) == 0 {
		return result, nil
	}
	maps, err := os.Open("/proc/self/maps")
	if err != nil {
		return result, fmt.Errorf("read the memory map: %w", err)
	}
	mappings, err := parseTableMappings(maps, dir)
	if closeErr := maps.Close(); err == nil && closeErr != nil {
		err = fmt.Errorf("read the memory map: %w", closeErr)
	}
	if err != nil {
		return result, err
	}

	for _, mapping := range mappings {
		if !ids[mapping.id] {
			continue
		}
		length := mapping.end - mapping.start
		// The range is an address from the kernel's list, not a Go pointer,
		// so it goes to the system call as a number.
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, mapping.start, length, unix.MADV_DONTNEED); errno != 0 {
			result.failures = append(result.failures, fmt.Errorf("madvise table %d: %w", mapping.id, errno))
			continue
		}
		result.tables++
		result.bytes += uint64(length)
	}
	return result, nil
}
