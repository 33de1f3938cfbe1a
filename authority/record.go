package authority

import (
	"encoding/base64"
	"fmt"
	"maps"
	"time"

	"google.golang.org/protobuf/proto"

	storev1 "github.com/sockauth/sockauth/gen/sockauth/store/v1"
)

// tokenIDBytes is the size of the token ids that newID generates.
const tokenIDBytes = 16

// MarshalSession encodes a session for storage as a protobuf SessionRecord,
// which decodes several times faster than JSON. The record leaves out the
// session id, which the store keeps as the record's key, and stores token ids
// and whole-second times in their compact fields.
func MarshalSession(s *Session) ([]byte, error) {
	record := &storev1.SessionRecord{
		Subject:       s.Subject,
		Claims:        s.Claims,
		Confirmed:     s.Confirmed,
		Generation:    s.Generation,
		RevokedReason: s.RevokedReason,
		Version:       s.Version,
	}
	record.CurrentTokenId, record.CurrentTokenIdBytes = tokenIDFields(s.CurrentTokenID)
	record.PreviousTokenId, record.PreviousTokenIdBytes = tokenIDFields(s.PreviousTokenID)
	record.CurrentIssuedAt, record.CurrentIssuedAtSeconds = timeFields(s.CurrentIssuedAt)
	record.CurrentExpiresAt, record.CurrentExpiresAtSeconds = timeFields(s.CurrentExpiresAt)
	record.RotatedAt, record.RotatedAtSeconds = timeFields(s.RotatedAt)
	record.CreatedAt, record.CreatedAtSeconds = timeFields(s.CreatedAt)
	record.ExpiresAt, record.ExpiresAtSeconds = timeFields(s.ExpiresAt)
	record.RevokedAt, record.RevokedAtSeconds = timeFields(s.RevokedAt)
	record.RetainUntil, record.RetainUntilSeconds = timeFields(s.RetainUntil)

	data, err := proto.Marshal(record)
	if err != nil {
		return nil, fmt.Errorf("encode session %s: %w", s.ID, err)
	}
	return data, nil
}

// UnmarshalSession decodes a session encoded by MarshalSession and stored
// under id. It also decodes the records of earlier versions, which carry the
// session id, and rejects those whose id differs from id. It copies what it
// keeps, so data may be reused afterwards.
func UnmarshalSession(id string, data []byte) (*Session, error) {
	if id == "" {
		return nil, fmt.Errorf("decode session record: the session id is missing")
	}
	var record storev1.SessionRecord
	if err := proto.Unmarshal(data, &record); err != nil {
		return nil, fmt.Errorf("decode session record %s: %w", id, err)
	}
	if stored := record.GetId(); stored != "" && stored != id {
		return nil, fmt.Errorf("decode session record %s: the record belongs to session %q", id, stored)
	}

	return &Session{
		ID:               id,
		Subject:          record.GetSubject(),
		Claims:           record.GetClaims(),
		CurrentTokenID:   tokenIDFromFields(record.GetCurrentTokenId(), record.GetCurrentTokenIdBytes()),
		CurrentIssuedAt:  timeFromFields(record.GetCurrentIssuedAt(), record.GetCurrentIssuedAtSeconds()),
		CurrentExpiresAt: timeFromFields(record.GetCurrentExpiresAt(), record.GetCurrentExpiresAtSeconds()),
		PreviousTokenID:  tokenIDFromFields(record.GetPreviousTokenId(), record.GetPreviousTokenIdBytes()),
		RotatedAt:        timeFromFields(record.GetRotatedAt(), record.GetRotatedAtSeconds()),
		Confirmed:        record.GetConfirmed(),
		Generation:       record.GetGeneration(),
		CreatedAt:        timeFromFields(record.GetCreatedAt(), record.GetCreatedAtSeconds()),
		ExpiresAt:        timeFromFields(record.GetExpiresAt(), record.GetExpiresAtSeconds()),
		RevokedReason:    record.GetRevokedReason(),
		RevokedAt:        timeFromFields(record.GetRevokedAt(), record.GetRevokedAtSeconds()),
		RetainUntil:      timeFromFields(record.GetRetainUntil(), record.GetRetainUntilSeconds()),
		Version:          record.GetVersion(),
	}, nil
}

// StoredSession returns a copy of s as UnmarshalSession returns it after
// MarshalSession stored it: times in UTC at the precision the record keeps,
// without their monotonic readings, and no claims map when there are no
// claims. It spares a store that keeps decoded records in memory the decoding
// of a record it has just encoded. It does not check what MarshalSession
// rejects.
func StoredSession(s *Session) *Session {
	stored := *s
	stored.Claims = nil
	if len(s.Claims) > 0 {
		stored.Claims = maps.Clone(s.Claims)
	}
	for _, t := range []*time.Time{
		&stored.CurrentIssuedAt, &stored.CurrentExpiresAt, &stored.RotatedAt, &stored.CreatedAt,
		&stored.ExpiresAt, &stored.RevokedAt, &stored.RetainUntil,
	} {
		*t = timeFromFields(timeFields(*t))
	}
	return &stored
}

// tokenIDFields returns the record fields of a token id: its decoded bytes
// when id is the unpadded base64url encoding of tokenIDBytes bytes, which is
// 6 bytes shorter, and otherwise id itself.
func tokenIDFields(id string) (text string, raw []byte) {
	if base64.RawURLEncoding.EncodedLen(tokenIDBytes) != len(id) {
		return id, nil
	}
	// Strict decoding rejects the variants whose unused trailing bits are not
	// zero, so encoding the bytes again gives back exactly id.
	raw, err := base64.RawURLEncoding.Strict().DecodeString(id)
	if err != nil {
		return id, nil
	}
	return "", raw
}

func tokenIDFromFields(text string, raw []byte) string {
	if len(raw) > 0 {
		return base64.RawURLEncoding.EncodeToString(raw)
	}
	return text
}

// timeFields returns the record fields of a time: Unix seconds when t falls on
// a whole second, and Unix nanoseconds otherwise. The zero time sets neither.
func timeFields(t time.Time) (nanos, seconds int64) {
	if t.IsZero() {
		return 0, 0
	}
	if t.Nanosecond() == 0 {
		return 0, t.Unix()
	}
	return t.UnixNano(), 0
}

func timeFromFields(nanos, seconds int64) time.Time {
	switch {
	case nanos != 0:
		return time.Unix(0, nanos).UTC()
	case seconds != 0:
		return time.Unix(seconds, 0).UTC()
	default:
		return time.Time{}
	}
}
