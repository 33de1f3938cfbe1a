package adapter

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// FuzzTokenFromPayload feeds raw JSON event payloads to the parser. It must
// never panic, must classify every failure with one of its documented errors,
// and must return only non-empty tokens within the length limit.
func FuzzTokenFromPayload(f *testing.F) {
	f.Add([]byte(`{"token":"v2.local.abc"}`))
	f.Add([]byte(`"v2.local.abc"`))
	f.Add([]byte(`{"token":42}`))
	f.Add([]byte(`{"token":""}`))
	f.Add([]byte(`[{"token":"x"}]`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"token":"a","token":"b"}`))
	f.Add([]byte(`"\ud800"`))
	f.Add([]byte(`{"token":"` + strings.Repeat("A", 5000) + `"}`))
	f.Add([]byte(`{`))

	const maxBytes = 4096
	f.Fuzz(func(t *testing.T, raw []byte) {
		token, err := TokenFromPayload(json.RawMessage(raw), maxBytes)
		if err != nil {
			if !errors.Is(err, ErrNoToken) && !errors.Is(err, ErrInvalidPayload) &&
				!errors.Is(err, ErrEmptyToken) && !errors.Is(err, ErrTokenTooLong) {
				t.Fatalf("undocumented error %v", err)
			}
			if token != "" {
				t.Fatalf("token %q returned with error %v", token, err)
			}
			return
		}
		if token == "" || len(token) > maxBytes {
			t.Fatalf("accepted token of %d bytes, expected 1 to %d", len(token), maxBytes)
		}
	})
}
