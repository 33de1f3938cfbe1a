//go:build unix

package readwait

import "golang.org/x/sys/unix"

// Supported reports whether Readable works on this system.
const Supported = true

// Readable reports whether the socket fd has a byte to read, has reached
// the end of its stream or has a pending error, without reading. It is a
// syscall.RawConn read function, which waits for the socket to turn
// readable while it returns false.
//
// It polls with a zero timeout rather than peeking with recvfrom, because
// a recvfrom that reports a pending error such as ECONNRESET also clears
// it, and the read that follows would then return io.EOF.
func Readable(fd uintptr) bool {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, 0)
		if err == unix.EINTR {
			continue
		}
		// On a failed poll, the read that follows returns the error.
		return err != nil || n > 0
	}
}
