// Package grpcserver serves an authority.Service as sockauth.v1.AuthorityService.
// It maps requests onto the domain and domain errors onto gRPC status codes with
// google.rpc.ErrorInfo details; it holds no state of its own.
package grpcserver

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sockauth/sockauth/authority"
	sockauthv1 "github.com/sockauth/sockauth/gen/sockauth/v1"
)

// ErrorDomain is the domain of every ErrorInfo detail this server returns.
const ErrorDomain = "sockauth"

// ErrorInfo reasons. Callers switch on these, not on messages.
const (
	ReasonTokenInvalid    = "TOKEN_INVALID"
	ReasonTokenExpired    = "TOKEN_EXPIRED"
	ReasonTokenReused     = "TOKEN_REUSED"
	ReasonSessionRevoked  = "SESSION_REVOKED"
	ReasonSessionExpired  = "SESSION_EXPIRED"
	ReasonInvalidArgument = "INVALID_ARGUMENT"
	ReasonInternal        = "INTERNAL"
)

// MetadataRevokedReason is the ErrorInfo metadata key of SESSION_REVOKED errors
// whose value is the reason the session was revoked: logout, reused or admin.
const MetadataRevokedReason = "revoked_reason"

// Server implements sockauthv1.AuthorityServiceServer. It is safe for
// concurrent use.
type Server struct {
	sockauthv1.UnimplementedAuthorityServiceServer

	service *authority.Service
	log     *slog.Logger
}

var _ sockauthv1.AuthorityServiceServer = (*Server)(nil)

// New returns a Server for service; a nil logger means slog.Default().
func New(service *authority.Service, logger *slog.Logger) *Server {
	if logger == nil {
		logger = slog.Default()
	}
	return &Server{service: service, log: logger}
}

// IssueCode implements sockauthv1.AuthorityServiceServer.
func (s *Server) IssueCode(ctx context.Context, req *sockauthv1.IssueCodeRequest) (*sockauthv1.IssueCodeResponse, error) {
	issued, err := s.service.IssueCode(ctx, req.GetSubject(), req.GetClaims())
	if err != nil {
		return nil, s.toStatus("IssueCode", err)
	}
	return &sockauthv1.IssueCodeResponse{Code: issued.Token, Info: tokenInfo(issued.Claims, issued.SessionExpiresAt)}, nil
}

// Authenticate implements sockauthv1.AuthorityServiceServer.
func (s *Server) Authenticate(ctx context.Context, req *sockauthv1.AuthenticateRequest) (*sockauthv1.AuthenticateResponse, error) {
	if err := checkToken(req.GetToken()); err != nil {
		return nil, err
	}
	issued, err := s.service.Authenticate(ctx, req.GetToken())
	if err != nil {
		return nil, s.toStatus("Authenticate", err)
	}
	return &sockauthv1.AuthenticateResponse{Token: issued.Token, Info: tokenInfo(issued.Claims, issued.SessionExpiresAt)}, nil
}

// ConfirmRotation implements sockauthv1.AuthorityServiceServer.
func (s *Server) ConfirmRotation(ctx context.Context, req *sockauthv1.ConfirmRotationRequest) (*sockauthv1.ConfirmRotationResponse, error) {
	if err := checkToken(req.GetToken()); err != nil {
		return nil, err
	}
	confirmed, err := s.service.ConfirmRotation(ctx, req.GetToken())
	if err != nil {
		return nil, s.toStatus("ConfirmRotation", err)
	}
	return &sockauthv1.ConfirmRotationResponse{Confirmed: confirmed}, nil
}

// Verify implements sockauthv1.AuthorityServiceServer.
func (s *Server) Verify(ctx context.Context, req *sockauthv1.VerifyRequest) (*sockauthv1.VerifyResponse, error) {
	if err := checkToken(req.GetToken()); err != nil {
		return nil, err
	}
	verified, err := s.service.Verify(ctx, req.GetToken())
	if err != nil {
		return nil, s.toStatus("Verify", err)
	}
	return &sockauthv1.VerifyResponse{Info: tokenInfo(verified.Claims, verified.SessionExpiresAt), Current: verified.Current}, nil
}

// Logout implements sockauthv1.AuthorityServiceServer.
func (s *Server) Logout(ctx context.Context, req *sockauthv1.LogoutRequest) (*sockauthv1.LogoutResponse, error) {
	if err := checkToken(req.GetToken()); err != nil {
		return nil, err
	}
	session, err := s.service.Logout(ctx, req.GetToken())
	if err != nil {
		return nil, s.toStatus("Logout", err)
	}
	return &sockauthv1.LogoutResponse{SessionId: session.ID, Subject: session.Subject}, nil
}

// checkToken rejects an empty or oversized token before any decoding.
func checkToken(token string) error {
	if token == "" {
		return newStatus(codes.InvalidArgument, ReasonInvalidArgument, "token is empty")
	}
	if len(token) > authority.MaxTokenBytes {
		return newStatus(codes.InvalidArgument, ReasonInvalidArgument, "token exceeds the maximum length")
	}
	return nil
}

func (s *Server) toStatus(method string, err error) error { return mapError(s.log, method, err) }

// mapError maps a domain error onto a gRPC status. Errors the caller cannot act
// on are logged here and reported without their details.
func mapError(log *slog.Logger, method string, err error) error {
	switch {
	case errors.Is(err, authority.ErrTokenExpired):
		return newStatus(codes.Unauthenticated, ReasonTokenExpired, "token expired")
	case errors.Is(err, authority.ErrInvalidToken):
		return newStatus(codes.Unauthenticated, ReasonTokenInvalid, "invalid token")
	case errors.Is(err, authority.ErrSessionExpired):
		return newStatus(codes.Unauthenticated, ReasonSessionExpired, "session expired")
	case errors.Is(err, authority.ErrTokenReused):
		return newStatus(codes.PermissionDenied, ReasonTokenReused, "token was already used; the session is revoked")
	case errors.Is(err, authority.ErrSessionRevoked):
		var revoked *authority.SessionRevokedError
		if errors.As(err, &revoked) {
			return newStatusWithMetadata(codes.PermissionDenied, ReasonSessionRevoked, "session revoked",
				map[string]string{MetadataRevokedReason: revoked.Reason})
		}
		return newStatus(codes.PermissionDenied, ReasonSessionRevoked, "session revoked")
	case errors.Is(err, authority.ErrInvalidArgument):
		return newStatus(codes.InvalidArgument, ReasonInvalidArgument, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "request canceled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	case errors.Is(err, authority.ErrConflict):
		log.Warn("request gave up after repeated conflicting changes of a session", "method", method, "error", err)
		return newStatus(codes.Aborted, ReasonInternal, "session changed concurrently; retry")
	default:
		log.Error("request failed", "method", method, "error", err)
		return newStatus(codes.Unavailable, ReasonInternal, "authority storage failed; retry later")
	}
}

func newStatus(code codes.Code, reason, message string) error {
	return newStatusWithMetadata(code, reason, message, nil)
}

func newStatusWithMetadata(code codes.Code, reason, message string, metadata map[string]string) error {
	st := status.New(code, message)
	detailed, err := st.WithDetails(&errdetails.ErrorInfo{Domain: ErrorDomain, Reason: reason, Metadata: metadata})
	if err != nil {
		return st.Err()
	}
	return detailed.Err()
}

func tokenInfo(c authority.Claims, sessionExpiresAt time.Time) *sockauthv1.TokenInfo {
	typ := sockauthv1.TokenType_TOKEN_TYPE_SESSION
	if c.Type == authority.TypeCode {
		typ = sockauthv1.TokenType_TOKEN_TYPE_CODE
	}
	return &sockauthv1.TokenInfo{
		TokenId:          c.TokenID,
		SessionId:        c.SessionID,
		Subject:          c.Subject,
		Type:             typ,
		Generation:       c.Generation,
		IssuedAt:         timestamppb.New(c.IssuedAt),
		ExpiresAt:        timestamppb.New(c.ExpiresAt),
		SessionExpiresAt: timestamppb.New(sessionExpiresAt),
		Claims:           c.Extra,
	}
}
