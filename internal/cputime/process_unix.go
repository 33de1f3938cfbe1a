//go:build unix

package cputime

import (
	"syscall"
	"time"
)

// Process returns the user and system CPU time that this process has used,
// and true, or false when getrusage fails.
func Process() (time.Duration, bool) {
	var usage syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &usage); err != nil {
		return 0, false
	}
	return time.Duration(usage.Utime.Nano() + usage.Stime.Nano()), true
}
