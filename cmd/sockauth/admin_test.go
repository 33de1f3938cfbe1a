package main

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"

	"google.golang.org/grpc"

	sockauthv1 "github.com/sockauth/sockauth/gen/sockauth/v1"
)

// manySessionsAdmin is an AdminServiceServer whose ListSessions and
// RevokeSubject return count sessions of the subject.
type manySessionsAdmin struct {
	sockauthv1.UnimplementedAdminServiceServer
	count int
}

func (a *manySessionsAdmin) sessions(subject string) []*sockauthv1.SessionInfo {
	sessions := make([]*sockauthv1.SessionInfo, a.count)
	for i := range sessions {
		sessions[i] = &sockauthv1.SessionInfo{SessionId: fmt.Sprintf("sid-%08d-0123456789abcdef0123456789", i), Subject: subject}
	}
	return sessions
}

func (a *manySessionsAdmin) ListSessions(_ context.Context, req *sockauthv1.ListSessionsRequest) (*sockauthv1.ListSessionsResponse, error) {
	return &sockauthv1.ListSessionsResponse{Sessions: a.sessions(req.GetSubject())}, nil
}

func (a *manySessionsAdmin) RevokeSubject(_ context.Context, req *sockauthv1.RevokeSubjectRequest) (*sockauthv1.RevokeSubjectResponse, error) {
	return &sockauthv1.RevokeSubjectResponse{Sessions: a.sessions(req.GetSubject())}, nil
}

// TestAdminCommandsReadLargeReplies checks that the admin commands read a
// reply larger than gRPC's default limit of 4 MiB on received messages, as
// an authority sends for a subject with about 60,000 sessions.
func TestAdminCommandsReadLargeReplies(t *testing.T) {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	server := grpc.NewServer()
	const count = 100_000
	sockauthv1.RegisterAdminServiceServer(server, &manySessionsAdmin{count: count})
	go server.Serve(listener)
	defer server.Stop()
	address := listener.Addr().String()

	output, err := runCLI(t, "sessions", "list", "--subject", "bench", "--authority", address)
	if err != nil {
		t.Fatalf("sessions list: %v", err)
	}
	if listed := strings.Count(output, "sid-"); listed != count {
		t.Errorf("sessions list printed %d sessions, expected %d", listed, count)
	}

	output, err = runCLI(t, "revoke", "--subject", "bench", "--authority", address)
	if err != nil {
		t.Fatalf("revoke --subject: %v", err)
	}
	if !strings.Contains(output, fmt.Sprintf("revoked %d sessions", count)) {
		t.Errorf("revoke --subject printed %q, expected it to report %d sessions", firstLine(output), count)
	}
}

// firstLine returns the first line of text.
func firstLine(text string) string {
	line, _, _ := strings.Cut(text, "\n")
	return line
}
