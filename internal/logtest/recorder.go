// Package logtest records slog records, so that tests can check what code
// logged.
package logtest

import (
	"context"
	"log/slog"
	"sync"
)

// Recorder is a slog.Handler that keeps every record it handles. It is safe
// for concurrent use.
type Recorder struct {
	mu      sync.Mutex // guards records
	records []slog.Record
}

// Enabled reports true for every level.
func (r *Recorder) Enabled(context.Context, slog.Level) bool { return true }

// Handle keeps a copy of record.
func (r *Recorder) Handle(_ context.Context, record slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.records = append(r.records, record.Clone())
	return nil
}

// WithAttrs returns r; the records keep only their own attributes.
func (r *Recorder) WithAttrs([]slog.Attr) slog.Handler { return r }

// WithGroup returns r.
func (r *Recorder) WithGroup(string) slog.Handler { return r }

// Records returns the records at level or above, oldest first.
func (r *Recorder) Records(level slog.Level) []slog.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	var found []slog.Record
	for _, record := range r.records {
		if record.Level >= level {
			found = append(found, record)
		}
	}
	return found
}

// Messages returns the messages of the records at level or above, oldest
// first.
func (r *Recorder) Messages(level slog.Level) []string {
	var messages []string
	for _, record := range r.Records(level) {
		messages = append(messages, record.Message)
	}
	return messages
}
