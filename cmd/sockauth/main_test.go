package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestServeRefusesNonLoopback(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"flag", []string{"serve", "--listen", "0.0.0.0:0", "--data", t.TempDir()}, nil, "0.0.0.0:0"},
		{"environment", []string{"serve", "--data", t.TempDir()}, map[string]string{"SOCKAUTH_LISTEN": "[::]:0"}, "[::]:0"},
		{"empty host", []string{"serve", "--listen", ":0", "--data", t.TempDir()}, nil, "will not listen on :0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for name, value := range tt.env {
				t.Setenv(name, value)
			}
			cmd := newRootCommand()
			var output bytes.Buffer
			cmd.SetOut(&output)
			cmd.SetErr(&output)
			cmd.SetArgs(tt.args)

			err := cmd.Execute()
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "--insecure") {
				t.Fatalf("Execute = %v, expected a refusal naming %q and --insecure", err, tt.want)
			}
		})
	}
}

func TestServeRejectsBadEnvironment(t *testing.T) {
	t.Setenv("SOCKAUTH_TOKEN_TTL", "an hour")
	cmd := newRootCommand()
	cmd.SetOut(&bytes.Buffer{})
	cmd.SetErr(&bytes.Buffer{})
	cmd.SetArgs([]string{"serve", "--data", t.TempDir()})

	err := cmd.Execute()
	if err == nil || !strings.Contains(err.Error(), "SOCKAUTH_TOKEN_TTL") {
		t.Fatalf("Execute = %v, expected an error naming SOCKAUTH_TOKEN_TTL", err)
	}
}
