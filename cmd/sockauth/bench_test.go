package main

import (
	"bytes"
	"context"
	"errors"
	"math"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sockauth/sockauth/internal/cputime"
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
	if _, ok := cputime.Process(); ok {
		rows = append(rows, "CPU per call")
	}
	for _, row := range rows {
		if !strings.Contains(report, row) {
			t.Errorf("report lacks %q:\n%s", row, report)
		}
	}
}

func TestAuthorityBenchRejectsBadFlags(t *testing.T) {
	valid := benchOptions{callers: 1, connections: 1, count: 1, rounds: 1, timeout: time.Second}
	tests := []struct {
		name   string
		change func(o *benchOptions)
		flag   string
	}{
		{"zero rounds", func(o *benchOptions) { o.rounds = 0 }, "--rounds is 0"},
		{"negative count", func(o *benchOptions) { o.count = -1 }, "--count is -1"},
		{"zero callers", func(o *benchOptions) { o.callers = 0 }, "--callers is 0"},
		{"zero connections", func(o *benchOptions) { o.connections = 0 }, "--connections is 0"},
		{"negative fill", func(o *benchOptions) { o.fill = -5 }, "--fill is -5"},
		{"zero timeout", func(o *benchOptions) { o.timeout = 0 }, "--timeout is 0s"},
		{"negative timeout", func(o *benchOptions) { o.timeout = -time.Second }, "--timeout is -1s"},
		{"unknown rpc", func(o *benchOptions) { o.rpcs = []string{"Verify", "Login"} }, `--rpc "Login"`},
		{"metrics without authority", func(o *benchOptions) { o.metrics = "http://127.0.0.1:9/metrics" }, "--metrics needs --authority"},
		{"metrics not a URL", func(o *benchOptions) {
			o.client.Address = "127.0.0.1:9"
			o.metrics = "127.0.0.1:9090"
		}, `--metrics "127.0.0.1:9090" is not an http or https URL`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := valid
			tt.change(&opts)
			err := runAuthorityBench(context.Background(), &bytes.Buffer{}, opts)
			if err == nil || !strings.Contains(err.Error(), tt.flag) {
				t.Fatalf("got %v, expected an error containing %q", err, tt.flag)
			}
		})
	}
}

// TestBenchPhaseStopsAtFirstFailure runs a phase whose first caller fails
// while the others hang as on a frozen authority. The phase must end with
// the failure instead of waiting for every call's deadline.
func TestBenchPhaseStopsAtFirstFailure(t *testing.T) {
	callers := []*benchCaller{{}, {}, {}, {}}
	refused := errors.New("connection refused")
	call := func(ctx context.Context, c *benchCaller) error {
		if c == callers[0] {
			return refused
		}
		<-ctx.Done()
		return ctx.Err()
	}
	opts := benchOptions{count: 100, timeout: time.Hour}

	done := make(chan error, 1)
	go func() {
		_, err := runBenchPhase(context.Background(), "Verify", callers, opts, call)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, refused) || !strings.Contains(err.Error(), "Verify failed after 0 successful calls") {
			t.Fatalf("phase returned %v, expected the first failure of Verify", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the phase still runs 10 s after its first failed call")
	}
}

// TestAuthorityBenchSetupHonoursTimeout points the load generator at a
// listener that accepts connections and never responds.
func TestAuthorityBenchSetupHonoursTimeout(t *testing.T) {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close()
	go func() {
		var held []net.Conn
		defer func() {
			for _, conn := range held {
				conn.Close()
			}
		}()
		for {
			conn, err := listener.Accept()
			if err != nil {
				return
			}
			held = append(held, conn)
		}
	}()

	opts := benchOptions{callers: 1, connections: 1, count: 1, rounds: 1, timeout: 300 * time.Millisecond}
	opts.client.Address = listener.Addr().String()
	began := time.Now()
	err = runAuthorityBench(context.Background(), &bytes.Buffer{}, opts)
	if err == nil || !strings.Contains(err.Error(), "prepare a session at authority "+opts.client.Address) {
		t.Fatalf("got %v, expected a failed session set-up that names the authority", err)
	}
	if elapsed := time.Since(began); elapsed > 10*time.Second {
		t.Errorf("the set-up failed after %v, expected about the 300ms --timeout", elapsed)
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

func TestSelectBenchCallsKeepsRoundOrder(t *testing.T) {
	calls, err := selectBenchCalls([]string{"verify", "Authenticate"})
	if err != nil {
		t.Fatalf("selectBenchCalls: %v", err)
	}
	var got []string
	for _, call := range calls {
		got = append(got, call.rpc)
	}
	if want := []string{"Authenticate", "Verify"}; !slices.Equal(got, want) {
		t.Errorf("selected %q, expected %q", got, want)
	}

	all, err := selectBenchCalls(nil)
	if err != nil || len(all) != len(benchTokenCalls) {
		t.Errorf("no --rpc selected %d calls (error %v), expected all %d", len(all), err, len(benchTokenCalls))
	}
}

// TestAuthorityBenchOneRPCWithProfile runs only Verify and checks that the
// report has no other token RPC and that a CPU profile was written.
func TestAuthorityBenchOneRPCWithProfile(t *testing.T) {
	profile := filepath.Join(t.TempDir(), "cpu.pprof")
	var out bytes.Buffer
	opts := benchOptions{callers: 2, connections: 1, count: 3, rounds: 1, timeout: 10 * time.Second,
		rpcs: []string{"Verify"}, cpuProfile: profile}
	if err := runAuthorityBench(context.Background(), &out, opts); err != nil {
		t.Fatalf("bench failed: %v\n%s", err, out.String())
	}
	report := out.String()
	if !strings.Contains(report, "Verify") {
		t.Errorf("report lacks Verify:\n%s", report)
	}
	for _, other := range []string{"IssueCode", "Authenticate", "ConfirmRotation"} {
		if strings.Contains(report, other) {
			t.Errorf("report has %s, which --rpc did not select:\n%s", other, report)
		}
	}

	data, err := os.ReadFile(profile)
	if err != nil {
		t.Fatalf("reading the profile: %v", err)
	}
	// go tool pprof reads gzip-compressed profiles.
	if len(data) < 2 || data[0] != 0x1f || data[1] != 0x8b {
		t.Errorf("profile of %d bytes does not start with the gzip header", len(data))
	}
}

// TestAuthorityBenchFillNamesAuthority points a fill at a port where nothing
// listens. The error must name the authority and how far the fill got.
func TestAuthorityBenchFillNamesAuthority(t *testing.T) {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	address := listener.Addr().String()
	listener.Close()

	opts := benchOptions{callers: 2, connections: 1, count: 1, rounds: 1, fill: 10, timeout: time.Second}
	opts.client.Address = address
	err = runAuthorityBench(context.Background(), &bytes.Buffer{}, opts)
	if err == nil {
		t.Fatal("a fill against a closed port succeeded")
	}
	expected := "fill sessions at authority " + address + ": stopped after 0 of 10 sessions"
	if !strings.Contains(err.Error(), expected) {
		t.Errorf("fill failed with %q, expected it to contain %q", err, expected)
	}
}
