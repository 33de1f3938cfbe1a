//go:build !linux

package badgerstore

// releaseSupported reports whether releaseTableMappings can release pages.
const releaseSupported = false

// releaseTableMappings does nothing on systems other than Linux, which have
// no /proc/self/maps to find Badger's table mappings in.
func releaseTableMappings(dir string, ids map[uint64]bool) (releaseResult, error) {
	return releaseResult{}, nil
}
