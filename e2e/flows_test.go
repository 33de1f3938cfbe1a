package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestMainFlow(t *testing.T) {
	requireE2E(t)
	chatURL := startStack(t, nil, nil)

	result := runScenario(t, "main-flow", chatURL)

	login := result.get(t, "login")
	if login.Status != 200 {
		t.Fatalf("POST /login status %d, want 200; body: %s", login.Status, login.Body)
	}

	auth := result.get(t, "authenticate")
	assertAuthenticated(t, auth, "alice")
	if auth.Code == "" {
		t.Fatal("the login returned an empty code")
	}
	if auth.Token == auth.Code {
		t.Error("authenticated returned the login code itself, want a new session token")
	}

	message := result.get(t, "message")
	if message.Message == nil {
		t.Fatalf("no chat message received; line: %s", message.Raw)
	}
	if message.Message.From != "alice" {
		t.Errorf("message from %q, want alice", message.Message.From)
	}
	if message.Message.Text != "hello from alice" {
		t.Errorf("message text %q, want %q", message.Message.Text, "hello from alice")
	}
	if _, err := time.Parse(time.RFC3339, message.Message.At); err != nil {
		t.Errorf("message at %q is not RFC 3339: %v", message.Message.At, err)
	}
	if !message.Connected {
		t.Error("socket disconnected after the chat message")
	}
}

func TestCodeReplayRejected(t *testing.T) {
	requireE2E(t)
	chatURL := startStack(t, nil, nil)

	result := runScenario(t, "code-replay", chatURL)

	assertAuthenticated(t, result.get(t, "exchange"), "alice")
	assertUnauthorized(t, result.get(t, "replay"), "revoked_token")
}

func TestAuthenticationTimeout(t *testing.T) {
	requireE2E(t)
	chatURL := startStack(t, nil, []string{"--auth-timeout", "1s"})

	result := runScenario(t, "auth-timeout", chatURL, "WAIT_MS=5000")

	timeout := result.get(t, "timeout")
	timeout.Event = "unauthorized"
	assertUnauthorized(t, timeout, "authentication_timeout")

	// The timer starts when the server accepts the socket, a little before the
	// client sees connect, so the lower bound allows for that.
	if after := time.Duration(timeout.UnauthorizedAfterMS) * time.Millisecond; after < 800*time.Millisecond || after > 3*time.Second {
		t.Errorf("unauthorized came %v after connect, want about 1s", after)
	}
}

func TestUnauthenticatedEventNotDelivered(t *testing.T) {
	requireE2E(t)
	chatURL := startStack(t, nil, nil)

	result := runScenario(t, "unauthenticated-event", chatURL)

	assertAuthenticated(t, result.get(t, "listener"), "alice")

	received := result.get(t, "received")
	var markers int
	for _, m := range received.Messages {
		if strings.Contains(m.Text, "before authentication") {
			t.Errorf("the authenticated listener received %q from an unauthenticated socket", m.Text)
		}
		if m.Text == "marker" {
			markers++
		}
	}
	if markers != 1 {
		t.Errorf("the listener received its marker %d times, want once; messages: %+v", markers, received.Messages)
	}
	if len(received.IntruderMessages) != 0 {
		t.Errorf("the unauthenticated socket received chat messages: %v", received.IntruderMessages)
	}
	if !received.ListenerConnected {
		t.Error("the listener was disconnected")
	}
}

func TestReconnectRotatesAndReplayRevokes(t *testing.T) {
	requireE2E(t)
	chatURL := startStack(t, nil, nil)

	result := runScenario(t, "reconnect", chatURL)

	first := result.get(t, "first")
	assertAuthenticated(t, first, "alice")
	reconnect := result.get(t, "reconnect")
	assertAuthenticated(t, reconnect, "alice")
	if reconnect.Token == first.Token {
		t.Error("reconnecting with the stored token returned the same token, want a new one")
	}
	if reconnect.Info.SessionID != first.Info.SessionID {
		t.Errorf("reconnect session %q, want the first session %q", reconnect.Info.SessionID, first.Info.SessionID)
	}

	assertUnauthorized(t, result.get(t, "replay-old"), "revoked_token")
	// The replay revoked the whole session, so its newest token is dead too.
	assertUnauthorized(t, result.get(t, "newest"), "revoked_token")
}

func TestLostAckRetryWithinLeeway(t *testing.T) {
	requireE2E(t)
	chatURL := startStack(t, nil, nil)

	result := runScenario(t, "lost-ack", chatURL)

	first := result.get(t, "first")
	assertAuthenticated(t, first, "alice")
	unacked := result.get(t, "unacked")
	assertAuthenticated(t, unacked, "alice")

	retry := result.get(t, "retry")
	assertAuthenticated(t, retry, "alice")
	if retry.Info.SessionID != first.Info.SessionID {
		t.Errorf("retry session %q, want the first session %q", retry.Info.SessionID, first.Info.SessionID)
	}
	if retry.Token == first.Token {
		t.Error("the retry returned the presented token, want its successor")
	}

	// The session survived the retry: its newest token still authenticates.
	check := result.get(t, "check")
	assertAuthenticated(t, check, "alice")
	if check.Info.SessionID != first.Info.SessionID {
		t.Errorf("check session %q, want the first session %q", check.Info.SessionID, first.Info.SessionID)
	}
	if !check.RetryConnected {
		t.Error("the retrying socket was disconnected")
	}
}

func TestRefreshOnLiveSocket(t *testing.T) {
	requireE2E(t)
	chatURL := startStack(t, nil, nil)

	result := runScenario(t, "refresh", chatURL)

	first := result.get(t, "first")
	assertAuthenticated(t, first, "alice")
	refresh := result.get(t, "refresh")
	assertAuthenticated(t, refresh, "alice")
	if refresh.Token == first.Token {
		t.Error("the refresh returned the presented token, want a new one")
	}
	if refresh.Info.SessionID != first.Info.SessionID {
		t.Errorf("refresh session %q, want the first session %q", refresh.Info.SessionID, first.Info.SessionID)
	}

	after := result.get(t, "after")
	if !after.Connected {
		t.Error("the socket was disconnected after the refresh")
	}
	if len(after.Disconnects) != 0 {
		t.Errorf("the socket saw disconnects %q", after.Disconnects)
	}
	if after.Message == nil || after.Message.Text != "after refresh" {
		t.Errorf("chat message after the refresh = %+v, want text %q", after.Message, "after refresh")
	}
}

func TestExpiryWithoutRefresh(t *testing.T) {
	requireE2E(t)
	chatURL := startStack(t, []string{"--token-ttl", "2s", "--code-ttl", "2s"}, nil)

	result := runScenario(t, "expiry", chatURL, "WAIT_MS=10000")

	assertAuthenticated(t, result.get(t, "authenticate"), "alice")

	expired := result.get(t, "expired")
	expired.Event = "unauthorized"
	assertUnauthorized(t, expired, "token_expired")

	// The token expires at most 2s after it was issued. The bound leaves room
	// for a slow machine.
	if after := time.Duration(expired.UnauthorizedAfterMS) * time.Millisecond; after > 4*time.Second {
		t.Errorf("unauthorized came %v after authentication, want at most about 2s", after)
	}
}

func TestLogoutRevokesToken(t *testing.T) {
	requireE2E(t)
	chatURL := startStack(t, nil, nil)

	result := runScenario(t, "logout", chatURL)

	assertAuthenticated(t, result.get(t, "authenticate"), "alice")

	logout := result.get(t, "logout")
	if logout.LoggedOut == nil {
		t.Fatalf("no logged_out event; line: %s", logout.Raw)
	}
	if logout.LoggedOut.Reason != "logout" {
		t.Errorf("logged_out reason %q, want logout", logout.LoggedOut.Reason)
	}
	if logout.Disconnect != "io server disconnect" {
		t.Errorf("disconnect reason after logout %q, want io server disconnect", logout.Disconnect)
	}

	assertUnauthorized(t, result.get(t, "after"), "revoked_token")
}

func TestMalformedAuthenticateRejected(t *testing.T) {
	requireE2E(t)
	chatURL := startStack(t, nil, nil)
	foreignCode, foreignToken := issueForeignTokens(t)

	result := runScenario(t, "malformed", chatURL, "FOREIGN_CODE="+foreignCode, "FOREIGN_TOKEN="+foreignToken)

	cases := result.all("case")
	if len(cases) != 13 {
		t.Errorf("scenario ran %d cases, want 13", len(cases))
	}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			// Payloads over the adapter's 8 KiB limit are rejected before
			// they are decoded.
			want := "invalid_token"
			if strings.HasPrefix(c.Name, "10 KB") {
				want = "payload_too_large"
			}
			assertUnauthorized(t, c, want)
		})
	}

	// The server kept serving: a good login afterwards authenticates.
	assertAuthenticated(t, result.get(t, "good"), "alice")
}

func TestChatDemoStopsOnSIGTERM(t *testing.T) {
	requireE2E(t)
	demo, chatURL := startChatDemoProcess(t, "--authority", startAuthority(t))

	// Serve one whole session before stopping.
	runScenario(t, "main-flow", chatURL)

	if err := demo.stop(); err != nil {
		t.Fatalf("chat-demo exit after SIGTERM: %v, want status 0\noutput:\n%s", err, demo.output)
	}
	for _, want := range []string{"chat demo stopping", "chat demo stopped"} {
		if !strings.Contains(demo.output.String(), want) {
			t.Errorf("chat-demo output lacks %q:\n%s", want, demo.output)
		}
	}
}

func TestChatDemoRestartKeepsClientsSignedIn(t *testing.T) {
	requireE2E(t)
	authority := startAuthority(t)
	demo, chatURL := startChatDemoProcess(t, "--authority", authority, "--eio3-polling")

	clients := []struct{ name, pkg, transport string }{
		{name: "2.5.0/websocket", pkg: "socket.io-client", transport: "websocket"},
		{name: "2.5.0/polling", pkg: "socket.io-client", transport: "polling"},
		{name: "4.8.4/websocket", pkg: "socket.io-client-v4", transport: "websocket"},
		{name: "4.8.4/polling", pkg: "socket.io-client-v4", transport: "polling"},
	}
	type outcome struct {
		result scenarioResult
		err    error
	}
	dir := t.TempDir()
	outcomes := make([]chan outcome, len(clients))
	readyFiles := make([]string, len(clients))
	for i, c := range clients {
		outcomes[i] = make(chan outcome, 1)
		readyFiles[i] = filepath.Join(dir, fmt.Sprintf("ready-%d", i))
		go func() {
			result, err := execScenario("shutdown", chatURL,
				"SOCKETIO_CLIENT="+c.pkg, "SOCKET_TRANSPORTS="+c.transport, "READY_FILE="+readyFiles[i])
			outcomes[i] <- outcome{result: result, err: err}
		}()
	}
	deadline := time.Now().Add(scenarioTimeout)
	for _, file := range readyFiles {
		for {
			if _, err := os.Stat(file); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("client did not write %s within %v", file, scenarioTimeout)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	if err := demo.stop(); err != nil {
		t.Fatalf("chat-demo exit after SIGTERM: %v, want status 0\noutput:\n%s", err, demo.output)
	}
	// A new process on the same address takes the reconnecting clients, as
	// in a restart.
	address := strings.TrimPrefix(chatURL, "http://")
	restarted := startProcess(t, "chat-demo", chatDemoBin, "--listen", address, "--authority", authority, "--eio3-polling")
	if !waitReady(t, restarted, func(ctx context.Context) error { return checkPage(ctx, chatURL) }) {
		t.Fatalf("restarted chat-demo exited before serving: %v\noutput:\n%s", restarted.waitErr, restarted.output)
	}

	for i, c := range clients {
		got := <-outcomes[i]
		if got.err != nil {
			t.Errorf("%s: %v", c.name, got.err)
			continue
		}
		first := got.result.get(t, "authenticate")
		assertAuthenticated(t, first, "alice")
		again := got.result.get(t, "reauthenticate")
		assertAuthenticated(t, again, "alice")
		if first.Info != nil && again.Info != nil && again.Info.SessionID != first.Info.SessionID {
			t.Errorf("%s: authenticated after the restart in session %s, want the session %s from before it",
				c.name, again.Info.SessionID, first.Info.SessionID)
		}
		if message := got.result.get(t, "message"); message.Message == nil || message.Message.From != "alice" {
			t.Errorf("%s: chat message after the restart = %s, want one from alice", c.name, message.Raw)
		}
		stopped := got.result.get(t, "stopped")
		// socket.io-client 2.x reports a closed long-poll as a transport
		// error, and both reconnect after either reason.
		if len(stopped.Disconnects) != 1 || (stopped.Disconnects[0] != "transport close" && stopped.Disconnects[0] != "transport error") {
			t.Errorf("%s: disconnect reasons %q, want one transport close or transport error\nstep: %s", c.name, stopped.Disconnects, stopped.Raw)
		}
		if stopped.ReconnectAttempts == 0 {
			t.Errorf("%s: no reconnect attempt within 1 s of the disconnect, want the client to reconnect\nstep: %s", c.name, stopped.Raw)
		}
	}
}

func TestChatDemoInProcessAuthority(t *testing.T) {
	requireE2E(t)
	demo, chatURL := startChatDemoProcess(t, "--data", t.TempDir())

	result := runScenario(t, "main-flow", chatURL)

	assertAuthenticated(t, result.get(t, "authenticate"), "alice")
	message := result.get(t, "message")
	if message.Message == nil || message.Message.Text != "hello from alice" {
		t.Errorf("chat message = %+v, want text %q", message.Message, "hello from alice")
	}

	if err := demo.stop(); err != nil {
		t.Fatalf("chat-demo exit after SIGTERM: %v, want status 0\noutput:\n%s", err, demo.output)
	}
	if !strings.Contains(demo.output.String(), "authority stopped") {
		t.Errorf("chat-demo output lacks the in-process authority's stop:\n%s", demo.output)
	}
}

func TestAuthorityIgnoresSIGHUP(t *testing.T) {
	requireE2E(t)
	addr, authority := startAuthorityIn(t, t.TempDir())

	if err := authority.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatalf("send SIGHUP: %v", err)
	}
	const logged = "SIGHUP ignored"
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(authority.output.String(), logged) {
		if authority.hasExited() {
			t.Fatalf("sockauth serve exited after SIGHUP: %v\noutput:\n%s", authority.waitErr, authority.output)
		}
		if time.Now().After(deadline) {
			t.Fatalf("sockauth serve logged no %q within 5 s of SIGHUP:\n%s", logged, authority.output)
		}
		time.Sleep(20 * time.Millisecond)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := checkHealth(ctx, addr); err != nil {
		t.Errorf("health check after SIGHUP: %v", err)
	}
	if err := authority.stop(); err != nil {
		t.Errorf("sockauth serve exit after SIGTERM: %v, want status 0", err)
	}
}
