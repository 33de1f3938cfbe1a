package authority

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/o1egl/paseto"
)

func testKey(fill byte) []byte { return bytes.Repeat([]byte{fill}, KeySize) }

func newTestCodec(t testing.TB) *PasetoV2 {
	t.Helper()
	codec, err := NewPasetoV2(map[string][]byte{"k1": testKey(1), "k0": testKey(7)}, "k1")
	if err != nil {
		t.Fatalf("NewPasetoV2: %v", err)
	}
	return codec
}

func sampleClaims() Claims {
	return Claims{
		Subject:    "alice",
		SessionID:  "sid-1",
		TokenID:    "jti-1",
		Type:       TypeSession,
		Generation: 3,
		IssuedAt:   time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		ExpiresAt:  time.Date(2026, 1, 2, 4, 4, 5, 0, time.UTC),
		Extra:      map[string]string{"role": "admin"},
	}
}

func TestPasetoV2RoundTrip(t *testing.T) {
	codec := newTestCodec(t)
	want := sampleClaims()

	token, err := codec.Encode(want)
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	if !strings.HasPrefix(token, "v2.local.") {
		t.Fatalf("token %q does not start with v2.local.", token)
	}

	got, err := codec.Decode(token)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if got.Subject != want.Subject || got.SessionID != want.SessionID || got.TokenID != want.TokenID ||
		got.Type != want.Type || got.Generation != want.Generation ||
		!got.IssuedAt.Equal(want.IssuedAt) || !got.ExpiresAt.Equal(want.ExpiresAt) || got.Extra["role"] != "admin" {
		t.Fatalf("Decode returned %+v, expected %+v", got, want)
	}
}

func TestPasetoV2FooterCarriesKeyID(t *testing.T) {
	codec := newTestCodec(t)
	token, err := codec.Encode(sampleClaims())
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}

	var footer map[string]string
	if err := paseto.ParseFooter(token, &footer); err != nil {
		t.Fatalf("ParseFooter: %v", err)
	}
	if footer["kid"] != "k1" {
		t.Fatalf("footer = %v, expected kid k1", footer)
	}
}

func TestPasetoV2DecodesWithOlderKey(t *testing.T) {
	old, err := NewPasetoV2(map[string][]byte{"k0": testKey(7)}, "k0")
	if err != nil {
		t.Fatal(err)
	}
	token, err := old.Encode(sampleClaims())
	if err != nil {
		t.Fatal(err)
	}

	if _, err := newTestCodec(t).Decode(token); err != nil {
		t.Fatalf("Decode of a token made with a non-signing key of the set: %v", err)
	}
}

// encryptRaw builds a v2.local token with the library directly, to make tokens
// that the codec itself would never produce.
func encryptRaw(t testing.TB, key []byte, payload any, footer any) string {
	t.Helper()
	token, err := paseto.NewV2().Encrypt(key, payload, footer)
	if err != nil {
		t.Fatalf("Encrypt: %v", err)
	}
	return token
}

func rawPayload(t testing.TB, mutate func(map[string]any)) []byte {
	t.Helper()
	c := sampleClaims()
	fields := map[string]any{
		"sub": c.Subject, "sid": c.SessionID, "jti": c.TokenID, "typ": string(c.Type), "gen": c.Generation,
		"iat": c.IssuedAt.Format(time.RFC3339), "exp": c.ExpiresAt.Format(time.RFC3339),
	}
	mutate(fields)
	data, err := json.Marshal(fields)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// flipTrailingBits changes the unused low bits of the last base64 character of
// the payload part, which a lenient decoder maps to the same bytes.
func flipTrailingBits(t testing.TB, token string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	payload := parts[2]
	decoded, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		t.Fatal(err)
	}
	if len(decoded)%3 == 0 {
		t.Skip("payload length leaves no spare bits")
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, payload[len(payload)-1])
	parts[2] = payload[:len(payload)-1] + string(alphabet[last^1])
	variant := strings.Join(parts, ".")

	lenient, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || !bytes.Equal(lenient, decoded) {
		t.Fatalf("variant does not decode to the same bytes leniently (err %v)", err)
	}
	return variant
}

func TestPasetoV2RejectsMalformed(t *testing.T) {
	codec := newTestCodec(t)
	good, err := codec.Encode(sampleClaims())
	if err != nil {
		t.Fatal(err)
	}
	otherKey, err := NewPasetoV2(map[string][]byte{"k1": testKey(9)}, "k1")
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := otherKey.Encode(sampleClaims())
	if err != nil {
		t.Fatal(err)
	}
	unknownKid, err := NewPasetoV2(map[string][]byte{"k9": testKey(1)}, "k9")
	if err != nil {
		t.Fatal(err)
	}
	unknown, err := unknownKid.Encode(sampleClaims())
	if err != nil {
		t.Fatal(err)
	}
	kidFooter := []byte(`{"kid":"k1"}`)

	tests := []struct {
		name  string
		token string
	}{
		{"empty", ""},
		{"garbage", "not a token"},
		{"v1 header", strings.Replace(good, "v2.local.", "v1.local.", 1)},
		{"public purpose", strings.Replace(good, "v2.local.", "v2.public.", 1)},
		{"truncated", good[:len(good)-20]},
		{"header only", "v2.local."},
		{"another key", foreign},
		{"unknown key id", unknown},
		{"no footer", encryptRaw(t, testKey(1), rawPayload(t, func(map[string]any) {}), []byte{})},
		{"nil footer", encryptRaw(t, testKey(1), rawPayload(t, func(map[string]any) {}), nil)},
		{"footer null", encryptRaw(t, testKey(1), rawPayload(t, func(map[string]any) {}), []byte("null"))},
		{"footer spelled differently", encryptRaw(t, testKey(1), rawPayload(t, func(map[string]any) {}), []byte(`{"kid": "k1"}`))},
		{"footer without kid", encryptRaw(t, testKey(1), rawPayload(t, func(map[string]any) {}), []byte(`{"x":"k1"}`))},
		{"missing exp", encryptRaw(t, testKey(1), rawPayload(t, func(m map[string]any) { delete(m, "exp") }), kidFooter)},
		{"missing jti", encryptRaw(t, testKey(1), rawPayload(t, func(m map[string]any) { delete(m, "jti") }), kidFooter)},
		{"missing sid", encryptRaw(t, testKey(1), rawPayload(t, func(m map[string]any) { delete(m, "sid") }), kidFooter)},
		{"exp not RFC 3339", encryptRaw(t, testKey(1), rawPayload(t, func(m map[string]any) { m["exp"] = "tomorrow" }), kidFooter)},
		{"unknown typ", encryptRaw(t, testKey(1), rawPayload(t, func(m map[string]any) { m["typ"] = "refresh" }), kidFooter)},
		{"unknown claim", encryptRaw(t, testKey(1), rawPayload(t, func(m map[string]any) { m["admin"] = true }), kidFooter)},
		{"gen as string", encryptRaw(t, testKey(1), rawPayload(t, func(m map[string]any) { m["gen"] = "3" }), kidFooter)},
		{"code with generation", encryptRaw(t, testKey(1), rawPayload(t, func(m map[string]any) { m["typ"] = "code" }), kidFooter)},
		{"payload not JSON", encryptRaw(t, testKey(1), []byte("plain"), kidFooter)},
		{"padding added", good + "=="},
		{"newline inside", good[:20] + "\n" + good[20:]},
		{"trailing bits changed", flipTrailingBits(t, good)},
		{"extra part", good + ".AAAA"},
		{"too long", good + strings.Repeat("A", MaxTokenBytes)},
		{"non-ASCII", good[:30] + "é" + good[30:]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := codec.Decode(tt.token)
			if !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("Decode(%.40q) = %v, expected ErrInvalidToken", tt.token, err)
			}
		})
	}
}

func TestPasetoV2EncodeRejectsMissingExp(t *testing.T) {
	c := sampleClaims()
	c.ExpiresAt = time.Time{}
	if _, err := newTestCodec(t).Encode(c); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("Encode without exp = %v, expected ErrInvalidToken", err)
	}
}

func TestPasetoV2TokensDiffer(t *testing.T) {
	codec := newTestCodec(t)
	a, err := codec.Encode(sampleClaims())
	if err != nil {
		t.Fatal(err)
	}
	b, err := codec.Encode(sampleClaims())
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Fatal("two encodings of the same claims gave the same string; the nonce is not random")
	}
}

func TestNewPasetoV2RejectsBadKeys(t *testing.T) {
	if _, err := NewPasetoV2(map[string][]byte{"k1": testKey(1)}, "k2"); err == nil {
		t.Error("signing id outside the key set was accepted")
	}
	if _, err := NewPasetoV2(map[string][]byte{"k1": []byte("short")}, "k1"); err == nil {
		t.Error("short key was accepted")
	}
}

func FuzzPasetoV2Decode(f *testing.F) {
	codec := newTestCodec(f)
	good, err := codec.Encode(sampleClaims())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add("v2.local.")
	f.Add("v2.local.AAAA.BBBB")
	f.Add(good + "==")
	f.Fuzz(func(t *testing.T, token string) {
		claims, err := codec.Decode(token)
		if err != nil {
			if !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("Decode error %v does not wrap ErrInvalidToken", err)
			}
			return
		}
		if claims.ExpiresAt.IsZero() || claims.TokenID == "" || claims.SessionID == "" {
			t.Fatalf("Decode accepted incomplete claims %+v", claims)
		}
	})
}

func TestIsCanonicalBase64(t *testing.T) {
	for n := range 40 {
		data := bytes.Repeat([]byte{0xa5}, n)
		encoded := base64.RawURLEncoding.EncodeToString(data)
		if !isCanonicalBase64(encoded) {
			t.Errorf("canonical encoding of %d bytes %q rejected", n, encoded)
		}
		if len(encoded)%4 == 0 {
			continue
		}
		// Every other last character that decodes leniently to the same bytes
		// must be rejected, and so must every one that strict decoding rejects.
		for _, last := range "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_" {
			variant := encoded[:len(encoded)-1] + string(last)
			_, strictErr := base64.RawURLEncoding.Strict().DecodeString(variant)
			if got := isCanonicalBase64(variant); got != (strictErr == nil) {
				t.Errorf("isCanonicalBase64(%q) = %v, strict decoding error %v", variant, got, strictErr)
			}
		}
	}
	if isCanonicalBase64("A") || isCanonicalBase64("AAAAA") {
		t.Error("a length that leaves one lone character was accepted")
	}
}
