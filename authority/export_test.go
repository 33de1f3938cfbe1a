package authority

import (
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// NewStoreCollectorWithClock returns the collector of sockauth_sessions_stored
// for counter, reading the time from now.
func NewStoreCollectorWithClock(counter SessionCounter, logger *slog.Logger, now func() time.Time) prometheus.Collector {
	return &storeCollector{
		counter: counter,
		log:     logger,
		now:     now,
		desc:    prometheus.NewDesc("sockauth_sessions_stored", "Session records in the store.", nil, nil),
	}
}

// NewID returns a new random id, as the service makes for sid and jti.
var NewID = newID
