package adapter

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestCodeOf(t *testing.T) {
	otherDomain, err := status.New(codes.PermissionDenied, "x").WithDetails(&errdetails.ErrorInfo{Reason: "TOKEN_EXPIRED", Domain: "example.com"})
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		err  error
		want Code
	}{
		{name: "token invalid", err: authorityError(t, codes.Unauthenticated, "TOKEN_INVALID"), want: CodeInvalidToken},
		{name: "invalid argument", err: authorityError(t, codes.InvalidArgument, "INVALID_ARGUMENT"), want: CodeInvalidToken},
		{name: "token expired", err: authorityError(t, codes.Unauthenticated, "TOKEN_EXPIRED"), want: CodeTokenExpired},
		{name: "token reused", err: authorityError(t, codes.PermissionDenied, "TOKEN_REUSED"), want: CodeRevokedToken},
		{name: "session revoked", err: authorityError(t, codes.PermissionDenied, "SESSION_REVOKED"), want: CodeRevokedToken},
		{name: "session expired", err: authorityError(t, codes.Unauthenticated, "SESSION_EXPIRED"), want: CodeSessionExpired},
		{name: "service key rejected", err: authorityError(t, codes.Unauthenticated, "CALLER_UNAUTHENTICATED"), want: CodeAuthorityUnavailable},
		{name: "service key lacks scope", err: authorityError(t, codes.PermissionDenied, "CALLER_FORBIDDEN"), want: CodeAuthorityUnavailable},
		{name: "unknown reason falls back on code", err: authorityError(t, codes.PermissionDenied, "SOMETHING_NEW"), want: CodeRevokedToken},
		{name: "other domain ignored", err: otherDomain.Err(), want: CodeRevokedToken},
		{name: "unauthenticated without detail", err: status.Error(codes.Unauthenticated, "x"), want: CodeInvalidToken},
		{name: "invalid argument without detail", err: status.Error(codes.InvalidArgument, "x"), want: CodeInvalidToken},
		{name: "unavailable", err: status.Error(codes.Unavailable, "x"), want: CodeAuthorityUnavailable},
		{name: "deadline exceeded status", err: status.Error(codes.DeadlineExceeded, "x"), want: CodeAuthorityUnavailable},
		{name: "internal", err: status.Error(codes.Internal, "x"), want: CodeAuthorityUnavailable},
		{name: "context deadline", err: fmt.Errorf("call: %w", context.DeadlineExceeded), want: CodeAuthorityUnavailable},
		{name: "plain error", err: errors.New("connection refused"), want: CodeAuthorityUnavailable},
		{name: "no error", err: nil, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := CodeOf(tt.err); got != tt.want {
				t.Errorf("CodeOf(%v) = %q, expected %q", tt.err, got, tt.want)
			}
		})
	}
}

func TestCallerRejected(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{name: "service key rejected", err: authorityError(t, codes.Unauthenticated, "CALLER_UNAUTHENTICATED"), want: true},
		{name: "service key lacks scope", err: authorityError(t, codes.PermissionDenied, "CALLER_FORBIDDEN"), want: true},
		{name: "token rejected", err: authorityError(t, codes.Unauthenticated, "TOKEN_INVALID")},
		{name: "authority down", err: status.Error(codes.Unavailable, "connection refused")},
		{name: "no error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := CallerRejected(tt.err); got != tt.want {
				t.Errorf("CallerRejected = %v, expected %v", got, tt.want)
			}
		})
	}
}
