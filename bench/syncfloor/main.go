//go:build linux

// Command syncfloor measures how far one durable write per call lowers the
// rate of gRPC calls on this machine, without the rest of a rotation.
//
// It serves the gRPC health service on loopback with the authority's
// transport settings, by default in a child process as `sockauth serve`
// runs beside the load generator of `make bench`. A round runs four phases
// of concurrent callers, each making Checks of one health service name:
//
//   - the empty name does no work, as the no-op of `sockauth bench authority`;
//   - "synced" appends a record to a log file and waits for a group-committed
//     fdatasync that covers it, as an Authenticate rotation waits for the
//     sync of Badger's write-ahead log;
//   - "synced-crypto" does the same and also decrypts a v2.local token and
//     encrypts one of the same size with the PASETO library alone, the part
//     of a rotation's token work that the token format fixes;
//   - "synced-codec" does the same with the authority's codec instead: it
//     decodes a token, claims and all, and encodes the next one with a new
//     random token id, the whole token work of a rotation.
//
// With -store a round has three more phases, which do the same token work
// and write to Badger instead of the log:
//
//   - "store-codec" loads a session from the authority's Badger store and
//     stores its rotated record with CompareAndSwap, as a rotation does, so
//     that the store's own group-committed sync covers it;
//   - "group-codec" writes one key per call into a transaction that the
//     waiting calls share, in a Badger database with the store's options,
//     commits it and syncs the memtable's write-ahead log once for all of
//     them. That is the store's sync design without the store's own work:
//     no version check, record encoding, cache or marks of unsynced sessions;
//   - "badger-codec" reads and writes one key in a Badger database with the
//     store's options and Badger's own synced writes instead of the store's
//     sync stage.
//
// The command prints each phase's rate as a share of the faster no-op phase
// beside it. The log is the cheapest durable write that the authority could
// make: a file filled and synced beforehand, so that no sync writes metadata,
// small records, no tokens in the messages, and no lookup, encoding or lock
// of a store. The shares are therefore bounds on what rotations can reach on
// the same machine, disk and file system, with the same sync design and the
// same layout of processes. One process gives lower shares than two, because
// its no-op calls are faster. The store phases keep each rotated session in
// Badger as the authority does, so they leave out only the service's checks,
// the tokens in the messages and the metrics. With -store the server's heap
// also holds the caches of three Badger databases, which changes the no-op
// rate too, so compare shares only within one run.
//
//	go run ./bench/syncfloor -callers 64 -count 300 -rounds 5
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	"github.com/sockauth/sockauth/internal/authclient"
	"github.com/sockauth/sockauth/internal/cputime"
)

// Limits of the sizes that the flags set.
const (
	maxLogMiB  = 1024
	maxHeapMiB = 4096
)

// options are the command-line flags.
type options struct {
	callers     int
	connections int
	count       int
	rounds      int
	recordSize  int
	log         logConfig
	heapSize    int64
	dir         string
	cpuProfile  string
	timeout     time.Duration
	// store adds the phases that write each rotation to Badger instead of
	// the log.
	store bool
	// inProcess serves in this process instead of a child process.
	inProcess bool
	// child makes this process the server of a parent syncfloor process.
	child bool
}

func main() {
	opts, err := parseOptions(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "syncfloor:", err)
		os.Exit(2)
	}
	if opts.child {
		err = serveChild(opts)
	} else {
		// A broken standard output and a hangup end the run like an
		// interrupt, so that it removes its folder. After the first signal
		// the default handling returns, and a second one ends the program.
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE)
		context.AfterFunc(ctx, stop)
		err = run(ctx, os.Stdout, opts)
		stop()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "syncfloor:", err)
		os.Exit(1)
	}
}

// parseOptions parses and checks the command-line flags in args.
func parseOptions(args []string) (options, error) {
	var (
		opts            options
		mode            string
		logMiB, heapMiB int
	)
	flags := flag.NewFlagSet("syncfloor", flag.ContinueOnError)
	flags.IntVar(&opts.callers, "callers", 64, "concurrent callers")
	flags.IntVar(&opts.connections, "connections", 4, "gRPC connections shared by the callers")
	flags.IntVar(&opts.count, "count", 300, "calls per caller in each phase")
	flags.IntVar(&opts.rounds, "rounds", 5, "rounds of phases")
	flags.IntVar(&opts.recordSize, "record", 128, "bytes written per synced call")
	flags.IntVar(&logMiB, "log-mib", 8, fmt.Sprintf("size of the log file in MiB, at most %d; records wrap around to its start", maxLogMiB))
	flags.StringVar(&mode, "write", string(writeMapped), "how records reach the file: mmap (as Badger writes its logs) or pwrite")
	flags.IntVar(&opts.log.syncers, "syncers", 1, "goroutines that sync the log, each taking the writes waiting when its sync starts; "+
		"the authority's store runs one")
	flags.BoolVar(&opts.log.sparse, "sparse", false, "create the log by setting its size instead of filling it, as Badger creates its "+
		"write-ahead logs, so that syncs also write the allocation of new blocks; use a large -log-mib so that records do not wrap around")
	flags.DurationVar(&opts.log.overlapAfter, "overlap-after", 0,
		"with -syncers 2 or more, start another sync while one runs only once that one has run this long; 0 starts it at once")
	flags.IntVar(&heapMiB, "heap-mib", 10, fmt.Sprintf("MiB of live heap that the server holds, at most %d. The authority "+
		"held 8 to 16 MB under a rotation load, and a smaller heap makes the garbage collector run more often and lowers the no-op rate", maxHeapMiB))
	flags.StringVar(&opts.dir, "dir", "", "folder on a disk for the log file and, with -store, the Badger databases; "+
		"empty uses the system's temporary folder")
	flags.StringVar(&opts.cpuProfile, "cpu-profile", "", "file to write a CPU profile of the rounds to; with -in-process it covers the server too")
	flags.DurationVar(&opts.timeout, "timeout", 10*time.Second, "deadline of each call")
	flags.BoolVar(&opts.store, "store", false, "add three phases that do the token work and then, instead of appending to the log, "+
		"rotate a session record in the authority's Badger store, write a key with the store's group commit alone, "+
		"or write a key with Badger's own synced writes; "+
		"-write, -record, -sparse, -syncers and -overlap-after apply to the log only")
	flags.BoolVar(&opts.inProcess, "in-process", false, "serve in this process, as sockauth bench authority without --authority does")
	flags.BoolVar(&opts.child, childFlag, false, "internal: serve for a parent syncfloor process, which sets this flag")

	if err := flags.Parse(args); err != nil {
		return options{}, err
	}
	if flags.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected arguments %q: every setting is a flag", flags.Args())
	}
	if logMiB < 1 || logMiB > maxLogMiB {
		return options{}, fmt.Errorf("invalid -log-mib %d: it must be from 1 to %d", logMiB, maxLogMiB)
	}
	if heapMiB < 0 || heapMiB > maxHeapMiB {
		return options{}, fmt.Errorf("invalid -heap-mib %d: it must be from 0 to %d", heapMiB, maxHeapMiB)
	}

	opts.log.mode = writeMode(mode)
	opts.log.size = int64(logMiB) << 20
	opts.heapSize = int64(heapMiB) << 20
	return opts, opts.validate()
}

func (o options) validate() error {
	for _, count := range []struct {
		flag  string
		value int
	}{{"callers", o.callers}, {"connections", o.connections}, {"count", o.count}, {"rounds", o.rounds}, {"syncers", o.log.syncers}} {
		if count.value < 1 {
			return fmt.Errorf("invalid -%s %d: it must be positive", count.flag, count.value)
		}
	}
	if o.recordSize < 1 || int64(o.recordSize) > o.log.size {
		return fmt.Errorf("invalid -record %d: it must be positive and fit in the log of %d bytes", o.recordSize, o.log.size)
	}
	if o.log.mode != writePwrite && o.log.mode != writeMapped {
		return fmt.Errorf("invalid -write %q: use %s or %s", o.log.mode, writeMapped, writePwrite)
	}
	if o.log.overlapAfter < 0 {
		return fmt.Errorf("invalid -overlap-after %s: it must not be negative", o.log.overlapAfter)
	}
	if o.log.overlapAfter > 0 && o.log.syncers < 2 {
		return fmt.Errorf("invalid -overlap-after %s with -syncers %d: it needs 2 or more sync loops", o.log.overlapAfter, o.log.syncers)
	}
	if o.timeout <= 0 {
		return fmt.Errorf("invalid -timeout %s: it must be positive", o.timeout)
	}
	return nil
}

// phaseKind is one kind of phase: the health service name that its calls
// check, and its row label.
type phaseKind struct {
	label, service string
}

var (
	noopPhase   = phaseKind{"no-op", ""}
	syncedPhase = phaseKind{"synced write", "synced"}
	cryptoPhase = phaseKind{"synced write + PASETO crypto", "synced-crypto"}
	codecPhase  = phaseKind{"synced write + token codec", "synced-codec"}
	storePhase  = phaseKind{"Badger store + token codec", "store-codec"}
	groupPhase  = phaseKind{"Badger group commit + token codec", "group-codec"}
	rawPhase    = phaseKind{"Badger synced writes + token codec", "badger-codec"}
)

// workPhases returns the phases of a round after its no-op phase.
func (o options) workPhases() []phaseKind {
	kinds := []phaseKind{syncedPhase, cryptoPhase, codecPhase}
	if o.store {
		kinds = append(kinds, storePhase, groupPhase, rawPhase)
	}
	return kinds
}

// floorStats are the counters that a phase reads before and after it.
type floorStats struct {
	log logStats
	// cpu is the CPU time of the server and the callers together.
	cpu time.Duration
}

// statsReader reads the counters of the server and the callers.
type statsReader func(ctx context.Context) (floorStats, error)

// phase is one measured run of all callers.
type phase struct {
	calls   int
	elapsed time.Duration
	cpu     time.Duration
	syncs   logStats
}

func (p phase) rate() float64 { return float64(p.calls) / p.elapsed.Seconds() }

func (p phase) cpuPerCall() time.Duration { return p.cpu / time.Duration(p.calls) }

func run(ctx context.Context, out io.Writer, opts options) (err error) {
	var (
		addr, dir, where string
		readStats        statsReader
	)
	// Bad folders and profile paths fail here, before a server starts.
	if err := checkFileSystem(opts.dir); err != nil {
		return err
	}
	if opts.cpuProfile != "" {
		stop, startErr := cputime.StartProfile(opts.cpuProfile)
		if startErr != nil {
			return startErr
		}
		defer func() { err = errors.Join(err, stop()) }()
	}

	if opts.inProcess {
		server, startErr := startFloorServer(opts)
		if startErr != nil {
			return startErr
		}
		defer func() { err = errors.Join(err, server.stop()) }()
		addr, dir, where = server.addr, server.dir, "in this process"
		readStats = func(context.Context) (floorStats, error) {
			cpu, err := processCPU()
			return floorStats{log: server.health.stats(), cpu: cpu}, err
		}
	} else {
		child, startErr := startChild(ctx, opts)
		if startErr != nil {
			return startErr
		}
		defer func() {
			if stopErr := child.stop(); stopErr != nil {
				err = errors.Join(err, fmt.Errorf("stopping the server process failed: %w", stopErr))
			}
		}()
		addr, dir, where = child.addr, child.dir, fmt.Sprintf("in a separate process (pid %d)", child.cmd.Process.Pid)
	}

	clients := make([]healthpb.HealthClient, opts.connections)
	for i := range clients {
		conn, err := authclient.Dial(authclient.Options{Address: addr})
		if err != nil {
			return err
		}
		defer conn.Close()
		clients[i] = healthpb.NewHealthClient(conn)
	}
	if readStats == nil {
		readStats = remoteStats(clients[0], opts.timeout)
	}
	// Each connection opens before the first phase starts its clock.
	for _, client := range clients {
		if err := checkOnce(ctx, client, opts.timeout); err != nil {
			return interruption(ctx, err)
		}
	}

	fmt.Fprintf(out, "%d callers, %d connections, %d calls per caller and phase, %s, server %s with %d MiB of live heap\n",
		opts.callers, opts.connections, opts.count, plural(opts.rounds, "round"), where, opts.heapSize>>20)
	layout := "filled"
	if opts.log.sparse {
		layout = "sparse"
	}
	fmt.Fprintf(out, "%d-byte records written with %s into a %s log file of %d MiB in %s (removed afterwards), "+
		"synced with fdatasync by %s\n", opts.recordSize, opts.log.mode, layout, opts.log.size>>20, dir, plural(opts.log.syncers, "sync loop"))
	if opts.store {
		fmt.Fprintf(out, "the store phases write to Badger databases in the same folder: %d sessions in the authority's store, "+
			"synced by its one sync loop, as many keys committed in shared transactions and synced by one loop, "+
			"and as many keys with Badger's own synced writes\n", opts.callers)
	}
	if opts.log.overlapAfter > 0 {
		fmt.Fprintf(out, "a sync loop starts a sync while another runs once that one has run %s\n", opts.log.overlapAfter)
	}

	noops, work, err := runRounds(ctx, clients, opts, readStats)
	if err != nil {
		return interruption(ctx, err)
	}
	return printReport(out, opts.workPhases(), noops, work)
}

// interruption returns err, or the cause of ctx's end when ctx has ended,
// because the calls then fail only as a consequence of the interruption.
func interruption(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); cause != nil {
		return fmt.Errorf("interrupted: %w", cause)
	}
	return err
}

// checkOnce makes one no-op call, which opens the client's connection.
func checkOnce(ctx context.Context, client healthpb.HealthClient, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if _, err := client.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		return fmt.Errorf("connect to the benchmark server: %w", err)
	}
	return nil
}

// remoteStats returns a statsReader that requests the counters of the
// server in another process and adds this process's CPU time.
func remoteStats(client healthpb.HealthClient, timeout time.Duration) statsReader {
	return func(ctx context.Context) (floorStats, error) {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		var trailer metadata.MD
		if _, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: statsService}, grpc.Trailer(&trailer)); err != nil {
			return floorStats{}, fmt.Errorf("read the server's stats: %w", err)
		}
		stats, err := readTrailerStats(trailer)
		if err != nil {
			return floorStats{}, err
		}
		cpu, err := processCPU()
		stats.cpu += cpu
		return stats, err
	}
}

// runRounds runs opts.rounds rounds, each a no-op phase and then one phase of
// each kind in workPhases, and a last no-op phase. work[k][i] is the phase of
// kind workPhases[k] in round i, and noops[i] and noops[i+1] are the no-op
// phases on either side of round i.
func runRounds(ctx context.Context, clients []healthpb.HealthClient, opts options, readStats statsReader) (noops []phase, work [][]phase, err error) {
	workPhases := opts.workPhases()
	work = make([][]phase, len(workPhases))
	for range opts.rounds {
		p, err := runPhase(ctx, clients, opts, noopPhase, readStats)
		if err != nil {
			return nil, nil, err
		}
		noops = append(noops, p)
		for k, kind := range workPhases {
			p, err := runPhase(ctx, clients, opts, kind, readStats)
			if err != nil {
				return nil, nil, err
			}
			work[k] = append(work[k], p)
		}
	}
	p, err := runPhase(ctx, clients, opts, noopPhase, readStats)
	if err != nil {
		return nil, nil, err
	}
	return append(noops, p), work, nil
}

// runPhase runs opts.count health checks of kind's service on each of
// opts.callers goroutines and measures them. The first failed call ends the
// phase with its error.
func runPhase(ctx context.Context, clients []healthpb.HealthClient, opts options, kind phaseKind, readStats statsReader) (phase, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		once     sync.Once
		firstErr error
	)
	request := &healthpb.HealthCheckRequest{Service: kind.service}

	before, err := readStats(ctx)
	if err != nil {
		return phase{}, err
	}
	start := time.Now()
	for i := range opts.callers {
		client := clients[i%len(clients)]
		wg.Go(func() {
			for range opts.count {
				callCtx, cancelCall := context.WithTimeout(ctx, opts.timeout)
				_, err := client.Check(callCtx, request)
				cancelCall()
				if err != nil {
					once.Do(func() { firstErr = err; cancel() })
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		return phase{}, fmt.Errorf("a %s call failed, so the run stopped: %w", kind.label, firstErr)
	}

	after, err := readStats(ctx)
	if err != nil {
		return phase{}, err
	}
	return phase{
		calls:   opts.callers * opts.count,
		elapsed: elapsed,
		cpu:     after.cpu - before.cpu,
		syncs:   after.log.since(before.log),
	}, nil
}

// printReport prints one row per phase kind with the medians over the
// rounds. Each phase is divided by the faster of the no-op phases just before
// and just after its round. The no-op row's range compares each no-op phase
// with the fastest one.
func printReport(out io.Writer, workPhases []phaseKind, noops []phase, work [][]phase) error {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "phase\tcalls/s\tof no-op rate\tround range\twrites/sync\tsync\tCPU per call\t")

	rates, cpus := make([]float64, 0, len(noops)), make([]float64, 0, len(noops))
	for _, p := range noops {
		rates = append(rates, p.rate())
		cpus = append(cpus, float64(p.cpuPerCall()))
	}
	fastest := slices.Max(rates)
	fmt.Fprintf(w, "%s\t%.0f\t100%%\t%.0f-100%%\t-\t-\t%s\t\n", noopPhase.label, median(rates),
		100*slices.Min(rates)/fastest, formatCPU(median(cpus)))

	for k, kind := range workPhases {
		var rates, ratios, perSync, syncTimes, cpus []float64
		for i, p := range work[k] {
			rates = append(rates, p.rate())
			ratios = append(ratios, p.rate()/max(noops[i].rate(), noops[i+1].rate()))
			cpus = append(cpus, float64(p.cpuPerCall()))
			if p.syncs.syncs > 0 {
				perSync = append(perSync, float64(p.syncs.writes)/float64(p.syncs.syncs))
				syncTimes = append(syncTimes, float64(p.syncs.syncTime)/float64(p.syncs.syncs))
			}
		}
		// Badger's own synced writes count no syncs here.
		writesPerSync, syncTime := "-", "-"
		if len(perSync) > 0 {
			writesPerSync = fmt.Sprintf("%.1f", median(perSync))
			syncTime = time.Duration(median(syncTimes)).Round(time.Microsecond).String()
		}
		fmt.Fprintf(w, "%s\t%.0f\t%.0f%%\t%.0f-%.0f%%\t%s\t%s\t%s\t\n", kind.label, median(rates), 100*median(ratios),
			100*slices.Min(ratios), 100*slices.Max(ratios), writesPerSync, syncTime, formatCPU(median(cpus)))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprint(out, "Each column is the median over the rounds. writes/sync is the writes that one sync covered, "+
		"and sync the mean time of one sync; - marks Badger's own synced writes, whose syncs are not counted.\nCPU per call is the CPU time of the server and the callers together, "+
		"divided by the calls.\n")
	return err
}

func formatCPU(nanos float64) string {
	return time.Duration(nanos).Round(100 * time.Nanosecond).String()
}

// plural returns n and noun, with an s for any n but 1.
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// median returns the median of values, or 0 for none.
func median(values []float64) float64 {
	if len(values) == 0 {
		return 0
	}
	sorted := slices.Sorted(slices.Values(values))
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

// processCPU returns the user and system CPU time that this process has used.
func processCPU() (time.Duration, error) {
	cpu, ok := cputime.Process()
	if !ok {
		return 0, errors.New("reading the process's CPU time with getrusage failed")
	}
	return cpu, nil
}
