package logtest

import (
	"log/slog"
	"slices"
	"testing"
)

func TestRecorderFiltersByLevel(t *testing.T) {
	recorder := &Recorder{}
	log := slog.New(recorder)
	log.Debug("debug line")
	log.Warn("warn line", "key", "value")
	log.Error("error line")

	if got := recorder.Messages(slog.LevelWarn); !slices.Equal(got, []string{"warn line", "error line"}) {
		t.Errorf("messages at warn and above = %q", got)
	}
	if got := recorder.Messages(slog.LevelDebug); len(got) != 3 {
		t.Errorf("messages at debug and above = %q, expected all 3", got)
	}
	records := recorder.Records(slog.LevelError)
	if len(records) != 1 {
		t.Fatalf("%d records at error, expected 1", len(records))
	}
	if records[0].Message != "error line" {
		t.Errorf("record at error = %q, expected the error line", records[0].Message)
	}
}
