//go:build unix

package readwait

import "syscall"

// Supported reports whether Peek works on this system.
const Supported = true

// Peek reports whether the socket fd has a byte to read, has closed, or
// failed, without taking the byte. It is a syscall.RawConn read function,
// which waits for the socket to turn readable while it returns false.
func Peek(fd uintptr) bool {
	var b [1]byte
	_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return err != syscall.EAGAIN && err != syscall.EWOULDBLOCK
}
