//go:build !unix

package main

import "time"

// processCPU reports false: the CPU time of the process is not read on this
// system.
func processCPU() (time.Duration, bool) { return 0, false }
