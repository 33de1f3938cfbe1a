package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sockauth/sockauth/adapter"
	"github.com/sockauth/sockauth/internal/authclient"
	"github.com/sockauth/sockauth/internal/serve"
)

// startKeyedAuthority starts an authority on loopback that requires the
// service key in the returned file.
func startKeyedAuthority(t *testing.T) (addr, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	const key = "chat-demo-test-key-0123456789abcdef"
	keys := filepath.Join(dir, "service-keys")
	keyFile = filepath.Join(dir, "chat-demo.key")
	for path, content := range map[string]string{keys: "token:chat-demo:" + key + "\n", keyFile: key + "\n"} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatalf("writing %s: %v", path, err)
		}
	}

	a, err := serve.Start(context.Background(), serve.Config{
		Listen:         "127.0.0.1:0",
		DataDir:        filepath.Join(dir, "data"),
		ServiceKeyFile: keys,
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatalf("serve.Start: %v", err)
	}
	t.Cleanup(func() { a.Close() })
	return a.Addr(), keyFile
}

// loginStatus posts alice's credentials to an app built with client and
// returns the status code.
func loginStatus(t *testing.T, addr string, client authclient.Options) int {
	t.Helper()
	users, err := newUserStore(defaultUsers)
	if err != nil {
		t.Fatalf("newUserStore: %v", err)
	}
	cfg := config{Listen: "127.0.0.1:0", AuthTimeout: adapter.DefaultAuthTimeout, AuthorityClient: client}
	a, err := newApp(context.Background(), cfg, users, addr, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("newApp: %v", err)
	}
	defer a.Close()

	req := httptest.NewRequest(http.MethodPost, "/login", strings.NewReader(`{"username":"alice","password":"alice-password"}`))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	a.httpServer.Handler.ServeHTTP(rec, req)
	return rec.Code
}

func TestAppSendsServiceKey(t *testing.T) {
	addr, keyFile := startKeyedAuthority(t)

	if got := loginStatus(t, addr, authclient.Options{ServiceKeyFile: keyFile}); got != http.StatusOK {
		t.Errorf("login with the service key: status %d, expected %d", got, http.StatusOK)
	}
	// A rejected service key is this server's misconfiguration, not an
	// outage that a retry could outlast.
	if got := loginStatus(t, addr, authclient.Options{}); got != http.StatusInternalServerError {
		t.Errorf("login without the service key: status %d, expected %d", got, http.StatusInternalServerError)
	}
}

func TestAppRejectsMissingKeyFile(t *testing.T) {
	users, err := newUserStore(defaultUsers)
	if err != nil {
		t.Fatalf("newUserStore: %v", err)
	}
	cfg := config{
		Listen:          "127.0.0.1:0",
		AuthTimeout:     adapter.DefaultAuthTimeout,
		AuthorityClient: authclient.Options{ServiceKeyFile: filepath.Join(t.TempDir(), "missing.key")},
	}

	_, err = newApp(context.Background(), cfg, users, "127.0.0.1:1", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil || !strings.Contains(err.Error(), "missing.key") {
		t.Errorf("newApp with a missing key file = %v, expected an error naming the file", err)
	}
}
