package main

import (
	"io"
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
