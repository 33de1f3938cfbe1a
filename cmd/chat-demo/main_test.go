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
		{name: "trusted proxy that is no network", args: []string{"--trusted-proxies", "10.0.0.0/8,proxy.internal"}, wantErr: "proxy.internal"},
		{name: "trusted proxy prefix too long", args: []string{"--trusted-proxies", "10.0.0.0/33"}, wantErr: "10.0.0.0/33"},
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

func TestTrustedProxiesFlag(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "default", want: "127.0.0.0/8,::1/128"},
		{name: "replaces the default", args: []string{"--trusted-proxies", "10.0.0.0/8, fd00::/8"}, want: "10.0.0.0/8,fd00::/8"},
		{name: "repeated", args: []string{"--trusted-proxies", "10.0.0.0/8", "--trusted-proxies", "192.168.1.0/24"},
			want: "10.0.0.0/8,192.168.1.0/24"},
		{name: "host bits cleared", args: []string{"--trusted-proxies", "10.1.2.3/8"}, want: "10.0.0.0/8"},
		{name: "bare address", args: []string{"--trusted-proxies", "192.0.2.10"}, want: "192.0.2.10/32"},
		{name: "empty trusts none", args: []string{"--trusted-proxies", ""}, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := newRootCommand()
			if err := cmd.ParseFlags(tt.args); err != nil {
				t.Fatalf("ParseFlags(%q): %v", tt.args, err)
			}
			if got := cmd.Flags().Lookup("trusted-proxies").Value.String(); got != tt.want {
				t.Errorf("--trusted-proxies after %q = %q, expected %q", tt.args, got, tt.want)
			}
		})
	}
}
