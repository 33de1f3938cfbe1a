package grpcserver_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/sockauth/sockauth/authority"
	"github.com/sockauth/sockauth/authority/badgerstore"
	"github.com/sockauth/sockauth/authority/grpcserver"
	sockauthv1 "github.com/sockauth/sockauth/gen/sockauth/v1"
)

// failingWrites is a store whose CompareAndSwap, once armed, writes allowed
// more sessions and then fails.
type failingWrites struct {
	authority.Store
	armed   atomic.Bool
	allowed atomic.Int64
}

var errStoreFailed = errors.New("store failed")

func (f *failingWrites) CompareAndSwap(ctx context.Context, version uint64, session *authority.Session) error {
	if f.armed.Load() && f.allowed.Add(-1) < 0 {
		return errStoreFailed
	}
	return f.Store.CompareAndSwap(ctx, version, session)
}

func TestRevokeSubjectErrorCarriesCount(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	badger, err := badgerstore.Open("", badgerstore.Options{InMemory: true, Logger: logger})
	if err != nil {
		t.Fatalf("open in-memory store: %v", err)
	}
	t.Cleanup(func() { badger.Close() })
	store := &failingWrites{Store: badger}
	codec, err := authority.NewPasetoV2(map[string][]byte{"k1": make([]byte, authority.KeySize)}, "k1")
	if err != nil {
		t.Fatal(err)
	}
	service, err := authority.NewService(codec, store, authority.Config{
		CodeTTL: time.Minute, TokenTTL: time.Hour, SessionMaxAge: 24 * time.Hour, Logger: logger,
	})
	if err != nil {
		t.Fatal(err)
	}

	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	server := grpc.NewServer()
	sockauthv1.RegisterAdminServiceServer(server, grpcserver.NewAdmin(service, logger))
	go server.Serve(listener)
	t.Cleanup(server.Stop)
	conn, err := grpc.NewClient(listener.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	admin := sockauthv1.NewAdminServiceClient(conn)

	ctx := context.Background()
	const sessions, allowed = 100, 7
	for range sessions {
		if _, err := service.IssueCode(ctx, "alice", nil); err != nil {
			t.Fatal(err)
		}
	}
	store.allowed.Store(allowed)
	store.armed.Store(true)

	_, err = admin.RevokeSubject(ctx, &sockauthv1.RevokeSubjectRequest{Subject: "alice"})
	st := status.Convert(err)
	if st.Code() != codes.Unavailable {
		t.Fatalf("RevokeSubject with a failing store = %v, want Unavailable", err)
	}
	var partial *sockauthv1.RevokeSubjectResponse
	for _, detail := range st.Details() {
		if reply, ok := detail.(*sockauthv1.RevokeSubjectResponse); ok {
			partial = reply
		}
	}
	if partial == nil {
		t.Fatalf("error details %v, want a RevokeSubjectResponse with the count", st.Details())
	}
	if partial.GetRevokedCount() != allowed {
		t.Errorf("error details count %d revoked sessions, want %d", partial.GetRevokedCount(), allowed)
	}
	if len(partial.GetSessions()) != 0 {
		t.Errorf("error details list %d sessions, want none", len(partial.GetSessions()))
	}
	listed, err := admin.ListSessions(ctx, &sockauthv1.ListSessionsRequest{Subject: "alice", PageSize: sessions})
	if err != nil {
		t.Fatal(err)
	}
	revoked := 0
	for _, session := range listed.GetSessions() {
		if session.GetRevokedAt() != nil {
			revoked++
		}
	}
	if revoked != allowed {
		t.Errorf("%d sessions revoked in the store, want the %d that the error reports", revoked, allowed)
	}

	// An error before any revocation carries no count.
	store.allowed.Store(0)
	_, err = admin.RevokeSubject(ctx, &sockauthv1.RevokeSubjectRequest{Subject: "alice"})
	if err == nil {
		t.Fatal("RevokeSubject with a store that takes no write succeeded, want an error")
	}
	for _, detail := range status.Convert(err).Details() {
		if _, ok := detail.(*sockauthv1.RevokeSubjectResponse); ok {
			t.Errorf("error %v before any revocation carries a count", err)
		}
	}
}
