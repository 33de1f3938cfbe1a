//go:build !unix

package readwait

// Supported reports whether Readable works on this system.
const Supported = false

// Readable returns true at once, so that the read that follows blocks as
// usual.
func Readable(uintptr) bool { return true }
