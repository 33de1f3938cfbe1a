//go:build !unix

package readwait

// Supported reports whether Peek works on this system.
const Supported = false

// Peek reports true at once: this system has no non-blocking peek.
func Peek(uintptr) bool { return true }
