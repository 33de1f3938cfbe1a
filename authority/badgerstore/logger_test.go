package badgerstore

import (
	"bytes"
	"io"
	"log/slog"
	"strings"
	"testing"
)

func TestBadgerLoggerSkipsDisabledDebugLines(t *testing.T) {
	l := badgerLogger{slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	allocs := testing.AllocsPerRun(100, func() {
		l.Debugf("%d entries written", 64)
		l.Infof("Got compaction priority: %+v", 3)
	})
	if allocs != 0 {
		t.Errorf("disabled debug lines allocated %.0f times per call pair, want none", allocs)
	}
}

func TestBadgerLoggerWritesDebugLines(t *testing.T) {
	var out bytes.Buffer
	l := badgerLogger{slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	l.Debugf("%d entries written\n", 64)
	l.Infof("All %d tables opened", 3)

	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d lines, want 2:\n%s", len(lines), out.String())
	}
	for i, want := range []string{`msg="badger: 64 entries written"`, `msg="badger: All 3 tables opened"`} {
		if !strings.Contains(lines[i], "level=DEBUG") || !strings.Contains(lines[i], want) {
			t.Errorf("line %d is %q, want a debug line with %s", i+1, lines[i], want)
		}
	}
}
