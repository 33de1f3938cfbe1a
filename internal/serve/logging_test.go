package serve_test

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/sockauth/sockauth/internal/serve"
)

func TestLogLevelFlag(t *testing.T) {
	level := slog.LevelInfo
	flag := serve.LogLevelFlag{Level: &level}
	if got := flag.String(); got != "info" {
		t.Errorf("String() = %q, expected the lower-case name info", got)
	}

	if err := flag.Set("WARN"); err != nil {
		t.Fatalf("Set(WARN): %v", err)
	}
	if level != slog.LevelWarn {
		t.Errorf("level is %v after Set(WARN), expected WARN", level)
	}

	err := flag.Set("loud")
	if err == nil || !strings.Contains(err.Error(), "use debug, info, warn or error") {
		t.Errorf("Set(loud) = %v, expected an error listing the levels", err)
	}
	if level != slog.LevelWarn {
		t.Errorf("level is %v after a rejected Set, expected WARN to stay", level)
	}
}
