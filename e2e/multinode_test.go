package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	sockauthv1 "github.com/sockauth/sockauth/gen/sockauth/v1"
)

// This file runs several authority replicas on one Redis, each with a chat
// demo in front, as a deployment on many machines would, all on loopback.

// testRedisURL returns the Redis server that the tests share:
// SOCKAUTH_TEST_REDIS_URL, or the local one that make test starts.
func testRedisURL() string {
	if url := os.Getenv("SOCKAUTH_TEST_REDIS_URL"); url != "" {
		return url
	}
	return "redis://127.0.0.1:6379/0"
}

// requireRedis fails the test when the Redis server at url does not reply
// to PING.
func requireRedis(t *testing.T, url string) {
	t.Helper()
	if err := pingRedis(context.Background(), url); err != nil {
		t.Fatalf("Redis at %s is required for the multi-node tests (make test starts it): %v", url, err)
	}
}

func pingRedis(ctx context.Context, url string) error {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return err
	}
	client := redis.NewClient(opts)
	defer client.Close()
	return client.Ping(ctx).Err()
}

// uniqueUser returns a demo user whose name no other test uses, so that a
// revocation of its subject on the shared Redis touches no other test.
func uniqueUser(prefix string) (name, password string) {
	name = prefix + "-" + strings.ToLower(rand.Text()[:10])
	return name, name + "-password"
}

// cluster is two authority replicas that share one Redis and one key file,
// with chat demo A in front of replica 0 and chat demo B in front of
// replica 1.
type cluster struct {
	replicas []string // gRPC addresses
	demos    []string // base URLs
	// processes are the replicas, then the demos, for the panic check.
	processes []*process
}

// startCluster starts the cluster on the Redis at redisURL with the demo
// users given as NAME:PASSWORD.
func startCluster(t *testing.T, redisURL string, users ...string) *cluster {
	t.Helper()

	// With --store redis the data folder holds only the key file, so both
	// replicas start on one folder and sign with one key. The first one
	// creates the key file before the second starts.
	dataDir := t.TempDir()
	c := &cluster{}
	for range 2 {
		addr, p := startAuthorityIn(t, dataDir, "--store", "redis", "--redis-url", redisURL)
		c.replicas = append(c.replicas, addr)
		c.processes = append(c.processes, p)
	}

	for _, replica := range c.replicas {
		args := []string{"--authority", replica}
		for _, user := range users {
			args = append(args, "--user", user)
		}
		p, baseURL := startChatDemoProcess(t, args...)
		c.demos = append(c.demos, baseURL)
		c.processes = append(c.processes, p)
	}
	return c
}

// env returns the scenario environment of the cluster's demos and a user.
func (c *cluster) env(user, password string) []string {
	return []string{"CHAT_URL=" + c.demos[0], "CHAT_URL_B=" + c.demos[1], "CHAT_USERNAME=" + user, "CHAT_PASSWORD=" + password}
}

// assertNoPanic checks that every process of the cluster is still running
// and printed no panic.
func (c *cluster) assertNoPanic(t *testing.T) {
	t.Helper()
	for _, p := range c.processes {
		if p.hasExited() {
			t.Errorf("%s exited: %v", p.name, p.waitErr)
		}
		if strings.Contains(p.output.String(), "panic:") {
			t.Errorf("%s panicked:\n%s", p.name, p.output)
		}
	}
}

// authorityClient returns a client of the authority at addr, closed when
// the test ends.
func authorityClient(t *testing.T, addr string) (sockauthv1.AuthorityServiceClient, sockauthv1.AdminServiceClient) {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("connect to the authority at %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return sockauthv1.NewAuthorityServiceClient(conn), sockauthv1.NewAdminServiceClient(conn)
}

// decodeStep decodes the raw line of s into v, for fields that step lacks.
func decodeStep(t *testing.T, s step, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s.Raw), v); err != nil {
		t.Fatalf("step %s: decoding %s: %v", s.Step, s.Raw, err)
	}
}

// liveScenario is a scenario script that runs while the test acts. The test
// reads its steps as they are written and writes a line to its standard
// input when the script may go on.
type liveScenario struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *syncBuffer
	// steps receives every step line and is closed at the end of stdout.
	steps chan step
	// lines contains the lines read so far, for failure messages.
	mu    sync.Mutex
	lines []string
}

// startLiveScenario starts e2e/node/scenarios/NAME.js with env added to the
// environment. The script is killed when the test ends.
func startLiveScenario(t *testing.T, name string, env ...string) *liveScenario {
	t.Helper()

	ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
	cmd := exec.CommandContext(ctx, "node", filepath.Join(nodeDir, "scenarios", name+".js"))
	cmd.Dir = nodeDir
	cmd.Env = append(os.Environ(), env...)
	cmd.Env = append(cmd.Env, fmt.Sprintf("SCENARIO_TIMEOUT_MS=%d", scenarioTimeout.Milliseconds()))
	s := &liveScenario{t: t, name: name, cmd: cmd, stderr: &syncBuffer{}, steps: make(chan step, 100)}
	cmd.Stderr = s.stderr

	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatalf("scenario %s: %v", name, err)
	}
	s.stdin = stdin
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("scenario %s: %v", name, err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start scenario %s: %v", name, err)
	}
	go s.read(stdout)

	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("scenario %s output:\n%s\nstderr:\n%s", name, strings.Join(s.output(), "\n"), s.stderr)
		}
	})
	return s
}

func (s *liveScenario) read(stdout io.Reader) {
	defer close(s.steps)
	scanner := bufio.NewScanner(stdout)
	scanner.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for scanner.Scan() {
		line := scanner.Text()
		s.mu.Lock()
		s.lines = append(s.lines, line)
		s.mu.Unlock()

		var parsed step
		if err := json.Unmarshal([]byte(line), &parsed); err != nil {
			parsed = step{Step: "error", Raw: "not a JSON step: " + line}
		} else {
			parsed.Raw = line
		}
		s.steps <- parsed
	}
}

func (s *liveScenario) output() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.lines...)
}

// expect returns the next step, which must be named name. It fails the test
// on an error step, another step, the end of the script or a timeout.
func (s *liveScenario) expect(name string) step {
	s.t.Helper()
	select {
	case got, ok := <-s.steps:
		if !ok {
			s.t.Fatalf("scenario %s ended before step %s\nstderr:\n%s", s.name, name, s.stderr)
		}
		if got.Step != name {
			s.t.Fatalf("scenario %s: got step %s, expected %s; line: %s", s.name, got.Step, name, got.Raw)
		}
		return got
	case <-time.After(scenarioTimeout):
		s.t.Fatalf("scenario %s: no step %s within %v", s.name, name, scenarioTimeout)
		return step{}
	}
}

// resume writes the line that lets the script start its next phase.
func (s *liveScenario) resume() {
	s.t.Helper()
	if _, err := io.WriteString(s.stdin, "go\n"); err != nil {
		s.t.Fatalf("scenario %s: writing to its standard input: %v", s.name, err)
	}
}

// finish waits for the done step and a successful exit.
func (s *liveScenario) finish() {
	s.t.Helper()
	s.expect("done")
	if err := s.cmd.Wait(); err != nil {
		s.t.Fatalf("scenario %s exited with %v", s.name, err)
	}
}

func TestMultiNodeReconnectRotatesOnOtherServer(t *testing.T) {
	requireE2E(t)
	redisURL := testRedisURL()
	requireRedis(t, redisURL)
	user, password := uniqueUser("reconnect")
	c := startCluster(t, redisURL, user+":"+password)

	result := runScenario(t, "multinode-reconnect", c.demos[0], c.env(user, password)...)

	first := result.get(t, "first")
	moved := result.get(t, "moved")
	back := result.get(t, "back")
	assertAuthenticated(t, first, user)
	assertAuthenticated(t, moved, user)
	assertAuthenticated(t, back, user)
	if moved.Token == first.Token {
		t.Error("server B returned the presented token, expected its successor")
	}
	if moved.Info.SessionID != first.Info.SessionID || back.Info.SessionID != first.Info.SessionID {
		t.Errorf("sessions %s, %s and %s, expected one session throughout",
			first.Info.SessionID, moved.Info.SessionID, back.Info.SessionID)
	}
	assertUnauthorized(t, result.get(t, "replay"), "revoked_token")
	c.assertNoPanic(t)
}

func TestMultiNodeLogoutReachesOtherServer(t *testing.T) {
	requireE2E(t)
	redisURL := testRedisURL()
	requireRedis(t, redisURL)
	user, password := uniqueUser("logout")
	c := startCluster(t, redisURL, user+":"+password)

	result := runScenario(t, "multinode-logout", c.demos[0], c.env(user, password)...)

	onA := result.get(t, "on-a")
	onB := result.get(t, "on-b")
	assertAuthenticated(t, onA, user)
	assertAuthenticated(t, onB, user)
	if onB.Info.SessionID != onA.Info.SessionID {
		t.Fatalf("socket on B joined session %s, expected %s", onB.Info.SessionID, onA.Info.SessionID)
	}

	afterRotation := result.get(t, "a-after-rotation")
	if !afterRotation.Connected || len(afterRotation.Disconnects) != 0 {
		t.Errorf("socket on A after B rotated its token: connected %v, unauthorized %v; expected connected", afterRotation.Connected, afterRotation.Disconnects)
	}

	for _, name := range []string{"logout-a", "logout-b"} {
		s := result.get(t, name)
		if s.LoggedOut == nil || s.LoggedOut.Reason != "logout" {
			t.Errorf("step %s: logged_out %v, expected reason logout; line: %s", name, s.LoggedOut, s.Raw)
		}
		if s.Disconnect != "io server disconnect" {
			t.Errorf("step %s: disconnect reason %q, expected io server disconnect", name, s.Disconnect)
		}
	}
	var timing struct {
		AfterMS int64 `json:"after_ms"`
	}
	decodeStep(t, result.get(t, "logout-b"), &timing)
	t.Logf("logged_out reached server B %d ms after the logout on A", timing.AfterMS)
	c.assertNoPanic(t)
}

func TestMultiNodeRevokeSubjectEverywhere(t *testing.T) {
	requireE2E(t)
	redisURL := testRedisURL()
	requireRedis(t, redisURL)
	user, password := uniqueUser("revoke")
	other, otherPassword := uniqueUser("bystander")
	c := startCluster(t, redisURL, user+":"+password, other+":"+otherPassword)

	env := append(c.env(user, password), "OTHER_USERNAME="+other, "OTHER_PASSWORD="+otherPassword)
	scenario := startLiveScenario(t, "multinode-revoke", env...)
	scenario.expect("ready")

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	revoke := exec.CommandContext(ctx, sockauthBin, "revoke", "--subject", user, "--authority", c.replicas[0])
	revoke.Env = environWithout("SOCKAUTH_")
	out, err := revoke.CombinedOutput()
	if err != nil {
		t.Fatalf("sockauth revoke --subject %s: %v\n%s", user, err, out)
	}
	if want := fmt.Sprintf("revoked 2 sessions of %q", user); !strings.Contains(string(out), want) {
		t.Errorf("sockauth revoke printed %q, expected %q", out, want)
	}

	for range 3 {
		revoked := scenario.expect("revoked")
		if revoked.Event != "unauthorized" {
			t.Errorf("socket %s got %s, expected unauthorized; line: %s", revoked.Name, revoked.Event, revoked.Raw)
			continue
		}
		if revoked.Error == nil || revoked.Error.Data.Code != "revoked_token" {
			t.Errorf("socket %s: unauthorized %+v, expected code revoked_token", revoked.Name, revoked.Error)
		}
		if revoked.Disconnect != "io server disconnect" {
			t.Errorf("socket %s: disconnect reason %q, expected io server disconnect", revoked.Name, revoked.Disconnect)
		}
	}
	if bystander := scenario.expect("other"); !bystander.Connected {
		t.Errorf("the socket of another user was disconnected; line: %s", bystander.Raw)
	}
	scenario.finish()
	c.assertNoPanic(t)
}

func TestMultiNodeConcurrentRotationOneSuccessor(t *testing.T) {
	requireE2E(t)
	redisURL := testRedisURL()
	requireRedis(t, redisURL)
	c := startCluster(t, redisURL)
	var clients []sockauthv1.AuthorityServiceClient
	for _, replica := range c.replicas {
		client, _ := authorityClient(t, replica)
		clients = append(clients, client)
	}
	_, admin := authorityClient(t, c.replicas[0])
	subject, _ := uniqueUser("rotation")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	const (
		rounds        = 10
		presentations = 16
	)
	for round := range rounds {
		code, err := clients[0].IssueCode(ctx, &sockauthv1.IssueCodeRequest{Subject: subject})
		if err != nil {
			t.Fatalf("IssueCode: %v", err)
		}
		first, err := clients[round%2].Authenticate(ctx, &sockauthv1.AuthenticateRequest{Token: code.GetCode()})
		if err != nil {
			t.Fatalf("Authenticate with the code: %v", err)
		}

		// Every presentation of the first session token, half of them on
		// each replica, must get the same successor.
		type outcome struct {
			tokenID string
			err     error
		}
		outcomes := make([]outcome, presentations)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range presentations {
			wg.Go(func() {
				<-start
				resp, err := clients[i%2].Authenticate(ctx, &sockauthv1.AuthenticateRequest{Token: first.GetToken()})
				outcomes[i] = outcome{tokenID: resp.GetInfo().GetTokenId(), err: err}
			})
		}
		close(start)
		wg.Wait()

		successors := make(map[string]int)
		for i, o := range outcomes {
			if o.err != nil {
				t.Errorf("round %d: presentation %d on replica %d failed: %v", round, i, i%2, o.err)
				continue
			}
			successors[o.tokenID]++
		}
		if len(successors) != 1 {
			t.Fatalf("round %d: %d presentations yielded the successors %v, expected exactly one", round, presentations, successors)
		}
		for tokenID := range successors {
			if tokenID == first.GetInfo().GetTokenId() {
				t.Fatalf("round %d: the successor has the presented token's id %s", round, tokenID)
			}
		}

		listed, err := admin.ListSessions(ctx, &sockauthv1.ListSessionsRequest{Subject: subject})
		if err != nil {
			t.Fatalf("ListSessions: %v", err)
		}
		for _, session := range listed.GetSessions() {
			if session.GetSessionId() == first.GetInfo().GetSessionId() && session.GetGeneration() != 2 {
				t.Errorf("round %d: session generation %d after one rotation of the first token, expected 2", round, session.GetGeneration())
			}
		}
	}
	c.assertNoPanic(t)
}

// redisServer is a redis-server process of one test, on its own loopback
// port, with an append-only file that is synced on every write.
type redisServer struct {
	t    *testing.T
	port string
	dir  string
	proc *process
}

// startRedisServer starts redis-server on a free loopback port, or skips the
// test when redis-server is not installed.
func startRedisServer(t *testing.T) *redisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server is not installed or not in PATH")
	}
	r := &redisServer{t: t, dir: t.TempDir()}
	for attempt := 1; ; attempt++ {
		addr := freeLoopbackAddr(t)
		r.port = addr[strings.LastIndex(addr, ":")+1:]
		if r.start() {
			return r
		}
		if attempt == startAttempts {
			t.Fatalf("redis-server exited before serving: %v\noutput:\n%s", r.proc.waitErr, r.proc.output)
		}
	}
}

func (r *redisServer) url() string { return "redis://127.0.0.1:" + r.port + "/0" }

// start runs redis-server on r.port and r.dir and reports whether it serves.
func (r *redisServer) start() bool {
	r.t.Helper()
	r.proc = startProcess(r.t, "redis-server", "redis-server",
		"--port", r.port, "--bind", "127.0.0.1", "--dir", r.dir,
		"--save", "", "--appendonly", "yes", "--appendfsync", "always")
	return waitReady(r.t, r.proc, func(ctx context.Context) error { return pingRedis(ctx, r.url()) })
}

// kill stops redis-server with SIGKILL, as a crash would.
func (r *redisServer) kill() {
	r.t.Helper()
	if err := r.proc.cmd.Process.Kill(); err != nil {
		r.t.Fatalf("kill redis-server: %v", err)
	}
	<-r.proc.exited
}

// restart starts redis-server again on the same port and folder, so that it
// loads the append-only file.
func (r *redisServer) restart() {
	r.t.Helper()
	for attempt := 1; ; attempt++ {
		if r.start() {
			return
		}
		if attempt == startAttempts {
			r.t.Fatalf("redis-server did not start again on port %s: %v\noutput:\n%s", r.port, r.proc.waitErr, r.proc.output)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestMultiNodeRedisOutage(t *testing.T) {
	requireE2E(t)
	server := startRedisServer(t)
	user, password := uniqueUser("outage")
	c := startCluster(t, server.url(), user+":"+password)
	client0, _ := authorityClient(t, c.replicas[0])
	client1, _ := authorityClient(t, c.replicas[1])
	scenario := startLiveScenario(t, "multinode-redis-outage", c.env(user, password)...)
	ready := scenario.expect("ready")
	assertAuthenticated(t, ready, user)

	server.kill()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := client0.IssueCode(ctx, &sockauthv1.IssueCodeRequest{Subject: user})
	if status.Code(err) != codes.Unavailable {
		t.Errorf("IssueCode on replica 0 without Redis = %v, expected Unavailable", err)
	}
	_, err = client1.Verify(ctx, &sockauthv1.VerifyRequest{Token: ready.Token})
	if status.Code(err) != codes.Unavailable {
		t.Errorf("Verify on replica 1 without Redis = %v, expected Unavailable", err)
	}

	scenario.resume()
	if login := scenario.expect("login-down"); login.Status != 502 {
		t.Errorf("POST /login without Redis: status %d, expected 502; body: %s", login.Status, login.Body)
	}
	assertUnauthorized(t, scenario.expect("authenticate-down"), "authority_unavailable")
	if kept := scenario.expect("kept-down"); !kept.Connected || len(kept.Disconnects) != 0 {
		t.Errorf("socket on A during the outage: connected %v, unauthorized %v; expected connected", kept.Connected, kept.Disconnects)
	}

	server.restart()
	scenario.resume()

	if login := scenario.expect("login-back"); login.Status != 200 {
		t.Fatalf("POST /login after Redis came back: status %d, expected 200; body: %s", login.Status, login.Body)
	}
	assertAuthenticated(t, scenario.expect("fresh"), user)
	stored := scenario.expect("stored")
	assertAuthenticated(t, stored, user)
	if stored.Info.SessionID != ready.Info.SessionID {
		t.Errorf("stored token authenticated into session %s, expected %s", stored.Info.SessionID, ready.Info.SessionID)
	}
	if kept := scenario.expect("kept-back"); !kept.Connected || len(kept.Disconnects) != 0 {
		t.Errorf("socket on A after the outage: connected %v, unauthorized %v; expected connected", kept.Connected, kept.Disconnects)
	}
	scenario.finish()

	if _, err := client1.Verify(ctx, &sockauthv1.VerifyRequest{Token: stored.Token}); err != nil {
		t.Errorf("Verify on replica 1 after Redis came back: %v", err)
	}
	c.assertNoPanic(t)
}
