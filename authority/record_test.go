package authority

import (
	"encoding/hex"
	"reflect"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	storev1 "github.com/sockauth/sockauth/gen/sockauth/store/v1"
)

func TestSessionRecordRoundTrip(t *testing.T) {
	now := time.Date(2026, 5, 6, 7, 8, 9, 123456789, time.UTC)
	tests := []struct {
		name    string
		session *Session
	}{
		{"text ids and nanosecond times", &Session{
			ID: "sid", Subject: "alice", Claims: map[string]string{"role": "admin"},
			CurrentTokenID: "jti-2", CurrentIssuedAt: now, CurrentExpiresAt: now.Add(time.Hour),
			PreviousTokenID: "jti-1", RotatedAt: now, Confirmed: true, Generation: 2,
			CreatedAt: now.Add(-time.Hour), ExpiresAt: now.Add(720 * time.Hour),
			RevokedReason: RevokedReused, RevokedAt: now.Add(time.Minute), RetainUntil: now.Add(time.Hour), Version: 9,
		}},
		{"generated ids and whole seconds", &Session{
			ID: newID(), Subject: "bob",
			CurrentTokenID: newID(), CurrentIssuedAt: now.Truncate(time.Second), CurrentExpiresAt: now.Add(time.Hour).Truncate(time.Second),
			PreviousTokenID: newID(), RotatedAt: now.Truncate(time.Second), Generation: 1,
			CreatedAt: now.Truncate(time.Second), ExpiresAt: now.Add(720 * time.Hour).Truncate(time.Second),
			RevokedReason: RevokedAdmin, RevokedAt: now.Truncate(time.Second), RetainUntil: now.Add(time.Hour).Truncate(time.Second), Version: 2,
		}},
		// 22 characters carry 4 bits beyond 16 bytes. Strict decoding rejects
		// ids whose extra bits are set, so these ids must stay text.
		{"22 characters with trailing bits", &Session{
			ID: "sid", CurrentTokenID: "AAAAAAAAAAAAAAAAAAAAAB", PreviousTokenID: "AAAAAAAAAAAAAAAAAAAA+A", Version: 1,
		}},
		{"before 1970", &Session{
			ID: "sid", CreatedAt: time.Date(1969, 7, 20, 20, 17, 40, 0, time.UTC),
			RotatedAt: time.Date(1969, 7, 20, 20, 17, 40, 5, time.UTC), Version: 1,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := MarshalSession(tt.session)
			if err != nil {
				t.Fatalf("MarshalSession: %v", err)
			}
			got, err := UnmarshalSession(tt.session.ID, data)
			if err != nil {
				t.Fatalf("UnmarshalSession: %v", err)
			}
			if !reflect.DeepEqual(got, tt.session) {
				t.Fatalf("round trip gave\n%+v\nexpected\n%+v", got, tt.session)
			}
		})
	}
}

func TestSessionRecordZeroTimes(t *testing.T) {
	data, err := MarshalSession(&Session{ID: "sid"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := UnmarshalSession("sid", data)
	if err != nil {
		t.Fatal(err)
	}
	if !got.RevokedAt.IsZero() || !got.RotatedAt.IsZero() {
		t.Fatalf("zero times decoded as %v and %v", got.RevokedAt, got.RotatedAt)
	}
}

func TestSessionRecordCompactFields(t *testing.T) {
	now := time.Date(2026, 5, 6, 7, 8, 9, 123456789, time.UTC)
	session := &Session{
		ID: newID(), Subject: "alice", CurrentTokenID: newID(), PreviousTokenID: newID(),
		CurrentIssuedAt: now.Truncate(time.Second), RotatedAt: now, Version: 2,
	}
	data, err := MarshalSession(session)
	if err != nil {
		t.Fatalf("MarshalSession: %v", err)
	}
	var record storev1.SessionRecord
	if err := proto.Unmarshal(data, &record); err != nil {
		t.Fatalf("decode the record: %v", err)
	}

	if id := record.GetId(); id != "" {
		t.Errorf("record carries the session id %q, which its key already holds", id)
	}
	if text, raw := record.GetCurrentTokenId(), record.GetCurrentTokenIdBytes(); text != "" || len(raw) != 16 {
		t.Errorf("current token id stored as text %q and %d bytes, expected 16 bytes only", text, len(raw))
	}
	if text, raw := record.GetPreviousTokenId(), record.GetPreviousTokenIdBytes(); text != "" || len(raw) != 16 {
		t.Errorf("previous token id stored as text %q and %d bytes, expected 16 bytes only", text, len(raw))
	}
	if nanos, seconds := record.GetCurrentIssuedAt(), record.GetCurrentIssuedAtSeconds(); nanos != 0 || seconds != now.Unix() {
		t.Errorf("whole-second issue time stored as %d ns and %d s, expected %d s only", nanos, seconds, now.Unix())
	}
	if nanos, seconds := record.GetRotatedAt(), record.GetRotatedAtSeconds(); nanos != now.UnixNano() || seconds != 0 {
		t.Errorf("rotation time stored as %d ns and %d s, expected %d ns only", nanos, seconds, now.UnixNano())
	}
}

// recordOfEarlierVersion is a SessionRecord as MarshalSession wrote it before
// the compact fields existed: with the session id, token ids as text and every
// time in nanoseconds. Its session is earlierSession.
const recordOfEarlierVersion = "0a16713356354962307353326d526a6d546e386248702d771205616c6963651a0d0a04726f6c65120561646d696e" +
	"2216596332566233486b324f6534655964396a336259714128809cebc3a887bad6183080dccdc98bf0bad6183a056a74692d31" +
	"4095b6dafea887bad6184801500158958e84c5a187bad61860958e8cffb1b487db186a066c6f676f75747095bea1878189bad618" +
	"7880dccdc98bf0bad618800103"

func earlierSession() *Session {
	created := time.Date(2026, 5, 6, 7, 8, 9, 123456789, time.UTC)
	return &Session{
		ID: "q3V5Ib0sS2mRjmTn8bHp-w", Subject: "alice", Claims: map[string]string{"role": "admin"},
		CurrentTokenID: "Yc2Vb3Hk2Oe4eYd9j3bYqA", CurrentIssuedAt: created.Add(2 * time.Second).Truncate(time.Second),
		CurrentExpiresAt: created.Add(time.Hour + 2*time.Second).Truncate(time.Second),
		PreviousTokenID:  "jti-1", RotatedAt: created.Add(2 * time.Second), Confirmed: true, Generation: 1,
		CreatedAt: created, ExpiresAt: created.Add(720 * time.Hour),
		RevokedReason: RevokedLogout, RevokedAt: created.Add(time.Minute),
		RetainUntil: created.Add(time.Hour + 2*time.Second).Truncate(time.Second), Version: 3,
	}
}

func TestUnmarshalSessionOfEarlierVersion(t *testing.T) {
	data, err := hex.DecodeString(recordOfEarlierVersion)
	if err != nil {
		t.Fatal(err)
	}
	want := earlierSession()

	got, err := UnmarshalSession(want.ID, data)
	if err != nil {
		t.Fatalf("UnmarshalSession: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decoded\n%+v\nexpected\n%+v", got, want)
	}
}

func TestUnmarshalSessionRejectsOtherSessionsRecord(t *testing.T) {
	data, err := hex.DecodeString(recordOfEarlierVersion)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := UnmarshalSession("another-session", data); err == nil {
		t.Fatalf("UnmarshalSession accepted the record of session %s under another id", earlierSession().ID)
	}
}

func TestUnmarshalSessionRejectsGarbage(t *testing.T) {
	for _, data := range [][]byte{[]byte("{\"ID\":\"x\"}"), {0xff, 0xff, 0xff}} {
		if _, err := UnmarshalSession("sid", data); err == nil {
			t.Errorf("UnmarshalSession(%q) succeeded", data)
		}
	}
}

func TestUnmarshalSessionRequiresID(t *testing.T) {
	data, err := MarshalSession(&Session{ID: "sid", Version: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := UnmarshalSession("", data); err == nil {
		t.Fatal("UnmarshalSession succeeded without a session id")
	}
}

// TestStoredSessionMatchesDecodedRecord compares StoredSession with a real
// encode and decode, for sessions whose times and claims the record changes.
func TestStoredSessionMatchesDecodedRecord(t *testing.T) {
	cet := time.FixedZone("CET", 3600)
	now := time.Now() // carries a monotonic reading, which the record drops
	tests := []struct {
		name    string
		session *Session
	}{
		{"local times with a monotonic reading", &Session{
			ID: newID(), Subject: "alice", Claims: map[string]string{"role": "admin", "": ""},
			CurrentTokenID: newID(), CurrentIssuedAt: now, CurrentExpiresAt: now.Add(time.Hour).In(cet),
			PreviousTokenID: "jti-1", RotatedAt: now.In(cet), Confirmed: true, Generation: 3,
			CreatedAt: now.Truncate(time.Second).In(cet), ExpiresAt: now.Add(720 * time.Hour),
			RevokedReason: RevokedLogout, RevokedAt: now, RetainUntil: now.Add(time.Hour), Version: 4,
		}},
		{"empty claims map and zero times", &Session{ID: "sid", Claims: map[string]string{}, Version: 1}},
		{"the Unix epoch, stored as no time", &Session{
			ID: "sid", CreatedAt: time.Unix(0, 0), RotatedAt: time.Unix(0, 0).In(cet), Version: 1,
		}},
		{"before 1970 with nanoseconds", &Session{
			ID: "sid", RotatedAt: time.Date(1969, 7, 20, 20, 17, 40, 5, cet), Version: 1,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := MarshalSession(tt.session)
			if err != nil {
				t.Fatalf("MarshalSession: %v", err)
			}
			want, err := UnmarshalSession(tt.session.ID, data)
			if err != nil {
				t.Fatalf("UnmarshalSession: %v", err)
			}
			got := StoredSession(tt.session)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("StoredSession gave\n%+v\nthe decoded record is\n%+v", got, want)
			}
			if len(tt.session.Claims) > 0 {
				got.Claims["added"] = "x"
				if _, shared := tt.session.Claims["added"]; shared {
					t.Fatal("StoredSession shares its claims map with the session it copies")
				}
			}
		})
	}
}
