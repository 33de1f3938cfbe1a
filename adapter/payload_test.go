package adapter

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestTokenFromPayload(t *testing.T) {
	const max = 16
	long := strings.Repeat("a", max+1)

	tests := []struct {
		name    string
		payload any
		want    string
		wantErr error
	}{
		{name: "bare string", payload: "s3cr3t", want: "s3cr3t"},
		{name: "object", payload: map[string]any{"token": "s3cr3t"}, want: "s3cr3t"},
		{name: "raw object", payload: json.RawMessage(`{"token":"s3cr3t"}`), want: "s3cr3t"},
		{name: "raw string", payload: json.RawMessage(`"s3cr3t"`), want: "s3cr3t"},
		{name: "raw object with other members", payload: []byte(`{"token":"s3cr3t","x":1}`), want: "s3cr3t"},
		{name: "missing argument", payload: nil, wantErr: ErrNoToken},
		{name: "empty raw argument", payload: json.RawMessage(nil), wantErr: ErrNoToken},
		{name: "raw null", payload: json.RawMessage(`null`), wantErr: ErrNoToken},
		{name: "object without token", payload: json.RawMessage(`{}`), wantErr: ErrNoToken},
		{name: "object with null token", payload: json.RawMessage(`{"token":null}`), wantErr: ErrNoToken},
		{name: "number", payload: json.RawMessage(`42`), wantErr: ErrInvalidPayload},
		{name: "boolean", payload: json.RawMessage(`true`), wantErr: ErrInvalidPayload},
		{name: "array", payload: json.RawMessage(`["s3cr3t"]`), wantErr: ErrInvalidPayload},
		{name: "object with number token", payload: json.RawMessage(`{"token":42}`), wantErr: ErrInvalidPayload},
		{name: "object with object token", payload: json.RawMessage(`{"token":{"token":"s3cr3t"}}`), wantErr: ErrInvalidPayload},
		{name: "malformed JSON", payload: json.RawMessage(`{"token":`), wantErr: ErrInvalidPayload},
		{name: "Go number", payload: 42, wantErr: ErrInvalidPayload},
		{name: "empty string", payload: "", wantErr: ErrEmptyToken},
		{name: "empty token in object", payload: json.RawMessage(`{"token":""}`), wantErr: ErrEmptyToken},
		{name: "token at maximum", payload: long[:max], want: long[:max]},
		{name: "token over maximum", payload: long, wantErr: ErrTokenTooLong},
		{name: "raw token over maximum", payload: json.RawMessage(`{"token":"` + long + `"}`), wantErr: ErrTokenTooLong},
		{name: "huge raw payload", payload: json.RawMessage(`"` + strings.Repeat("a", 10000) + `"`), wantErr: ErrTokenTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := TokenFromPayload(tt.payload, max)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("TokenFromPayload error = %v, expected %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("TokenFromPayload = %q, expected %q", got, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("error %q contains the token", err)
			}
		})
	}
}
