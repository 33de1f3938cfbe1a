package serve_test

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/sockauth/sockauth/authority"
	sockauthv1 "github.com/sockauth/sockauth/gen/sockauth/v1"
	"github.com/sockauth/sockauth/internal/serve"
)

func startAuthority(t testing.TB, dir string, cfg serve.Config) *serve.Authority {
	t.Helper()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = dir
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	a, err := serve.Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func dial(t testing.TB, address string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// requireStatus checks the code and the ErrorInfo reason of a failed call.
func requireStatus(t testing.TB, err error, code codes.Code, reason string) {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok {
		t.Fatalf("error %v is not a gRPC status", err)
	}
	if st.Code() != code {
		t.Fatalf("code %s (%q), expected %s", st.Code(), st.Message(), code)
	}
	for _, detail := range st.Details() {
		if info, ok := detail.(*errdetails.ErrorInfo); ok {
			if info.GetDomain() != "sockauth" || info.GetReason() != reason {
				t.Fatalf("ErrorInfo %s/%s, expected sockauth/%s", info.GetDomain(), info.GetReason(), reason)
			}
			return
		}
	}
	t.Fatalf("status %v has no ErrorInfo detail, expected reason %s", st, reason)
}

func TestFlowOverGRPC(t *testing.T) {
	a := startAuthority(t, t.TempDir(), serve.Config{})
	client := sockauthv1.NewAuthorityServiceClient(dial(t, a.Addr()))
	ctx := context.Background()

	issued, err := client.IssueCode(ctx, &sockauthv1.IssueCodeRequest{Subject: "alice", Claims: map[string]string{"role": "member"}})
	if err != nil {
		t.Fatalf("IssueCode: %v", err)
	}
	if issued.GetInfo().GetType() != sockauthv1.TokenType_TOKEN_TYPE_CODE {
		t.Fatalf("IssueCode type %s, expected code", issued.GetInfo().GetType())
	}

	session, err := client.Authenticate(ctx, &sockauthv1.AuthenticateRequest{Token: issued.GetCode()})
	if err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	info := session.GetInfo()
	if info.GetGeneration() != 1 || info.GetSubject() != "alice" || info.GetSessionId() != issued.GetInfo().GetSessionId() ||
		info.GetClaims()["role"] != "member" {
		t.Fatalf("Authenticate info %+v, expected generation 1 of alice's session with role member", info)
	}

	confirmed, err := client.ConfirmRotation(ctx, &sockauthv1.ConfirmRotationRequest{Token: session.GetToken()})
	if err != nil || !confirmed.GetConfirmed() {
		t.Fatalf("ConfirmRotation = %v, %v; expected confirmed", confirmed, err)
	}

	verified, err := client.Verify(ctx, &sockauthv1.VerifyRequest{Token: session.GetToken()})
	if err != nil || !verified.GetCurrent() {
		t.Fatalf("Verify = %v, %v; expected current", verified, err)
	}

	_, err = client.Authenticate(ctx, &sockauthv1.AuthenticateRequest{Token: issued.GetCode()})
	requireStatus(t, err, codes.PermissionDenied, "TOKEN_REUSED")

	_, err = client.Logout(ctx, &sockauthv1.LogoutRequest{Token: session.GetToken()})
	requireStatus(t, err, codes.PermissionDenied, "SESSION_REVOKED")
	for _, detail := range status.Convert(err).Details() {
		if info, ok := detail.(*errdetails.ErrorInfo); ok && info.GetMetadata()["revoked_reason"] != "reused" {
			t.Errorf("revoked_reason %q, expected reused", info.GetMetadata()["revoked_reason"])
		}
	}
}

func TestErrorsOverGRPC(t *testing.T) {
	a := startAuthority(t, t.TempDir(), serve.Config{CodeTTL: time.Second})
	client := sockauthv1.NewAuthorityServiceClient(dial(t, a.Addr()))
	ctx := context.Background()

	other := startAuthority(t, t.TempDir(), serve.Config{})
	foreign, err := sockauthv1.NewAuthorityServiceClient(dial(t, other.Addr())).IssueCode(ctx, &sockauthv1.IssueCodeRequest{Subject: "alice"})
	if err != nil {
		t.Fatalf("IssueCode on the second authority: %v", err)
	}
	expiring, err := client.IssueCode(ctx, &sockauthv1.IssueCodeRequest{Subject: "alice"})
	if err != nil {
		t.Fatalf("IssueCode: %v", err)
	}
	time.Sleep(1100 * time.Millisecond)

	tests := []struct {
		name   string
		call   func() error
		code   codes.Code
		reason string
	}{
		{"empty subject", func() error {
			_, err := client.IssueCode(ctx, &sockauthv1.IssueCodeRequest{})
			return err
		}, codes.InvalidArgument, "INVALID_ARGUMENT"},
		{"empty token", func() error {
			_, err := client.Authenticate(ctx, &sockauthv1.AuthenticateRequest{})
			return err
		}, codes.InvalidArgument, "INVALID_ARGUMENT"},
		{"oversized token", func() error {
			_, err := client.Authenticate(ctx, &sockauthv1.AuthenticateRequest{Token: strings.Repeat("A", authority.MaxTokenBytes+1)})
			return err
		}, codes.InvalidArgument, "INVALID_ARGUMENT"},
		{"garbage token", func() error {
			_, err := client.Verify(ctx, &sockauthv1.VerifyRequest{Token: "v2.local.garbage"})
			return err
		}, codes.Unauthenticated, "TOKEN_INVALID"},
		{"token of another authority", func() error {
			_, err := client.Authenticate(ctx, &sockauthv1.AuthenticateRequest{Token: foreign.GetCode()})
			return err
		}, codes.Unauthenticated, "TOKEN_INVALID"},
		{"expired code", func() error {
			_, err := client.Authenticate(ctx, &sockauthv1.AuthenticateRequest{Token: expiring.GetCode()})
			return err
		}, codes.Unauthenticated, "TOKEN_EXPIRED"},
		{"code given to Verify", func() error {
			code, err := client.IssueCode(ctx, &sockauthv1.IssueCodeRequest{Subject: "bob"})
			if err != nil {
				return err
			}
			_, err = client.Verify(ctx, &sockauthv1.VerifyRequest{Token: code.GetCode()})
			return err
		}, codes.Unauthenticated, "TOKEN_INVALID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			requireStatus(t, tt.call(), tt.code, tt.reason)
		})
	}
}

// TestSessionExpiredOverGRPC refreshes a token whose expiry is capped at its
// session's end once both have passed, as a client does that refreshes late.
// TestErrorsOverGRPC covers the expired token of a live session.
func TestSessionExpiredOverGRPC(t *testing.T) {
	a := startAuthority(t, t.TempDir(), serve.Config{TokenTTL: 2 * time.Second, SessionMaxAge: 2 * time.Second})
	client := sockauthv1.NewAuthorityServiceClient(dial(t, a.Addr()))
	ctx := context.Background()

	issued, err := client.IssueCode(ctx, &sockauthv1.IssueCodeRequest{Subject: "alice"})
	if err != nil {
		t.Fatalf("IssueCode: %v", err)
	}
	session, err := client.Authenticate(ctx, &sockauthv1.AuthenticateRequest{Token: issued.GetCode()})
	if err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	sessionEnd := session.GetInfo().GetSessionExpiresAt().AsTime()
	tokenExpiry := session.GetInfo().GetExpiresAt().AsTime()
	if want := sessionEnd.Truncate(time.Second); !tokenExpiry.Equal(want) {
		t.Fatalf("token expires at %v, expected the session's end rounded down to %v", tokenExpiry, want)
	}

	time.Sleep(time.Until(tokenExpiry) + 100*time.Millisecond)
	_, err = client.Authenticate(ctx, &sockauthv1.AuthenticateRequest{Token: session.GetToken()})
	requireStatus(t, err, codes.Unauthenticated, "SESSION_EXPIRED")
	_, err = client.Verify(ctx, &sockauthv1.VerifyRequest{Token: session.GetToken()})
	requireStatus(t, err, codes.Unauthenticated, "SESSION_EXPIRED")
}

func TestHealthAndReflection(t *testing.T) {
	a := startAuthority(t, t.TempDir(), serve.Config{})
	conn := dial(t, a.Addr())
	ctx := context.Background()

	health, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: "sockauth.v1.AuthorityService"})
	if err != nil || health.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health Check = %v, %v; expected SERVING", health, err)
	}

	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatalf("ServerReflectionInfo: %v", err)
	}
	err = stream.Send(&reflectionpb.ServerReflectionRequest{
		MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{},
	})
	if err != nil {
		t.Fatalf("send reflection request: %v", err)
	}
	reply, err := stream.Recv()
	if err != nil {
		t.Fatalf("receive reflection reply: %v", err)
	}
	var names []string
	for _, service := range reply.GetListServicesResponse().GetService() {
		names = append(names, service.GetName())
	}
	if !strings.Contains(strings.Join(names, ","), "sockauth.v1.AuthorityService") {
		t.Fatalf("reflection lists %v, expected sockauth.v1.AuthorityService", names)
	}
}

// TestStateSurvivesRestart rotates, revokes, and restarts the authority on
// the same data folder: the revocation and the rotation must hold afterwards.
func TestStateSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	first := startAuthority(t, dir, serve.Config{})
	client := sockauthv1.NewAuthorityServiceClient(dial(t, first.Addr()))

	alive, err := client.IssueCode(ctx, &sockauthv1.IssueCodeRequest{Subject: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	aliveToken, err := client.Authenticate(ctx, &sockauthv1.AuthenticateRequest{Token: alive.GetCode()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.ConfirmRotation(ctx, &sockauthv1.ConfirmRotationRequest{Token: aliveToken.GetToken()}); err != nil {
		t.Fatal(err)
	}
	revoked, err := client.IssueCode(ctx, &sockauthv1.IssueCodeRequest{Subject: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	revokedToken, err := client.Authenticate(ctx, &sockauthv1.AuthenticateRequest{Token: revoked.GetCode()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Logout(ctx, &sockauthv1.LogoutRequest{Token: revokedToken.GetToken()}); err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	second := startAuthority(t, dir, serve.Config{})
	client = sockauthv1.NewAuthorityServiceClient(dial(t, second.Addr()))

	_, err = client.Verify(ctx, &sockauthv1.VerifyRequest{Token: revokedToken.GetToken()})
	requireStatus(t, err, codes.PermissionDenied, "SESSION_REVOKED")

	if _, err := client.Verify(ctx, &sockauthv1.VerifyRequest{Token: aliveToken.GetToken()}); err != nil {
		t.Fatalf("Verify of a live session after restart: %v", err)
	}
	_, err = client.Authenticate(ctx, &sockauthv1.AuthenticateRequest{Token: alive.GetCode()})
	requireStatus(t, err, codes.PermissionDenied, "TOKEN_REUSED")
}

func TestKeyFileMode(t *testing.T) {
	dir := t.TempDir()
	startAuthority(t, dir, serve.Config{})

	info, err := os.Stat(filepath.Join(dir, authority.KeyFileName))
	if err != nil {
		t.Fatalf("stat key file: %v", err)
	}
	if mode := info.Mode().Perm(); mode != 0o600 {
		t.Fatalf("key file mode %04o, expected 0600", mode)
	}
}

func TestStartRejectsReadableKeyFile(t *testing.T) {
	dir := t.TempDir()
	a := startAuthority(t, dir, serve.Config{})
	a.Close()
	path := filepath.Join(dir, authority.KeyFileName)
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}

	_, err := serve.Start(context.Background(), serve.Config{Listen: "127.0.0.1:0", DataDir: dir,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("Start with a world-readable key file = %v, expected an error naming %s", err, path)
	}
}

func TestStartRejectsCorruptKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, authority.KeyFileName)
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}

	_, err := serve.Start(context.Background(), serve.Config{Listen: "127.0.0.1:0", DataDir: dir,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("Start with a corrupt key file = %v, expected an error naming %s", err, path)
	}
}

// TestConcurrentAuthenticateOverGRPC sends one token from 50 callers over a
// real connection: all get the same successor.
func TestConcurrentAuthenticateOverGRPC(t *testing.T) {
	a := startAuthority(t, t.TempDir(), serve.Config{})
	client := sockauthv1.NewAuthorityServiceClient(dial(t, a.Addr()))
	ctx := context.Background()
	code, err := client.IssueCode(ctx, &sockauthv1.IssueCodeRequest{Subject: "alice"})
	if err != nil {
		t.Fatal(err)
	}

	const callers = 50
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex // guards jtis
		jtis = map[string]int{}
	)
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			reply, err := client.Authenticate(ctx, &sockauthv1.AuthenticateRequest{Token: code.GetCode()})
			if err != nil {
				t.Errorf("Authenticate: %v", err)
				return
			}
			mu.Lock()
			jtis[reply.GetInfo().GetTokenId()]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(jtis) != 1 {
		t.Fatalf("%d distinct successors %v, expected exactly 1", len(jtis), jtis)
	}
}

func TestIsLoopback(t *testing.T) {
	tests := []struct {
		address string
		want    bool
	}{
		{"127.0.0.1:7070", true},
		{"127.3.2.1:7070", true},
		{"[::1]:7070", true},
		{"localhost:7070", true},
		{":7070", false},
		{"0.0.0.0:7070", false},
		{"[::]:7070", false},
		{"10.0.0.1:7070", false},
		{"example.com:7070", false},
		{"garbage", false},
	}
	for _, tt := range tests {
		if got := serve.IsLoopback(tt.address); got != tt.want {
			t.Errorf("IsLoopback(%q) = %v, expected %v", tt.address, got, tt.want)
		}
	}
}

// TestReplicasShareRedis runs two authorities on one Redis with one key file:
// a token rotated on one replica is reuse on the other.
func TestReplicasShareRedis(t *testing.T) {
	dir := t.TempDir()
	cfg := serve.Config{Store: "redis", RedisURL: testRedisURL()}
	first := startAuthority(t, dir, cfg)
	second := startAuthority(t, dir, cfg)
	clientA := sockauthv1.NewAuthorityServiceClient(dial(t, first.Addr()))
	clientB := sockauthv1.NewAuthorityServiceClient(dial(t, second.Addr()))
	ctx := context.Background()

	code, err := clientA.IssueCode(ctx, &sockauthv1.IssueCodeRequest{Subject: "alice"})
	if err != nil {
		t.Fatalf("IssueCode on replica A: %v", err)
	}
	session, err := clientB.Authenticate(ctx, &sockauthv1.AuthenticateRequest{Token: code.GetCode()})
	if err != nil {
		t.Fatalf("Authenticate on replica B: %v", err)
	}
	if _, err := clientB.ConfirmRotation(ctx, &sockauthv1.ConfirmRotationRequest{Token: session.GetToken()}); err != nil {
		t.Fatalf("ConfirmRotation on replica B: %v", err)
	}

	_, err = clientA.Authenticate(ctx, &sockauthv1.AuthenticateRequest{Token: code.GetCode()})
	requireStatus(t, err, codes.PermissionDenied, "TOKEN_REUSED")
	_, err = clientB.Verify(ctx, &sockauthv1.VerifyRequest{Token: session.GetToken()})
	requireStatus(t, err, codes.PermissionDenied, "SESSION_REVOKED")
}

func TestStartRejectsUnknownStore(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	_, err := serve.Start(context.Background(), serve.Config{Listen: "127.0.0.1:0", DataDir: dataDir, Store: "etcd",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err == nil || !strings.Contains(err.Error(), `"etcd"`) {
		t.Fatalf("Start with store etcd = %v, expected an error naming it", err)
	}
	// A misspelt store name must not leave a data folder with a fresh key.
	if _, err := os.Stat(dataDir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Start with an unknown store created the data folder (stat: %v)", err)
	}
}

// watchOne opens a revocation stream and waits until the server confirms it.
func watchOne(t *testing.T, client sockauthv1.AuthorityServiceClient) grpc.ServerStreamingClient[sockauthv1.WatchRevocationsResponse] {
	t.Helper()
	// The deadline ends a Recv that would otherwise wait forever.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	stream, err := client.WatchRevocations(ctx, &sockauthv1.WatchRevocationsRequest{})
	if err != nil {
		t.Fatalf("WatchRevocations: %v", err)
	}
	if _, err := stream.Header(); err != nil {
		t.Fatalf("WatchRevocations headers: %v", err)
	}
	return stream
}

func TestWatchRevocationsOverGRPC(t *testing.T) {
	a := startAuthority(t, t.TempDir(), serve.Config{})
	conn := dial(t, a.Addr())
	client := sockauthv1.NewAuthorityServiceClient(conn)
	admin := sockauthv1.NewAdminServiceClient(conn)
	stream := watchOne(t, client)
	ctx := context.Background()

	code, err := client.IssueCode(ctx, &sockauthv1.IssueCodeRequest{Subject: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	session, err := client.Authenticate(ctx, &sockauthv1.AuthenticateRequest{Token: code.GetCode()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Logout(ctx, &sockauthv1.LogoutRequest{Token: session.GetToken()}); err != nil {
		t.Fatal(err)
	}
	second, err := client.IssueCode(ctx, &sockauthv1.IssueCodeRequest{Subject: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	revoked, err := admin.RevokeSubject(ctx, &sockauthv1.RevokeSubjectRequest{Subject: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	if revoked.GetRevokedCount() != 1 || len(revoked.GetSessions()) != 1 ||
		revoked.GetSessions()[0].GetSessionId() != second.GetInfo().GetSessionId() {
		t.Errorf("RevokeSubject replied count %d and sessions %v, expected the live session %s",
			revoked.GetRevokedCount(), revoked.GetSessions(), second.GetInfo().GetSessionId())
	}

	want := []struct {
		sessionID string
		reason    sockauthv1.RevocationReason
	}{
		{code.GetInfo().GetSessionId(), sockauthv1.RevocationReason_REVOCATION_REASON_LOGOUT},
		{second.GetInfo().GetSessionId(), sockauthv1.RevocationReason_REVOCATION_REASON_ADMIN},
	}
	for _, w := range want {
		event, err := stream.Recv()
		if err != nil {
			t.Fatalf("Recv: %v", err)
		}
		if event.GetSessionId() != w.sessionID || event.GetReason() != w.reason {
			t.Fatalf("event %v, expected session %s with reason %s", event, w.sessionID, w.reason)
		}
	}
}

// TestWatchRevocationsAcrossReplicas revokes on one replica and watches on
// another that shares Redis.
func TestWatchRevocationsAcrossReplicas(t *testing.T) {
	dir := t.TempDir()
	cfg := serve.Config{Store: "redis", RedisURL: testRedisURL()}
	first := startAuthority(t, dir, cfg)
	second := startAuthority(t, dir, cfg)
	clientA := sockauthv1.NewAuthorityServiceClient(dial(t, first.Addr()))
	stream := watchOne(t, sockauthv1.NewAuthorityServiceClient(dial(t, second.Addr())))
	ctx := context.Background()

	code, err := clientA.IssueCode(ctx, &sockauthv1.IssueCodeRequest{Subject: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	session, err := clientA.Authenticate(ctx, &sockauthv1.AuthenticateRequest{Token: code.GetCode()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := clientA.Logout(ctx, &sockauthv1.LogoutRequest{Token: session.GetToken()}); err != nil {
		t.Fatal(err)
	}

	// Other tests share this Redis, so skip their events.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		event, err := stream.Recv()
		if err != nil {
			t.Fatalf("Recv: %v", err)
		}
		if event.GetSessionId() == code.GetInfo().GetSessionId() {
			if event.GetReason() != sockauthv1.RevocationReason_REVOCATION_REASON_LOGOUT {
				t.Fatalf("reason %s, expected logout", event.GetReason())
			}
			return
		}
	}
	t.Fatal("the logout on replica A never reached the watcher on replica B")
}

// TestCloseEndsRevocationStreams checks that an open revocation stream does
// not hold up a graceful stop.
func TestCloseEndsRevocationStreams(t *testing.T) {
	a := startAuthority(t, t.TempDir(), serve.Config{})
	stream := watchOne(t, sockauthv1.NewAuthorityServiceClient(dial(t, a.Addr())))

	started := time.Now()
	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if elapsed := time.Since(started); elapsed > 3*time.Second {
		t.Fatalf("Close took %v with a revocation stream open, expected well under the 5 s grace", elapsed)
	}
	if _, err := stream.Recv(); status.Code(err) != codes.Unavailable {
		t.Fatalf("Recv after Close = %v, expected Unavailable", err)
	}
}

func TestStartRejectsWritableDataFolder(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	_, err := serve.Start(context.Background(), serve.Config{Listen: "127.0.0.1:0", DataDir: dir,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "chmod 700") {
		t.Fatalf("Start with a world-writable data folder = %v, expected an error naming it and the fix", err)
	}
}

func TestStartRejectsMalformedListenAddress(t *testing.T) {
	_, err := serve.Start(context.Background(), serve.Config{Listen: "nonsense", DataDir: t.TempDir(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err == nil || !strings.Contains(err.Error(), `invalid listen address "nonsense"`) {
		t.Fatalf("Start with listen address nonsense = %v, expected an invalid-address error", err)
	}
}

func TestListSessionsPagesOverGRPC(t *testing.T) {
	a := startAuthority(t, t.TempDir(), serve.Config{})
	conn := dial(t, a.Addr())
	client := sockauthv1.NewAuthorityServiceClient(conn)
	admin := sockauthv1.NewAdminServiceClient(conn)
	ctx := context.Background()

	want := map[string]bool{}
	for range 3 {
		code, err := client.IssueCode(ctx, &sockauthv1.IssueCodeRequest{Subject: "alice"})
		if err != nil {
			t.Fatal(err)
		}
		want[code.GetInfo().GetSessionId()] = true
	}

	got := map[string]bool{}
	request := &sockauthv1.ListSessionsRequest{Subject: "alice", PageSize: 2}
	for pages := 1; ; pages++ {
		reply, err := admin.ListSessions(ctx, request)
		if err != nil {
			t.Fatalf("ListSessions page %d: %v", pages, err)
		}
		if len(reply.GetSessions()) > 2 {
			t.Errorf("page %d held %d sessions, expected at most 2", pages, len(reply.GetSessions()))
		}
		for _, session := range reply.GetSessions() {
			got[session.GetSessionId()] = true
		}
		if reply.GetNextPageToken() == "" {
			if pages != 2 {
				t.Errorf("3 sessions in pages of 2 took %d pages, expected 2", pages)
			}
			break
		}
		if pages == 3 {
			t.Fatal("ListSessions still returned a next page token after 3 pages")
		}
		request.PageToken = reply.GetNextPageToken()
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("pages listed %v, expected %v", got, want)
	}

	for name, request := range map[string]*sockauthv1.ListSessionsRequest{
		"negative page size": {Subject: "alice", PageSize: -1},
		"malformed token":    {Subject: "alice", PageToken: "%%%"},
	} {
		if _, err := admin.ListSessions(ctx, request); status.Code(err) != codes.InvalidArgument {
			t.Errorf("ListSessions with a %s = %v, expected InvalidArgument", name, err)
		}
	}
}

// TestStartRecordsTokenTTL checks that an authority records its token
// lifetime in the key file, and that a later start with a shorter one leaves
// the longer in place, because tokens of the first may still be valid.
func TestStartRecordsTokenTTL(t *testing.T) {
	dir := t.TempDir()
	first := startAuthority(t, dir, serve.Config{TokenTTL: 3 * time.Hour})
	first.Close()
	keys, err := authority.LoadKeySet(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := time.Duration(keys.TokenTTL); got != 3*time.Hour {
		t.Fatalf("key file records a token lifetime of %s after a start with 3h, expected 3h0m0s", got)
	}

	second := startAuthority(t, dir, serve.Config{TokenTTL: 10 * time.Minute})
	second.Close()
	keys, err = authority.LoadKeySet(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := time.Duration(keys.TokenTTL); got != 3*time.Hour {
		t.Fatalf("key file records %s after a start with 10m, expected the earlier 3h0m0s", got)
	}
}

// TestStartWithInvalidLifetimesWritesNoKeyFile starts an authority whose
// token lifetime exceeds its session lifetime. It must fail before it
// creates or changes the key file.
func TestStartWithInvalidLifetimesWritesNoKeyFile(t *testing.T) {
	dir := t.TempDir()
	_, err := serve.Start(context.Background(), serve.Config{Listen: "127.0.0.1:0", DataDir: dir,
		TokenTTL: 2 * time.Hour, SessionMaxAge: time.Hour, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err == nil || !strings.Contains(err.Error(), "invalid configuration") {
		t.Fatalf("Start with a token TTL above the session max age = %v, expected invalid configuration", err)
	}
	if _, err := os.Stat(filepath.Join(dir, authority.KeyFileName)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("key file after a failed start: %v, expected none", err)
	}
}
