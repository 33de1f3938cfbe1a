package grpcserver

import (
	"context"
	"errors"
	"log/slog"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sockauth/sockauth/authority"
	sockauthv1 "github.com/sockauth/sockauth/gen/sockauth/v1"
)

// ReasonSessionNotFound is the ErrorInfo reason of an unknown session id.
const ReasonSessionNotFound = "SESSION_NOT_FOUND"

// AdminServer implements sockauthv1.AdminServiceServer. It is safe for
// concurrent use.
type AdminServer struct {
	sockauthv1.UnimplementedAdminServiceServer

	service *authority.Service
	log     *slog.Logger
}

var _ sockauthv1.AdminServiceServer = (*AdminServer)(nil)

// NewAdmin returns an AdminServer for service; a nil logger means slog.Default().
func NewAdmin(service *authority.Service, logger *slog.Logger) *AdminServer {
	if logger == nil {
		logger = slog.Default()
	}
	return &AdminServer{service: service, log: logger}
}

// RevokeSession implements sockauthv1.AdminServiceServer.
func (s *AdminServer) RevokeSession(ctx context.Context, req *sockauthv1.RevokeSessionRequest) (*sockauthv1.RevokeSessionResponse, error) {
	session, err := s.service.RevokeSession(ctx, req.GetSessionId())
	if err != nil {
		return nil, s.toStatus("RevokeSession", err)
	}
	return &sockauthv1.RevokeSessionResponse{Session: sessionInfo(session)}, nil
}

// RevokeSubject implements sockauthv1.AdminServiceServer.
func (s *AdminServer) RevokeSubject(ctx context.Context, req *sockauthv1.RevokeSubjectRequest) (*sockauthv1.RevokeSubjectResponse, error) {
	count, sessions, err := s.service.RevokeSubject(ctx, req.GetSubject())
	if err != nil {
		if count == 0 {
			return nil, s.toStatus("RevokeSubject", err)
		}
		s.log.Warn("subject partly revoked by administrator", "sub", req.GetSubject(), "sessions", count, "err", err)
		return nil, withRevokedCount(s.toStatus("RevokeSubject", err), count)
	}
	s.log.Info("subject revoked by administrator", "sub", req.GetSubject(), "sessions", count)
	return &sockauthv1.RevokeSubjectResponse{Sessions: sessionInfos(sessions), RevokedCount: int64(count)}, nil
}

// ListSessions implements sockauthv1.AdminServiceServer.
func (s *AdminServer) ListSessions(ctx context.Context, req *sockauthv1.ListSessionsRequest) (*sockauthv1.ListSessionsResponse, error) {
	sessions, next, err := s.service.ListSessions(ctx, req.GetSubject(), req.GetPageToken(), int(req.GetPageSize()))
	if err != nil {
		return nil, s.toStatus("ListSessions", err)
	}
	return &sockauthv1.ListSessionsResponse{Sessions: sessionInfos(sessions), NextPageToken: next}, nil
}

// withRevokedCount adds a RevokeSubjectResponse with only revoked_count set
// to the details of the status err, so that the caller learns how many
// sessions were revoked before the error. The sessions themselves are left
// out to keep small the trailer that carries the details: with the 1,000
// sessions of a full reply it would take over 100 KiB, an estimate.
func withRevokedCount(err error, count int) error {
	detailed, detailErr := status.Convert(err).WithDetails(&sockauthv1.RevokeSubjectResponse{RevokedCount: int64(count)})
	if detailErr != nil {
		return err
	}
	return detailed.Err()
}

func (s *AdminServer) toStatus(method string, err error) error {
	if errors.Is(err, authority.ErrNotFound) {
		return newStatus(codes.NotFound, ReasonSessionNotFound, "session not found")
	}
	return mapError(s.log, method, err)
}

func sessionInfos(sessions []*authority.Session) []*sockauthv1.SessionInfo {
	infos := make([]*sockauthv1.SessionInfo, 0, len(sessions))
	for _, session := range sessions {
		infos = append(infos, sessionInfo(session))
	}
	return infos
}

func sessionInfo(session *authority.Session) *sockauthv1.SessionInfo {
	info := &sockauthv1.SessionInfo{
		SessionId:      session.ID,
		Subject:        session.Subject,
		CreatedAt:      timestamppb.New(session.CreatedAt),
		RotatedAt:      timestamppb.New(session.RotatedAt),
		Generation:     session.Generation,
		TokenExpiresAt: timestamppb.New(session.CurrentExpiresAt),
		ExpiresAt:      timestamppb.New(session.ExpiresAt),
		RevokedReason:  session.RevokedReason,
	}
	if session.Revoked() {
		info.RevokedAt = timestamppb.New(session.RevokedAt)
	}
	return info
}
