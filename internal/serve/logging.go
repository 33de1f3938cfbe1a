package serve

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
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

// LogLevelFlag is a command-line flag value for a log level. It accepts what
// slog.Level.UnmarshalText accepts, in any case, and prints the level in
// lower case, as the help texts name the levels.
type LogLevelFlag struct {
	Level *slog.Level
}

// String implements pflag.Value.
func (f LogLevelFlag) String() string {
	if f.Level == nil {
		return ""
	}
	return strings.ToLower(f.Level.String())
}

// Set implements pflag.Value.
func (f LogLevelFlag) Set(text string) error {
	if err := f.Level.UnmarshalText([]byte(text)); err != nil {
		return fmt.Errorf("unknown log level %q: use debug, info, warn or error", text)
	}
	return nil
}

// Type implements pflag.Value.
func (f LogLevelFlag) Type() string { return "level" }
