package main

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/sockauth/sockauth/adapter"
)

func TestParseMessage(t *testing.T) {
	tests := []struct {
		name     string
		payload  string
		wantText string
		wantErr  error
	}{
		{name: "plain text", payload: `{"text":"hello"}`, wantText: "hello"},
		{name: "spaces trimmed", payload: `{"text":"  hello \n"}`, wantText: "hello"},
		{name: "markup kept as text", payload: `{"text":"<b>hi</b>"}`, wantText: "<b>hi</b>"},
		{name: "maximum length", payload: `{"text":"` + strings.Repeat("é", maxMessageRunes) + `"}`, wantText: strings.Repeat("é", maxMessageRunes)},
		{name: "one over maximum", payload: `{"text":"` + strings.Repeat("a", maxMessageRunes+1) + `"}`, wantErr: errMessageTooLong},
		{name: "oversized payload", payload: `{"text":"a","pad":"` + strings.Repeat("a", maxMessagePayloadBytes) + `"}`, wantErr: errMessageTooLong},
		{name: "empty text", payload: `{"text":""}`, wantErr: errMessageEmpty},
		{name: "only spaces", payload: `{"text":"   "}`, wantErr: errMessageEmpty},
		{name: "missing text", payload: `{}`, wantErr: errMessageEmpty},
		{name: "null", payload: `null`, wantErr: errMessageEmpty},
		{name: "bare string", payload: `"hello"`, wantErr: errMessagePayload},
		{name: "number text", payload: `{"text":42}`, wantErr: errMessagePayload},
		{name: "array", payload: `["hello"]`, wantErr: errMessagePayload},
		{name: "invalid JSON", payload: `{"text":`, wantErr: errMessagePayload},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text, err := parseMessage(json.RawMessage(tt.payload))

			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("parseMessage error = %v, want %v", err, tt.wantErr)
			}
			if text != tt.wantText {
				t.Errorf("parseMessage text = %q, want %q", text, tt.wantText)
			}
		})
	}
}

func TestHandleEcho(t *testing.T) {
	if got := handleEcho(nil, adapter.Identity{}, json.RawMessage(`{"n":1}`)); got != `{"n":1}` {
		t.Errorf("echo of a small payload = %q, expected the payload", got)
	}
	if got := handleEcho(nil, adapter.Identity{}, json.RawMessage(`"`+strings.Repeat("x", maxEchoBytes)+`"`)); got != "" {
		t.Errorf("echo of an oversized payload = %q, expected an empty string", got)
	}
}
