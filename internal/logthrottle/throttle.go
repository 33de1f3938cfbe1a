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
// and counts the lines it holds back. It is safe for concurrent use.
type Throttle struct {
	sometimes rate.Sometimes
	held      atomic.Int64
}

// New returns a Throttle that passes burst lines at once and then one line
// per interval.
func New(burst int, interval time.Duration) *Throttle {
	return &Throttle{sometimes: rate.Sometimes{First: burst, Interval: interval}}
}

// Log calls log unless the throttle holds this line back. log receives the
// number of lines held back since the last line that passed.
func (t *Throttle) Log(log func(held int64)) {
	t.held.Add(1)
	t.sometimes.Do(func() {
		log(t.held.Swap(0) - 1)
	})
}
