package callerauth

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"google.golang.org/grpc/metadata"
)

// countingHandler counts the log records at warn level and above.
type countingHandler struct {
	mu       sync.Mutex // guards warnings
	warnings []slog.Record
}

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *countingHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		h.mu.Lock()
		h.warnings = append(h.warnings, r.Clone())
		h.mu.Unlock()
	}
	return nil
}

func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countingHandler) WithGroup(string) slog.Handler      { return h }

func TestRejectionLogIsThrottled(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(path, []byte("token:chat:0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	handler := &countingHandler{}
	a, err := NewAuthenticator(path, slog.New(handler))
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
	handler.mu.Lock()
	defer handler.mu.Unlock()
	if n := len(handler.warnings); n == 0 || n > rejectionLogBurst+1 {
		t.Fatalf("%d rejections wrote %d warnings, expected between 1 and %d", calls, n, rejectionLogBurst+1)
	}
	if got := handler.warnings[0].Message; got != "caller rejected" {
		t.Errorf("first warning %q, expected caller rejected", got)
	}
}
