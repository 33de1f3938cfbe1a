package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	sockauthv1 "github.com/sockauth/sockauth/gen/sockauth/v1"
	"github.com/sockauth/sockauth/internal/serve"
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

// pagedAdmin is an AdminServiceServer whose ListSessions lists count
// sessions of the subject in pages of 2, each after delay, and records the
// page tokens it gets.
type pagedAdmin struct {
	sockauthv1.UnimplementedAdminServiceServer
	count  int
	delay  time.Duration
	tokens []string
	// repeat adds the last session of the previous page to each page, as
	// the Redis store of earlier versions did for a session whose expiry grew
	// between pages.
	repeat bool
}

func (a *pagedAdmin) ListSessions(ctx context.Context, req *sockauthv1.ListSessionsRequest) (*sockauthv1.ListSessionsResponse, error) {
	a.tokens = append(a.tokens, req.GetPageToken())
	select {
	case <-time.After(a.delay):
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	start := 0
	if req.GetPageToken() != "" {
		var err error
		if start, err = strconv.Atoi(req.GetPageToken()); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "invalid page token %q", req.GetPageToken())
		}
	}
	reply := &sockauthv1.ListSessionsResponse{}
	if a.repeat && start > 0 {
		reply.Sessions = append(reply.Sessions, &sockauthv1.SessionInfo{SessionId: fmt.Sprintf("sid-%d", start-1), Subject: req.GetSubject()})
	}
	for i := start; i < min(start+2, a.count); i++ {
		reply.Sessions = append(reply.Sessions, &sockauthv1.SessionInfo{SessionId: fmt.Sprintf("sid-%d", i), Subject: req.GetSubject()})
	}
	if start+2 < a.count {
		reply.NextPageToken = strconv.Itoa(start + 2)
	}
	return reply, nil
}

// serveAdmin serves admin on a loopback port until the test ends and returns
// its address.
func serveAdmin(t *testing.T, admin sockauthv1.AdminServiceServer, options ...grpc.ServerOption) string {
	t.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	server := grpc.NewServer(options...)
	sockauthv1.RegisterAdminServiceServer(server, admin)
	go server.Serve(listener)
	t.Cleanup(server.Stop)
	return listener.Addr().String()
}

func TestSessionsListReadsEveryPage(t *testing.T) {
	admin := &pagedAdmin{count: 5}
	address := serveAdmin(t, admin)

	output, err := runCLI(t, "sessions", "list", "--subject", "alice", "--authority", address)
	if err != nil {
		t.Fatalf("sessions list: %v\n%s", err, output)
	}
	for i := range 5 {
		if !strings.Contains(output, fmt.Sprintf("sid-%d ", i)) {
			t.Errorf("output lacks session sid-%d:\n%s", i, output)
		}
	}
	if headers := strings.Count(output, "SUBJECT"); headers != 1 {
		t.Errorf("output has %d header lines, expected 1:\n%s", headers, output)
	}
	if want := []string{"", "2", "4"}; !reflect.DeepEqual(admin.tokens, want) {
		t.Errorf("page tokens sent = %q, expected %q", admin.tokens, want)
	}
}

func TestSessionsListPrintsEachSessionOnce(t *testing.T) {
	address := serveAdmin(t, &pagedAdmin{count: 5, repeat: true})

	output, err := runCLI(t, "sessions", "list", "--subject", "alice", "--authority", address)
	if err != nil {
		t.Fatalf("sessions list: %v\n%s", err, output)
	}
	for i := range 5 {
		if n := strings.Count(output, fmt.Sprintf("sid-%d ", i)); n != 1 {
			t.Errorf("session sid-%d printed %d times, expected once:\n%s", i, n, output)
		}
	}
}

func TestSessionsListDeadlinePerPage(t *testing.T) {
	address := serveAdmin(t, &pagedAdmin{count: 5, delay: 150 * time.Millisecond})

	// Three pages take 450 ms, more than the timeout, and each page less.
	output, err := runCLI(t, "sessions", "list", "--subject", "alice", "--timeout", "400ms", "--authority", address)
	if err != nil {
		t.Fatalf("sessions list of 3 pages of 150 ms with --timeout 400ms: %v\n%s", err, output)
	}
	if !strings.Contains(output, "sid-4 ") {
		t.Errorf("output lacks the last page's session sid-4:\n%s", output)
	}
}

// TestAdminCommandsReadLargeReplies checks that the admin commands read a
// reply larger than gRPC's default limit of 4 MiB on received messages, as
// an authority sends for a subject with about 60,000 sessions.
func TestAdminCommandsReadLargeReplies(t *testing.T) {
	const count = 100_000
	address := serveAdmin(t, &manySessionsAdmin{count: count})

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

// countedAdmin is an AdminServiceServer whose RevokeSubject reports count
// revoked sessions and lists listed of them, after delay.
type countedAdmin struct {
	sockauthv1.UnimplementedAdminServiceServer
	count, listed int
	delay         time.Duration
}

func (a *countedAdmin) RevokeSubject(ctx context.Context, req *sockauthv1.RevokeSubjectRequest) (*sockauthv1.RevokeSubjectResponse, error) {
	select {
	case <-time.After(a.delay):
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	reply := &sockauthv1.RevokeSubjectResponse{RevokedCount: int64(a.count)}
	for i := range a.listed {
		reply.Sessions = append(reply.Sessions, &sockauthv1.SessionInfo{SessionId: fmt.Sprintf("sid-%d", i), Subject: req.GetSubject()})
	}
	return reply, nil
}

func TestRevokeSubjectPrintsCountBeyondList(t *testing.T) {
	address := serveAdmin(t, &countedAdmin{count: 5000, listed: 3})

	output, err := runCLI(t, "revoke", "--subject", "bench", "--authority", address)
	if err != nil {
		t.Fatalf("revoke --subject: %v", err)
	}
	if got := firstLine(output); got != `revoked 5000 sessions of "bench"` {
		t.Errorf("first line %q, expected the count of the reply", got)
	}
	if !strings.Contains(output, "the first 3 are listed") {
		t.Errorf("output does not say that only the first 3 are listed:\n%s", output)
	}
	if listed := strings.Count(output, "sid-"); listed != 3 {
		t.Errorf("output lists %d sessions, expected 3:\n%s", listed, output)
	}
}

func TestRevokeSubjectDeadlineSuggestsRetry(t *testing.T) {
	address := serveAdmin(t, &countedAdmin{count: 5, listed: 5, delay: 10 * time.Second})

	_, err := runCLI(t, "revoke", "--subject", "bench", "--timeout", "200ms", "--authority", address)
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("revoke --subject past its deadline = %v, expected DeadlineExceeded", err)
	}
	if !strings.Contains(err.Error(), "run the command again, with a longer --timeout") {
		t.Errorf("error %q does not say what to do next", err)
	}
}

// partlyFailingAdmin is an AdminServiceServer whose RevokeSubject fails
// after it revoked count sessions, as the authority reports it.
type partlyFailingAdmin struct {
	sockauthv1.UnimplementedAdminServiceServer
	count int
}

func (a *partlyFailingAdmin) RevokeSubject(context.Context, *sockauthv1.RevokeSubjectRequest) (*sockauthv1.RevokeSubjectResponse, error) {
	st, err := status.New(codes.Unavailable, "authority storage failed; retry later").
		WithDetails(&sockauthv1.RevokeSubjectResponse{RevokedCount: int64(a.count)})
	if err != nil {
		return nil, err
	}
	return nil, st.Err()
}

func TestRevokeSubjectErrorReportsCount(t *testing.T) {
	address := serveAdmin(t, &partlyFailingAdmin{count: 42})

	_, err := runCLI(t, "revoke", "--subject", "bench", "--authority", address)
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("revoke --subject against a failing authority = %v, expected Unavailable", err)
	}
	if !strings.Contains(err.Error(), `revoked 42 sessions of "bench" before the error`) {
		t.Errorf("error %q does not report the 42 sessions revoked before it", err)
	}
	if !strings.Contains(err.Error(), "Run the command again") {
		t.Errorf("error %q does not say what to do next", err)
	}
}

// firstLine returns the first line of text.
func firstLine(text string) string {
	line, _, _ := strings.Cut(text, "\n")
	return line
}

// TestCommandsReportOversizedRequest sends requests over the authority's
// 64 KiB limit on received messages. The authority rejects them with
// ResourceExhausted before it runs the call, so the commands must not
// report a reply over their own limit or a call that may have succeeded.
func TestCommandsReportOversizedRequest(t *testing.T) {
	a, err := serve.Start(context.Background(), serve.Config{Listen: "127.0.0.1:0", DataDir: t.TempDir(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer a.Close()
	oversized := strings.Repeat("a", serve.MaxRequestBytes+1000)

	commands := [][]string{
		{"sessions", "list", "--subject", oversized},
		{"revoke", "--subject", oversized},
		{"revoke", "--session", oversized},
		{"token", "issue", "--subject", "alice", "--claim", "note=" + oversized},
	}
	for _, args := range commands {
		name := strings.Join(args[:2], " ")
		_, err := runCLI(t, append(args, "--authority", a.Addr())...)
		if err == nil {
			t.Errorf("%s with a request over %d bytes succeeded", name, serve.MaxRequestBytes)
			continue
		}
		if status.Code(err) != codes.ResourceExhausted {
			t.Errorf("%s failed with %q, expected ResourceExhausted", name, err)
		}
		if strings.Contains(err.Error(), "may have succeeded") {
			t.Errorf("%s says that a rejected request may have succeeded: %q", name, err)
		}
		if strings.Contains(err.Error(), "reply exceeds") {
			t.Errorf("%s blames the reply for a request over the authority's limit: %q", name, err)
		}
	}
}

// TestReplyExceedsTellsReplyFromRequest checks replyExceeds on gRPC's own
// errors: a reply over the client's limit, and a request over the server's.
func TestReplyExceedsTellsReplyFromRequest(t *testing.T) {
	const serverLimit = 1 << 10
	address := serveAdmin(t, &manySessionsAdmin{count: 1000}, grpc.MaxRecvMsgSize(serverLimit))

	const replyLimit = 16 << 10
	conn, err := grpc.NewClient(address, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(replyLimit)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := sockauthv1.NewAdminServiceClient(conn)

	_, err = client.ListSessions(t.Context(), &sockauthv1.ListSessionsRequest{Subject: "bench"})
	if !replyExceeds(err, replyLimit) {
		t.Errorf("replyExceeds(%v, %d) = false for a reply of 1000 sessions", err, replyLimit)
	}
	_, err = client.ListSessions(t.Context(), &sockauthv1.ListSessionsRequest{Subject: strings.Repeat("a", 2*serverLimit)})
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("an oversized request failed with %v, expected ResourceExhausted", err)
	}
	if replyExceeds(err, replyLimit) {
		t.Errorf("replyExceeds(%v, %d) = true for a request over the server's limit", err, replyLimit)
	}
}
