package authority

import (
	"reflect"
	"testing"
	"time"
)

func TestSessionRecordRoundTrip(t *testing.T) {
	now := time.Date(2026, 5, 6, 7, 8, 9, 123456789, time.UTC)
	want := &Session{
		ID: "sid", Subject: "alice", Claims: map[string]string{"role": "admin"},
		CurrentTokenID: "jti-2", CurrentIssuedAt: now, CurrentExpiresAt: now.Add(time.Hour),
		PreviousTokenID: "jti-1", RotatedAt: now, Confirmed: true, Generation: 2,
		CreatedAt: now.Add(-time.Hour), ExpiresAt: now.Add(720 * time.Hour),
		RevokedReason: RevokedReused, RevokedAt: now.Add(time.Minute), RetainUntil: now.Add(time.Hour), Version: 9,
	}

	data, err := MarshalSession(want)
	if err != nil {
		t.Fatalf("MarshalSession: %v", err)
	}
	got, err := UnmarshalSession(data)
	if err != nil {
		t.Fatalf("UnmarshalSession: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip gave\n%+v\nexpected\n%+v", got, want)
	}
}

func TestSessionRecordZeroTimes(t *testing.T) {
	data, err := MarshalSession(&Session{ID: "sid"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := UnmarshalSession(data)
	if err != nil {
		t.Fatal(err)
	}
	if !got.RevokedAt.IsZero() || !got.RotatedAt.IsZero() {
		t.Fatalf("zero times decoded as %v and %v", got.RevokedAt, got.RotatedAt)
	}
}

func TestUnmarshalSessionRejectsGarbage(t *testing.T) {
	for _, data := range [][]byte{nil, []byte("{\"ID\":\"x\"}"), {0xff, 0xff, 0xff}} {
		if _, err := UnmarshalSession(data); err == nil {
			t.Errorf("UnmarshalSession(%q) succeeded", data)
		}
	}
}
