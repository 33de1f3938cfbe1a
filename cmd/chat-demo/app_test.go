package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sockauth/sockauth/adapter"
)

// newTestApp builds the demo's HTTP handler. The authority address is never
// dialed, because the gRPC client connects only on the first call.
func newTestApp(t *testing.T) http.Handler {
	t.Helper()

	users, err := newUserStore(defaultUsers)
	if err != nil {
		t.Fatalf("newUserStore: %v", err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := config{Listen: "127.0.0.1:0", AuthTimeout: adapter.DefaultAuthTimeout}

	a, err := newApp(context.Background(), cfg, users, "127.0.0.1:1", logger)
	if err != nil {
		t.Fatalf("newApp: %v", err)
	}
	t.Cleanup(a.Close)
	return a.httpServer.Handler
}

func TestAppServesPage(t *testing.T) {
	handler := newTestApp(t)

	tests := []struct {
		name         string
		path         string
		wantStatus   int
		wantType     string
		wantContains []string
	}{
		{
			name:         "index",
			path:         "/",
			wantStatus:   http.StatusOK,
			wantType:     "text/html; charset=utf-8",
			wantContains: []string{`<script type="module" src="/static/app.js">`},
		},
		{
			name:       "vendored 4.x client keeps its license header",
			path:       "/static/socket.io-4.8.4.min.js",
			wantStatus: http.StatusOK,
			wantType:   "text/javascript; charset=utf-8",
			wantContains: []string{
				"Socket.IO v4.8.4",
				"Released under the MIT License.",
			},
		},
		{
			name:       "vendored 2.x client keeps its license header",
			path:       "/static/socket.io-2.5.0.js",
			wantStatus: http.StatusOK,
			wantType:   "text/javascript; charset=utf-8",
			wantContains: []string{
				"Socket.IO v2.5.0",
				"Released under the MIT License.",
			},
		},
		{
			name:         "page script",
			path:         "/static/app.js",
			wantStatus:   http.StatusOK,
			wantType:     "text/javascript; charset=utf-8",
			wantContains: []string{"import { connect, login, storedSession } from './sockauth.js';", "transports: ['websocket']"},
		},
		{
			name:         "client helper",
			path:         "/static/sockauth.js",
			wantStatus:   http.StatusOK,
			wantType:     "text/javascript; charset=utf-8",
			wantContains: []string{"export function connect(io, url, options = {})", "export async function login(url, credentials, options = {})"},
		},
		{name: "unknown path", path: "/nothing-here", wantStatus: http.StatusNotFound},
		{name: "unknown static file", path: "/static/nothing.js", wantStatus: http.StatusNotFound},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tt.path, nil))

			if rec.Code != tt.wantStatus {
				t.Fatalf("GET %s status = %d, want %d", tt.path, rec.Code, tt.wantStatus)
			}
			if tt.wantType != "" {
				if got := rec.Header().Get("Content-Type"); got != tt.wantType {
					t.Errorf("GET %s Content-Type = %q, want %q", tt.path, got, tt.wantType)
				}
			}
			for _, want := range tt.wantContains {
				if !strings.Contains(rec.Body.String(), want) {
					t.Errorf("GET %s body lacks %q", tt.path, want)
				}
			}
			if got := rec.Header().Get("Content-Security-Policy"); !strings.Contains(got, "default-src 'self'") {
				t.Errorf("GET %s Content-Security-Policy = %q, want default-src 'self'", tt.path, got)
			}
			if got := rec.Header().Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("GET %s X-Content-Type-Options = %q, want nosniff", tt.path, got)
			}
		})
	}
}
