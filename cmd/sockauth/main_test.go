package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/o1egl/paseto"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/sockauth/sockauth/authority"
	sockauthv1 "github.com/sockauth/sockauth/gen/sockauth/v1"
	"github.com/sockauth/sockauth/internal/serve"
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

// runCLI runs the root command with args and returns its standard output.
func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newRootCommand()
	var output bytes.Buffer
	cmd.SetOut(&output)
	cmd.SetErr(&bytes.Buffer{})
	cmd.SetArgs(args)
	err := cmd.Execute()
	return output.String(), err
}

func TestAdminCommands(t *testing.T) {
	a, err := serve.Start(context.Background(), serve.Config{Listen: "127.0.0.1:0", DataDir: t.TempDir(),
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
	var sessionIDs []string
	for range 3 {
		code, err := client.IssueCode(context.Background(), &sockauthv1.IssueCodeRequest{Subject: "alice"})
		if err != nil {
			t.Fatal(err)
		}
		sessionIDs = append(sessionIDs, code.GetInfo().GetSessionId())
	}

	output, err := runCLI(t, "sessions", "list", "--subject", "alice", "--authority", a.Addr())
	if err != nil {
		t.Fatalf("sessions list: %v", err)
	}
	for _, id := range sessionIDs {
		if !strings.Contains(output, id) {
			t.Errorf("sessions list output lacks session %s:\n%s", id, output)
		}
	}

	output, err = runCLI(t, "revoke", "--session", sessionIDs[0], "--authority", a.Addr())
	if err != nil {
		t.Fatalf("revoke --session: %v", err)
	}
	if !strings.Contains(output, "admin") {
		t.Errorf("revoke --session output lacks the reason admin:\n%s", output)
	}

	output, err = runCLI(t, "revoke", "--subject", "alice", "--authority", a.Addr())
	if err != nil {
		t.Fatalf("revoke --subject: %v", err)
	}
	if !strings.Contains(output, "revoked 2 sessions") {
		t.Errorf("revoke --subject output does not report 2 sessions:\n%s", output)
	}

	if _, err := client.IssueCode(context.Background(), &sockauthv1.IssueCodeRequest{Subject: "bob"}); err != nil {
		t.Fatal(err)
	}
	output, err = runCLI(t, "revoke", "--subject", "bob", "--authority", a.Addr())
	if err != nil {
		t.Fatalf("revoke --subject bob: %v", err)
	}
	if !strings.Contains(output, `revoked 1 session of "bob"`) {
		t.Errorf("revoke --subject of a user with one session does not report 1 session:\n%s", output)
	}

	output, err = runCLI(t, "revoke", "--subject", "nobody", "--authority", a.Addr())
	if err != nil {
		t.Fatalf("revoke --subject nobody: %v", err)
	}
	if strings.TrimSpace(output) != `revoked 0 sessions of "nobody"` {
		t.Errorf("revoke --subject of a user without sessions printed more than the count:\n%s", output)
	}

	if _, err := runCLI(t, "revoke", "--session", "no-such-session", "--authority", a.Addr()); err == nil ||
		!strings.Contains(err.Error(), `session "no-such-session" not found`) {
		t.Errorf("revoke of an unknown session = %v, expected a not-found error naming the session", err)
	}
	if _, err := runCLI(t, "revoke", "--authority", a.Addr()); err == nil || !strings.Contains(err.Error(), "exactly one") {
		t.Errorf("revoke without a target = %v, expected a usage error", err)
	}
}

func TestAdminCommandDeadAuthority(t *testing.T) {
	// Port 1 on loopback has no listener, so the call fails at once.
	_, err := runCLI(t, "sessions", "list", "--subject", "alice", "--authority", "127.0.0.1:1", "--timeout", "2s")
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("sessions list against a dead authority = %v, expected an error naming it", err)
	}
}

func TestKeysRotate(t *testing.T) {
	dir := t.TempDir()
	a, err := serve.Start(context.Background(), serve.Config{Listen: "127.0.0.1:0", DataDir: dir,
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

	before, err := client.IssueCode(ctx, &sockauthv1.IssueCodeRequest{Subject: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	oldSession, err := client.Authenticate(ctx, &sockauthv1.AuthenticateRequest{Token: before.GetCode()})
	if err != nil {
		t.Fatal(err)
	}
	oldKeyID := footerKeyID(t, oldSession.GetToken())

	output, err := runCLI(t, "keys", "rotate", "--data", dir)
	if err != nil {
		t.Fatalf("keys rotate: %v", err)
	}
	if !strings.Contains(output, oldKeyID) {
		t.Errorf("keys rotate output does not name the replaced key %s:\n%s", oldKeyID, output)
	}

	// The authority re-reads the key file within a second.
	var newKeyID string
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, err := client.IssueCode(ctx, &sockauthv1.IssueCodeRequest{Subject: "bob"})
		if err != nil {
			t.Fatal(err)
		}
		newKeyID = footerKeyID(t, code.GetCode())
		if newKeyID != oldKeyID || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if newKeyID == oldKeyID {
		t.Fatalf("tokens still signed with key %s 5 s after the rotation", oldKeyID)
	}
	if _, err := client.Verify(ctx, &sockauthv1.VerifyRequest{Token: oldSession.GetToken()}); err != nil {
		t.Fatalf("token of the replaced key no longer verifies: %v", err)
	}

	output, err = runCLI(t, "keys", "list", "--data", dir)
	if err != nil {
		t.Fatalf("keys list: %v", err)
	}
	if !strings.Contains(output, newKeyID+"  ") || !strings.Contains(output, "signing") || !strings.Contains(output, "verifying until") {
		t.Errorf("keys list output lacks the signing and the verifying key:\n%s", output)
	}
	if strings.Contains(output, "secret") {
		t.Errorf("keys list output mentions secrets:\n%s", output)
	}
}

// TestKeysRotateKeepsKeysForRecordedTokenTTL rotates keys with a --token-ttl
// shorter than the one that the authority recorded in the key file. A key
// replaced 30 min earlier must stay, because the authority's tokens live 3 h.
func TestKeysRotateKeepsKeysForRecordedTokenTTL(t *testing.T) {
	dir := t.TempDir()
	a, err := serve.Start(context.Background(), serve.Config{Listen: "127.0.0.1:0", DataDir: dir,
		TokenTTL: 3 * time.Hour, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	a.Close()

	if _, err := runCLI(t, "keys", "rotate", "--data", dir); err != nil {
		t.Fatalf("keys rotate: %v", err)
	}
	// Move the replacement of the first key 30 min into the past.
	replacedAt := time.Now().Add(-30 * time.Minute).UTC().Truncate(time.Second)
	keys, err := authority.UpdateKeySet(dir, func(keys *authority.KeySet) error {
		for i := range keys.Keys {
			if keys.Keys[i].ID != keys.SigningKeyID {
				keys.Keys[i].SigningEndedAt = replacedAt
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	first := keys.Keys[0].ID

	if _, err := runCLI(t, "keys", "rotate", "--data", dir, "--token-ttl", "1m"); err != nil {
		t.Fatalf("keys rotate --token-ttl 1m: %v", err)
	}
	keys, err = authority.LoadKeySet(dir)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, record := range keys.Keys {
		ids = append(ids, record.ID)
	}
	if len(ids) != 3 || ids[0] != first {
		t.Fatalf("keys %v after a rotation with --token-ttl 1m, expected %s and its two successors", ids, first)
	}

	output, err := runCLI(t, "keys", "list", "--data", dir)
	if err != nil {
		t.Fatalf("keys list: %v", err)
	}
	until := replacedAt.Add(3*time.Hour + time.Minute).Format(time.RFC3339)
	if !strings.Contains(output, first) || !strings.Contains(output, "verifying until "+until) {
		t.Errorf("keys list does not show %s verifying until %s:\n%s", first, until, output)
	}
}

// TestKeysTokenTTLFlag covers the --token-ttl of the keys commands on a
// key file that records no lifetime: 1 h without the flag, a longer flag
// recorded by a rotation, and a negative one rejected.
func TestKeysTokenTTLFlag(t *testing.T) {
	dir := t.TempDir()
	if _, err := authority.LoadOrCreateKeySet(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := runCLI(t, "keys", "rotate", "--data", dir); err != nil {
		t.Fatalf("keys rotate: %v", err)
	}
	keys, err := authority.LoadKeySet(dir)
	if err != nil {
		t.Fatal(err)
	}
	if keys.TokenTTL != 0 {
		t.Errorf("keys rotate without --token-ttl recorded %s", time.Duration(keys.TokenTTL))
	}
	replaced := keys.Keys[0]
	output, err := runCLI(t, "keys", "list", "--data", dir)
	if err != nil {
		t.Fatalf("keys list: %v", err)
	}
	if until := replaced.SigningEndedAt.Add(time.Hour + time.Minute).UTC().Format(time.RFC3339); !strings.Contains(output, "verifying until "+until) {
		t.Errorf("keys list without a recorded lifetime does not show %s verifying until %s:\n%s", replaced.ID, until, output)
	}

	if _, err := runCLI(t, "keys", "rotate", "--data", dir, "--token-ttl", "5h"); err != nil {
		t.Fatalf("keys rotate --token-ttl 5h: %v", err)
	}
	keys, err = authority.LoadKeySet(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := time.Duration(keys.TokenTTL); got != 5*time.Hour {
		t.Errorf("keys rotate --token-ttl 5h recorded %s, expected 5h0m0s", got)
	}

	for _, command := range []string{"rotate", "list"} {
		for _, value := range []string{"-1h", "2562047h"} {
			_, err := runCLI(t, "keys", command, "--data", dir, "--token-ttl", value)
			if err == nil || !strings.Contains(err.Error(), "invalid --token-ttl") {
				t.Errorf("keys %s --token-ttl %s = %v, expected an invalid --token-ttl error", command, value, err)
			}
		}
	}
}

func footerKeyID(t *testing.T, token string) string {
	t.Helper()
	var footer struct {
		KeyID string `json:"kid"`
	}
	if err := paseto.ParseFooter(token, &footer); err != nil {
		t.Fatalf("ParseFooter: %v", err)
	}
	return footer.KeyID
}

func TestRevokedSummary(t *testing.T) {
	tests := []struct {
		count int
		want  string
	}{
		{0, `revoked 0 sessions of "alice"`},
		{1, `revoked 1 session of "alice"`},
		{2, `revoked 2 sessions of "alice"`},
	}
	for _, tt := range tests {
		if got := revokedSummary(tt.count, "alice"); got != tt.want {
			t.Errorf("revokedSummary(%d) = %q, expected %q", tt.count, got, tt.want)
		}
	}
}
