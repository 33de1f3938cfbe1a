package cputime

import (
	"os"
	"path/filepath"
	"testing"
)

func TestStartProfileWritesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cpu.prof")
	stop, err := StartProfile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Size() == 0 {
		t.Error("the profile is empty")
	}
}

func TestStartProfileRejectsMissingFolder(t *testing.T) {
	if _, err := StartProfile(filepath.Join(t.TempDir(), "missing", "cpu.prof")); err == nil {
		t.Error("a profile in a missing folder was accepted")
	}
}
