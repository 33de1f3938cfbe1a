// Package cputime reads the CPU time of this process and writes CPU profiles
// for go tool pprof, for the benchmark commands.
package cputime

import (
	"errors"
	"fmt"
	"os"
	"runtime/pprof"
)

// StartProfile starts writing a CPU profile of this process to path and returns the
// function that stops the profile and closes the file, with the error of
// that close.
func StartProfile(path string) (stop func() error, err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("create the CPU profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		return nil, errors.Join(fmt.Errorf("start the CPU profile: %w", err), f.Close())
	}
	return func() error {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			return fmt.Errorf("write the CPU profile %s: %w", path, err)
		}
		return nil
	}, nil
}
