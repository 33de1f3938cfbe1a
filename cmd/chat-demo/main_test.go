package main

import (
	"io"
	"log/slog"
	"math"
	"runtime/debug"
	"strings"
	"testing"
)

func TestRootCommandRejectsFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{name: "data with authority", args: []string{"--authority", "127.0.0.1:7070", "--data", "somewhere"}, wantErr: "--data"},
		{name: "token TTL with authority", args: []string{"--authority", "127.0.0.1:7070", "--token-ttl", "2s"}, wantErr: "--token-ttl"},
		{name: "zero auth timeout", args: []string{"--auth-timeout", "0s"}, wantErr: "--auth-timeout"},
		{name: "negative auth timeout", args: []string{"--auth-timeout", "-1s"}, wantErr: "--auth-timeout"},
		{name: "user without password", args: []string{"--authority", "127.0.0.1:7070", "--user", "alice"}, wantErr: "NAME:PASSWORD"},
		{name: "positional argument", args: []string{"extra"}, wantErr: "unknown command"},
		{name: "service key without authority", args: []string{"--authority-key-file", "key"}, wantErr: "--authority-key-file"},
		{name: "TLS CA without authority", args: []string{"--authority-tls-ca", "ca.pem"}, wantErr: "--authority-tls-ca"},
		{name: "TLS without authority", args: []string{"--authority-tls"}, wantErr: "--authority-tls"},
		{name: "zero GC percent", args: []string{"--gc-percent", "0"}, wantErr: "--gc-percent"},
		{name: "negative memory limit", args: []string{"--memory-limit", "-1"}, wantErr: "--memory-limit"},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := newRootCommand()
			cmd.SetArgs(tt.args)
			cmd.SetOut(io.Discard)
			cmd.SetErr(io.Discard)

			err := cmd.Execute()
			if err == nil {
				t.Fatalf("Execute(%q) succeeded, want an error mentioning %q", tt.args, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Execute(%q) error = %q, want it to mention %q", tt.args, err, tt.wantErr)
			}
		})
	}
}

func TestApplyGCSettings(t *testing.T) {
	t.Cleanup(func() {
		debug.SetGCPercent(100)
		debug.SetMemoryLimit(math.MaxInt64)
	})
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))

	applyGCSettings(30, 64, logger)

	if got := debug.SetGCPercent(100); got != 30 {
		t.Errorf("GC percent = %d after applyGCSettings(30, ...), expected 30", got)
	}
	if got := debug.SetMemoryLimit(-1); got != 64<<20 {
		t.Errorf("memory limit = %d after applyGCSettings(..., 64), expected %d", got, 64<<20)
	}
}

func TestApplyGCSettingsEnvironmentWins(t *testing.T) {
	t.Setenv("GOGC", "100")
	t.Setenv("GOMEMLIMIT", "off")
	debug.SetGCPercent(100)
	debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() {
		debug.SetGCPercent(100)
		debug.SetMemoryLimit(math.MaxInt64)
	})
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))

	applyGCSettings(30, 64, logger)

	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GC percent = %d with GOGC set, expected GOGC's 100", got)
	}
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("memory limit = %d with GOMEMLIMIT set, expected none", got)
	}
}
