package serve_test

import (
	"context"
	"testing"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	sockauthv1 "github.com/sockauth/sockauth/gen/sockauth/v1"
	"github.com/sockauth/sockauth/internal/serve"
)

// benchClient starts an authority on an on-disk store and returns a client on
// a real loopback connection.
func benchClient(b *testing.B) (sockauthv1.AuthorityServiceClient, healthpb.HealthClient) {
	b.Helper()
	a := startAuthority(b, b.TempDir(), serve.Config{})
	conn := dial(b, a.Addr())
	return sockauthv1.NewAuthorityServiceClient(conn), healthpb.NewHealthClient(conn)
}

func benchToken(b *testing.B, client sockauthv1.AuthorityServiceClient) string {
	b.Helper()
	code, err := client.IssueCode(context.Background(), &sockauthv1.IssueCodeRequest{Subject: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	reply, err := client.Authenticate(context.Background(), &sockauthv1.AuthenticateRequest{Token: code.GetCode()})
	if err != nil {
		b.Fatal(err)
	}
	return reply.GetToken()
}

// BenchmarkGRPCHealthCheck is the transport's ceiling for the benchmarks
// below: a unary call that does no work, on the same kind of connection.
func BenchmarkGRPCHealthCheck(b *testing.B) {
	_, health := benchClient(b)
	b.SetParallelism(32)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := health.Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkGRPCRotation(b *testing.B) {
	client, _ := benchClient(b)
	b.SetParallelism(32)
	b.RunParallel(func(pb *testing.PB) {
		token := benchToken(b, client)
		for pb.Next() {
			reply, err := client.Authenticate(context.Background(), &sockauthv1.AuthenticateRequest{Token: token})
			if err != nil {
				b.Error(err)
				return
			}
			token = reply.GetToken()
		}
	})
}

func BenchmarkGRPCVerify(b *testing.B) {
	client, _ := benchClient(b)
	b.SetParallelism(32)
	b.RunParallel(func(pb *testing.PB) {
		token := benchToken(b, client)
		for pb.Next() {
			if _, err := client.Verify(context.Background(), &sockauthv1.VerifyRequest{Token: token}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
