package grpcserver

import (
	"errors"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sockauth/sockauth/authority"
	sockauthv1 "github.com/sockauth/sockauth/gen/sockauth/v1"
)

// WatchRevocations implements sockauthv1.AuthorityServiceServer. It sends the
// headers once the subscription is in place, so a client can tell from
// Header() that no later revocation will be missed.
func (s *Server) WatchRevocations(_ *sockauthv1.WatchRevocationsRequest, stream grpc.ServerStreamingServer[sockauthv1.WatchRevocationsResponse]) error {
	watcher := s.service.WatchRevocations()
	defer watcher.Close()

	if err := stream.SendHeader(metadata.MD{}); err != nil {
		return err
	}
	s.log.Debug("revocation watcher connected")

	for {
		select {
		case <-stream.Context().Done():
			return nil
		case event, ok := <-watcher.Events:
			if !ok {
				if errors.Is(watcher.Err(), authority.ErrServiceClosed) {
					s.log.Debug("revocation watcher closed: the authority is stopping")
					return status.Error(codes.Unavailable, "the authority is stopping; reconnect and re-verify held sessions")
				}
				s.log.Warn("revocation watcher dropped: it fell behind or the store's event feed broke")
				return status.Error(codes.Unavailable, "revocation events may have been missed; reconnect and re-verify held sessions")
			}
			err := stream.Send(&sockauthv1.WatchRevocationsResponse{
				SessionId: event.SessionID,
				Subject:   event.Subject,
				Reason:    revocationReason(event.Reason),
				RevokedAt: timestamppb.New(event.At),
			})
			if err != nil {
				return err
			}
		}
	}
}

func revocationReason(reason string) sockauthv1.RevocationReason {
	switch reason {
	case authority.RevokedLogout:
		return sockauthv1.RevocationReason_REVOCATION_REASON_LOGOUT
	case authority.RevokedAdmin:
		return sockauthv1.RevocationReason_REVOCATION_REASON_ADMIN
	case authority.RevokedReused:
		return sockauthv1.RevocationReason_REVOCATION_REASON_REUSED
	case authority.RevokedExpired:
		return sockauthv1.RevocationReason_REVOCATION_REASON_EXPIRED
	default:
		return sockauthv1.RevocationReason_REVOCATION_REASON_UNSPECIFIED
	}
}
