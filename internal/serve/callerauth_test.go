package serve_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	sockauthv1 "github.com/sockauth/sockauth/gen/sockauth/v1"
	"github.com/sockauth/sockauth/internal/authclient"
	"github.com/sockauth/sockauth/internal/logtest"
	"github.com/sockauth/sockauth/internal/serve"
)

const (
	socketKey = "socket-key-0123456789abcdef"
	tokenKey  = "token-key-0123456789abcdef"
	adminKey  = "admin-key-0123456789abcdef"
)

func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func dialWith(t testing.TB, o authclient.Options) (sockauthv1.AuthorityServiceClient, sockauthv1.AdminServiceClient, healthpb.HealthClient) {
	t.Helper()
	conn, err := authclient.Dial(o)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return sockauthv1.NewAuthorityServiceClient(conn), sockauthv1.NewAdminServiceClient(conn), healthpb.NewHealthClient(conn)
}

func TestServiceKeys(t *testing.T) {
	dir := t.TempDir()
	keyFile := writeFile(t, dir, "service-keys", "socket:node-1:"+socketKey+"\ntoken:chat:"+tokenKey+"\nadmin:ops:"+adminKey+"\n")
	a := startAuthority(t, t.TempDir(), serve.Config{ServiceKeyFile: keyFile})
	ctx := context.Background()

	noKey, noKeyAdmin, health := dialWith(t, authclient.Options{Address: a.Addr()})
	token, tokenAdmin, _ := dialWith(t, authclient.Options{Address: a.Addr(), ServiceKeyFile: writeFile(t, dir, "token", tokenKey+"\n")})
	admin, adminAdmin, _ := dialWith(t, authclient.Options{Address: a.Addr(), ServiceKeyFile: writeFile(t, dir, "admin", adminKey)})
	wrong, _, _ := dialWith(t, authclient.Options{Address: a.Addr(), ServiceKeyFile: writeFile(t, dir, "wrong", "wrong-key-0123456789abcdef")})
	socket, _, _ := dialWith(t, authclient.Options{Address: a.Addr(), ServiceKeyFile: writeFile(t, dir, "socket", socketKey)})

	_, err := noKey.IssueCode(ctx, &sockauthv1.IssueCodeRequest{Subject: "alice"})
	requireStatus(t, err, codes.Unauthenticated, "CALLER_UNAUTHENTICATED")
	_, err = wrong.IssueCode(ctx, &sockauthv1.IssueCodeRequest{Subject: "alice"})
	requireStatus(t, err, codes.Unauthenticated, "CALLER_UNAUTHENTICATED")
	_, err = noKeyAdmin.ListSessions(ctx, &sockauthv1.ListSessionsRequest{Subject: "alice"})
	requireStatus(t, err, codes.Unauthenticated, "CALLER_UNAUTHENTICATED")
	_, err = tokenAdmin.ListSessions(ctx, &sockauthv1.ListSessionsRequest{Subject: "alice"})
	requireStatus(t, err, codes.PermissionDenied, "CALLER_FORBIDDEN")

	_, err = socket.IssueCode(ctx, &sockauthv1.IssueCodeRequest{Subject: "alice"})
	requireStatus(t, err, codes.PermissionDenied, "CALLER_FORBIDDEN")

	code, err := token.IssueCode(ctx, &sockauthv1.IssueCodeRequest{Subject: "alice"})
	if err != nil {
		t.Fatalf("IssueCode with the token key: %v", err)
	}
	if _, err := socket.Authenticate(ctx, &sockauthv1.AuthenticateRequest{Token: code.GetCode()}); err != nil {
		t.Errorf("Authenticate with the socket key: %v", err)
	}
	if _, err := admin.IssueCode(ctx, &sockauthv1.IssueCodeRequest{Subject: "alice"}); err != nil {
		t.Errorf("IssueCode with the admin key: %v", err)
	}
	if _, err := adminAdmin.ListSessions(ctx, &sockauthv1.ListSessionsRequest{Subject: "alice"}); err != nil {
		t.Errorf("ListSessions with the admin key: %v", err)
	}
	if _, err := health.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Errorf("health Check without a key: %v", err)
	}
}

func TestServiceKeysReload(t *testing.T) {
	dir := t.TempDir()
	keyFile := writeFile(t, dir, "service-keys", "token:old:"+tokenKey+"\n")
	a := startAuthority(t, t.TempDir(), serve.Config{ServiceKeyFile: keyFile})
	ctx := context.Background()
	oldClient, _, _ := dialWith(t, authclient.Options{Address: a.Addr(), ServiceKeyFile: writeFile(t, dir, "old", tokenKey)})
	newKey := "rotated-key-0123456789abcdef"
	newClient, _, _ := dialWith(t, authclient.Options{Address: a.Addr(), ServiceKeyFile: writeFile(t, dir, "new", newKey)})

	if _, err := oldClient.IssueCode(ctx, &sockauthv1.IssueCodeRequest{Subject: "alice"}); err != nil {
		t.Fatalf("IssueCode with the old key: %v", err)
	}

	// Replace the key file; the check runs at most once a second.
	writeFile(t, dir, "service-keys", "token:new:"+newKey+"\n")
	waitAccepted(t, newClient)
	_, err := oldClient.IssueCode(ctx, &sockauthv1.IssueCodeRequest{Subject: "alice"})
	requireStatus(t, err, codes.Unauthenticated, "CALLER_UNAUTHENTICATED")

	// An edit that breaks one line keeps the keys still listed unchanged and
	// drops the removed ones: here the new key stays, a third key joins, and
	// the third key's removal takes effect although a broken line follows.
	thirdKey := "third-key-0123456789abcdef"
	thirdClient, _, _ := dialWith(t, authclient.Options{Address: a.Addr(), ServiceKeyFile: writeFile(t, dir, "third", thirdKey)})
	writeFile(t, dir, "service-keys", "token:new:"+newKey+"\ntoken:third:"+thirdKey+"\n")
	waitAccepted(t, thirdClient)
	writeFile(t, dir, "service-keys", "token:new:"+newKey+"\ngarbage\n")
	time.Sleep(1100 * time.Millisecond)
	if _, err := newClient.IssueCode(ctx, &sockauthv1.IssueCodeRequest{Subject: "alice"}); err != nil {
		t.Fatalf("IssueCode with a key that the broken file still lists: %v; expected it to stay in force", err)
	}
	_, err = thirdClient.IssueCode(ctx, &sockauthv1.IssueCodeRequest{Subject: "alice"})
	requireStatus(t, err, codes.Unauthenticated, "CALLER_UNAUTHENTICATED")

	// A file that other users may read removes the keys it no longer lists
	// and adds none.
	fourthKey := "fourth-key-0123456789abcdef"
	fourthClient, _, _ := dialWith(t, authclient.Options{Address: a.Addr(), ServiceKeyFile: writeFile(t, dir, "fourth", fourthKey)})
	readable := writeFile(t, dir, "service-keys", "token:fourth:"+fourthKey+"\n")
	if err := os.Chmod(readable, 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)
	_, err = newClient.IssueCode(ctx, &sockauthv1.IssueCodeRequest{Subject: "alice"})
	requireStatus(t, err, codes.Unauthenticated, "CALLER_UNAUTHENTICATED")
	_, err = fourthClient.IssueCode(ctx, &sockauthv1.IssueCodeRequest{Subject: "alice"})
	requireStatus(t, err, codes.Unauthenticated, "CALLER_UNAUTHENTICATED")
}

// waitAccepted waits until client's IssueCode succeeds, for at most 5 s.
func waitAccepted(t *testing.T, client sockauthv1.AuthorityServiceClient) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := client.IssueCode(context.Background(), &sockauthv1.IssueCodeRequest{Subject: "alice"})
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("key still rejected 5 s after the key file changed: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestStartRejectsNonLoopbackWithoutProtection(t *testing.T) {
	_, err := serve.Start(context.Background(), serve.Config{Listen: "0.0.0.0:0", DataDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "--insecure") {
		t.Fatalf("Start on 0.0.0.0 without protection = %v, expected an error naming --insecure", err)
	}
}

func TestDialRejectsPlaintextKeyToRemote(t *testing.T) {
	dir := t.TempDir()
	_, err := authclient.Dial(authclient.Options{Address: "authority.example:7070", ServiceKeyFile: writeFile(t, dir, "key", tokenKey)})
	if err == nil || !strings.Contains(err.Error(), "plain text") {
		t.Fatalf("Dial = %v, expected a rejection of a plain-text key to a remote host", err)
	}

	// The error names the flags of the program that dials.
	var options authclient.Options
	authclient.AddFlags(pflag.NewFlagSet("chat-demo", pflag.ContinueOnError), "authority-", &options)
	options.Address, options.ServiceKeyFile = "authority.example:7070", writeFile(t, dir, "key", tokenKey)
	_, err = authclient.Dial(options)
	if err == nil || !strings.Contains(err.Error(), "--authority-tls or --authority-tls-ca") {
		t.Fatalf("Dial with flags prefixed authority- = %v, expected an error naming --authority-tls", err)
	}
}

// testPKI is a CA with a server certificate for 127.0.0.1 and a client
// certificate, written as PEM files.
type testPKI struct {
	caFile, serverCert, serverKey, clientCert, clientKey string
	// expiredCert and expiredKey are a server certificate that expired an
	// hour ago.
	expiredCert, expiredKey string
}

func newTestPKI(t testing.TB) testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTemplate := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "sockauth test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTemplate, caTemplate, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}

	issue := func(name string, serial int64, usage x509.ExtKeyUsage, notAfter time.Time) (string, string) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		template := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: name},
			NotBefore:    time.Now().Add(-2 * time.Hour),
			NotAfter:     notAfter,
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
			IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		}
		der, err := x509.CreateCertificate(rand.Reader, template, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		certFile := writeFile(t, dir, name+".crt", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
		keyFile := writeFile(t, dir, name+".key", string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})))
		return certFile, keyFile
	}

	pki := testPKI{caFile: writeFile(t, dir, "ca.crt", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})))}
	pki.serverCert, pki.serverKey = issue("server", 2, x509.ExtKeyUsageServerAuth, time.Now().Add(time.Hour))
	pki.clientCert, pki.clientKey = issue("client", 3, x509.ExtKeyUsageClientAuth, time.Now().Add(time.Hour))
	pki.expiredCert, pki.expiredKey = issue("expired", 4, x509.ExtKeyUsageServerAuth, time.Now().Add(-time.Hour))
	return pki
}

// TestTCPProbeIsNotAFailedHandshake connects to a TLS authority and closes
// the connection at once, as a load balancer's health check does. That is
// not logged, while a client that speaks plain text is.
func TestTCPProbeIsNotAFailedHandshake(t *testing.T) {
	pki := newTestPKI(t)
	logs := &logtest.Recorder{}
	a := startAuthority(t, t.TempDir(), serve.Config{TLSCert: pki.serverCert, TLSKey: pki.serverKey, Logger: slog.New(logs)})
	for range 3 {
		conn, err := net.Dial("tcp", a.Addr())
		if err != nil {
			t.Fatal(err)
		}
		conn.Close()
	}
	plaintext, _, _ := dialWith(t, authclient.Options{Address: a.Addr()})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := plaintext.IssueCode(ctx, &sockauthv1.IssueCodeRequest{Subject: "alice"}); err == nil {
		t.Fatal("IssueCode in plain text against a TLS server succeeded")
	}
	waitForWarning(t, logs, "TLS handshake failed")
	if n := countWarnings(logs, "TLS handshake failed"); n > 2 {
		t.Errorf("%d failed handshakes logged, expected only the plain-text client's, not the 3 probes", n)
	}
}

func TestStartRejectsExpiredCertificate(t *testing.T) {
	pki := newTestPKI(t)
	_, err := serve.Start(context.Background(), serve.Config{Listen: "127.0.0.1:0", DataDir: t.TempDir(),
		TLSCert: pki.expiredCert, TLSKey: pki.expiredKey, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err == nil || !strings.Contains(err.Error(), "does not include now") {
		t.Fatalf("Start with an expired certificate = %v, expected an error about its validity", err)
	}
}

func TestMutualTLS(t *testing.T) {
	pki := newTestPKI(t)
	logs := &logtest.Recorder{}
	a := startAuthority(t, t.TempDir(), serve.Config{TLSCert: pki.serverCert, TLSKey: pki.serverKey, TLSClientCA: pki.caFile,
		Logger: slog.New(logs)})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	withCert, _, _ := dialWith(t, authclient.Options{Address: a.Addr(), TLSCA: pki.caFile, TLSCert: pki.clientCert, TLSKey: pki.clientKey})
	if _, err := withCert.IssueCode(ctx, &sockauthv1.IssueCodeRequest{Subject: "alice"}); err != nil {
		t.Fatalf("IssueCode over mutual TLS: %v", err)
	}

	withoutCert, _, _ := dialWith(t, authclient.Options{Address: a.Addr(), TLSCA: pki.caFile})
	if _, err := withoutCert.IssueCode(ctx, &sockauthv1.IssueCodeRequest{Subject: "alice"}); err == nil {
		t.Fatal("IssueCode without a client certificate succeeded")
	}
	// The server logs the failed handshake; the client may see only a
	// broken connection.
	waitForWarning(t, logs, "TLS handshake failed")

	plaintext, _, _ := dialWith(t, authclient.Options{Address: a.Addr()})
	if _, err := plaintext.IssueCode(ctx, &sockauthv1.IssueCodeRequest{Subject: "alice"}); err == nil {
		t.Fatal("IssueCode in plain text against a TLS server succeeded")
	}
}

// TestRemovedKeyEndsRevocationStream removes the key of an open revocation
// stream from the key file. The next event must end the stream with
// CALLER_UNAUTHENTICATED instead of reaching the caller.
func TestRemovedKeyEndsRevocationStream(t *testing.T) {
	dir := t.TempDir()
	keyFile := writeFile(t, dir, "service-keys", "socket:node-1:"+socketKey+"\nadmin:ops:"+adminKey+"\n")
	a := startAuthority(t, t.TempDir(), serve.Config{ServiceKeyFile: keyFile})
	socket, _, _ := dialWith(t, authclient.Options{Address: a.Addr(), ServiceKeyFile: writeFile(t, dir, "socket", socketKey)})
	admin, adminAdmin, _ := dialWith(t, authclient.Options{Address: a.Addr(), ServiceKeyFile: writeFile(t, dir, "admin", adminKey)})
	stream := watchOne(t, socket)
	ctx := context.Background()

	// The key file is checked at most once a second.
	writeFile(t, dir, "service-keys", "admin:ops:"+adminKey+"\n")
	time.Sleep(1100 * time.Millisecond)
	if _, err := admin.IssueCode(ctx, &sockauthv1.IssueCodeRequest{Subject: "carol"}); err != nil {
		t.Fatalf("IssueCode with the admin key: %v", err)
	}
	if _, err := adminAdmin.RevokeSubject(ctx, &sockauthv1.RevokeSubjectRequest{Subject: "carol"}); err != nil {
		t.Fatalf("RevokeSubject: %v", err)
	}

	event, err := stream.Recv()
	if err == nil {
		t.Fatalf("the stream of a removed key received %v, expected it to end", event)
	}
	requireStatus(t, err, codes.Unauthenticated, "CALLER_UNAUTHENTICATED")
}

// countWarnings returns how many warnings with message recorder holds.
func countWarnings(recorder *logtest.Recorder, message string) int {
	n := 0
	for _, logged := range recorder.Messages(slog.LevelWarn) {
		if logged == message {
			n++
		}
	}
	return n
}

// waitForWarning waits up to 5 s for a warning with message in recorder.
func waitForWarning(t *testing.T, recorder *logtest.Recorder, message string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for countWarnings(recorder, message) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no warning %q within 5 s", message)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
