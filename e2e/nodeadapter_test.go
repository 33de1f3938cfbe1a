package e2e

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestNodeAdapterBesideChatDemo runs the Node adapter's example server
// (adapter/node/example/server.js, socket.io 4.8) and the Go chat demo on
// one authority that requires service keys. The script
// adapter/node/e2e/cross-server.js drives both with socket.io-client 4.8.4
// and 2.5.0. A code from the chat demo's login connects to the Node server,
// its token rotates on the chat demo, and a logout on the Node server ends
// the session on both.
func TestNodeAdapterBesideChatDemo(t *testing.T) {
	requireE2E(t)
	adapterDir := repoPath(t, "adapter/node")
	requireClientTool(t, fileExists(filepath.Join(adapterDir, "node_modules", "socket.io-client")),
		"adapter/node/node_modules is missing: run npm ci in adapter/node")

	dir := t.TempDir()
	chatKey, nodeKey := "chat-demo-key-0123456789abcdef", "node-server-key-0123456789abcdef"
	keys := filepath.Join(dir, "service-keys")
	writeTestFile(t, keys, "token:chat-demo:"+chatKey+"\nsocket:node-server:"+nodeKey+"\n")
	chatKeyFile, nodeKeyFile := filepath.Join(dir, "chat.key"), filepath.Join(dir, "node.key")
	writeTestFile(t, chatKeyFile, chatKey+"\n")
	writeTestFile(t, nodeKeyFile, nodeKey+"\n")

	authorityAddr := startAuthority(t, "--service-keys", keys)
	chatURL := startChatDemo(t, authorityAddr, "--authority-key-file", chatKeyFile)
	nodeURL := startNodeServer(t, adapterDir, "--authority", authorityAddr, "--key-file", nodeKeyFile)

	output := runCommand(t, adapterDir, []string{"NODE_URL=" + nodeURL, "CHAT_URL=" + chatURL, "E2E_NODE_DIR=" + nodeDir},
		"node", filepath.Join("e2e", "cross-server.js"))

	steps := map[string]map[string]any{}
	scanner := bufio.NewScanner(strings.NewReader(string(output)))
	for scanner.Scan() {
		var s map[string]any
		if err := json.Unmarshal(scanner.Bytes(), &s); err != nil {
			t.Fatalf("scenario wrote a line that is not JSON: %v: %s", err, scanner.Text())
		}
		steps[s["step"].(string)] = s
	}
	if _, ok := steps["done"]; !ok {
		t.Fatalf("scenario did not finish:\n%s", output)
	}

	handshake := steps["node_handshake"]
	if handshake["event"] != "authenticated" || handshake["has_token"] != true {
		t.Fatalf("handshake with a chat demo code = %v, expected authenticated with a token", handshake)
	}
	info := handshake["info"].(map[string]any)
	if info["subject"] != "alice" || info["session_id"] == "" {
		t.Errorf("authenticated info = %v, expected alice's session", info)
	}
	if _, err := time.Parse(time.RFC3339, info["expires_at"].(string)); err != nil {
		t.Errorf("expires_at %v is not RFC 3339: %v", info["expires_at"], err)
	}

	message := steps["node_message"]["message"].(map[string]any)
	if message["from"] != "alice" || message["text"] != "hello from node" {
		t.Errorf("chat message on the Node server = %v, expected alice's text", message)
	}

	rotated := steps["chat_authenticate"]
	if rotated["event"] != "authenticated" {
		t.Fatalf("the Node server's token on the chat demo = %v, expected authenticated", rotated)
	}
	if got := rotated["info"].(map[string]any)["session_id"]; got != info["session_id"] {
		t.Errorf("chat demo session %v, expected the Node server's session %v", got, info["session_id"])
	}

	for _, name := range []string{"node_logout", "chat_after_logout"} {
		s := steps[name]
		payload, _ := s["payload"].(map[string]any)
		if s["event"] != "logged_out" || payload["reason"] != "logout" {
			t.Errorf("%s = %v, expected logged_out with reason logout", name, s)
		}
	}

	revoked := steps["node_revoked"]
	payload, _ := revoked["payload"].(map[string]any)
	data, _ := payload["data"].(map[string]any)
	if revoked["event"] != "unauthorized" || data["code"] != "revoked_token" || data["type"] != "UnauthorizedError" {
		t.Errorf("newest token of the logged-out session = %v, expected unauthorized revoked_token", revoked)
	}
	if revoked["disconnect"] != "io server disconnect" {
		t.Errorf("disconnect reason %v, expected io server disconnect", revoked["disconnect"])
	}

	bad := steps["node_bad_handshake"]
	badData, _ := bad["data"].(map[string]any)
	if bad["event"] != "connect_error" || badData["code"] != "invalid_token" || badData["message"] != bad["message"] {
		t.Errorf("bad handshake token = %v, expected connect_error with code invalid_token", bad)
	}
}

// startNodeServer runs example/server.js of the Node adapter with args on a
// free loopback port and returns its URL.
func startNodeServer(t *testing.T, adapterDir string, args ...string) string {
	t.Helper()
	script := filepath.Join(adapterDir, "example", "server.js")
	p := startProcess(t, "node server", "node", append([]string{script, "--listen", "127.0.0.1:0"}, args...)...)

	deadline := time.Now().Add(readyTimeout)
	for time.Now().Before(deadline) {
		for _, line := range strings.Split(p.output.String(), "\n") {
			var ready struct {
				Listening string `json:"listening"`
			}
			if json.Unmarshal([]byte(line), &ready) == nil && ready.Listening != "" {
				return ready.Listening
			}
		}
		if p.hasExited() {
			t.Fatalf("node server exited before serving: %v\noutput:\n%s", p.waitErr, p.output)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("node server not ready within %v\noutput:\n%s", readyTimeout, p.output)
	return ""
}

func writeTestFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
