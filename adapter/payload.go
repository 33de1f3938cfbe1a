package adapter

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Errors of [TokenFromPayload]. Each one makes the flow reject the event with
// invalid_token, without calling the authority.
var (
	// ErrNoToken reports a payload that carries no token: no argument, null,
	// or an object without a "token" member.
	ErrNoToken = errors.New("adapter: missing token")
	// ErrInvalidPayload reports a payload of the wrong type: a number, a
	// boolean, an array, or an object whose "token" is not a string.
	ErrInvalidPayload = errors.New("adapter: invalid payload: expected a token string or {token: string}")
	// ErrEmptyToken reports an empty token string.
	ErrEmptyToken = errors.New("adapter: empty token")
	// ErrTokenTooLong reports a token longer than Config.MaxTokenBytes.
	ErrTokenTooLong = errors.New("adapter: token too long")
)

// TokenFromPayload extracts the token from the first argument of an
// authenticate or logout event. The payload may be a string, an object
// {token: string} decoded as map[string]any, raw JSON as json.RawMessage or
// []byte, or nil for a missing argument. A token longer than maxBytes is
// rejected with ErrTokenTooLong. TokenFromPayload never returns the token in
// an error.
func TokenFromPayload(payload any, maxBytes int) (string, error) {
	switch p := payload.(type) {
	case nil:
		return "", ErrNoToken
	case string:
		return checkToken(p, maxBytes)
	case map[string]any:
		return tokenFromObject(p, maxBytes)
	case json.RawMessage:
		return tokenFromJSON(p, maxBytes)
	case []byte:
		return tokenFromJSON(p, maxBytes)
	}
	return "", fmt.Errorf("%w, got %T", ErrInvalidPayload, payload)
}

func tokenFromJSON(raw []byte, maxBytes int) (string, error) {
	if len(raw) == 0 {
		return "", ErrNoToken
	}

	// An object holds at most the token, some JSON syntax and perhaps a few
	// other members. Refusing very large payloads before decoding keeps an
	// oversized token from costing a full decode.
	if maxBytes > 0 && len(raw) > 2*maxBytes+1024 {
		return "", ErrTokenTooLong
	}

	var decoded any
	if err := json.Unmarshal(raw, &decoded); err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalidPayload, err)
	}
	return TokenFromPayload(decoded, maxBytes)
}

func tokenFromObject(object map[string]any, maxBytes int) (string, error) {
	value, ok := object["token"]
	if !ok || value == nil {
		return "", ErrNoToken
	}

	token, ok := value.(string)
	if !ok {
		return "", fmt.Errorf("%w, got token of type %T", ErrInvalidPayload, value)
	}
	return checkToken(token, maxBytes)
}

func checkToken(token string, maxBytes int) (string, error) {
	if token == "" {
		return "", ErrEmptyToken
	}
	if maxBytes > 0 && len(token) > maxBytes {
		return "", fmt.Errorf("%w: %d bytes, maximum %d", ErrTokenTooLong, len(token), maxBytes)
	}
	return token, nil
}
