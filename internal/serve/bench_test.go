package serve_test

import (
	"context"
	"testing"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	sockauthv1 "github.com/sockauth/sockauth/gen/sockauth/v1"
	"github.com/sockauth/sockauth/internal/serve"
)

// benchSetups are the authorities that each gRPC benchmark runs against, as
// two sub-benchmarks: one without metrics, and one with the Prometheus
// endpoint on. The latter adds an interceptor that counts and times every
// call, and the service's token counters.
var benchSetups = []struct {
	name string
	cfg  serve.Config
}{
	{name: "plain", cfg: serve.Config{}},
	{name: "metrics", cfg: serve.Config{MetricsListen: "127.0.0.1:0"}},
}

// benchClient starts an authority with cfg on an on-disk store and returns a
// client on a real loopback connection.
func benchClient(b *testing.B, cfg serve.Config) (sockauthv1.AuthorityServiceClient, healthpb.HealthClient) {
	b.Helper()
	a := startAuthority(b, b.TempDir(), cfg)
	conn := dial(b, a.Addr())
	return sockauthv1.NewAuthorityServiceClient(conn), healthpb.NewHealthClient(conn)
}

// runSetups runs bench as a sub-benchmark for each of benchSetups.
func runSetups(b *testing.B, bench func(b *testing.B, cfg serve.Config)) {
	for _, setup := range benchSetups {
		b.Run(setup.name, func(b *testing.B) { bench(b, setup.cfg) })
	}
}

// benchToken logs in and returns the session token of a new session.
func benchToken(client sockauthv1.AuthorityServiceClient) (string, error) {
	code, err := client.IssueCode(context.Background(), &sockauthv1.IssueCodeRequest{Subject: "bench"})
	if err != nil {
		return "", err
	}
	reply, err := client.Authenticate(context.Background(), &sockauthv1.AuthenticateRequest{Token: code.GetCode()})
	if err != nil {
		return "", err
	}
	return reply.GetToken(), nil
}

// BenchmarkGRPCHealthCheck is the transport's ceiling for the benchmarks
// below: a unary call that does no work, on the same kind of connection.
func BenchmarkGRPCHealthCheck(b *testing.B) {
	runSetups(b, func(b *testing.B, cfg serve.Config) {
		_, health := benchClient(b, cfg)
		b.SetParallelism(32)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := health.Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// runTokenCalls runs call in parallel against each of benchSetups, each
// goroutine with a session of its own. call returns the token for the
// goroutine's next call.
func runTokenCalls(b *testing.B, call func(client sockauthv1.AuthorityServiceClient, token string) (string, error)) {
	runSetups(b, func(b *testing.B, cfg serve.Config) {
		client, _ := benchClient(b, cfg)
		b.SetParallelism(32)
		b.RunParallel(func(pb *testing.PB) {
			// RunParallel's goroutines may not call b.Fatal.
			token, err := benchToken(client)
			if err != nil {
				b.Error(err)
				return
			}
			for pb.Next() {
				next, err := call(client, token)
				if err != nil {
					b.Error(err)
					return
				}
				token = next
			}
		})
	})
}

func BenchmarkGRPCRotation(b *testing.B) {
	runTokenCalls(b, func(client sockauthv1.AuthorityServiceClient, token string) (string, error) {
		reply, err := client.Authenticate(context.Background(), &sockauthv1.AuthenticateRequest{Token: token})
		return reply.GetToken(), err
	})
}

func BenchmarkGRPCVerify(b *testing.B) {
	runTokenCalls(b, func(client sockauthv1.AuthorityServiceClient, token string) (string, error) {
		_, err := client.Verify(context.Background(), &sockauthv1.VerifyRequest{Token: token})
		return token, err
	})
}
