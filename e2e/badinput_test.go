package e2e

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/o1egl/paseto"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/sockauth/sockauth/authority"
	sockauthv1 "github.com/sockauth/sockauth/gen/sockauth/v1"
)

// craftedTokens are tokens made with the authority's own key file, so that
// they pass authentication and test the checks after it.
type craftedTokens struct {
	code, session                    string
	expired, notYetValid, missingExp string
	wrongKey, unknownKeyID           string
	codeWithGeneration               string
}

func craftTokens(t *testing.T, client sockauthv1.AuthorityServiceClient, dataDir string) craftedTokens {
	t.Helper()
	ctx := context.Background()
	code, err := client.IssueCode(ctx, &sockauthv1.IssueCodeRequest{Subject: "catalogue"})
	if err != nil {
		t.Fatal(err)
	}
	second, err := client.IssueCode(ctx, &sockauthv1.IssueCodeRequest{Subject: "catalogue"})
	if err != nil {
		t.Fatal(err)
	}
	session, err := client.Authenticate(ctx, &sockauthv1.AuthenticateRequest{Token: second.GetCode()})
	if err != nil {
		t.Fatal(err)
	}

	keys, err := authority.LoadKeySet(dataDir)
	if err != nil {
		t.Fatalf("read the authority's key file: %v", err)
	}
	codec, err := authority.NewPasetoV2(keys.Map(), keys.SigningKeyID)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Truncate(time.Second)
	claims := authority.Claims{
		Subject: "catalogue", SessionID: session.GetInfo().GetSessionId(), TokenID: "crafted",
		Type: authority.TypeSession, Generation: 1, IssuedAt: now.Add(-2 * time.Hour), ExpiresAt: now.Add(-time.Hour),
	}
	encode := func(c authority.Claims, codec authority.Codec) string {
		token, err := codec.Encode(c)
		if err != nil {
			t.Fatal(err)
		}
		return token
	}

	future := claims
	future.IssuedAt, future.ExpiresAt = now.Add(time.Hour), now.Add(2*time.Hour)

	randomKey := make([]byte, authority.KeySize)
	rand.Read(randomKey)
	sameID, err := authority.NewPasetoV2(map[string][]byte{keys.SigningKeyID: randomKey}, keys.SigningKeyID)
	if err != nil {
		t.Fatal(err)
	}
	otherID, err := authority.NewPasetoV2(map[string][]byte{"no-such-key": randomKey}, "no-such-key")
	if err != nil {
		t.Fatal(err)
	}
	valid := claims
	valid.IssuedAt, valid.ExpiresAt = now, now.Add(time.Hour)

	payload, err := json.Marshal(map[string]any{"sub": "catalogue", "sid": claims.SessionID, "jti": "x", "typ": "session",
		"gen": 1, "iat": now.Format(time.RFC3339)})
	if err != nil {
		t.Fatal(err)
	}
	footer, err := json.Marshal(map[string]string{"kid": keys.SigningKeyID})
	if err != nil {
		t.Fatal(err)
	}
	missingExp, err := paseto.NewV2().Encrypt(keys.Map()[keys.SigningKeyID], payload, footer)
	if err != nil {
		t.Fatal(err)
	}
	codePayload, err := json.Marshal(map[string]any{"sub": "catalogue", "sid": claims.SessionID, "jti": "y", "typ": "code",
		"gen": 3, "iat": now.Format(time.RFC3339), "exp": now.Add(time.Minute).Format(time.RFC3339)})
	if err != nil {
		t.Fatal(err)
	}
	codeWithGeneration, err := paseto.NewV2().Encrypt(keys.Map()[keys.SigningKeyID], codePayload, footer)
	if err != nil {
		t.Fatal(err)
	}

	return craftedTokens{
		code:               code.GetCode(),
		session:            session.GetToken(),
		expired:            encode(claims, codec),
		notYetValid:        encode(future, codec),
		missingExp:         missingExp,
		wrongKey:           encode(valid, sameID),
		unknownKeyID:       encode(valid, otherID),
		codeWithGeneration: codeWithGeneration,
	}
}

// nonCanonical returns spellings of token that a lenient base64 decoder maps
// to the same bytes: padding, a line break, and changed unused trailing bits.
func nonCanonical(token string) map[string]string {
	variants := map[string]string{
		"padding added":    token + "=",
		"line break":       token[:30] + "\n" + token[30:],
		"carriage return":  token[:30] + "\r" + token[30:],
		"standard base64":  strings.NewReplacer("-", "+", "_", "/").Replace(token),
		"trailing bits":    "",
		"leading space":    " " + token,
		"percent-encoding": strings.Replace(token, ".", "%2E", 1),
	}
	parts := strings.Split(token, ".")
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for i := 2; i < len(parts); i++ {
		// A part whose length is not a multiple of 4 has unused low bits in
		// its last character, so flipping the lowest one keeps the decoded
		// bytes.
		if len(parts[i])%4 == 0 {
			continue
		}
		last := strings.IndexByte(alphabet, parts[i][len(parts[i])-1])
		changed := append([]string{}, parts...)
		changed[i] = parts[i][:len(parts[i])-1] + string(alphabet[last^1])
		variants["trailing bits"] = strings.Join(changed, ".")
		break
	}
	if variants["trailing bits"] == "" {
		delete(variants, "trailing bits")
	}
	return variants
}

// TestBadInputCatalogue sends malformed input over gRPC and over socket
// events, each with its expected error code, and checks afterwards that both
// servers still serve.
func TestBadInputCatalogue(t *testing.T) {
	requireE2E(t)
	dataDir := t.TempDir()
	authorityAddr, _ := startAuthorityIn(t, dataDir)
	chatURL := startChatDemo(t, authorityAddr)

	conn, err := grpc.NewClient(authorityAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := sockauthv1.NewAuthorityServiceClient(conn)
	admin := sockauthv1.NewAdminServiceClient(conn)
	tokens := craftTokens(t, client, dataDir)
	ctx := context.Background()

	authenticate := func(token string) func() error {
		return func() error {
			_, err := client.Authenticate(ctx, &sockauthv1.AuthenticateRequest{Token: token})
			return err
		}
	}
	issue := func(subject string, claims map[string]string) func() error {
		return func() error {
			_, err := client.IssueCode(ctx, &sockauthv1.IssueCodeRequest{Subject: subject, Claims: claims})
			return err
		}
	}
	tooManyClaims := map[string]string{}
	for i := range authority.MaxClaims + 1 {
		tooManyClaims[string(rune('a'+i))] = "v"
	}

	type grpcCase struct {
		name   string
		call   func() error
		code   codes.Code
		reason string // empty when the status carries no ErrorInfo
	}
	grpcCases := []grpcCase{
		{"empty token", authenticate(""), codes.InvalidArgument, "INVALID_ARGUMENT"},
		{"token over 4 KiB", authenticate(strings.Repeat("A", authority.MaxTokenBytes+1)), codes.InvalidArgument, "INVALID_ARGUMENT"},
		{"request over 64 KiB", authenticate(strings.Repeat("A", 70<<10)), codes.ResourceExhausted, ""},
		{"garbage", authenticate("hello"), codes.Unauthenticated, "TOKEN_INVALID"},
		{"header only", authenticate("v2.local."), codes.Unauthenticated, "TOKEN_INVALID"},
		{"truncated by 10 bytes", authenticate(tokens.session[:len(tokens.session)-10]), codes.Unauthenticated, "TOKEN_INVALID"},
		{"truncated to 40 bytes", authenticate(tokens.session[:40]), codes.Unauthenticated, "TOKEN_INVALID"},
		{"footer removed", authenticate(tokens.session[:strings.LastIndexByte(tokens.session, '.')]), codes.Unauthenticated, "TOKEN_INVALID"},
		{"v1.local header", authenticate(strings.Replace(tokens.session, "v2.", "v1.", 1)), codes.Unauthenticated, "TOKEN_INVALID"},
		{"v4.local header", authenticate(strings.Replace(tokens.session, "v2.", "v4.", 1)), codes.Unauthenticated, "TOKEN_INVALID"},
		{"public purpose", authenticate(strings.Replace(tokens.session, ".local.", ".public.", 1)), codes.Unauthenticated, "TOKEN_INVALID"},
		{"another key, same key id", authenticate(tokens.wrongKey), codes.Unauthenticated, "TOKEN_INVALID"},
		{"unknown key id", authenticate(tokens.unknownKeyID), codes.Unauthenticated, "TOKEN_INVALID"},
		{"expired", authenticate(tokens.expired), codes.Unauthenticated, "TOKEN_EXPIRED"},
		{"not yet valid", authenticate(tokens.notYetValid), codes.Unauthenticated, "TOKEN_INVALID"},
		{"missing exp", authenticate(tokens.missingExp), codes.Unauthenticated, "TOKEN_INVALID"},
		{"code with a generation", authenticate(tokens.codeWithGeneration), codes.Unauthenticated, "TOKEN_INVALID"},
		{"emoji inside", authenticate(tokens.session[:20] + "😀" + tokens.session[20:]), codes.Unauthenticated, "TOKEN_INVALID"},
		{"right-to-left override", authenticate("\u202e" + tokens.session), codes.Unauthenticated, "TOKEN_INVALID"},
		{"NUL byte", authenticate(tokens.session + "\x00"), codes.Unauthenticated, "TOKEN_INVALID"},
		{"code given to Verify", func() error {
			_, err := client.Verify(ctx, &sockauthv1.VerifyRequest{Token: tokens.code})
			return err
		}, codes.Unauthenticated, "TOKEN_INVALID"},
		{"code given to Logout", func() error {
			_, err := client.Logout(ctx, &sockauthv1.LogoutRequest{Token: tokens.code})
			return err
		}, codes.Unauthenticated, "TOKEN_INVALID"},
		{"empty subject", issue("", nil), codes.InvalidArgument, "INVALID_ARGUMENT"},
		{"subject with NUL", issue("ali\x00ce", nil), codes.InvalidArgument, "INVALID_ARGUMENT"},
		{"subject over 256 bytes", issue(strings.Repeat("é", 129), nil), codes.InvalidArgument, "INVALID_ARGUMENT"},
		{"17 claims", issue("alice", tooManyClaims), codes.InvalidArgument, "INVALID_ARGUMENT"},
		{"claim value over 256 bytes", issue("alice", map[string]string{"role": strings.Repeat("x", 257)}), codes.InvalidArgument, "INVALID_ARGUMENT"},
		{"revoke empty session id", func() error {
			_, err := admin.RevokeSession(ctx, &sockauthv1.RevokeSessionRequest{})
			return err
		}, codes.InvalidArgument, "INVALID_ARGUMENT"},
		{"revoke unknown session", func() error {
			_, err := admin.RevokeSession(ctx, &sockauthv1.RevokeSessionRequest{SessionId: "no-such-session"})
			return err
		}, codes.NotFound, "SESSION_NOT_FOUND"},
		{"list empty subject", func() error {
			_, err := admin.ListSessions(ctx, &sockauthv1.ListSessionsRequest{})
			return err
		}, codes.InvalidArgument, "INVALID_ARGUMENT"},
	}
	for name, variant := range nonCanonical(tokens.session) {
		grpcCases = append(grpcCases, grpcCase{"non-canonical: " + name, authenticate(variant), codes.Unauthenticated, "TOKEN_INVALID"})
	}

	for _, tc := range grpcCases {
		t.Run("grpc/"+tc.name, func(t *testing.T) {
			err := tc.call()
			st, _ := status.FromError(err)
			if st.Code() != tc.code {
				t.Fatalf("code %s (%q), expected %s", st.Code(), st.Message(), tc.code)
			}
			if tc.reason == "" {
				return
			}
			for _, detail := range st.Details() {
				if info, ok := detail.(*errdetails.ErrorInfo); ok {
					if info.GetReason() != tc.reason {
						t.Fatalf("reason %s, expected %s", info.GetReason(), tc.reason)
					}
					return
				}
			}
			t.Fatalf("status %v has no ErrorInfo, expected reason %s", st, tc.reason)
		})
	}

	// None of the rejected tokens may have touched the real session.
	if _, err := client.Verify(ctx, &sockauthv1.VerifyRequest{Token: tokens.session}); err != nil {
		t.Fatalf("the valid session token no longer verifies after the malformed calls: %v", err)
	}

	type socketCase struct {
		Name    string `json:"name"`
		Payload any    `json:"payload"`
		code    string
	}
	socketCases := []socketCase{
		{Name: "boolean", Payload: true, code: "invalid_token"},
		{Name: "nested array", Payload: [][]string{{"x"}}, code: "invalid_token"},
		{Name: "token in an array", Payload: map[string]any{"token": []string{tokens.session}}, code: "invalid_token"},
		{Name: "float", Payload: 1.5, code: "invalid_token"},
		{Name: "unicode string", Payload: "токен-🔑", code: "invalid_token"},
		{Name: "NUL string", Payload: "\x00", code: "invalid_token"},
		{Name: "100 KB object", Payload: map[string]string{"token": "x", "pad": strings.Repeat("p", 100<<10)}, code: "payload_too_large"},
		{Name: "truncated session token", Payload: map[string]string{"token": tokens.session[:len(tokens.session)-5]}, code: "invalid_token"},
		{Name: "padded session token", Payload: map[string]string{"token": tokens.session + "="}, code: "invalid_token"},
		{Name: "v1 header", Payload: strings.Replace(tokens.session, "v2.", "v1.", 1), code: "invalid_token"},
		{Name: "token of another key", Payload: map[string]string{"token": tokens.wrongKey}, code: "invalid_token"},
		{Name: "expired token", Payload: map[string]string{"token": tokens.expired}, code: "token_expired"},
		{Name: "not yet valid", Payload: map[string]string{"token": tokens.notYetValid}, code: "invalid_token"},
		{Name: "missing exp", Payload: map[string]string{"token": tokens.missingExp}, code: "invalid_token"},
		{Name: "token with extra members", Payload: map[string]any{"token": tokens.expired, "admin": true}, code: "token_expired"},
	}
	casesJSON, err := json.Marshal(socketCases)
	if err != nil {
		t.Fatal(err)
	}
	result := runScenario(t, "catalogue", chatURL, "CASES="+string(casesJSON))
	outcomes := result.all("case")
	if len(outcomes) != len(socketCases) {
		t.Fatalf("scenario reported %d cases, expected %d", len(outcomes), len(socketCases))
	}
	for i, tc := range socketCases {
		t.Run("socket/"+tc.Name, func(t *testing.T) {
			assertUnauthorized(t, outcomes[i], tc.code)
		})
	}
	if total := len(grpcCases) + len(socketCases); total < 40 {
		t.Errorf("catalogue has %d cases, expected at least 40", total)
	}

	// Both servers still serve: a full login works through the chat demo.
	good := runScenario(t, "main-flow", chatURL)
	assertAuthenticated(t, good.get(t, "authenticate"), "alice")
}
