package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// The cross-language client tests run the same call sequence against `sockauth
// serve` from three clients: Node with @grpc/proto-loader, TypeScript made by
// ts-proto through buf.gen.ts.yaml, and Python made by protoc and
// grpc_python_plugin through buf.gen.python.yaml. Each client writes JSON
// lines that checkClientSteps reads.
//
// The tests skip when a tool is missing, unless SOCKAUTH_REQUIRE_CLIENTS=1
// (set by make test), where a missing tool fails them.

// clientTimeout bounds code generation, compilation and one client run.
const clientTimeout = 90 * time.Second

// clientServiceKey is the service key that the clients send.
const clientServiceKey = "client-test-key-0123456789abcdef"

// requireClientTool stops the test when ok is false: it fails it when
// SOCKAUTH_REQUIRE_CLIENTS=1 and skips it otherwise.
func requireClientTool(t *testing.T, ok bool, reason string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("SOCKAUTH_REQUIRE_CLIENTS") == "1" {
		t.Fatalf("%s; make test installs it", reason)
	}
	t.Skip(reason)
}

// repoPath returns the absolute path of a path relative to the repository root.
func repoPath(t *testing.T, rel string) string {
	t.Helper()
	path, err := filepath.Abs(filepath.Join("..", rel))
	if err != nil {
		t.Fatal(err)
	}
	return path
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// startClientAuthority starts `sockauth serve` that requires clientServiceKey.
func startClientAuthority(t *testing.T) string {
	t.Helper()
	keyFile := filepath.Join(t.TempDir(), "service-keys")
	if err := os.WriteFile(keyFile, []byte("token:clients:"+clientServiceKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return startAuthority(t, "--service-keys", keyFile)
}

// runCommand runs name with args in dir and returns its standard output. It
// fails the test when the command fails.
func runCommand(t *testing.T, dir string, env []string, name string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
	defer cancel()

	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %v failed: %v\nstdout:\n%s\nstderr:\n%s", name, args, err, stdout.String(), stderr.String())
	}
	return stdout.Bytes()
}

// clientStep is one JSON line of a client.
type clientStep struct {
	Step     string `json:"step"`
	HasCode  bool   `json:"has_code"`
	HasToken bool   `json:"has_token"`
	Info     *struct {
		TokenID    string            `json:"token_id"`
		SessionID  string            `json:"session_id"`
		Subject    string            `json:"subject"`
		Type       string            `json:"type"`
		Generation uint64            `json:"generation"`
		ExpiresAt  string            `json:"expires_at"`
		Claims     map[string]string `json:"claims"`
	} `json:"info"`
	Confirmed bool   `json:"confirmed"`
	Current   bool   `json:"current"`
	SessionID string `json:"session_id"`
	Subject   string `json:"subject"`
	Error     *struct {
		Code   int    `json:"code"`
		Domain string `json:"domain"`
		Reason string `json:"reason"`
	} `json:"error"`
	Message string `json:"message"`
}

// checkClientSteps checks the JSON lines that a client wrote.
func checkClientSteps(t *testing.T, output []byte) {
	t.Helper()

	steps := map[string]clientStep{}
	var order []string
	scanner := bufio.NewScanner(bytes.NewReader(output))
	for scanner.Scan() {
		var s clientStep
		if err := json.Unmarshal(scanner.Bytes(), &s); err != nil {
			t.Fatalf("client wrote a line that is not a JSON step: %v: %s", err, scanner.Text())
		}
		steps[s.Step] = s
		order = append(order, s.Step)
	}
	if s, failed := steps["error"]; failed {
		t.Fatalf("client failed: %s", s.Message)
	}
	if len(order) == 0 || order[len(order)-1] != "done" {
		t.Fatalf("client output does not end with a done step:\n%s", output)
	}

	issue := steps["issue"]
	if !issue.HasCode || issue.Info == nil {
		t.Fatalf("issue step lacks the code or its info: %+v", issue)
	}
	if issue.Info.Type != "TOKEN_TYPE_CODE" || issue.Info.Generation != 0 || issue.Info.Subject != "alice" {
		t.Errorf("issue info = %+v, expected a generation 0 code of alice", *issue.Info)
	}
	if issue.Info.Claims["role"] != "member" {
		t.Errorf("issue claims = %v, expected role=member", issue.Info.Claims)
	}

	auth := steps["authenticate"]
	if !auth.HasToken || auth.Info == nil {
		t.Fatalf("authenticate step lacks the token or its info: %+v", auth)
	}
	if auth.Info.Type != "TOKEN_TYPE_SESSION" || auth.Info.Generation != 1 {
		t.Errorf("authenticate info = %+v, expected a generation 1 session token", *auth.Info)
	}
	if auth.Info.SessionID != issue.Info.SessionID {
		t.Errorf("authenticate session %q, expected the code's session %q", auth.Info.SessionID, issue.Info.SessionID)
	}
	if expiresAt, err := time.Parse(time.RFC3339, auth.Info.ExpiresAt); err != nil || !expiresAt.After(time.Now()) {
		t.Errorf("authenticate expires_at %q is not a future RFC 3339 time (%v)", auth.Info.ExpiresAt, err)
	}

	if !steps["confirm"].Confirmed {
		t.Error("ConfirmRotation of a fresh token returned confirmed=false")
	}

	verify := steps["verify"]
	if !verify.Current || verify.Info == nil || verify.Info.TokenID != auth.Info.TokenID {
		t.Errorf("verify = %+v, expected the current token %s", verify, auth.Info.TokenID)
	}

	logout := steps["logout"]
	if logout.SessionID != issue.Info.SessionID || logout.Subject != "alice" {
		t.Errorf("logout = %+v, expected session %s of alice", logout, issue.Info.SessionID)
	}

	errorSteps := []struct {
		step   string
		code   int
		reason string
	}{
		{"verify_after_logout", 7, "SESSION_REVOKED"}, // PERMISSION_DENIED
		{"reuse", 7, "TOKEN_REUSED"},                  // PERMISSION_DENIED
		{"invalid", 16, "TOKEN_INVALID"},              // UNAUTHENTICATED
	}
	for _, want := range errorSteps {
		got := steps[want.step].Error
		if got == nil {
			t.Errorf("step %s has no error", want.step)
			continue
		}
		if got.Code != want.code || got.Domain != "sockauth" || got.Reason != want.reason {
			t.Errorf("step %s error = %+v, expected code %d with ErrorInfo sockauth/%s", want.step, *got, want.code, want.reason)
		}
	}
}

func TestNodeProtoLoaderClient(t *testing.T) {
	requireE2E(t)
	clientDir := repoPath(t, "clients/node")
	requireClientTool(t, fileExists(filepath.Join(clientDir, "node_modules", "@grpc", "proto-loader")),
		"clients/node/node_modules is missing: run npm ci in clients/node")

	addr := startClientAuthority(t)
	output := runCommand(t, clientDir, []string{"AUTHORITY_ADDR=" + addr, "SERVICE_KEY=" + clientServiceKey,
		"PROTO_DIR=" + repoPath(t, "proto")}, "node", "flow-proto-loader.js")
	checkClientSteps(t, output)
}

func TestTypeScriptGeneratedClient(t *testing.T) {
	requireE2E(t)
	clientDir := repoPath(t, "clients/node")
	buf := repoPath(t, "bin/buf")
	requireClientTool(t, fileExists(filepath.Join(clientDir, "node_modules", ".bin", "protoc-gen-ts_proto")),
		"clients/node/node_modules is missing: run npm ci in clients/node")
	requireClientTool(t, fileExists(buf), "bin/buf is missing: run make generate")

	// Generate and compile in a scratch folder that reaches the package's
	// node_modules through a symbolic link.
	work := t.TempDir()
	for _, name := range []string{"flow.ts", "tsconfig.json"} {
		copyFile(t, filepath.Join(clientDir, "ts", name), filepath.Join(work, name))
	}
	if err := os.Symlink(filepath.Join(clientDir, "node_modules"), filepath.Join(work, "node_modules")); err != nil {
		t.Fatal(err)
	}
	runCommand(t, repoPath(t, "."), nil, buf, "generate", "--template", "buf.gen.ts.yaml", "--output", filepath.Join(work, "gen"))
	runCommand(t, work, nil, "node", filepath.Join(clientDir, "node_modules", "typescript", "bin", "tsc"), "-p", "tsconfig.json")
	for _, name := range []string{"scenario.js", "error-info.js"} {
		copyFile(t, filepath.Join(clientDir, "lib", name), filepath.Join(work, "dist", "lib", name))
	}

	addr := startClientAuthority(t)
	output := runCommand(t, work, []string{"AUTHORITY_ADDR=" + addr, "SERVICE_KEY=" + clientServiceKey},
		"node", filepath.Join("dist", "flow.js"))
	checkClientSteps(t, output)
}

func TestPythonGeneratedClient(t *testing.T) {
	requireE2E(t)
	buf := repoPath(t, "bin/buf")
	googleProtos := repoPath(t, "clients/node/node_modules/google-proto-files")
	requireClientTool(t, fileExists(buf), "bin/buf is missing: run make generate")
	requireClientTool(t, fileExists(googleProtos), "clients/node/node_modules is missing: run npm ci in clients/node")
	_, err := exec.LookPath("protoc")
	requireClientTool(t, err == nil, "protoc is missing: apt-get install protobuf-compiler")
	_, err = exec.LookPath("grpc_python_plugin")
	requireClientTool(t, err == nil, "grpc_python_plugin is missing: apt-get install protobuf-compiler-grpc")
	python := pythonWithGRPC()
	requireClientTool(t, python != "", "no python3 can import grpc: apt-get install python3-grpcio python3-protobuf")

	out := t.TempDir()
	root := repoPath(t, ".")
	runCommand(t, root, nil, buf, "generate", "--template", "buf.gen.python.yaml", "--output", out)
	// google.rpc.Status and ErrorInfo decode the error details.
	runCommand(t, root, nil, buf, "generate", googleProtos, "--template", "buf.gen.python.yaml", "--output", out,
		"--path", filepath.Join(googleProtos, "google", "rpc", "status.proto"),
		"--path", filepath.Join(googleProtos, "google", "rpc", "error_details.proto"))

	addr := startClientAuthority(t)
	output := runCommand(t, out, []string{"AUTHORITY_ADDR=" + addr, "SERVICE_KEY=" + clientServiceKey, "PYTHONPATH=" + out},
		python, repoPath(t, "clients/python/flow.py"))
	checkClientSteps(t, output)
}

// pythonWithGRPC returns a Python 3 interpreter that can import grpc and
// google.protobuf, preferring Debian's /usr/bin/python3, where the
// python3-grpcio package installs, over a python3 earlier in PATH.
func pythonWithGRPC() string {
	candidates := []string{"/usr/bin/python3"}
	if path, err := exec.LookPath("python3"); err == nil {
		candidates = append(candidates, path)
	}
	for _, python := range candidates {
		if exec.Command(python, "-c", "import grpc, google.protobuf").Run() == nil {
			return python
		}
	}
	return ""
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
