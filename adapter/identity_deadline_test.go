package adapter

import (
	"testing"
	"time"
)

func TestIdentityDeadline(t *testing.T) {
	sessionEnd := time.Date(2026, 12, 5, 12, 0, 0, 700_000_000, time.UTC)
	lastSecond := sessionEnd.Truncate(time.Second)
	tests := []struct {
		name        string
		tokenExpiry time.Time
		sessionEnd  time.Time
		wantAt      time.Time
		wantCode    Code
	}{
		{name: "no session end", tokenExpiry: lastSecond, wantAt: lastSecond, wantCode: CodeTokenExpired},
		{name: "token before the last second", tokenExpiry: lastSecond.Add(-time.Second), sessionEnd: sessionEnd,
			wantAt: lastSecond.Add(-time.Second), wantCode: CodeTokenExpired},
		{name: "token in the last second", tokenExpiry: lastSecond, sessionEnd: sessionEnd,
			wantAt: lastSecond, wantCode: CodeSessionExpired},
		{name: "session before the token", tokenExpiry: sessionEnd.Add(time.Hour), sessionEnd: sessionEnd,
			wantAt: sessionEnd, wantCode: CodeSessionExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			at, code := Identity{ExpiresAt: tt.tokenExpiry, SessionExpiresAt: tt.sessionEnd}.deadline()
			if !at.Equal(tt.wantAt) {
				t.Errorf("deadline at %s, expected %s", at, tt.wantAt)
			}
			if code != tt.wantCode {
				t.Errorf("deadline code %q, expected %q", code, tt.wantCode)
			}
		})
	}
}
