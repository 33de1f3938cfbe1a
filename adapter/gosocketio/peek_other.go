//go:build !unix

package gosocketio

// canPeek reports whether peekReadable works on this system.
const canPeek = false

func peekReadable(uintptr) bool { return true }
