package gosocketio

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sockauth/sockauth/adapter"
)

// Bounds of the unauthenticated flood test.
const (
	// floodAuthTimeout is the auth timeout of the flooded server. It must
	// leave time to connect every socket before the first one times out.
	floodAuthTimeout = 3 * time.Second
	// floodDialers is the number of sockets connecting at once.
	floodDialers = 32
	// floodGoroutineTolerance is how many goroutines more than before the
	// flood may still run after it: the HTTP server may keep a few idle
	// ones, and the runtime starts some of its own.
	floodGoroutineTolerance = 20
	// floodHeapTolerance is how much more live heap than before the flood
	// may remain after it, for maps that do not shrink and caches that the
	// runtime and the libraries keep.
	floodHeapTolerance = 1 << 20
)

// floodSockets is the number of sockets of the flood. The race detector
// allows at most 8,128 live goroutines, and each socket of this test needs
// five (four in go-socket.io, one in the test client), so it floods with
// fewer sockets under -race.
func floodSockets() int {
	if raceEnabled {
		return 1200
	}
	return 2000
}

// floodOutcome is what one flooding client saw.
type floodOutcome struct {
	connected time.Time
	rejected  time.Time
	code      string
	err       error
}

// floodClient connects to baseURL, never authenticates, and waits until
// the server sends unauthorized and a disconnect packet and closes the
// connection. It holds a slot of dialSlots while it connects.
func floodClient(baseURL string, deadline time.Time, dialSlots chan struct{}) floodOutcome {
	url := "ws" + strings.TrimPrefix(baseURL, "http") + "/socket.io/?EIO=3&transport=websocket"
	dialSlots <- struct{}{}
	conn, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		<-dialSlots
		return floodOutcome{err: fmt.Errorf("dial: %w", err)}
	}
	defer conn.Close()
	if err := conn.SetReadDeadline(deadline); err != nil {
		<-dialSlots
		return floodOutcome{err: err}
	}

	var outcome floodOutcome
	disconnected := false
	for {
		_, data, err := conn.ReadMessage()
		if err != nil {
			if outcome.connected.IsZero() {
				<-dialSlots
			}
			var netErr net.Error
			switch {
			case !disconnected:
				outcome.err = fmt.Errorf("connection ended before the disconnect packet: %w", err)
			case errors.As(err, &netErr) && netErr.Timeout():
				outcome.err = fmt.Errorf("the server did not close the connection: %w", err)
			}
			return outcome
		}

		frame := string(data)
		switch {
		case frame == "40":
			outcome.connected = time.Now()
			<-dialSlots
		case strings.HasPrefix(frame, `42["unauthorized",`):
			outcome.rejected = time.Now()
			var packet []json.RawMessage
			var payload struct {
				Data struct {
					Code string `json:"code"`
				} `json:"data"`
			}
			if json.Unmarshal([]byte(frame[2:]), &packet) != nil || len(packet) != 2 || json.Unmarshal(packet[1], &payload) != nil {
				outcome.err = fmt.Errorf("invalid unauthorized packet %q", frame)
				return outcome
			}
			outcome.code = payload.Data.Code
		case frame == "41":
			disconnected = true
		}
	}
}

// flood runs sockets flooding clients at once against baseURL and returns
// their outcomes, or the first error of a client.
func flood(baseURL string, sockets int, dialSlots chan struct{}) ([]floodOutcome, error) {
	deadline := time.Now().Add(floodAuthTimeout + CloseDelay + 30*time.Second)
	outcomes := make([]floodOutcome, sockets)
	var clients sync.WaitGroup
	for i := range sockets {
		clients.Go(func() { outcomes[i] = floodClient(baseURL, deadline, dialSlots) })
	}
	clients.Wait()

	for i, o := range outcomes {
		if o.err != nil {
			return nil, fmt.Errorf("socket %d: %w", i, o.err)
		}
	}
	return outcomes, nil
}

// liveHeap returns the live heap after a garbage collection.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var stats runtime.MemStats
	runtime.ReadMemStats(&stats)
	return stats.HeapAlloc
}

func TestUnauthenticatedFloodReleasesResources(t *testing.T) {
	if testing.Short() {
		t.Skip("the flood test opens thousands of loopback connections")
	}
	sockets := floodSockets()
	registry := prometheus.NewRegistry()
	ts := newTestServer(t, "/", adapter.Config{AuthTimeout: floodAuthTimeout, MaxUnauthenticatedSockets: sockets, Registerer: registry})
	dialSlots := make(chan struct{}, floodDialers)

	// A first flood of the same size runs before the baseline. The runtime
	// keeps the descriptors of exited goroutines for reuse: after one flood
	// of 2,000 sockets the live heap stayed 5.4 MiB higher, most of it
	// allocated by runtime.malg in a heap profile. The first flood also
	// starts the server's lazily started goroutines and pools. A leak would
	// grow the heap again in the second flood.
	allClosed := func() bool {
		return gaugeValue(t, registry, "sockauth_adapter_sockets_connected") == 0 && ts.binding.closingCount() == 0
	}
	if _, err := flood(ts.url, sockets, dialSlots); err != nil {
		t.Fatalf("first flood: %v", err)
	}
	waitUntil(t, allClosed, "the first flood's connections closed")
	baseGoroutines := runtime.NumGoroutine()
	baseHeap := liveHeap()

	start := time.Now()
	outcomes, err := flood(ts.url, sockets, dialSlots)
	if err != nil {
		t.Fatalf("flood: %v", err)
	}
	t.Logf("%d sockets closed %v after the flood began", sockets, time.Since(start).Round(time.Millisecond))

	var lastConnected, firstRejected time.Time
	for i, o := range outcomes {
		if o.code != string(adapter.CodeAuthenticationTimeout) {
			t.Fatalf("socket %d: unauthorized code %q, expected %s", i, o.code, adapter.CodeAuthenticationTimeout)
		}
		if o.connected.After(lastConnected) {
			lastConnected = o.connected
		}
		if firstRejected.IsZero() || o.rejected.Before(firstRejected) {
			firstRejected = o.rejected
		}
	}
	if !lastConnected.Before(firstRejected) {
		t.Errorf("the last socket connected %v after the first timeout, expected every socket connected at once", lastConnected.Sub(firstRejected))
	}

	waitUntil(t, allClosed, "the binding closed every connection")
	if timeouts := gaugeValue(t, registry, "sockauth_adapter_authentication_timeouts_total"); timeouts != float64(2*sockets) {
		t.Errorf("authentication timeouts counted: %v, expected %d", timeouts, 2*sockets)
	}

	var goroutines int
	deadlineGoroutines := time.Now().Add(10 * time.Second)
	for {
		goroutines = runtime.NumGoroutine()
		if goroutines <= baseGoroutines+floodGoroutineTolerance || time.Now().After(deadlineGoroutines) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if goroutines > baseGoroutines+floodGoroutineTolerance {
		t.Errorf("%d goroutines after the flood, expected at most %d (%d before, tolerance %d)", goroutines, baseGoroutines+floodGoroutineTolerance, baseGoroutines, floodGoroutineTolerance)
	}

	heap := liveHeap()
	if heap > baseHeap+floodHeapTolerance {
		t.Errorf("live heap %d bytes after the flood, expected at most %d (%d before, tolerance %d)", heap, baseHeap+floodHeapTolerance, baseHeap, floodHeapTolerance)
	}
	t.Logf("goroutines %d before, %d after; live heap %d KiB before, %d KiB after", baseGoroutines, goroutines, baseHeap>>10, heap>>10)
}

// gaugeValue returns the value of the metric name without labels in
// registry, a gauge or a counter.
func gaugeValue(t *testing.T, registry *prometheus.Registry, name string) float64 {
	t.Helper()
	families, err := registry.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	for _, family := range families {
		if family.GetName() != name || len(family.GetMetric()) != 1 {
			continue
		}
		metric := family.GetMetric()[0]
		if metric.GetGauge() != nil {
			return metric.GetGauge().GetValue()
		}
		return metric.GetCounter().GetValue()
	}
	t.Fatalf("metric %s not found in the registry", name)
	return 0
}

// closingCount returns the number of connections whose last packets the
// binding is writing or whose close it is waiting for.
func (b *Binding) closingCount() int {
	b.closesMu.Lock()
	defer b.closesMu.Unlock()
	return len(b.closes)
}
