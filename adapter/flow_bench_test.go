package adapter

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"google.golang.org/grpc"

	sockauthv1 "github.com/sockauth/sockauth/gen/sockauth/v1"
)

// constantAuthority returns one session response from Authenticate and
// success from ConfirmRotation, and records nothing, so that a benchmark
// measures only the Flow.
type constantAuthority struct {
	fakeAuthority
	response *sockauthv1.AuthenticateResponse
}

func (a *constantAuthority) Authenticate(context.Context, *sockauthv1.AuthenticateRequest, ...grpc.CallOption) (*sockauthv1.AuthenticateResponse, error) {
	return a.response, nil
}

func (a *constantAuthority) ConfirmRotation(context.Context, *sockauthv1.ConfirmRotationRequest, ...grpc.CallOption) (*sockauthv1.ConfirmRotationResponse, error) {
	return &sockauthv1.ConfirmRotationResponse{Confirmed: true}, nil
}

// ackingSocket calls every ack at once and keeps nothing.
type ackingSocket struct{ id string }

func (s ackingSocket) ID() string { return s.id }

func (s ackingSocket) EmitWithAck(_ string, ack func(), _ ...any) error {
	ack()
	return nil
}

func (s ackingSocket) Disconnect(string, any) error { return nil }

// BenchmarkFlowHandshake measures the Flow's part of one socket's life in
// the socket benchmark: Connect, an authenticate event with the ack of
// authenticated, one admitted event and Disconnected, with an authority
// that responds at once and logging at error level.
func BenchmarkFlowHandshake(b *testing.B) {
	authority := &constantAuthority{response: sessionResponse(1, "sid-1", "alice", time.Now().Add(time.Hour))}
	f, err := NewFlow(Config{
		Authority:              authority,
		DisableRevocationWatch: true,
		Logger:                 slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelError})),
	}, Hooks{})
	if err != nil {
		b.Fatalf("NewFlow: %v", err)
	}
	b.Cleanup(f.Close)
	// The payload as the go-socket.io binding passes it.
	payload := json.RawMessage(`{"token":"v2.local.code"}`)

	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		s := ackingSocket{id: "socket-" + strconv.Itoa(i)}
		if err := f.Connect(s); err != nil {
			b.Fatalf("Connect: %v", err)
		}
		f.Authenticate(context.Background(), s.id, payload)
		if _, ok := f.Admit(s.id, "echo"); !ok {
			b.Fatal("Admit rejected the event of an authenticated socket")
		}
		f.Disconnected(s.id)
	}
}
