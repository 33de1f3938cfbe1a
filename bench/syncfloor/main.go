//go:build linux

// Command syncfloor measures how far one durable write per call lowers the
// rate of gRPC calls on this machine, without the rest of a rotation.
//
// It serves the gRPC health service on loopback in this process, with the
// authority's transport settings. A round runs three phases of concurrent
// callers, each making Checks of one health service name:
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
// The command prints each phase's rate as a share of the faster no-op phase
// beside it. The log is the cheapest durable write that the authority could
// make: a file filled and synced beforehand, so that no sync writes metadata,
// small records, no tokens in the messages, and no lookup, encoding or lock
// of a store. The shares are therefore bounds on what rotations can reach on
// the same machine, disk and file system with the same sync design.
//
//	go run ./bench/syncfloor -callers 64 -count 300 -rounds 5
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/o1egl/paseto"

	"github.com/sockauth/sockauth/authority"
	"github.com/sockauth/sockauth/internal/authclient"
	"github.com/sockauth/sockauth/internal/serve"
)

// options are the command-line flags.
type options struct {
	callers     int
	connections int
	count       int
	rounds      int
	recordSize  int
	logSize     int64
	mode        writeMode
	syncers     int
	heapSize    int64
	dir         string
	cpuProfile  string
	timeout     time.Duration
}

func main() {
	var opts options
	var mode string
	var logMiB, heapMiB int
	flag.IntVar(&opts.callers, "callers", 64, "concurrent callers")
	flag.IntVar(&opts.connections, "connections", 4, "gRPC connections shared by the callers")
	flag.IntVar(&opts.count, "count", 300, "calls per caller in each phase")
	flag.IntVar(&opts.rounds, "rounds", 5, "rounds of phases")
	flag.IntVar(&opts.recordSize, "record", 128, "bytes written per synced call")
	flag.IntVar(&logMiB, "log-mib", 8, "size of the log file in MiB; records wrap around to its start")
	flag.StringVar(&mode, "write", string(writeMapped), "how records reach the file: mmap (as Badger writes its logs) or pwrite")
	flag.IntVar(&opts.syncers, "syncers", 1, "goroutines that sync the log, each taking the writes waiting when its sync starts; "+
		"the authority's store runs one")
	flag.IntVar(&heapMiB, "heap-mib", 10, "MiB of live heap held during the run; the in-process authority of sockauth bench holds about 9 MiB, "+
		"and a smaller heap makes the garbage collector run more often and lowers the no-op rate")
	flag.StringVar(&opts.dir, "dir", "", "folder for the log file; empty uses the system's temporary folder")
	flag.StringVar(&opts.cpuProfile, "cpu-profile", "", "file to write a CPU profile of the rounds to")
	flag.DurationVar(&opts.timeout, "timeout", 10*time.Second, "deadline of each call")
	flag.Parse()
	opts.mode = writeMode(mode)
	opts.logSize = int64(logMiB) << 20
	opts.heapSize = int64(heapMiB) << 20

	if err := opts.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "syncfloor:", err)
		os.Exit(2)
	}
	if err := run(context.Background(), os.Stdout, opts); err != nil {
		fmt.Fprintln(os.Stderr, "syncfloor:", err)
		os.Exit(1)
	}
}

func (o options) validate() error {
	if o.callers < 1 || o.connections < 1 || o.count < 1 || o.rounds < 1 {
		return errors.New("invalid counts: -callers, -connections, -count and -rounds must be positive")
	}
	if o.logSize < 1 {
		return errors.New("invalid -log-mib: it must be positive")
	}
	if o.recordSize < 1 || int64(o.recordSize) > o.logSize {
		return fmt.Errorf("invalid -record %d: it must be positive and fit in the log of %d bytes", o.recordSize, o.logSize)
	}
	if o.mode != writePwrite && o.mode != writeMapped {
		return fmt.Errorf("invalid -write %q: use %s or %s", o.mode, writeMapped, writePwrite)
	}
	if o.syncers < 1 {
		return errors.New("invalid -syncers: it must be positive")
	}
	if o.heapSize < 0 {
		return errors.New("invalid -heap-mib: it must not be negative")
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
	// workPhases are the phases of a round after its no-op phase.
	workPhases = []phaseKind{syncedPhase, cryptoPhase, codecPhase}
)

// floorHealth is the health service of the benchmark server.
type floorHealth struct {
	healthpb.UnimplementedHealthServer
	log    *groupLog
	record []byte
	codec  *authority.PasetoV2
	// token is the token that each synced-crypto and synced-codec call
	// decodes, and payload and footer are its plaintext parts.
	token           string
	payload, footer []byte
	key             []byte
	protocol        *paseto.V2
}

func newFloorHealth(log *groupLog, recordSize int) (*floorHealth, error) {
	key := make([]byte, authority.KeySize)
	codec, err := authority.NewPasetoV2(map[string][]byte{"k1": key}, "k1")
	if err != nil {
		return nil, err
	}
	now := time.Now().Truncate(time.Second)
	token, err := codec.Encode(authority.Claims{
		Subject: "bench", SessionID: newTokenID(), TokenID: newTokenID(), Type: authority.TypeSession,
		Generation: 1, IssuedAt: now, ExpiresAt: now.Add(time.Hour),
	})
	if err != nil {
		return nil, err
	}
	h := &floorHealth{log: log, record: make([]byte, recordSize), codec: codec, token: token, key: key, protocol: paseto.NewV2()}
	if err := h.protocol.Decrypt(token, key, &h.payload, &h.footer); err != nil {
		return nil, fmt.Errorf("decrypt the benchmark token: %w", err)
	}
	return h, nil
}

func (h *floorHealth) Check(_ context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	switch req.GetService() {
	case noopPhase.service:
	case syncedPhase.service:
		if err := h.log.appendRecord(h.record); err != nil {
			return nil, status.Errorf(codes.Internal, "durable write failed: %v", err)
		}
	case cryptoPhase.service:
		if err := h.cryptToken(); err != nil {
			return nil, status.Errorf(codes.Internal, "token work failed: %v", err)
		}
		if err := h.log.appendRecord(h.record); err != nil {
			return nil, status.Errorf(codes.Internal, "durable write failed: %v", err)
		}
	case codecPhase.service:
		if err := h.rotateToken(); err != nil {
			return nil, status.Errorf(codes.Internal, "token work failed: %v", err)
		}
		if err := h.log.appendRecord(h.record); err != nil {
			return nil, status.Errorf(codes.Internal, "durable write failed: %v", err)
		}
	default:
		return nil, status.Errorf(codes.NotFound, "unknown service %q", req.GetService())
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

// rotateToken decodes the held token and encodes its successor, the token
// work of one Authenticate rotation.
func (h *floorHealth) rotateToken() error {
	claims, err := h.codec.Decode(h.token)
	if err != nil {
		return err
	}
	claims.TokenID = newTokenID()
	claims.Generation++
	_, err = h.codec.Encode(claims)
	return err
}

// cryptToken decrypts the held token and encrypts its plaintext again, with
// the PASETO library only.
func (h *floorHealth) cryptToken() error {
	var payload []byte
	if err := h.protocol.Decrypt(h.token, h.key, &payload, nil); err != nil {
		return err
	}
	_, err := h.protocol.Encrypt(h.key, h.payload, h.footer)
	return err
}

// newTokenID returns a random id of the size that the authority gives its
// tokens and sessions.
func newTokenID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read crashes the program instead of failing.
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// phase is one measured run of all callers.
type phase struct {
	calls   int
	elapsed time.Duration
	cpu     time.Duration
	syncs   logStats
}

func (p phase) rate() float64 { return float64(p.calls) / p.elapsed.Seconds() }

func (p phase) cpuPerCall() time.Duration { return p.cpu / time.Duration(p.calls) }

func run(ctx context.Context, out io.Writer, opts options) error {
	// The heap is never written, so it adds no resident memory, but the
	// garbage collector counts it and paces itself by it.
	heap := make([]byte, opts.heapSize)
	defer runtime.KeepAlive(heap)

	dir, err := os.MkdirTemp(opts.dir, "sockauth-syncfloor-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	log, err := openGroupLog(filepath.Join(dir, "floor.log"), opts.logSize, opts.mode, opts.syncers)
	if err != nil {
		return err
	}
	health, err := newFloorHealth(log, opts.recordSize)
	if err != nil {
		log.close()
		return err
	}

	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.close()
		return err
	}
	server := grpc.NewServer(serve.TransportServerOptions()...)
	healthpb.RegisterHealthServer(server, health)
	served := make(chan error, 1)
	go func() { served <- server.Serve(listener) }()
	defer func() {
		server.Stop()
		<-served
		log.close()
	}()

	clients := make([]healthpb.HealthClient, opts.connections)
	for i := range clients {
		conn, err := authclient.Dial(authclient.Options{Address: listener.Addr().String()})
		if err != nil {
			return err
		}
		defer conn.Close()
		clients[i] = healthpb.NewHealthClient(conn)
	}

	fmt.Fprintf(out, "%d callers, %d connections, %d calls per caller and phase, %d rounds, %d MiB of live heap\n",
		opts.callers, opts.connections, opts.count, opts.rounds, opts.heapSize>>20)
	loops := "1 sync loop"
	if opts.syncers > 1 {
		loops = fmt.Sprintf("%d sync loops", opts.syncers)
	}
	fmt.Fprintf(out, "%d-byte records written with %s into a %d MiB file in %s, synced with fdatasync by %s\n",
		opts.recordSize, opts.mode, opts.logSize>>20, dir, loops)

	if opts.cpuProfile != "" {
		stop, err := startCPUProfile(opts.cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
	}
	noops, work, err := runRounds(ctx, clients, opts, log)
	if err != nil {
		return err
	}
	return printReport(out, noops, work)
}

// runRounds runs opts.rounds rounds, each a no-op phase and then one phase of
// each kind in workPhases, and a last no-op phase. work[k][i] is the phase of
// kind workPhases[k] in round i, and noops[i] and noops[i+1] are the no-op
// phases on either side of round i.
func runRounds(ctx context.Context, clients []healthpb.HealthClient, opts options, log *groupLog) (noops []phase, work [][]phase, err error) {
	work = make([][]phase, len(workPhases))
	for range opts.rounds {
		p, err := runPhase(ctx, clients, opts, noopPhase, log)
		if err != nil {
			return nil, nil, err
		}
		noops = append(noops, p)
		for k, kind := range workPhases {
			p, err := runPhase(ctx, clients, opts, kind, log)
			if err != nil {
				return nil, nil, err
			}
			work[k] = append(work[k], p)
		}
	}
	p, err := runPhase(ctx, clients, opts, noopPhase, log)
	if err != nil {
		return nil, nil, err
	}
	return append(noops, p), work, nil
}

// runPhase runs opts.count health checks of kind's service on each of
// opts.callers goroutines and measures them. The first failed call ends the
// phase with its error.
func runPhase(ctx context.Context, clients []healthpb.HealthClient, opts options, kind phaseKind, log *groupLog) (phase, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		once     sync.Once
		firstErr error
	)
	request := &healthpb.HealthCheckRequest{Service: kind.service}

	syncsBefore := log.stats()
	cpuBefore, err := processCPU()
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

	cpuAfter, err := processCPU()
	if err != nil {
		return phase{}, err
	}
	return phase{
		calls:   opts.callers * opts.count,
		elapsed: elapsed,
		cpu:     cpuAfter - cpuBefore,
		syncs:   log.stats().since(syncsBefore),
	}, nil
}

// printReport prints one row per phase kind with the medians over the
// rounds. Each phase is divided by the faster of the no-op phases just before
// and just after its round.
func printReport(out io.Writer, noops []phase, work [][]phase) error {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "phase\tcalls/s\tof no-op rate\tround range\twrites/sync\tsync\tCPU per call\t")

	rates, cpus := make([]float64, 0, len(noops)), make([]float64, 0, len(noops))
	for _, p := range noops {
		rates = append(rates, p.rate())
		cpus = append(cpus, float64(p.cpuPerCall()))
	}
	fmt.Fprintf(w, "%s\t%.0f\t100%%\t\t-\t-\t%s\t\n", noopPhase.label, median(rates), formatCPU(median(cpus)))

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
		fmt.Fprintf(w, "%s\t%.0f\t%.0f%%\t%.0f-%.0f%%\t%.1f\t%s\t%s\t\n", kind.label, median(rates), 100*median(ratios),
			100*slices.Min(ratios), 100*slices.Max(ratios), median(perSync),
			time.Duration(median(syncTimes)).Round(time.Microsecond), formatCPU(median(cpus)))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(out, "Each column is the median over the rounds. CPU per call is the CPU time of this whole process, "+
		"callers and server together, divided by the calls.")
	return err
}

func formatCPU(nanos float64) string {
	return time.Duration(nanos).Round(100 * time.Nanosecond).String()
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
	var usage syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &usage); err != nil {
		return 0, fmt.Errorf("read the process's CPU time: %w", err)
	}
	return time.Duration(usage.Utime.Nano() + usage.Stime.Nano()), nil
}

// startCPUProfile starts writing a CPU profile to path and returns the
// function that stops it and closes the file.
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("create the CPU profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("start the CPU profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "syncfloor: writing the CPU profile failed:", err)
		}
	}, nil
}
