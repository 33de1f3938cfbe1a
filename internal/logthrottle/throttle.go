// Package logthrottle limits log lines about events that callers can cause at
// any rate, such as rejected service keys and failed TLS handshakes, so that
// a flood of them does not flood the log.
package logthrottle

import (
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Throttle lets the first burst lines through and then one line per interval,
// and counts the lines it suppresses. It is safe for concurrent use.
type Throttle struct {
	sometimes  rate.Sometimes
	suppressed atomic.Int64
}

// New returns a Throttle that passes burst lines at once and then one line
// per interval.
func New(burst int, interval time.Duration) *Throttle {
	return &Throttle{sometimes: rate.Sometimes{First: burst, Interval: interval}}
}

// Log calls log unless the throttle suppresses this line. log receives the
// number of lines suppressed since the last line that passed.
func (t *Throttle) Log(log func(suppressed int64)) {
	passed := false
	t.sometimes.Do(func() {
		passed = true
		log(t.suppressed.Swap(0))
	})
	if !passed {
		t.suppressed.Add(1)
	}
}
