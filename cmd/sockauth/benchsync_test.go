package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sockauth/sockauth/internal/serve"
)

// TestAuthorityBenchReportsSyncs runs the in-process bench with --phases and
// checks that rotations report their syncs and Verify, which writes
// nothing, reports none.
func TestAuthorityBenchReportsSyncs(t *testing.T) {
	var out bytes.Buffer
	opts := benchOptions{callers: 4, connections: 1, count: 5, rounds: 2, timeout: 10 * time.Second,
		rpcs: []string{"Authenticate", "Verify"}, phases: true}
	if err := runAuthorityBench(context.Background(), &out, opts); err != nil {
		t.Fatalf("bench failed: %v\n%s", err, out.String())
	}
	report := out.String()
	requireSyncColumns(t, report)
	phases := strings.SplitN(report, "each phase:", 2)
	if len(phases) != 2 {
		t.Fatalf("report lacks the table of phases:\n%s", report)
	}
	for round := 1; round <= 2; round++ {
		row := regexp.MustCompile(`(?m)^\s+` + string(rune('0'+round)) + `\s+Authenticate \(rotation\)\s+\d+\s+\d+%\s+\d+\.\d\s+\d`)
		if !row.MatchString(phases[1]) {
			t.Errorf("no row of round %d's rotations with a ratio and syncs:\n%s", round, phases[1])
		}
	}
}

// requireSyncColumns checks that report has the sync columns, with figures
// for rotations and none for Verify.
func requireSyncColumns(t *testing.T, report string) {
	t.Helper()
	if !strings.Contains(report, "writes/sync") {
		t.Fatalf("report lacks the sync columns:\n%s", report)
	}
	rotation := regexp.MustCompile(`Authenticate \(rotation\)\s+\d+\s+\S+\s+\S+\s+\d+%\s+\d+-\d+%\s+(\d+\.\d)\s+(\S+)`).FindStringSubmatch(report)
	if rotation == nil {
		t.Fatalf("no rotation row with syncs:\n%s", report)
	}
	if perSync := rotation[1]; perSync == "0.0" {
		t.Errorf("rotations report %s writes per sync", perSync)
	}
	if took, err := time.ParseDuration(rotation[2]); err != nil || took <= 0 {
		t.Errorf("rotations report a sync time of %q", rotation[2])
	}
	if !regexp.MustCompile(`Verify\s+\d+\s+\S+\s+\S+\s+\d+%\s+\d+-\d+%\s+-\s+-`).MatchString(report) {
		t.Errorf("Verify writes nothing but reports syncs:\n%s", report)
	}
}

// TestAuthorityBenchReadsMetricsPage runs the bench against a running
// authority with its metrics on, and reads the syncs from its metrics page.
func TestAuthorityBenchReadsMetricsPage(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelError}))
	a, err := serve.Start(context.Background(), serve.Config{Listen: "127.0.0.1:0", MetricsListen: "127.0.0.1:0",
		DataDir: t.TempDir(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })

	var out bytes.Buffer
	opts := benchOptions{callers: 3, connections: 1, count: 4, rounds: 1, timeout: 10 * time.Second,
		rpcs: []string{"Authenticate", "Verify"}, metrics: "http://" + a.MetricsAddr() + serve.MetricsPath}
	opts.client.Address = a.Addr()
	if err := runAuthorityBench(context.Background(), &out, opts); err != nil {
		t.Fatalf("bench failed: %v\n%s", err, out.String())
	}
	requireSyncColumns(t, out.String())
}

// TestAuthorityBenchMetricsErrors points --metrics at pages that are not an
// authority's: each fails before any load with an error that names the cause.
func TestAuthorityBenchMetricsErrors(t *testing.T) {
	pages := map[string]func(w http.ResponseWriter){
		"/other": func(w http.ResponseWriter) {
			io.WriteString(w, "# TYPE some_counter_total counter\nsome_counter_total 3\n")
		},
		"/garbage": func(w http.ResponseWriter) { io.WriteString(w, "<html>not metrics</html>\n") },
		"/missing": func(w http.ResponseWriter) { w.WriteHeader(http.StatusNotFound) },
	}
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if page, ok := pages[r.URL.Path]; ok {
			page(w)
			return
		}
		w.WriteHeader(http.StatusInternalServerError)
	}))
	t.Cleanup(server.Close)

	tests := []struct{ path, expected string }{
		{"/other", "no counter sockauth_store_syncs_total, which an authority that stores sessions in Badger exports"},
		{"/garbage", "not Prometheus text metrics"},
		{"/missing", "status 404 Not Found"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			var out bytes.Buffer
			opts := benchOptions{callers: 1, connections: 1, count: 1, rounds: 1, timeout: 5 * time.Second,
				metrics: server.URL + tt.path}
			// No authority listens here; the metrics error comes first.
			opts.client.Address = "127.0.0.1:9"
			err := runAuthorityBench(context.Background(), &out, opts)
			if err == nil || !strings.Contains(err.Error(), tt.expected) {
				t.Fatalf("got %v, expected an error containing %q", err, tt.expected)
			}
			if strings.Contains(out.String(), "calls/s") {
				t.Errorf("the bench ran before it read the metrics:\n%s", out.String())
			}
		})
	}
}

func TestStoreSyncsSince(t *testing.T) {
	earlier := storeSyncs{writes: 10, syncs: 4, syncTime: time.Millisecond}
	later := storeSyncs{writes: 40, syncs: 10, syncTime: 4 * time.Millisecond}
	during, err := later.since(earlier)
	if err != nil {
		t.Fatal(err)
	}
	if during.writesPerSync() != 5 || during.meanSync() != 500*time.Microsecond {
		t.Errorf("%+v: %.1f writes per sync and %v per sync, expected 5.0 and 500µs",
			during, during.writesPerSync(), during.meanSync())
	}
	if _, err := earlier.since(later); err == nil || !strings.Contains(err.Error(), "restart") {
		t.Errorf("counters that went down gave %v, expected an error that suggests a restart", err)
	}
	if none := (storeSyncs{}); none.writesPerSync() != -1 || none.meanSync() != -1 {
		t.Errorf("no syncs gave %.1f and %v, expected -1 for both", none.writesPerSync(), none.meanSync())
	}
}

// TestSummaryIgnoresPhasesWithoutSyncs checks that the medians of the sync
// columns come from the phases that synced.
func TestSummaryIgnoresPhasesWithoutSyncs(t *testing.T) {
	phases := []*benchPhase{phaseAt("rotate", 100), phaseAt("rotate", 100), phaseAt("rotate", 100)}
	phases[0].syncs = &storeSyncs{writes: 20, syncs: 2, syncTime: 2 * time.Millisecond}
	phases[1].syncs = &storeSyncs{}
	phases[2].syncs = &storeSyncs{writes: 40, syncs: 2, syncTime: 6 * time.Millisecond}

	got := summarize(phases, []float64{1, 1, 1})
	if got.writesPerSync != 15 || got.meanSync != 2*time.Millisecond {
		t.Errorf("got %.1f writes per sync and %v per sync, expected 15.0 and 2ms", got.writesPerSync, got.meanSync)
	}
	none := summarize([]*benchPhase{phaseAt("verify", 100)}, []float64{1})
	if none.writesPerSync != -1 || none.meanSync != -1 {
		t.Errorf("phases without syncs gave %.1f and %v, expected -1 for both", none.writesPerSync, none.meanSync)
	}
}

// TestAuthorityBenchRejectsOtherMetrics runs rotations against one
// authority while --metrics names a page whose counters do not move, as the
// page of another authority would. The run must stop with an error.
func TestAuthorityBenchRejectsOtherMetrics(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelError}))
	a, err := serve.Start(context.Background(), serve.Config{Listen: "127.0.0.1:0", DataDir: t.TempDir(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	const frozen = "# TYPE sockauth_store_syncs_total counter\nsockauth_store_syncs_total 7\n" +
		"# TYPE sockauth_store_writes_total counter\nsockauth_store_writes_total 70\n" +
		"# TYPE sockauth_store_sync_seconds histogram\nsockauth_store_sync_seconds_bucket{le=\"+Inf\"} 7\n" +
		"sockauth_store_sync_seconds_sum 0.007\nsockauth_store_sync_seconds_count 7\n"
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, frozen) }))
	t.Cleanup(page.Close)

	var out bytes.Buffer
	opts := benchOptions{callers: 2, connections: 1, count: 3, rounds: 1, timeout: 10 * time.Second,
		rpcs: []string{"Authenticate"}, metrics: page.URL}
	opts.client.Address = a.Addr()
	err = runAuthorityBench(context.Background(), &out, opts)
	expected := "the store recorded 0 writes during 6 Authenticate calls, which write one session record each, " +
		"so --metrics " + page.URL + " is not the metrics page of the authority at " + a.Addr()
	if err == nil || !strings.Contains(err.Error(), expected) {
		t.Fatalf("got %v, expected an error containing %q\n%s", err, expected, out.String())
	}
}
