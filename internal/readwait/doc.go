// Package readwait waits for a socket to turn readable without reading it.
//
// A goroutine that blocks in a read deep inside a WebSocket library keeps
// the frames of that library on its stack. The garbage collector halves a
// goroutine's stack only when less than a quarter of it is in use, so an
// idle connection's reader that once grew its stack to 8 KiB keeps all of
// it. Waiting through syscall.RawConn with Readable before the read blocks
// in fewer and smaller frames, and the collector can then shrink the stack.
package readwait
