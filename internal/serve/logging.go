package serve

import (
	"fmt"
	"io"
	"log/slog"
)

// Log formats accepted by NewLogger.
const (
	LogFormatText = "text"
	LogFormatJSON = "json"
)

// NewLogger returns a logger that writes records of level and above to w, as
// logfmt-style text or as one JSON object per line.
func NewLogger(w io.Writer, format string, level slog.Level) (*slog.Logger, error) {
	options := &slog.HandlerOptions{Level: level}
	switch format {
	case LogFormatText, "":
		return slog.New(slog.NewTextHandler(w, options)), nil
	case LogFormatJSON:
		return slog.New(slog.NewJSONHandler(w, options)), nil
	default:
		return nil, fmt.Errorf("unknown log format %q: use text or json", format)
	}
}
