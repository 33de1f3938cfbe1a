package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	sockauthv1 "github.com/sockauth/sockauth/gen/sockauth/v1"
)

const (
	// readyTimeout bounds how long a started process may take to serve.
	readyTimeout = 20 * time.Second
	// stopTimeout bounds how long a process may take to exit after SIGTERM
	// before it is killed.
	stopTimeout = 10 * time.Second
	// scenarioTimeout bounds one Node scenario script.
	scenarioTimeout = 60 * time.Second
	// startAttempts is how many times a process is started on a new port when
	// the port picked for it was taken in the meantime.
	startAttempts = 3
)

// TestMain sets these variables.
var (
	// skipReason is why the tests cannot run here, or empty when they can.
	skipReason string
	// sockauthBin and chatDemoBin are the binaries built for this run.
	sockauthBin string
	chatDemoBin string
	// nodeDir is the absolute path of e2e/node.
	nodeDir string
)

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	flag.Parse()

	binDir, err := os.MkdirTemp("", "sockauth-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: create a folder for the binaries:", err)
		return 1
	}
	defer os.RemoveAll(binDir)

	skipReason, err = prepare(binDir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	// A missing tool fails the run rather than skipping every test when the
	// caller requires the clients, as make test does.
	if skipReason != "" && !testing.Short() && os.Getenv("SOCKAUTH_REQUIRE_CLIENTS") == "1" {
		fmt.Fprintf(os.Stderr, "e2e: %s; SOCKAUTH_REQUIRE_CLIENTS=1 requires it\n", skipReason)
		return 1
	}
	return m.Run()
}

// prepare finds Node and the npm packages and builds the binaries into binDir.
// It returns a skip reason when the tests cannot run here, and an error when
// the build fails.
func prepare(binDir string) (string, error) {
	if testing.Short() {
		return "end-to-end tests are skipped with -short", nil
	}

	dir, err := filepath.Abs("node")
	if err != nil {
		return "", err
	}
	nodeDir = dir
	if _, err := os.Stat(filepath.Join(nodeDir, "node_modules", "socket.io-client", "package.json")); err != nil {
		return "e2e/node/node_modules is missing: run `npm ci` in e2e/node (make test does)", nil
	}
	if _, err := exec.LookPath("node"); err != nil {
		return "node is not installed or not in PATH", nil
	}

	sockauthBin = filepath.Join(binDir, "sockauth")
	chatDemoBin = filepath.Join(binDir, "chat-demo")
	for bin, pkg := range map[string]string{sockauthBin: "./cmd/sockauth", chatDemoBin: "./cmd/chat-demo"} {
		build := exec.Command("go", "build", "-o", bin, pkg)
		build.Dir = ".."
		if out, err := build.CombinedOutput(); err != nil {
			return "", fmt.Errorf("go build %s failed: %v\n%s", pkg, err, out)
		}
	}
	return "", nil
}

// requireE2E skips the test when TestMain found that the tests cannot run, and
// marks it as parallel.
func requireE2E(t *testing.T) {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
	t.Parallel()
}

// syncBuffer is a bytes.Buffer safe for concurrent writes and reads.
type syncBuffer struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// process is a started binary whose combined output is kept for failure
// reports.
type process struct {
	name   string
	cmd    *exec.Cmd
	output *syncBuffer
	// exited is closed when the process has exited, and waitErr is set then.
	exited  chan struct{}
	waitErr error
}

// startProcess starts bin with args and registers a cleanup that stops it and,
// when the test failed, logs its output.
func startProcess(t *testing.T, name, bin string, args ...string) *process {
	t.Helper()

	p := &process{
		name:   name,
		cmd:    exec.Command(bin, args...),
		output: &syncBuffer{},
		exited: make(chan struct{}),
	}
	p.cmd.Env = environWithout("SOCKAUTH_")
	p.cmd.Stdout = p.output
	p.cmd.Stderr = p.output
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()

	t.Cleanup(func() {
		// A process that exited early was already reported by its caller,
		// which may have retried on another port.
		if !p.hasExited() {
			if err := p.stop(); err != nil {
				t.Errorf("%s did not stop cleanly: %v", name, err)
			}
		}
		if t.Failed() {
			t.Logf("output of %s %s:\n%s", name, strings.Join(args, " "), p.output)
		}
	})
	return p
}

// stop sends SIGTERM and waits for the exit, killing the process after
// stopTimeout. It returns the exit error, or nil for exit status 0. Calling
// stop again returns the same result.
func (p *process) stop() error {
	select {
	case <-p.exited:
		return p.waitErr
	default:
	}

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("send SIGTERM: %w", err)
	}
	select {
	case <-p.exited:
		return p.waitErr
	case <-time.After(stopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("no exit within %v of SIGTERM; killed", stopTimeout)
	}
}

func (p *process) hasExited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// environWithout returns the environment without the variables whose names
// start with prefix, so that settings of the developer's shell do not reach
// the binaries under test.
func environWithout(prefix string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, prefix) {
			env = append(env, kv)
		}
	}
	return env
}

// freeLoopbackAddr returns a loopback address whose port was free a moment
// ago. Another process may take it before the caller binds it, so callers
// retry with a new address when the start fails.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()

	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free loopback port: %v", err)
	}
	addr := listener.Addr().String()
	listener.Close()
	return addr
}

// waitReady polls ready until it returns nil. It fails the test when p exits
// first or readyTimeout passes.
func waitReady(t *testing.T, p *process, ready func(ctx context.Context) error) bool {
	t.Helper()

	deadline := time.Now().Add(readyTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := ready(ctx)
		cancel()
		if err == nil {
			return true
		}
		if p.hasExited() {
			return false
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready within %v: %v\noutput:\n%s", p.name, readyTimeout, err, p.output)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startAuthority runs `sockauth serve` with its own data folder on a free
// loopback port, waits until its gRPC health check reports SERVING and returns
// its address. extraArgs are added to the command line.
func startAuthority(t *testing.T, extraArgs ...string) string {
	t.Helper()
	addr, _ := startAuthorityIn(t, t.TempDir(), extraArgs...)
	return addr
}

// startAuthorityIn runs `sockauth serve` on dataDir like startAuthority and
// also returns the process.
func startAuthorityIn(t *testing.T, dataDir string, extraArgs ...string) (string, *process) {
	t.Helper()

	for attempt := 1; ; attempt++ {
		addr := freeLoopbackAddr(t)
		args := append([]string{"serve", "--listen", addr, "--data", dataDir}, extraArgs...)
		p := startProcess(t, "sockauth", sockauthBin, args...)

		if waitReady(t, p, func(ctx context.Context) error { return checkHealth(ctx, addr) }) {
			return addr, p
		}
		if attempt == startAttempts {
			t.Fatalf("sockauth serve exited before serving: %v\noutput:\n%s", p.waitErr, p.output)
		}
	}
}

func checkHealth(ctx context.Context, addr string) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()

	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{
		Service: sockauthv1.AuthorityService_ServiceDesc.ServiceName,
	})
	if err != nil {
		return err
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("health status %v", resp.GetStatus())
	}
	return nil
}

// startChatDemo runs chat-demo against the authority at authorityAddr on a
// free loopback port, waits until it serves its page and returns its base URL.
// extraArgs are added to the command line.
func startChatDemo(t *testing.T, authorityAddr string, extraArgs ...string) string {
	t.Helper()

	_, baseURL := startChatDemoProcess(t, append([]string{"--authority", authorityAddr}, extraArgs...)...)
	return baseURL
}

// startChatDemoProcess runs chat-demo with args on a free loopback port, waits
// until it serves its page and returns the process and its base URL.
func startChatDemoProcess(t *testing.T, args ...string) (*process, string) {
	t.Helper()

	for attempt := 1; ; attempt++ {
		addr := freeLoopbackAddr(t)
		baseURL := "http://" + addr
		p := startProcess(t, "chat-demo", chatDemoBin, append([]string{"--listen", addr}, args...)...)

		if waitReady(t, p, func(ctx context.Context) error { return checkPage(ctx, baseURL) }) {
			return p, baseURL
		}
		if attempt == startAttempts {
			t.Fatalf("chat-demo exited before serving: %v\noutput:\n%s", p.waitErr, p.output)
		}
	}
}

func checkPage(ctx context.Context, baseURL string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+"/", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET / returned status %d", resp.StatusCode)
	}
	return nil
}

// startStack runs an authority with authorityArgs and a chat demo with
// demoArgs in front of it, and returns the chat demo's base URL.
func startStack(t *testing.T, authorityArgs, demoArgs []string) string {
	t.Helper()
	return startChatDemo(t, startAuthority(t, authorityArgs...), demoArgs...)
}

// authInfo is the second argument of the authenticated event.
type authInfo struct {
	ExpiresAt string `json:"expires_at"`
	SessionID string `json:"session_id"`
	Subject   string `json:"subject"`
}

// unauthorizedError is the argument of the unauthorized event.
type unauthorizedError struct {
	Message string `json:"message"`
	Data    struct {
		Message string `json:"message"`
		Code    string `json:"code"`
		Type    string `json:"type"`
	} `json:"data"`
}

// chatMessage is the argument of the message event sent by the chat demo.
type chatMessage struct {
	From string `json:"from"`
	Text string `json:"text"`
	At   string `json:"at"`
}

// step is one JSON line written by a scenario script. Scripts set only the
// fields of their own steps. Raw keeps the line for failure messages.
type step struct {
	Step string `json:"step"`
	Name string `json:"name"`

	// The outcome of an authenticate event, as lib.describe writes it.
	Event  string             `json:"event"`
	Token  string             `json:"token"`
	Info   *authInfo          `json:"info"`
	HasAck bool               `json:"has_ack"`
	Error  *unauthorizedError `json:"error"`
	// Disconnect is the reason of the disconnect event that followed, or empty.
	Disconnect string `json:"disconnect"`

	Code      string          `json:"code"`
	Status    int             `json:"status"`
	Body      json.RawMessage `json:"body"`
	Message   *chatMessage    `json:"message"`
	Messages  []chatMessage   `json:"messages"`
	Connected bool            `json:"connected"`
	LoggedOut *struct {
		Reason string `json:"reason"`
	} `json:"logged_out"`
	Disconnects         []string `json:"disconnects"`
	RetryConnected      bool     `json:"retry_connected"`
	ListenerConnected   bool     `json:"listener_connected"`
	IntruderMessages    []any    `json:"intruder_messages"`
	UnauthorizedAfterMS int64    `json:"unauthorized_after_ms"`
	ReconnectAttempts   int      `json:"reconnect_attempts"`

	Raw string `json:"-"`
}

// scenarioResult is the parsed output of one scenario script.
type scenarioResult struct {
	steps []step
}

// get returns the step of this name, failing the test when there is none.
func (r scenarioResult) get(t *testing.T, name string) step {
	t.Helper()

	for _, s := range r.steps {
		if s.Step == name {
			return s
		}
	}
	t.Fatalf("scenario output has no step %q", name)
	return step{}
}

// all returns every step of this name.
func (r scenarioResult) all(name string) []step {
	var found []step
	for _, s := range r.steps {
		if s.Step == name {
			found = append(found, s)
		}
	}
	return found
}

// runScenario runs e2e/node/scenarios/NAME.js against the chat demo at baseURL,
// with env added to the environment, and returns its steps. It fails the test
// when the script exits with an error or does not end with a done step.
func runScenario(t *testing.T, name, baseURL string, env ...string) scenarioResult {
	t.Helper()

	result, err := execScenario(name, baseURL, env...)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("scenario %s: %d steps", name, len(result.steps))
	return result
}

// execScenario runs a scenario like runScenario and returns an error, with
// the script's output, instead of failing a test, so that it can run on any
// goroutine.
func execScenario(name, baseURL string, env ...string) (scenarioResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
	defer cancel()

	cmd := exec.CommandContext(ctx, "node", filepath.Join(nodeDir, "scenarios", name+".js"))
	cmd.Dir = nodeDir
	cmd.Env = append(os.Environ(), "CHAT_URL="+baseURL)
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr

	runErr := cmd.Run()

	var result scenarioResult
	scanner := bufio.NewScanner(bytes.NewReader(stdout.Bytes()))
	scanner.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for scanner.Scan() {
		line := scanner.Text()
		var s step
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			return result, fmt.Errorf("scenario %s wrote a line that is not a JSON step: %v\nline: %s\nstderr:\n%s", name, err, line, stderr.String())
		}
		s.Raw = line
		result.steps = append(result.steps, s)
	}

	if runErr != nil || len(result.steps) == 0 || result.steps[len(result.steps)-1].Step != "done" {
		return result, fmt.Errorf("scenario %s failed: %v\nstdout:\n%s\nstderr:\n%s", name, runErr, stdout.String(), stderr.String())
	}
	return result, nil
}

// assertAuthenticated checks that s is an authenticated outcome with a token,
// an ack callback and the info of a session of subject.
func assertAuthenticated(t *testing.T, s step, subject string) {
	t.Helper()

	if s.Event != "authenticated" {
		t.Fatalf("step %s: event %q, want authenticated; line: %s", s.Step, s.Event, s.Raw)
	}
	if s.Token == "" {
		t.Errorf("step %s: authenticated carries an empty token", s.Step)
	}
	if !s.HasAck {
		t.Errorf("step %s: authenticated carries no ack callback", s.Step)
	}
	if s.Info == nil {
		t.Fatalf("step %s: authenticated carries no info object; line: %s", s.Step, s.Raw)
	}
	if s.Info.Subject != subject {
		t.Errorf("step %s: subject %q, want %q", s.Step, s.Info.Subject, subject)
	}
	if s.Info.SessionID == "" {
		t.Errorf("step %s: empty session_id", s.Step)
	}
	expiresAt, err := time.Parse(time.RFC3339, s.Info.ExpiresAt)
	if err != nil {
		t.Errorf("step %s: expires_at %q is not RFC 3339: %v", s.Step, s.Info.ExpiresAt, err)
	} else if !expiresAt.After(time.Now().Add(-time.Second)) {
		t.Errorf("step %s: expires_at %s is in the past", s.Step, s.Info.ExpiresAt)
	}
}

// assertUnauthorized checks that s is an unauthorized outcome with code, in
// the shape of socketio-jwt errors, followed by a disconnect from the server.
func assertUnauthorized(t *testing.T, s step, code string) {
	t.Helper()

	if s.Event != "unauthorized" {
		t.Fatalf("step %s: event %q, want unauthorized with %s; line: %s", s.Step, s.Event, code, s.Raw)
	}
	if s.Error == nil {
		t.Fatalf("step %s: unauthorized carries no error object; line: %s", s.Step, s.Raw)
	}
	if s.Error.Data.Code != code {
		t.Errorf("step %s: code %q, want %q", s.Step, s.Error.Data.Code, code)
	}
	if s.Error.Data.Type != "UnauthorizedError" {
		t.Errorf("step %s: type %q, want UnauthorizedError", s.Step, s.Error.Data.Type)
	}
	if s.Error.Message == "" || s.Error.Data.Message == "" {
		t.Errorf("step %s: empty message in %s", s.Step, s.Raw)
	}
	if s.Disconnect != "io server disconnect" {
		t.Errorf("step %s: disconnect reason %q, want io server disconnect", s.Step, s.Disconnect)
	}
}

// issueForeignTokens starts a second authority with its own data folder, and
// therefore its own key, and returns a login code and a session token from it.
func issueForeignTokens(t *testing.T) (code, sessionToken string) {
	t.Helper()

	addr := startAuthority(t)
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("connect to the second authority: %v", err)
	}
	defer conn.Close()
	client := sockauthv1.NewAuthorityServiceClient(conn)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	issued, err := client.IssueCode(ctx, &sockauthv1.IssueCodeRequest{Subject: "alice"})
	if err != nil {
		t.Fatalf("IssueCode on the second authority: %v", err)
	}
	code = issued.GetCode()

	// Exchange a second code, so that the first one stays unused.
	second, err := client.IssueCode(ctx, &sockauthv1.IssueCodeRequest{Subject: "alice"})
	if err != nil {
		t.Fatalf("IssueCode on the second authority: %v", err)
	}
	exchanged, err := client.Authenticate(ctx, &sockauthv1.AuthenticateRequest{Token: second.GetCode()})
	if err != nil {
		t.Fatalf("Authenticate on the second authority: %v", err)
	}
	return code, exchanged.GetToken()
}
