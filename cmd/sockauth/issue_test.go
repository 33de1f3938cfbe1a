package main

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	sockauthv1 "github.com/sockauth/sockauth/gen/sockauth/v1"
	"github.com/sockauth/sockauth/internal/serve"
)

func TestTokenIssuePrintsUsableCode(t *testing.T) {
	a, err := serve.Start(context.Background(), serve.Config{Listen: "127.0.0.1:0", DataDir: t.TempDir(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer a.Close()

	output, err := runCLI(t, "token", "issue", "--subject", "alice", "--claim", "role=admin", "--claim", "team=a=b",
		"--authority", a.Addr())
	if err != nil {
		t.Fatalf("token issue: %v", err)
	}
	code := strings.TrimSpace(output)
	if strings.Count(output, "\n") != 1 || !strings.HasPrefix(code, "v2.local.") {
		t.Fatalf("token issue printed %q, expected one line with a v2.local code", output)
	}

	conn, err := grpc.NewClient(a.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	reply, err := sockauthv1.NewAuthorityServiceClient(conn).Authenticate(context.Background(), &sockauthv1.AuthenticateRequest{Token: code})
	if err != nil {
		t.Fatalf("Authenticate with the printed code: %v", err)
	}
	info := reply.GetInfo()
	if info.GetSubject() != "alice" || info.GetClaims()["role"] != "admin" || info.GetClaims()["team"] != "a=b" {
		t.Errorf("session of the code: subject %q, claims %v, expected alice with role=admin and team=a=b",
			info.GetSubject(), info.GetClaims())
	}
}

func TestTokenIssueRejectsBadFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no subject", []string{"token", "issue"}, "missing --subject"},
		{"claim without value", []string{"token", "issue", "--subject", "alice", "--claim", "role"}, `invalid --claim "role"`},
		{"claim without name", []string{"token", "issue", "--subject", "alice", "--claim", "=x"}, `invalid --claim "=x"`},
		{"claim twice", []string{"token", "issue", "--subject", "alice", "--claim", "a=1", "--claim", "a=2"}, `claim "a" is given twice`},
		// Port 1 on loopback has no listener, so the call fails at once.
		{"dead authority", []string{"token", "issue", "--subject", "alice", "--authority", "127.0.0.1:1", "--timeout", "2s"}, "127.0.0.1:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := runCLI(t, tt.args...); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("%q = %v, expected an error containing %q", tt.args, err, tt.want)
			}
		})
	}
}
