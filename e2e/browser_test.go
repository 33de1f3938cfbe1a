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

const (
	// chromiumPath is Debian's chromium, which make test installs.
	chromiumPath = "/usr/bin/chromium"

	// requireBrowserEnv names the environment variable that turns a missing
	// browser into a failure instead of a skip. make test sets it.
	requireBrowserEnv = "SOCKAUTH_REQUIRE_BROWSER"

	// screenshotEnv names the environment variable that, when set to a
	// path, makes TestBrowserChat write its screenshot of the chat there,
	// such as ../docs/chat-demo.png.
	screenshotEnv = "SOCKAUTH_SCREENSHOT"

	// browserTimeout bounds the browser script, which stops itself after
	// 150 s.
	browserTimeout = 3 * time.Minute
)

// browserStep is one JSON line written by e2e/browser/chat.mjs.
type browserStep struct {
	Step    string `json:"step"`
	Message string `json:"message"`

	Alice  string `json:"alice"`
	Bob    string `json:"bob"`
	Client string `json:"client"`

	SeenByBob bool   `json:"seen_by_bob"`
	State     string `json:"state"`
	Rotated   bool   `json:"rotated"`

	Tab1      string   `json:"tab1"`
	Tab2      string   `json:"tab2"`
	Tab3      string   `json:"tab3"`
	SameToken bool     `json:"same_token"`
	Tabs      int      `json:"tabs"`
	Rounds    int      `json:"rounds"`
	Connected int      `json:"connected"`
	Expected  int      `json:"expected"`
	Counted   int      `json:"counted"`
	Stored    *string  `json:"stored"`
	Errors    []string `json:"errors"`

	Raw string `json:"-"`
}

// requireBrowser skips the test when Chromium or the npm packages of
// e2e/browser are missing, unless requireBrowserEnv is set.
func requireBrowser(t *testing.T) string {
	t.Helper()

	dir, err := filepath.Abs("browser")
	if err != nil {
		t.Fatal(err)
	}
	missing := ""
	if _, err := os.Stat(chromiumPath); err != nil {
		missing = chromiumPath + " is missing: install Debian's chromium package (make browser does)"
	} else if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core", "package.json")); err != nil {
		missing = "e2e/browser/node_modules is missing: run `npm ci` in e2e/browser (make browser does)"
	}
	if missing != "" {
		if os.Getenv(requireBrowserEnv) != "" {
			t.Fatal(missing)
		}
		t.Skip(missing)
	}
	return dir
}

// TestBrowserChat drives the chat page in headless Chromium. Two users log
// in, and a message reaches the other user. A reload reconnects with the
// stored token, and tabs that reconnect at the same moment, two and then a
// crowd reloaded together several times, keep the session alive. A tab
// with socket.io-client 2.5.0 joins, and a logout ends every tab.
func TestBrowserChat(t *testing.T) {
	requireE2E(t)
	browserDir := requireBrowser(t)
	chatURL := startStack(t, nil, nil)

	screenshot := os.Getenv(screenshotEnv)
	if screenshot == "" {
		screenshot = filepath.Join(t.TempDir(), "chat.png")
	} else if !filepath.IsAbs(screenshot) {
		abs, err := filepath.Abs(screenshot)
		if err != nil {
			t.Fatal(err)
		}
		screenshot = abs
	}

	steps := runBrowserScript(t, browserDir, chatURL, screenshot)

	login := steps.get(t, "login")
	if login.Alice != "alice" || login.Bob != "bob" {
		t.Errorf("signed in as %q and %q, want alice and bob", login.Alice, login.Bob)
	}
	if login.Client != "socket.io-client 4.8.4" {
		t.Errorf("page reports %q, want socket.io-client 4.8.4", login.Client)
	}

	if !steps.get(t, "message").SeenByBob {
		t.Error("bob did not see alice's message")
	}

	reload := steps.get(t, "reload")
	if reload.State != "connected" {
		t.Errorf("state after the reload %q, want connected", reload.State)
	}
	if !reload.Rotated {
		t.Error("the reload did not rotate the stored token")
	}

	tabs := steps.get(t, "tabs")
	if tabs.Tab1 != "connected" || tabs.Tab2 != "connected" {
		t.Errorf("tabs after reconnecting together are %q and %q, want both connected", tabs.Tab1, tabs.Tab2)
	}
	if !tabs.SameToken {
		t.Error("the tabs see different stored tokens, want the one shared token")
	}

	crowd := steps.get(t, "crowd")
	if crowd.Tabs < 3 || crowd.Rounds < 1 {
		t.Errorf("crowd step reloaded %d tabs %d times, want at least 3 tabs at least once", crowd.Tabs, crowd.Rounds)
	}
	if crowd.Connected != crowd.Tabs {
		t.Errorf("%d of %d tabs connected after reloading together %d times, want all", crowd.Connected, crowd.Tabs, crowd.Rounds)
	}
	if !crowd.SameToken {
		t.Error("the crowd of tabs sees different stored tokens, want the one shared token")
	}

	handoff := steps.get(t, "handoff")
	if handoff.Expected == 0 || handoff.Counted != handoff.Expected {
		t.Errorf("tabs incrementing a stored counter under a Web Lock counted %d, want %d: a lock holder read a value older than the previous holder wrote", handoff.Counted, handoff.Expected)
	}

	client2 := steps.get(t, "client2")
	if client2.State != "connected" || client2.Client != "socket.io-client 2.5.0" {
		t.Errorf("tab with ?client=2 is %q with %q, want connected with socket.io-client 2.5.0", client2.State, client2.Client)
	}

	logout := steps.get(t, "logout")
	for name, state := range map[string]string{"first tab": logout.Tab1, "second tab": logout.Tab2, "2.5.0 tab": logout.Tab3} {
		if state != "login" {
			t.Errorf("%s after the logout is %q, want login", name, state)
		}
	}
	if logout.Stored != nil {
		t.Error("a token is still stored after the logout")
	}
	if logout.Bob != "connected" {
		t.Errorf("bob after alice's logout is %q, want connected", logout.Bob)
	}

	if errors := steps.get(t, "errors").Errors; len(errors) != 0 {
		t.Errorf("the page threw errors: %q", errors)
	}

	info, err := os.Stat(screenshot)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	if info.Size() < 1000 {
		t.Errorf("screenshot %s has %d bytes, want a picture of the chat", screenshot, info.Size())
	}
}

// browserSteps is the output of the browser script.
type browserSteps []browserStep

func (s browserSteps) get(t *testing.T, name string) browserStep {
	t.Helper()
	for _, step := range s {
		if step.Step == name {
			return step
		}
	}
	t.Fatalf("browser script output has no step %q", name)
	return browserStep{}
}

// runBrowserScript runs e2e/browser/chat.mjs against the chat demo at
// chatURL and returns its steps, failing the test when it fails.
func runBrowserScript(t *testing.T, browserDir, chatURL, screenshot string) browserSteps {
	t.Helper()

	ctx, cancel := context.WithTimeout(context.Background(), browserTimeout)
	defer cancel()

	cmd := exec.CommandContext(ctx, "node", filepath.Join(browserDir, "chat.mjs"))
	cmd.Dir = browserDir
	cmd.Env = append(os.Environ(), "CHAT_URL="+chatURL, "CHROMIUM="+chromiumPath, "SCREENSHOT="+screenshot)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr

	runErr := cmd.Run()

	var steps browserSteps
	scanner := bufio.NewScanner(bytes.NewReader(stdout.Bytes()))
	scanner.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for scanner.Scan() {
		var step browserStep
		if err := json.Unmarshal(scanner.Bytes(), &step); err != nil {
			t.Fatalf("browser script wrote a line that is not a JSON step: %v\nline: %s\nstderr:\n%s", err, scanner.Text(), stderr.String())
		}
		step.Raw = scanner.Text()
		steps = append(steps, step)
	}

	if runErr != nil || len(steps) == 0 || steps[len(steps)-1].Step != "done" {
		t.Fatalf("browser script failed: %v\nstdout:\n%s\nstderr:\n%s", runErr, stdout.String(), stderr.String())
	}
	return steps
}
