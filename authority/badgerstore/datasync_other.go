//go:build !linux

package badgerstore

// syncPathData syncs the file at path. Systems other than Linux get a full
// fsync.
func syncPathData(path string) error { return syncPath(path) }
