package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	sockauthv1 "github.com/sockauth/sockauth/gen/sockauth/v1"
)

// constantIssuer returns the same response for every subject and records
// nothing, so that a benchmark measures only the login handler.
type constantIssuer struct {
	response *sockauthv1.IssueCodeResponse
}

func (c constantIssuer) IssueCode(context.Context, *sockauthv1.IssueCodeRequest, ...grpc.CallOption) (*sockauthv1.IssueCodeResponse, error) {
	return c.response, nil
}

// BenchmarkLoginHandler measures one successful POST /login without the
// authority call and without the network, logging at level error as the
// socket benchmark runs the demo.
func BenchmarkLoginHandler(b *testing.B) {
	issuer := constantIssuer{response: &sockauthv1.IssueCodeResponse{
		Code: "v2.local." + strings.Repeat("c", 300),
		Info: &sockauthv1.TokenInfo{
			SessionId: "sid",
			TokenId:   "jti",
			Subject:   "alice",
			Type:      sockauthv1.TokenType_TOKEN_TYPE_CODE,
			ExpiresAt: timestamppb.New(fakeExpiry),
		},
	}}
	login := newTestLoginHandler(b, issuer)
	login.logger = slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelError}))
	handler := withSecurityHeaders(login)
	body := `{"username":"alice","password":"alice-password"}`

	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/login", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("POST /login: status %d, expected %d", rec.Code, http.StatusOK)
		}
	}
}
