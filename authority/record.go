package authority

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	storev1 "github.com/sockauth/sockauth/gen/sockauth/store/v1"
)

// MarshalSession encodes a session for storage as a protobuf SessionRecord,
// which decodes several times faster than JSON.
func MarshalSession(s *Session) ([]byte, error) {
	data, err := proto.Marshal(&storev1.SessionRecord{
		Id:               s.ID,
		Subject:          s.Subject,
		Claims:           s.Claims,
		CurrentTokenId:   s.CurrentTokenID,
		CurrentIssuedAt:  unixNano(s.CurrentIssuedAt),
		CurrentExpiresAt: unixNano(s.CurrentExpiresAt),
		PreviousTokenId:  s.PreviousTokenID,
		RotatedAt:        unixNano(s.RotatedAt),
		Confirmed:        s.Confirmed,
		Generation:       s.Generation,
		CreatedAt:        unixNano(s.CreatedAt),
		ExpiresAt:        unixNano(s.ExpiresAt),
		RevokedReason:    s.RevokedReason,
		RevokedAt:        unixNano(s.RevokedAt),
		RetainUntil:      unixNano(s.RetainUntil),
		Version:          s.Version,
	})
	if err != nil {
		return nil, fmt.Errorf("encode session %s: %w", s.ID, err)
	}
	return data, nil
}

// UnmarshalSession decodes a session encoded by MarshalSession. It copies
// what it keeps, so data may be reused afterwards.
func UnmarshalSession(data []byte) (*Session, error) {
	var record storev1.SessionRecord
	if err := proto.Unmarshal(data, &record); err != nil {
		return nil, fmt.Errorf("decode session record: %w", err)
	}
	if record.GetId() == "" {
		return nil, fmt.Errorf("decode session record: the session id is missing")
	}
	return &Session{
		ID:               record.GetId(),
		Subject:          record.GetSubject(),
		Claims:           record.GetClaims(),
		CurrentTokenID:   record.GetCurrentTokenId(),
		CurrentIssuedAt:  fromUnixNano(record.GetCurrentIssuedAt()),
		CurrentExpiresAt: fromUnixNano(record.GetCurrentExpiresAt()),
		PreviousTokenID:  record.GetPreviousTokenId(),
		RotatedAt:        fromUnixNano(record.GetRotatedAt()),
		Confirmed:        record.GetConfirmed(),
		Generation:       record.GetGeneration(),
		CreatedAt:        fromUnixNano(record.GetCreatedAt()),
		ExpiresAt:        fromUnixNano(record.GetExpiresAt()),
		RevokedReason:    record.GetRevokedReason(),
		RevokedAt:        fromUnixNano(record.GetRevokedAt()),
		RetainUntil:      fromUnixNano(record.GetRetainUntil()),
		Version:          record.GetVersion(),
	}, nil
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}
