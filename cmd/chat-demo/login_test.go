package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	sockauthv1 "github.com/sockauth/sockauth/gen/sockauth/v1"
)

// fakeIssuer records the subjects it issues codes for and returns a fixed code,
// or err when set.
type fakeIssuer struct {
	err error

	mu       sync.Mutex // guards subjects
	subjects []string
}

var fakeExpiry = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func (f *fakeIssuer) IssueCode(ctx context.Context, in *sockauthv1.IssueCodeRequest, opts ...grpc.CallOption) (*sockauthv1.IssueCodeResponse, error) {
	f.mu.Lock()
	f.subjects = append(f.subjects, in.GetSubject())
	f.mu.Unlock()

	if f.err != nil {
		return nil, f.err
	}
	return &sockauthv1.IssueCodeResponse{
		Code: "code-for-" + in.GetSubject(),
		Info: &sockauthv1.TokenInfo{
			Subject:   in.GetSubject(),
			Type:      sockauthv1.TokenType_TOKEN_TYPE_CODE,
			ExpiresAt: timestamppb.New(fakeExpiry),
		},
	}, nil
}

func (f *fakeIssuer) issuedSubjects() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.subjects...)
}

func newTestLoginHandler(t testing.TB, issuer codeIssuer) *loginHandler {
	t.Helper()

	users, err := newUserStore([]string{"alice:alice-password", "bob:bob-password"})
	if err != nil {
		t.Fatalf("newUserStore: %v", err)
	}
	return &loginHandler{
		users:     users,
		authority: issuer,
		logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

func TestLoginHandler(t *testing.T) {
	tests := []struct {
		name        string
		method      string
		contentType string
		body        string
		wantStatus  int
		// wantSubject is the subject a code must be issued for; empty means no
		// code may be issued.
		wantSubject string
	}{
		{
			name:        "good credentials",
			method:      http.MethodPost,
			contentType: "application/json",
			body:        `{"username":"alice","password":"alice-password"}`,
			wantStatus:  http.StatusOK,
			wantSubject: "alice",
		},
		{
			name:        "content type with charset",
			method:      http.MethodPost,
			contentType: "application/json; charset=utf-8",
			body:        `{"username":"bob","password":"bob-password"}`,
			wantStatus:  http.StatusOK,
			wantSubject: "bob",
		},
		{
			name:        "bad password",
			method:      http.MethodPost,
			contentType: "application/json",
			body:        `{"username":"alice","password":"bob-password"}`,
			wantStatus:  http.StatusUnauthorized,
		},
		{
			name:        "password prefix",
			method:      http.MethodPost,
			contentType: "application/json",
			body:        `{"username":"alice","password":"alice-passwor"}`,
			wantStatus:  http.StatusUnauthorized,
		},
		{
			name:        "unknown user",
			method:      http.MethodPost,
			contentType: "application/json",
			body:        `{"username":"mallory","password":"alice-password"}`,
			wantStatus:  http.StatusUnauthorized,
		},
		{
			name:        "username case differs",
			method:      http.MethodPost,
			contentType: "application/json",
			body:        `{"username":"Alice","password":"alice-password"}`,
			wantStatus:  http.StatusUnauthorized,
		},
		{
			name:        "malformed JSON",
			method:      http.MethodPost,
			contentType: "application/json",
			body:        `{"username":"alice","password":`,
			wantStatus:  http.StatusBadRequest,
		},
		{
			name:        "empty body",
			method:      http.MethodPost,
			contentType: "application/json",
			body:        ``,
			wantStatus:  http.StatusBadRequest,
		},
		{
			name:        "JSON array",
			method:      http.MethodPost,
			contentType: "application/json",
			body:        `["alice","alice-password"]`,
			wantStatus:  http.StatusBadRequest,
		},
		{
			name:        "number username",
			method:      http.MethodPost,
			contentType: "application/json",
			body:        `{"username":42,"password":"alice-password"}`,
			wantStatus:  http.StatusBadRequest,
		},
		{
			name:        "object password",
			method:      http.MethodPost,
			contentType: "application/json",
			body:        `{"username":"alice","password":{"value":"alice-password"}}`,
			wantStatus:  http.StatusBadRequest,
		},
		{
			name:        "null password",
			method:      http.MethodPost,
			contentType: "application/json",
			body:        `{"username":"alice","password":null}`,
			wantStatus:  http.StatusBadRequest,
		},
		{
			name:        "missing password",
			method:      http.MethodPost,
			contentType: "application/json",
			body:        `{"username":"alice"}`,
			wantStatus:  http.StatusBadRequest,
		},
		{
			name:        "unknown field",
			method:      http.MethodPost,
			contentType: "application/json",
			body:        `{"username":"alice","password":"alice-password","admin":true}`,
			wantStatus:  http.StatusBadRequest,
		},
		{
			name:        "trailing value",
			method:      http.MethodPost,
			contentType: "application/json",
			body:        `{"username":"alice","password":"alice-password"}{}`,
			wantStatus:  http.StatusBadRequest,
		},
		{
			name:        "username too long",
			method:      http.MethodPost,
			contentType: "application/json",
			body:        `{"username":"` + strings.Repeat("a", maxUsernameBytes+1) + `","password":"alice-password"}`,
			wantStatus:  http.StatusBadRequest,
		},
		{
			name:        "huge body",
			method:      http.MethodPost,
			contentType: "application/json",
			body:        `{"username":"alice","password":"` + strings.Repeat("p", 1<<20) + `"}`,
			wantStatus:  http.StatusRequestEntityTooLarge,
		},
		{
			name:        "huge trailing whitespace",
			method:      http.MethodPost,
			contentType: "application/json",
			body:        `{"username":"alice","password":"alice-password"}` + strings.Repeat(" ", maxLoginBodyBytes),
			wantStatus:  http.StatusRequestEntityTooLarge,
		},
		{
			name:        "form content type",
			method:      http.MethodPost,
			contentType: "application/x-www-form-urlencoded",
			body:        `{"username":"alice","password":"alice-password"}`,
			wantStatus:  http.StatusUnsupportedMediaType,
		},
		{
			name:        "text content type",
			method:      http.MethodPost,
			contentType: "text/plain",
			body:        `{"username":"alice","password":"alice-password"}`,
			wantStatus:  http.StatusUnsupportedMediaType,
		},
		{
			name:       "missing content type",
			method:     http.MethodPost,
			body:       `{"username":"alice","password":"alice-password"}`,
			wantStatus: http.StatusUnsupportedMediaType,
		},
		{
			name:       "GET method",
			method:     http.MethodGet,
			wantStatus: http.StatusMethodNotAllowed,
		},
		{
			name:        "PUT method",
			method:      http.MethodPut,
			contentType: "application/json",
			body:        `{"username":"alice","password":"alice-password"}`,
			wantStatus:  http.StatusMethodNotAllowed,
		},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			issuer := &fakeIssuer{}
			handler := newTestLoginHandler(t, issuer)

			req := httptest.NewRequest(tt.method, "/login", strings.NewReader(tt.body))
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			rec := httptest.NewRecorder()
			handler.ServeHTTP(rec, req)

			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body: %s", rec.Code, tt.wantStatus, rec.Body)
			}
			if got := rec.Header().Get("Content-Type"); got != "application/json; charset=utf-8" {
				t.Errorf("Content-Type = %q, want application/json; charset=utf-8", got)
			}
			if got := rec.Header().Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", got)
			}

			issued := issuer.issuedSubjects()
			if tt.wantSubject == "" {
				if len(issued) != 0 {
					t.Errorf("codes issued for %q, want none", issued)
				}
				assertErrorBody(t, rec.Body.Bytes())
				return
			}

			if len(issued) != 1 || issued[0] != tt.wantSubject {
				t.Errorf("codes issued for %q, want one for %q", issued, tt.wantSubject)
			}
			var body loginResponse
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("decoding response %s: %v", rec.Body, err)
			}
			if want := "code-for-" + tt.wantSubject; body.Token != want {
				t.Errorf("token = %q, want %q", body.Token, want)
			}
			if want := "2030-01-02T03:04:05Z"; body.ExpiresAt != want {
				t.Errorf("expires_at = %q, want %q", body.ExpiresAt, want)
			}
		})
	}
}

func TestLoginHandlerSetsAllow(t *testing.T) {
	handler := newTestLoginHandler(t, &fakeIssuer{})

	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/login", nil))

	if got := rec.Header().Get("Allow"); got != http.MethodPost {
		t.Errorf("Allow = %q, want POST", got)
	}
}

func TestLoginHandlerAuthorityDown(t *testing.T) {
	issuer := &fakeIssuer{err: errors.New("connection refused")}
	handler := newTestLoginHandler(t, issuer)

	req := httptest.NewRequest(http.MethodPost, "/login", strings.NewReader(`{"username":"alice","password":"alice-password"}`))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, req)

	if rec.Code != http.StatusBadGateway {
		t.Fatalf("status = %d, want %d; body: %s", rec.Code, http.StatusBadGateway, rec.Body)
	}
	assertErrorBody(t, rec.Body.Bytes())
	if strings.Contains(rec.Body.String(), "connection refused") {
		t.Errorf("body %s exposes the internal error", rec.Body)
	}
}

// assertErrorBody checks that body is a JSON object with a non-empty error.
func assertErrorBody(t testing.TB, body []byte) {
	t.Helper()

	var errBody errorResponse
	if err := json.Unmarshal(body, &errBody); err != nil {
		t.Fatalf("decoding error response %s: %v", body, err)
	}
	if errBody.Error == "" {
		t.Errorf("error response %s has an empty error message", body)
	}
}

func TestNewUserStore(t *testing.T) {
	tests := []struct {
		name    string
		pairs   []string
		wantErr bool
	}{
		{name: "two users", pairs: []string{"alice:a", "bob:b"}},
		{name: "colon in password", pairs: []string{"alice:a:b"}},
		{name: "no colon", pairs: []string{"alice"}, wantErr: true},
		{name: "empty name", pairs: []string{":secret"}, wantErr: true},
		{name: "empty password", pairs: []string{"alice:"}, wantErr: true},
		{name: "repeated name", pairs: []string{"alice:a", "alice:b"}, wantErr: true},
		{name: "name too long", pairs: []string{strings.Repeat("a", maxUsernameBytes+1) + ":a"}, wantErr: true},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := newUserStore(tt.pairs)
			if gotErr := err != nil; gotErr != tt.wantErr {
				t.Errorf("newUserStore(%q) error = %v, want error: %t", tt.pairs, err, tt.wantErr)
			}
		})
	}
}

func TestNewUserStoreHidesPassword(t *testing.T) {
	_, err := newUserStore([]string{"alice-no-colon-secret"})
	if err == nil {
		t.Fatal("newUserStore accepted a value without a colon")
	}
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("error %q shows the value, which may hold a password", err)
	}
}

func TestUserStoreCheck(t *testing.T) {
	users, err := newUserStore([]string{"alice:a:b"})
	if err != nil {
		t.Fatalf("newUserStore: %v", err)
	}

	if !users.check("alice", "a:b") {
		t.Error("check rejected the password after the first colon")
	}
	if users.check("alice", "a") {
		t.Error("check accepted the part of the password before its colon")
	}
	if users.check("nobody", "") {
		t.Error("check accepted an unknown user with an empty password")
	}
}

func TestLoginRejectionLogsClientAddress(t *testing.T) {
	var logs bytes.Buffer
	h := newTestLoginHandler(t, &fakeIssuer{})
	h.logger = slog.New(slog.NewTextHandler(&logs, nil))
	h.clientAddress = func(r *http.Request) string { return r.Header.Get("X-Forwarded-For") }

	req := httptest.NewRequest(http.MethodPost, "/login", strings.NewReader(`{"username":"alice","password":"wrong"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Forwarded-For", "203.0.113.9")
	h.ServeHTTP(httptest.NewRecorder(), req)

	if got := logs.String(); !strings.Contains(got, `msg="login rejected"`) || !strings.Contains(got, "address=203.0.113.9") {
		t.Errorf("logs %q, expected login rejected with address=203.0.113.9", got)
	}
}
