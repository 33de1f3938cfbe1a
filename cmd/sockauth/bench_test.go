package main

import (
	"bytes"
	"context"
	"math"
	"strings"
	"testing"
	"time"
)

// phaseAt returns a phase of calls that each took one millisecond and ran at
// rate calls per second.
func phaseAt(name string, rate float64) *benchPhase {
	const calls = 100
	p := &benchPhase{name: name, elapsed: time.Duration(calls / rate * float64(time.Second))}
	for range calls {
		p.latencies = append(p.latencies, time.Millisecond)
	}
	return p
}

func TestBenchRoundRatioUsesNearestCeilings(t *testing.T) {
	// The ceiling is 1,000/s before the first round, 400/s between the rounds
	// and 500/s after the second. Each round is compared with the faster
	// no-op beside it.
	ceilings := []*benchPhase{phaseAt("noop", 1000), phaseAt("noop", 400), phaseAt("noop", 500)}
	rounds := []benchRound{
		{phaseAt("rotate", 400)}, // beside 1,000 and 400: 40%
		{phaseAt("rotate", 300)}, // beside 400 and 500: 60%
	}

	summaries := summarizeRounds(rounds, ceilings)
	if len(summaries) != 1 {
		t.Fatalf("got %d summaries, expected one per RPC", len(summaries))
	}
	got := summaries[0]
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-6 }
	if !near(got.minRatio, 0.4) || !near(got.maxRatio, 0.6) {
		t.Errorf("range %.3f-%.3f, expected 0.400-0.600", got.minRatio, got.maxRatio)
	}
	if !near(got.ratio, 0.5) {
		t.Errorf("median ratio %.3f, expected 0.500 between two rounds", got.ratio)
	}
	if !near(got.rate, 350) {
		t.Errorf("median rate %.1f, expected 350", got.rate)
	}
	if got.p99 != time.Millisecond {
		t.Errorf("p99 %v, expected 1ms", got.p99)
	}

	ceiling := summarizeCeiling(ceilings)
	if ceiling.ratio != 1 || !near(ceiling.minRatio, 0.4) || !near(ceiling.maxRatio, 1) {
		t.Errorf("ceiling ratio %.3f in %.3f-%.3f, expected 1 in 0.400-1", ceiling.ratio, ceiling.minRatio, ceiling.maxRatio)
	}
}

func TestMedianOfOddAndEvenCounts(t *testing.T) {
	if got := median([]float64{3, 1, 2}); got != 2 {
		t.Errorf("median of 3, 1, 2 is %v, expected 2", got)
	}
	if got := median([]float64{4, 1, 3, 2}); got != 2.5 {
		t.Errorf("median of 4, 1, 3, 2 is %v, expected 2.5", got)
	}
}

// TestAuthorityBenchRuns runs the load generator against an in-process
// authority with a few calls, and checks that it reports every RPC.
func TestAuthorityBenchRuns(t *testing.T) {
	var out bytes.Buffer
	opts := benchOptions{callers: 3, connections: 2, count: 4, rounds: 2, timeout: 10 * time.Second}
	if err := runAuthorityBench(context.Background(), &out, opts); err != nil {
		t.Fatalf("bench failed: %v\n%s", err, out.String())
	}
	report := out.String()
	rows := []string{"health.Check (no-op)", "IssueCode", "Authenticate (rotation)", "ConfirmRotation", "Verify", "2 rounds"}
	if _, ok := processCPU(); ok {
		rows = append(rows, "CPU per call")
	}
	for _, row := range rows {
		if !strings.Contains(report, row) {
			t.Errorf("report lacks %q:\n%s", row, report)
		}
	}
}

func TestAuthorityBenchRejectsZeroRounds(t *testing.T) {
	opts := benchOptions{callers: 1, connections: 1, count: 1, rounds: 0}
	err := runAuthorityBench(context.Background(), &bytes.Buffer{}, opts)
	if err == nil || !strings.Contains(err.Error(), "--rounds") {
		t.Fatalf("got %v, expected an error naming --rounds", err)
	}
}

func TestBenchCPUPerCallMedian(t *testing.T) {
	phases := []*benchPhase{phaseAt("verify", 100), phaseAt("verify", 100), phaseAt("verify", 100)}
	for i, cpu := range []time.Duration{10, 30, 20} {
		phases[i].cpu = cpu * time.Millisecond // 100 calls each
	}
	if got := summarize(phases, []float64{1, 1, 1}).cpuPerCall; got != 200*time.Microsecond {
		t.Errorf("CPU per call %v, expected the median 200µs", got)
	}

	phases[1].cpu = -1
	if got := summarize(phases, []float64{1, 1, 1}).cpuPerCall; got != -1 {
		t.Errorf("CPU per call %v with one phase unmeasured, expected -1", got)
	}
}
