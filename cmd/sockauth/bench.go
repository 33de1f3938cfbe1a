package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	sockauthv1 "github.com/sockauth/sockauth/gen/sockauth/v1"
	"github.com/sockauth/sockauth/internal/authclient"
	"github.com/sockauth/sockauth/internal/cputime"
	"github.com/sockauth/sockauth/internal/serve"
)

// benchOptions configure `sockauth bench authority`.
type benchOptions struct {
	client      authclient.Options
	callers     int
	connections int
	count       int
	rounds      int
	fill        int
	timeout     time.Duration
	// rpcs names the token RPCs to run, or is empty for all of them.
	rpcs []string
	// cpuProfile is the file of a CPU profile of the rounds, or empty.
	cpuProfile string
	// metrics is the URL of the metrics page of the authority at
	// client.Address, or empty.
	metrics string
	// phases adds a table of every phase to the report.
	phases bool
	// readSyncs reads the sync counters of the authority's store, or is nil
	// when they are not available. runAuthorityBench sets it.
	readSyncs syncReader
}

func newBenchCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure the authority under load",
	}

	var opts benchOptions
	authorityCmd := &cobra.Command{
		Use:   "authority",
		Short: "Run concurrent gRPC callers through every token RPC and report rates and latencies",
		Long: `Run concurrent gRPC callers through every token RPC and report rates and latencies.

Each phase runs --callers goroutines, each making --count calls of one RPC,
over --connections shared gRPC connections. A round runs the gRPC health
check, which does no work, and then one phase of each token RPC, and the
command runs --rounds rounds and one more health check phase at the end.
The first failed call stops the run, and the command prints its error.

The columns:
  calls/s        the median rate of the RPC's phases
  p50, p99       percentiles of the latencies of all its calls
  of no-op rate  the health check's rate is the transport's ceiling on this
                 machine. Each token phase is divided by the faster of the
                 health check phases just before and just after its round,
                 and the column gives the median of these ratios, so it need
                 not equal the two printed rates divided.
  round range    the smallest and largest of these ratios. The health
                 check's own range compares each of its phases with the
                 fastest one, and shows how much the ceiling moved.

Without --authority the command starts an authority in-process with a
temporary data folder (synced Badger writes, as in production) and removes
it afterwards. It then adds two columns:
  CPU per call   the CPU time of this process, load generator and authority
                 together, per call (the median over the phases)
  of no-op CPU   that CPU time divided by the health check's

The authority's Badger store makes each write durable with a sync of its
logs, and the RPCs that write wait for one. With the authority in-process,
or with --metrics naming the metrics page of a running one (sockauth serve
--metrics-listen), two more columns show the median over the phases of:
  writes/sync    the session records written, divided by the syncs
  sync           the mean time of one sync
counting only the phases that synced. They count every write of the
authority during a phase, so other clients of a running authority change
them. IssueCode and each rotation write one record per call, while
ConfirmRotation writes only a session's first confirmation, so its columns
describe a few syncs. --metrics-listen adds Prometheus interceptors to
every call of the authority, so compare only runs with the same setting.
--phases adds a table of every phase, with its own ratio to the no-op
rate, for comparing each round's rate with the time its syncs took.

--rpc limits the rounds to some of the token RPCs, and --cpu-profile writes
a CPU profile of the rounds, no-op phases included, for go tool pprof. With
the authority in-process, the profile covers the authority too.

Against a running authority, start it with --log-level error for figures
comparable with docs/BENCHMARKS.md: at the default info level it logs one
line per rotation.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := serve.ApplyEnv(cmd.Flags()); err != nil {
				return err
			}
			return runAuthorityBench(cmd.Context(), cmd.OutOrStdout(), opts)
		},
	}
	flags := authorityCmd.Flags()
	flags.StringVar(&opts.client.Address, "authority", "", "gRPC address of a running authority; empty starts one in-process")
	authclient.AddFlags(flags, "", &opts.client)
	flags.IntVar(&opts.callers, "callers", 64, "concurrent callers")
	flags.IntVar(&opts.connections, "connections", 4, "gRPC connections shared by the callers")
	flags.IntVar(&opts.count, "count", 200, "calls per caller in each phase")
	flags.IntVar(&opts.rounds, "rounds", 5, "rounds of phases; more rounds make the ratios steadier on a busy machine")
	flags.IntVar(&opts.fill, "fill", 0, "live sessions to create before the phases (IssueCode and Authenticate each)")
	flags.DurationVar(&opts.timeout, "timeout", 10*time.Second, "deadline of each call")
	flags.StringSliceVar(&opts.rpcs, "rpc", nil, "token RPCs to run, of "+strings.Join(benchRPCNames(), ", ")+"; repeat or separate with commas; empty runs all")
	flags.StringVar(&opts.cpuProfile, "cpu-profile", "", "file to write a CPU profile of the rounds to")
	flags.StringVar(&opts.metrics, "metrics", "", "URL of the metrics page of the authority named by --authority, such as http://127.0.0.1:9090/metrics, for the sync columns")
	flags.BoolVar(&opts.phases, "phases", false, "also print each phase's rate, ratio and syncs")
	cmd.AddCommand(authorityCmd)
	return cmd
}

// benchPhase is one measured RPC.
type benchPhase struct {
	name      string
	latencies []time.Duration
	elapsed   time.Duration
	// cpu is the CPU time that the whole process used during the phase, or
	// -1 when the system does not report it.
	cpu time.Duration
	// syncs are the store's syncs during the phase, or nil when they are not
	// available.
	syncs *storeSyncs
}

// cpuPerCall returns the process's CPU time per call, or -1.
func (p *benchPhase) cpuPerCall() time.Duration {
	if p.cpu < 0 || len(p.latencies) == 0 {
		return -1
	}
	return p.cpu / time.Duration(len(p.latencies))
}

func (p *benchPhase) rate() float64 {
	return float64(len(p.latencies)) / p.elapsed.Seconds()
}

func (p *benchPhase) percentile(q float64) time.Duration {
	if len(p.latencies) == 0 {
		return 0
	}
	return p.latencies[int(q*float64(len(p.latencies)-1))]
}

// benchCaller is the state of one caller across phases.
type benchCaller struct {
	authority sockauthv1.AuthorityServiceClient
	health    healthpb.HealthClient
	// token is the caller's current session token.
	token string
}

// prepare logs the caller in: it gets a code and trades it for a session
// token, each call within timeout.
func (c *benchCaller) prepare(ctx context.Context, timeout time.Duration) error {
	callCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	code, err := c.authority.IssueCode(callCtx, &sockauthv1.IssueCodeRequest{Subject: "bench"})
	if err != nil {
		return err
	}
	cancel()

	callCtx, cancel = context.WithTimeout(ctx, timeout)
	defer cancel()
	reply, err := c.authority.Authenticate(callCtx, &sockauthv1.AuthenticateRequest{Token: code.GetCode()})
	if err != nil {
		return err
	}
	c.token = reply.GetToken()
	return nil
}

// validate checks the flags that the command reads itself.
func (o benchOptions) validate() error {
	for _, flag := range []struct {
		name  string
		value int
	}{{"--callers", o.callers}, {"--connections", o.connections}, {"--count", o.count}, {"--rounds", o.rounds}} {
		if flag.value < 1 {
			return fmt.Errorf("%s is %d, expected at least 1", flag.name, flag.value)
		}
	}
	if o.fill < 0 {
		return fmt.Errorf("--fill is %d, expected 0 or more", o.fill)
	}
	if o.timeout <= 0 {
		return fmt.Errorf("--timeout is %v, expected a positive duration such as 10s", o.timeout)
	}
	if o.metrics != "" {
		if o.client.Address == "" {
			return errors.New("--metrics needs --authority, because an in-process authority reports its syncs without it")
		}
		u, err := url.Parse(o.metrics)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("--metrics %q is not an http or https URL, expected one such as http://127.0.0.1:9090/metrics", o.metrics)
		}
	}
	_, err := selectBenchCalls(o.rpcs)
	return err
}

func runAuthorityBench(ctx context.Context, out io.Writer, opts benchOptions) error {
	if err := opts.validate(); err != nil {
		return err
	}

	inProcess := opts.client.Address == ""
	if inProcess {
		dir, err := os.MkdirTemp("", "sockauth-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		// The authority logs nothing below errors, as make bench runs it: a
		// line per rotation would count in the CPU per call.
		quiet := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelError}))
		a, err := serve.Start(ctx, serve.Config{Listen: "127.0.0.1:0", DataDir: dir, Logger: quiet})
		if err != nil {
			return err
		}
		defer a.Close()
		opts.client.Address = a.Addr()
		opts.readSyncs = inProcessSyncs(a)
		fmt.Fprintf(out, "in-process authority on %s, data in %s\n", a.Addr(), dir)
	}
	if opts.metrics != "" {
		opts.readSyncs = scrapedSyncs(opts.metrics, &http.Client{Timeout: opts.timeout})
		// A first reading reports a wrong address before any load runs.
		if _, err := opts.readSyncs(ctx); err != nil {
			return err
		}
	}

	conns := make([]*grpc.ClientConn, opts.connections)
	for i := range conns {
		conn, err := authclient.Dial(opts.client)
		if err != nil {
			return err
		}
		defer conn.Close()
		conns[i] = conn
	}
	callers := make([]*benchCaller, opts.callers)
	for i := range callers {
		conn := conns[i%len(conns)]
		callers[i] = &benchCaller{authority: sockauthv1.NewAuthorityServiceClient(conn), health: healthpb.NewHealthClient(conn)}
	}

	if opts.fill > 0 {
		if err := fillSessions(ctx, out, callers, opts); err != nil {
			return err
		}
	}

	// Each caller needs a session token before the token phases.
	for _, c := range callers {
		if err := c.prepare(ctx, opts.timeout); err != nil {
			return fmt.Errorf("prepare a session at authority %s: %w", opts.client.Address, err)
		}
	}

	if opts.cpuProfile != "" {
		stop, err := cputime.StartProfile(opts.cpuProfile)
		if err != nil {
			return err
		}
		defer func() {
			if err := stop(); err != nil {
				slog.Error("writing the CPU profile failed", "file", opts.cpuProfile, "error", err)
			}
		}()
	}
	rounds, ceilings, err := runBenchRounds(ctx, callers, opts)
	if err != nil {
		return err
	}
	return printBenchReport(out, opts, inProcess, rounds, ceilings)
}

// benchNoop is the health check, which does no work: the transport's ceiling.
var benchNoop = benchCall{"health.Check (no-op)", "Check", func(ctx context.Context, c *benchCaller) error {
	_, err := c.health.Check(ctx, &healthpb.HealthCheckRequest{})
	return err
}, false}

// benchRPCNames returns the names that --rpc accepts, in the order of a round.
func benchRPCNames() []string {
	names := make([]string, len(benchTokenCalls))
	for i, call := range benchTokenCalls {
		names[i] = call.rpc
	}
	return names
}

// selectBenchCalls returns the token RPCs named in rpcs, in the order of a
// round, or all of them when rpcs is empty. Names match without regard to
// case.
func selectBenchCalls(rpcs []string) ([]benchCall, error) {
	if len(rpcs) == 0 {
		return benchTokenCalls, nil
	}
	for _, name := range rpcs {
		known := slices.ContainsFunc(benchTokenCalls, func(call benchCall) bool { return strings.EqualFold(call.rpc, name) })
		if !known {
			return nil, fmt.Errorf("--rpc %q is not a token RPC, expected one of %s", name, strings.Join(benchRPCNames(), ", "))
		}
	}
	var selected []benchCall
	for _, call := range benchTokenCalls {
		if slices.ContainsFunc(rpcs, func(name string) bool { return strings.EqualFold(call.rpc, name) }) {
			selected = append(selected, call)
		}
	}
	return selected, nil
}

// benchTokenCalls are the token RPCs, in the order of a round.
var benchTokenCalls = []benchCall{
	{"IssueCode", "IssueCode", func(ctx context.Context, c *benchCaller) error {
		_, err := c.authority.IssueCode(ctx, &sockauthv1.IssueCodeRequest{Subject: "bench"})
		return err
	}, true},
	{"Authenticate (rotation)", "Authenticate", func(ctx context.Context, c *benchCaller) error {
		reply, err := c.authority.Authenticate(ctx, &sockauthv1.AuthenticateRequest{Token: c.token})
		if err == nil {
			c.token = reply.GetToken()
		}
		return err
	}, true},
	{"ConfirmRotation", "ConfirmRotation", func(ctx context.Context, c *benchCaller) error {
		_, err := c.authority.ConfirmRotation(ctx, &sockauthv1.ConfirmRotationRequest{Token: c.token})
		return err
	}, false},
	{"Verify", "Verify", func(ctx context.Context, c *benchCaller) error {
		_, err := c.authority.Verify(ctx, &sockauthv1.VerifyRequest{Token: c.token})
		return err
	}, false},
}

// runBenchRounds runs opts.rounds rounds and returns their token phases and
// the no-op phases. Each round starts with a no-op phase, and one more ends
// the run, so that every round has a ceiling on either side: ceilings[i] and
// ceilings[i+1] are those of rounds[i].
func runBenchRounds(ctx context.Context, callers []*benchCaller, opts benchOptions) ([]benchRound, []*benchPhase, error) {
	run := func(call benchCall) (*benchPhase, error) {
		phase, err := runBenchPhase(ctx, call.name, callers, opts, call.call)
		if err != nil {
			return nil, fmt.Errorf("authority %s: %w", opts.client.Address, err)
		}
		if err := checkPhaseWrites(call, phase, opts); err != nil {
			return nil, err
		}
		return phase, nil
	}

	calls, err := selectBenchCalls(opts.rpcs)
	if err != nil {
		return nil, nil, err
	}
	var rounds []benchRound
	ceilings := make([]*benchPhase, 0, opts.rounds+1)
	for range opts.rounds {
		ceiling, err := run(benchNoop)
		if err != nil {
			return nil, nil, err
		}
		ceilings = append(ceilings, ceiling)
		round := make(benchRound, 0, len(calls))
		for _, call := range calls {
			phase, err := run(call)
			if err != nil {
				return nil, nil, err
			}
			round = append(round, phase)
		}
		rounds = append(rounds, round)
	}
	ceiling, err := run(benchNoop)
	if err != nil {
		return nil, nil, err
	}
	return rounds, append(ceilings, ceiling), nil
}

// checkPhaseWrites rejects a phase of an RPC that writes one record per call
// when the store recorded fewer writes than calls. Fewer writes mean that
// --metrics names the page of another authority, or a page that does not
// change.
func checkPhaseWrites(call benchCall, phase *benchPhase, opts benchOptions) error {
	if !call.writesEach || phase.syncs == nil || phase.syncs.writes >= uint64(len(phase.latencies)) {
		return nil
	}
	return fmt.Errorf("the store recorded %d writes during %d %s calls, which write one session record each, "+
		"so --metrics %s is not the metrics page of the authority at %s",
		phase.syncs.writes, len(phase.latencies), call.rpc, opts.metrics, opts.client.Address)
}

// printBenchReport prints the table of the rounds. The CPU columns appear
// only when the authority ran in this process, whose CPU time they count.
func printBenchReport(out io.Writer, opts benchOptions, inProcess bool, rounds []benchRound, ceilings []*benchPhase) error {
	roundsWord := "rounds"
	if opts.rounds == 1 {
		roundsWord = "round"
	}
	fmt.Fprintf(out, "%d callers, %d connections, %d calls per caller and phase, %d %s\n",
		opts.callers, opts.connections, opts.count, opts.rounds, roundsWord)
	summaries := append([]benchSummary{summarizeCeiling(ceilings)}, summarizeRounds(rounds, ceilings)...)
	showCPU := inProcess && summaries[0].cpuPerCall >= 0
	showSyncs := opts.readSyncs != nil
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	header := "RPC\tcalls/s\tp50\tp99\tof no-op rate\tround range\t"
	if showSyncs {
		header += "writes/sync\tsync\t"
	}
	if showCPU {
		header += "CPU per call\tof no-op CPU\t"
	}
	fmt.Fprintln(w, header)
	for _, s := range summaries {
		fmt.Fprintf(w, "%s\t%.0f\t%v\t%v\t%.0f%%\t%.0f-%.0f%%\t", s.name, s.rate,
			s.p50.Round(time.Microsecond), s.p99.Round(time.Microsecond),
			100*s.ratio, 100*s.minRatio, 100*s.maxRatio)
		if showSyncs {
			fmt.Fprintf(w, "%s\t%s\t", formatWritesPerSync(s.writesPerSync), formatSyncTime(s.meanSync))
		}
		if showCPU {
			fmt.Fprintf(w, "%v\t%.2f×\t", s.cpuPerCall.Round(100*time.Nanosecond),
				float64(s.cpuPerCall)/float64(summaries[0].cpuPerCall))
		}
		fmt.Fprintln(w)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if showCPU {
		fmt.Fprintln(out, "CPU per call is the median over the phases of the CPU time of this process, load generator and authority together, divided by the calls.")
	}
	if showSyncs {
		fmt.Fprintln(out, "writes/sync and sync are medians over the phases that synced of the store's writes per sync and mean sync time; - marks RPCs whose phases synced nothing.")
	}
	if opts.phases {
		return printBenchPhases(out, rounds, ceilings, showSyncs)
	}
	return nil
}

// printBenchPhases prints a row for each phase, in the order they ran, with
// the ratio of each token phase to the faster no-op phase beside its round.
func printBenchPhases(out io.Writer, rounds []benchRound, ceilings []*benchPhase, showSyncs bool) error {
	fmt.Fprintln(out, "\neach phase:")
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	header := "round\tRPC\tcalls/s\tof no-op rate\t"
	if showSyncs {
		header += "writes/sync\tsync\t"
	}
	fmt.Fprintln(w, header)
	row := func(round string, p *benchPhase, ratio string) {
		fmt.Fprintf(w, "%s\t%s\t%.0f\t%s\t", round, p.name, p.rate(), ratio)
		if showSyncs {
			during := storeSyncs{}
			if p.syncs != nil {
				during = *p.syncs
			}
			fmt.Fprintf(w, "%s\t%s\t", formatWritesPerSync(during.writesPerSync()), formatSyncTime(during.meanSync()))
		}
		fmt.Fprintln(w)
	}
	for i, round := range rounds {
		row("", ceilings[i], "")
		ceiling := max(ceilings[i].rate(), ceilings[i+1].rate())
		for _, p := range round {
			row(fmt.Sprint(i+1), p, fmt.Sprintf("%.0f%%", 100*p.rate()/ceiling))
		}
	}
	row("", ceilings[len(ceilings)-1], "")
	return w.Flush()
}

// formatWritesPerSync formats writes per sync with one decimal, or returns - for none.
func formatWritesPerSync(n float64) string {
	if n < 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", n)
}

// formatSyncTime formats a sync's duration rounded to the microsecond, or returns - for none.
func formatSyncTime(d time.Duration) string {
	if d < 0 {
		return "-"
	}
	return d.Round(time.Microsecond).String()
}

// benchCall is the RPC of one phase. name heads its row of the report, and
// rpc is the RPC's name, as --rpc takes it. writesEach is set when every
// successful call writes one session record.
type benchCall struct {
	name       string
	rpc        string
	call       func(ctx context.Context, c *benchCaller) error
	writesEach bool
}

// benchRound holds one phase of each token RPC, in order.
type benchRound []*benchPhase

// benchSummary is one row of the report: an RPC over every round.
type benchSummary struct {
	name string
	// rate is the median rate of the RPC's phases, and p50 and p99 are
	// percentiles of all its calls.
	rate     float64
	p50, p99 time.Duration
	// cpuPerCall is the median of the phases' CPU time per call, or -1 when
	// the system does not report CPU time.
	cpuPerCall time.Duration
	// ratio is the median over the rounds of the phase's rate divided by the
	// faster of the no-op phases around its round, and minRatio and maxRatio
	// are the smallest and largest of those.
	ratio, minRatio, maxRatio float64
	// writesPerSync and meanSync are the medians over the phases that synced
	// of their writes per sync and mean sync time, or -1 when none synced.
	writesPerSync float64
	meanSync      time.Duration
}

// summarizeCeiling summarizes the no-op phases. Its ratio is 100%, and its
// range compares each no-op phase with the fastest one, which shows how much
// the ceiling itself moved during the run.
func summarizeCeiling(ceilings []*benchPhase) benchSummary {
	fastest := 0.0
	for _, p := range ceilings {
		fastest = max(fastest, p.rate())
	}
	ratios := make([]float64, len(ceilings))
	for i, p := range ceilings {
		ratios[i] = p.rate() / fastest
	}
	summary := summarize(ceilings, ratios)
	summary.ratio = 1
	return summary
}

// summarizeRounds summarizes each token RPC over the rounds. ceilings[i] and
// ceilings[i+1] are the no-op phases before and after rounds[i].
func summarizeRounds(rounds []benchRound, ceilings []*benchPhase) []benchSummary {
	if len(rounds) == 0 {
		return nil
	}
	summaries := make([]benchSummary, 0, len(rounds[0]))
	for call := range rounds[0] {
		phases := make([]*benchPhase, len(rounds))
		ratios := make([]float64, len(rounds))
		for i, round := range rounds {
			phases[i] = round[call]
			ratios[i] = round[call].rate() / max(ceilings[i].rate(), ceilings[i+1].rate())
		}
		summaries = append(summaries, summarize(phases, ratios))
	}
	return summaries
}

// summarize combines the phases of one RPC and their ratios to a ceiling.
func summarize(phases []*benchPhase, ratios []float64) benchSummary {
	all := &benchPhase{name: phases[0].name}
	rates := make([]float64, len(phases))
	cpu := make([]float64, 0, len(phases))
	var perSync, syncTimes []float64
	for i, p := range phases {
		all.latencies = append(all.latencies, p.latencies...)
		rates[i] = p.rate()
		if perCall := p.cpuPerCall(); perCall >= 0 {
			cpu = append(cpu, float64(perCall))
		}
		if p.syncs != nil && p.syncs.syncs > 0 {
			perSync = append(perSync, p.syncs.writesPerSync())
			syncTimes = append(syncTimes, float64(p.syncs.meanSync()))
		}
	}
	writesPerSync, meanSync := -1.0, time.Duration(-1)
	if len(perSync) > 0 {
		writesPerSync, meanSync = median(perSync), time.Duration(median(syncTimes))
	}
	slices.Sort(all.latencies)
	cpuPerCall := time.Duration(-1)
	if len(cpu) == len(phases) {
		cpuPerCall = time.Duration(median(cpu))
	}
	return benchSummary{
		name:          all.name,
		writesPerSync: writesPerSync,
		meanSync:      meanSync,
		cpuPerCall:    cpuPerCall,
		rate:          median(rates),
		p50:           all.percentile(0.50),
		p99:           all.percentile(0.99),
		ratio:         median(ratios),
		minRatio:      slices.Min(ratios),
		maxRatio:      slices.Max(ratios),
	}
}

// median returns the middle value of values, or the mean of the two middle
// values when their count is even. values must not be empty.
func median(values []float64) float64 {
	sorted := slices.Sorted(slices.Values(values))
	middle := len(sorted) / 2
	if len(sorted)%2 == 1 {
		return sorted[middle]
	}
	return (sorted[middle-1] + sorted[middle]) / 2
}

// runBenchPhase runs count calls per caller concurrently and collects their
// latencies, sorted. The first failed call ends the phase and is returned,
// since a benchmark with failures measures something else.
func runBenchPhase(ctx context.Context, name string, callers []*benchCaller, opts benchOptions,
	call func(ctx context.Context, c *benchCaller) error) (*benchPhase, error) {
	phase := &benchPhase{name: name, cpu: -1}
	var syncsBefore storeSyncs
	if opts.readSyncs != nil {
		var err error
		if syncsBefore, err = opts.readSyncs(ctx); err != nil {
			return nil, err
		}
	}
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	cpuBefore, cpuOK := cputime.Process()
	var (
		mu       sync.Mutex // guards phase and firstErr
		firstErr error
		wg       sync.WaitGroup
		start    = time.Now()
	)
	for _, c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			latencies := make([]time.Duration, 0, opts.count)
			defer func() {
				mu.Lock()
				phase.latencies = append(phase.latencies, latencies...)
				mu.Unlock()
			}()
			for range opts.count {
				callCtx, cancel := context.WithTimeout(ctx, opts.timeout)
				began := time.Now()
				err := call(callCtx, c)
				cancel()
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
						stop()
					}
					mu.Unlock()
					return
				}
				latencies = append(latencies, time.Since(began))
			}
		}()
	}
	wg.Wait()
	phase.elapsed = time.Since(start)
	if firstErr != nil {
		return nil, fmt.Errorf("%s failed after %d successful calls, so the run stopped: %w",
			name, len(phase.latencies), firstErr)
	}
	if cpuAfter, ok := cputime.Process(); ok && cpuOK {
		phase.cpu = cpuAfter - cpuBefore
	}
	if opts.readSyncs != nil {
		after, err := opts.readSyncs(ctx)
		if err != nil {
			return nil, err
		}
		during, err := after.since(syncsBefore)
		if err != nil {
			if opts.metrics != "" {
				err = fmt.Errorf("metrics at %s: %w", opts.metrics, err)
			}
			return nil, err
		}
		phase.syncs = &during
	}
	slices.Sort(phase.latencies)
	return phase, nil
}

// fillSessions creates opts.fill live sessions, spread over the callers.
func fillSessions(ctx context.Context, out io.Writer, callers []*benchCaller, opts benchOptions) error {
	start := time.Now()
	var (
		wg       sync.WaitGroup
		created  atomic.Int64
		mu       sync.Mutex // guards firstErr
		firstErr error
	)
	for i, c := range callers {
		share := opts.fill / len(callers)
		if i < opts.fill%len(callers) {
			share++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range share {
				callCtx, cancel := context.WithTimeout(ctx, opts.timeout)
				code, err := c.authority.IssueCode(callCtx, &sockauthv1.IssueCodeRequest{Subject: "bench"})
				if err == nil {
					_, err = c.authority.Authenticate(callCtx, &sockauthv1.AuthenticateRequest{Token: code.GetCode()})
				}
				cancel()
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				created.Add(1)
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return fmt.Errorf("fill sessions at authority %s: stopped after %d of %d sessions: %w",
			opts.client.Address, created.Load(), opts.fill, firstErr)
	}
	fmt.Fprintf(out, "created %d live sessions in %v\n", opts.fill, time.Since(start).Round(time.Millisecond))
	return nil
}
