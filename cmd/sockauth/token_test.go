package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/sockauth/sockauth/authority"
	sockauthv1 "github.com/sockauth/sockauth/gen/sockauth/v1"
	"github.com/sockauth/sockauth/internal/serve"
)

// inspectCLI runs `sockauth token inspect --data dataDir` with the token on
// standard input.
func inspectCLI(t *testing.T, dataDir, token string, extraArgs ...string) (string, error) {
	t.Helper()
	cmd := newRootCommand()
	var output bytes.Buffer
	cmd.SetOut(&output)
	cmd.SetErr(&bytes.Buffer{})
	cmd.SetIn(strings.NewReader(token + "\n"))
	cmd.SetArgs(append([]string{"token", "inspect", "--data", dataDir}, extraArgs...))
	err := cmd.Execute()
	return output.String(), err
}

func TestTokenInspect(t *testing.T) {
	dataDir := t.TempDir()
	a, err := serve.Start(context.Background(), serve.Config{Listen: "127.0.0.1:0", DataDir: dataDir,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer a.Close()
	conn, err := grpc.NewClient(a.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := sockauthv1.NewAuthorityServiceClient(conn)
	ctx := context.Background()

	issued, err := client.IssueCode(ctx, &sockauthv1.IssueCodeRequest{Subject: "alice", Claims: map[string]string{"role": "member"}})
	if err != nil {
		t.Fatalf("IssueCode: %v", err)
	}
	first, err := client.Authenticate(ctx, &sockauthv1.AuthenticateRequest{Token: issued.GetCode()})
	if err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	second, err := client.Authenticate(ctx, &sockauthv1.AuthenticateRequest{Token: first.GetToken()})
	if err != nil {
		t.Fatalf("Authenticate: %v", err)
	}

	// While the authority runs, the Badger database is locked.
	output, err := inspectCLI(t, dataDir, second.GetToken())
	if err != nil {
		t.Fatalf("token inspect while the authority runs: %v", err)
	}
	for _, want := range []string{"alice", first.GetInfo().GetSessionId(), second.GetInfo().GetTokenId(), `claim role:  "member"`,
		"session state unavailable", "locked by a running authority"} {
		if !strings.Contains(output, want) {
			t.Errorf("output lacks %q:\n%s", want, output)
		}
	}

	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	tests := []struct {
		name  string
		token string
		want  []string
	}{
		{"current token", second.GetToken(), []string{"type:        session", "generation:  2", "is its session's current one"}},
		{"unconfirmed predecessor", first.GetToken(), []string{"unconfirmed predecessor, inside the rotation leeway"}},
		{"exchanged code", issued.GetCode(), []string{"type:        code", "login code was already exchanged", "TOKEN_REUSED"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			output, err := inspectCLI(t, dataDir, tt.token)
			if err != nil {
				t.Fatalf("token inspect: %v", err)
			}
			for _, want := range append(tt.want, "rotation confirmed:", "verdict:") {
				if !strings.Contains(output, want) {
					t.Errorf("output lacks %q:\n%s", want, output)
				}
			}
			if strings.Contains(output, tt.token) {
				t.Error("output repeats the token string")
			}
		})
	}

	output, err = inspectCLI(t, dataDir, first.GetToken(), "--rotation-leeway", "1ns")
	if err != nil {
		t.Fatalf("token inspect: %v", err)
	}
	if !strings.Contains(output, "the token was replaced") {
		t.Errorf("predecessor past the leeway: output lacks the reuse verdict:\n%s", output)
	}
}

func TestTokenInspectErrors(t *testing.T) {
	dataDir := t.TempDir()
	a, err := serve.Start(context.Background(), serve.Config{Listen: "127.0.0.1:0", DataDir: dataDir,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	a.Close()

	tests := []struct {
		name  string
		data  string
		token string
		want  string
	}{
		{"garbage", dataDir, "not-a-token", "TOKEN_INVALID"},
		{"empty input", dataDir, "", "no token given"},
		{"missing key file", t.TempDir(), "v2.local.x.e30", "load the key file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := inspectCLI(t, tt.data, tt.token)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("token inspect = %v, expected an error containing %q", err, tt.want)
			}
		})
	}
}

func TestTokenInspectForeignKey(t *testing.T) {
	other := t.TempDir()
	a, err := serve.Start(context.Background(), serve.Config{Listen: "127.0.0.1:0", DataDir: other,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	conn, err := grpc.NewClient(a.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	issued, err := sockauthv1.NewAuthorityServiceClient(conn).IssueCode(context.Background(), &sockauthv1.IssueCodeRequest{Subject: "alice"})
	conn.Close()
	a.Close()
	if err != nil {
		t.Fatalf("IssueCode: %v", err)
	}

	mine := t.TempDir()
	b, err := serve.Start(context.Background(), serve.Config{Listen: "127.0.0.1:0", DataDir: mine,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	b.Close()

	output, err := inspectCLI(t, mine, issued.GetCode())
	if err == nil || !strings.Contains(err.Error(), "unknown key id") {
		t.Fatalf("token inspect of a foreign token = %v, expected an unknown key id error", err)
	}
	if !strings.Contains(output, "key id:") {
		t.Errorf("output lacks the key id of the foreign token:\n%s", output)
	}
}

func TestLoadKeySetNamesDataFlag(t *testing.T) {
	_, err := loadKeySet(t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "pass --data") {
		t.Fatalf("loadKeySet in a folder without a key file returned %v, expected a hint at --data", err)
	}
}

func TestVerdictOfExpiredToken(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	token := authority.Claims{Subject: "alice", SessionID: "sid", TokenID: "jti", Type: authority.TypeSession,
		ExpiresAt: now.Add(-time.Minute)}

	tests := []struct {
		name    string
		session authority.Session
		want    string
	}{
		{"session alive", authority.Session{Subject: "alice", ExpiresAt: now.Add(time.Hour)}, "TOKEN_EXPIRED"},
		{"session ended", authority.Session{Subject: "alice", ExpiresAt: now.Add(-time.Minute)}, "SESSION_EXPIRED"},
		// The session's last token expired at the whole second before its end.
		{"session ends within a second", authority.Session{Subject: "alice", ExpiresAt: now.Add(500 * time.Millisecond)}, "SESSION_EXPIRED"},
		{"session revoked and ended", authority.Session{Subject: "alice", ExpiresAt: now.Add(-time.Minute),
			RevokedReason: authority.RevokedLogout}, "TOKEN_EXPIRED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := verdict(token, &tt.session, now, 30*time.Second)
			if !strings.Contains(got, tt.want) {
				t.Errorf("verdict = %q, expected one naming %s", got, tt.want)
			}
		})
	}
}
