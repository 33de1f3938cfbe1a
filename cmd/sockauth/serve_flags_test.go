package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestServeRejectsBadObservabilityFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"unknown log format", []string{"--log-format", "xml"}, []string{`unknown log format "xml"`}},
		{"non-loopback metrics", []string{"--metrics-listen", "0.0.0.0:0"}, []string{"0.0.0.0:0", "--insecure"}},
		{"metrics on every interface", []string{"--metrics-listen", ":0"}, []string{"will not serve metrics on :0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := newRootCommand()
			var output bytes.Buffer
			cmd.SetOut(&output)
			cmd.SetErr(&output)
			cmd.SetArgs(append([]string{"serve", "--listen", "127.0.0.1:0", "--data", t.TempDir()}, tt.args...))

			err := cmd.Execute()
			if err == nil {
				t.Fatalf("Execute succeeded, expected an error containing %q", tt.want)
			}
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Execute = %v, expected it to contain %q", err, want)
				}
			}
		})
	}
}
