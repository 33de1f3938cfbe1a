package callerauth

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/grpc/metadata"

	"github.com/sockauth/sockauth/internal/logtest"
)

func TestRejectionLogIsThrottled(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(path, []byte("token:chat:0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	recorder := &logtest.Recorder{}
	a, err := NewAuthenticator(path, slog.New(recorder))
	if err != nil {
		t.Fatal(err)
	}

	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer wrong-key-0123456789"))
	const calls = 200
	for range calls {
		if err := a.authorize(ctx, issueCodeMethod); err == nil {
			t.Fatal("authorize accepted a wrong key")
		}
	}
	warnings := recorder.Messages(slog.LevelWarn)
	if n := len(warnings); n == 0 || n > rejectionLogBurst+1 {
		t.Fatalf("%d rejections wrote %d warnings, expected between 1 and %d", calls, n, rejectionLogBurst+1)
	}
	if got := warnings[0]; got != "caller rejected" {
		t.Errorf("first warning %q, expected caller rejected", got)
	}
}
