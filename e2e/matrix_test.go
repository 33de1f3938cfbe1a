package e2e

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"
)

// The client matrix runs each case with each socket.io-client version over
// each transport against one chat demo, which serves socket.io 2.x clients
// with go-socket.io and 3.x and 4.x clients with zishang520 socket.io on the
// same port.

const (
	// matrixConcurrency bounds how many scenario scripts run at once. Each
	// is a Node process that mostly waits on loopback sockets.
	matrixConcurrency = 4
)

// matrixClient is one socket.io-client version, installed in e2e/node under
// module.
type matrixClient struct {
	version string
	module  string
	// handshake is whether the client can send a token with the connection
	// handshake (socket.io-client 3.x and later).
	handshake bool
	// upgrades is whether the server offers the client the upgrade from
	// long-polling to WebSocket. The chat demo does not offer it to 2.x
	// clients, because go-socket.io v1.7.0 rejects packets posted during the
	// upgrade.
	upgrades bool
}

var matrixClients = []matrixClient{
	{version: "2.5.0", module: "socket.io-client"},
	{version: "3.1.3", module: "socket.io-client-v3", handshake: true, upgrades: true},
	{version: "4.8.4", module: "socket.io-client-v4", handshake: true, upgrades: true},
}

// matrixTransport is a transports option of the client.
type matrixTransport struct {
	name string
	// transports is the value of the client's transports option, comma
	// separated.
	transports string
	// final is the transport the client must use once connected.
	final string
}

var matrixTransports = []matrixTransport{
	{name: "websocket", transports: "websocket", final: "websocket"},
	{name: "polling", transports: "polling", final: "polling"},
	{name: "upgrade", transports: "polling,websocket", final: "websocket"},
}

// matrixCase is one scenario of the matrix and the checks of its output.
type matrixCase struct {
	name     string
	scenario string
	// handshakeOnly limits the case to clients that support handshake
	// authentication.
	handshakeOnly bool
	check         func(t *testing.T, result scenarioResult, transport matrixTransport)
}

var matrixCases = []matrixCase{
	{name: "main", scenario: "matrix-main", check: checkMatrixMain},
	{name: "bad-token", scenario: "matrix-bad-token", check: checkMatrixBadToken},
	{name: "refresh", scenario: "matrix-refresh", check: checkMatrixRefresh},
	{name: "logout", scenario: "matrix-logout", check: checkMatrixLogout},
	{name: "handshake", scenario: "matrix-handshake", handshakeOnly: true, check: checkMatrixHandshake},
}

// matrixCell is one run of the matrix and its outcome.
type matrixCell struct {
	client    matrixClient
	transport matrixTransport
	testCase  matrixCase

	result scenarioResult
	err    error
}

func (c *matrixCell) name() string {
	return c.client.version + "/" + c.transport.name + "/" + c.testCase.name
}

// matrixStep holds the fields of the matrix scenarios' output that the
// shared step type does not have.
type matrixStep struct {
	// Sent is the text of the chat message that the scenario sent.
	Sent          string `json:"sent"`
	Transport     string `json:"transport"`
	Reconnected   bool   `json:"reconnected"`
	Retried       bool   `json:"retried"`
	Authenticated bool   `json:"authenticated"`
}

func decodeMatrixStep(t *testing.T, s step) matrixStep {
	t.Helper()
	var extra matrixStep
	if err := json.Unmarshal([]byte(s.Raw), &extra); err != nil {
		t.Fatalf("step %s is not JSON: %v; line: %s", s.Step, err, s.Raw)
	}
	return extra
}

// TestClientMatrix runs every cell of the matrix against one authority and
// one chat demo, matrixConcurrency scripts at a time, and then checks each
// cell in its own subtest.
func TestClientMatrix(t *testing.T) {
	requireE2E(t)
	chatURL := startStack(t, nil, []string{"--eio3-polling"})

	var cells []*matrixCell
	for _, client := range matrixClients {
		for _, transport := range matrixTransports {
			for _, testCase := range matrixCases {
				if testCase.handshakeOnly && !client.handshake {
					continue
				}
				if transport.name == "upgrade" && !client.upgrades {
					transport.final = "polling"
				}
				cells = append(cells, &matrixCell{client: client, transport: transport, testCase: testCase})
			}
		}
	}

	cross := &matrixCell{}
	runMatrixCells(cells, chatURL, func() {
		cross.result, cross.err = execScenario("matrix-cross", chatURL)
	})

	for _, cell := range cells {
		t.Run(cell.name(), func(t *testing.T) {
			if cell.err != nil {
				t.Fatal(cell.err)
			}
			cell.testCase.check(t, cell.result, cell.transport)
		})
	}

	t.Run("cross-generation chat", func(t *testing.T) {
		if cross.err != nil {
			t.Fatal(cross.err)
		}
		checkCrossGenerationChat(t, cross.result)
	})
}

// runMatrixCells runs the scenario of every cell, and the extra functions,
// with at most matrixConcurrency at once, and returns when all are done.
func runMatrixCells(cells []*matrixCell, chatURL string, extra ...func()) {
	slots := make(chan struct{}, matrixConcurrency)
	var wg sync.WaitGroup

	start := func(run func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			slots <- struct{}{}
			defer func() { <-slots }()
			run()
		}()
	}

	for _, cell := range cells {
		start(func() {
			cell.result, cell.err = execScenario(cell.testCase.scenario, chatURL,
				"SOCKETIO_CLIENT="+cell.client.module,
				"SOCKET_TRANSPORTS="+cell.transport.transports)
		})
	}
	for _, run := range extra {
		start(run)
	}
	wg.Wait()
}

func checkMatrixMain(t *testing.T, result scenarioResult, transport matrixTransport) {
	auth := result.get(t, "authenticate")
	assertAuthenticated(t, auth, "alice")
	if auth.Token == auth.Code {
		t.Error("authenticated returned the login code itself, want a new session token")
	}

	message := result.get(t, "message")
	extra := decodeMatrixStep(t, message)
	if message.Message == nil || message.Message.Text != extra.Sent || message.Message.From != "alice" {
		t.Errorf("chat message = %+v, want text %q from alice", message.Message, extra.Sent)
	}
	if !message.Connected {
		t.Error("socket disconnected after the chat message")
	}
	if len(message.Disconnects) != 0 {
		t.Errorf("the socket saw disconnects %q", message.Disconnects)
	}
	if got := extra.Transport; got != transport.final {
		t.Errorf("transport in use %q, want %q", got, transport.final)
	}
}

func checkMatrixBadToken(t *testing.T, result scenarioResult, _ matrixTransport) {
	forged := result.get(t, "forged")
	assertUnauthorized(t, forged, "invalid_token")
	if decodeMatrixStep(t, forged).Reconnected {
		t.Error("the client reconnected by itself after the server disconnected it")
	}
}

func checkMatrixRefresh(t *testing.T, result scenarioResult, _ matrixTransport) {
	first := result.get(t, "first")
	assertAuthenticated(t, first, "alice")
	refresh := result.get(t, "refresh")
	assertAuthenticated(t, refresh, "alice")
	if refresh.Token == first.Token {
		t.Error("the refresh returned the presented token, want a new one")
	}
	if refresh.Info != nil && first.Info != nil && refresh.Info.SessionID != first.Info.SessionID {
		t.Errorf("refresh session %q, want the first session %q", refresh.Info.SessionID, first.Info.SessionID)
	}

	after := result.get(t, "after")
	if !after.Connected {
		t.Error("the socket was disconnected after the refresh")
	}
	if len(after.Disconnects) != 0 {
		t.Errorf("the socket saw disconnects %q", after.Disconnects)
	}
	if sent := decodeMatrixStep(t, after).Sent; after.Message == nil || after.Message.Text != sent {
		t.Errorf("chat message after the refresh = %+v, want text %q", after.Message, sent)
	}
}

func checkMatrixLogout(t *testing.T, result scenarioResult, _ matrixTransport) {
	assertAuthenticated(t, result.get(t, "authenticate"), "alice")

	logout := result.get(t, "logout")
	if logout.LoggedOut == nil || logout.LoggedOut.Reason != "logout" {
		t.Errorf("logged_out = %+v, want reason logout; line: %s", logout.LoggedOut, logout.Raw)
	}
	if logout.Disconnect != "io server disconnect" {
		t.Errorf("disconnect reason after logout %q, want io server disconnect", logout.Disconnect)
	}
	if decodeMatrixStep(t, logout).Reconnected {
		t.Error("the client reconnected by itself after the logout")
	}

	assertUnauthorized(t, result.get(t, "after"), "revoked_token")
}

func checkMatrixHandshake(t *testing.T, result scenarioResult, _ matrixTransport) {
	handshakes := result.all("handshake")
	reconnects := result.all("reconnect")
	if len(handshakes) != 3 || len(reconnects) != 3 {
		t.Fatalf("got %d handshake and %d reconnect steps, want 3 of each (auth, query, header)", len(handshakes), len(reconnects))
	}

	for i, first := range handshakes {
		again := reconnects[i]
		t.Run(first.Name, func(t *testing.T) {
			assertAuthenticated(t, first, "alice")
			if first.Token == first.Code {
				t.Error("authenticated returned the login code itself, want a new session token")
			}
			sent := decodeMatrixStep(t, first).Sent
			if !strings.HasPrefix(sent, "handshake via "+first.Name) {
				t.Errorf("sent text %q, want it to name %s", sent, first.Name)
			}
			if first.Message == nil || first.Message.Text != sent {
				t.Errorf("chat message = %+v, want text %q", first.Message, sent)
			}

			assertAuthenticated(t, again, "alice")
			if again.Token == first.Token {
				t.Error("reconnecting with the stored token returned the same token, want a new one")
			}
			if again.Info != nil && first.Info != nil && again.Info.SessionID != first.Info.SessionID {
				t.Errorf("reconnect session %q, want the first session %q", again.Info.SessionID, first.Info.SessionID)
			}
		})
	}

	forged := result.get(t, "forged")
	if forged.Error == nil {
		t.Fatalf("connect_error carries no error; line: %s", forged.Raw)
	}
	if forged.Error.Message != "invalid token" || forged.Error.Data.Message != "invalid token" {
		t.Errorf("connect_error message %q and data.message %q, want %q in both", forged.Error.Message, forged.Error.Data.Message, "invalid token")
	}
	if forged.Error.Data.Code != "invalid_token" {
		t.Errorf("connect_error data.code %q, want invalid_token", forged.Error.Data.Code)
	}
	if forged.Error.Data.Type != "UnauthorizedError" {
		t.Errorf("connect_error data.type %q, want UnauthorizedError", forged.Error.Data.Type)
	}
	extra := decodeMatrixStep(t, forged)
	if extra.Retried {
		t.Error("the client retried the connection after connect_error")
	}
	if forged.Connected || extra.Authenticated {
		t.Errorf("the forged token connected (%v) or authenticated (%v), want neither", forged.Connected, extra.Authenticated)
	}
}

func checkCrossGenerationChat(t *testing.T, result scenarioResult) {
	auths := result.all("authenticate")
	if len(auths) != 3 {
		t.Fatalf("got %d authenticate steps, want one per client", len(auths))
	}
	for _, auth := range auths {
		if auth.Event != "authenticated" {
			t.Errorf("client %s: event %q, want authenticated; line: %s", auth.Name, auth.Event, auth.Raw)
		}
	}

	received := result.all("received")
	if len(received) != 3 {
		t.Fatalf("got %d received steps, want one per client", len(received))
	}
	for _, r := range received {
		senders := make(map[string]bool)
		for _, m := range r.Messages {
			for _, version := range []string{"2.5.0", "3.1.3", "4.8.4"} {
				if strings.HasPrefix(m.Text, "from "+version+" ") {
					senders[version] = true
				}
			}
		}
		if len(senders) != 3 || len(r.Messages) != 3 {
			t.Errorf("client %s received messages from %v, want one from each of 2.5.0, 3.1.3 and 4.8.4: %+v", r.Name, senders, r.Messages)
		}
	}
}
