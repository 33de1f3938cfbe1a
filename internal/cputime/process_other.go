//go:build !unix

package cputime

import "time"

// Process reports false: the CPU time of the process is not read on this
// system.
func Process() (time.Duration, bool) { return 0, false }
