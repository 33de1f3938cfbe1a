//go:build linux

package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/o1egl/paseto"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/sockauth/sockauth/authority"
	"github.com/sockauth/sockauth/internal/serve"
)

// statsService is the health service name whose Check returns the server's
// counters in its trailer, for a server in another process.
const statsService = "stats"

// Trailer keys of a Check of statsService.
const (
	trailerSyncs     = "floor-syncs"
	trailerWrites    = "floor-writes"
	trailerSyncNanos = "floor-sync-nanos"
	trailerCPUNanos  = "floor-cpu-nanos"
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
	// store is the Badger store of the store phase, or nil without -store.
	store *sessionStore
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

func (h *floorHealth) Check(ctx context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	switch req.GetService() {
	case noopPhase.service:
	case syncedPhase.service:
		if err := h.appendRecord(); err != nil {
			return nil, err
		}
	case cryptoPhase.service:
		if err := h.cryptToken(); err != nil {
			return nil, status.Errorf(codes.Internal, "token work failed: %v", err)
		}
		if err := h.appendRecord(); err != nil {
			return nil, err
		}
	case codecPhase.service:
		if err := h.rotateToken(); err != nil {
			return nil, status.Errorf(codes.Internal, "token work failed: %v", err)
		}
		if err := h.appendRecord(); err != nil {
			return nil, err
		}
	case storePhase.service, groupPhase.service, rawPhase.service:
		if err := h.rotateInBadger(ctx, req.GetService()); err != nil {
			return nil, err
		}
	case statsService:
		if err := h.sendStats(ctx); err != nil {
			return nil, err
		}
	default:
		return nil, status.Errorf(codes.NotFound, "unknown service %q", req.GetService())
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

func (h *floorHealth) appendRecord() error {
	if err := h.log.appendRecord(h.record); err != nil {
		return status.Errorf(codes.Internal, "durable write failed: %v", err)
	}
	return nil
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

// rotateInBadger does the token work of a rotation and writes it to the
// database of the phase of service: the store, the group-commit database
// or the database with Badger's own synced writes.
func (h *floorHealth) rotateInBadger(ctx context.Context, service string) error {
	if h.store == nil {
		return status.Errorf(codes.FailedPrecondition, "service %q needs a server started with -store", service)
	}
	if err := h.rotateToken(); err != nil {
		return status.Errorf(codes.Internal, "token work failed: %v", err)
	}
	write := h.store.rotate
	switch service {
	case groupPhase.service:
		write = h.store.group.rotate
	case rawPhase.service:
		write = h.store.badger.rotate
	}
	if err := write(ctx); err != nil {
		return status.Errorf(codes.Internal, "badger write of service %q failed: %v", service, err)
	}
	return nil
}

// sendStats puts the log's counters and this process's CPU time into the
// call's trailer.
func (h *floorHealth) sendStats(ctx context.Context) error {
	cpu, err := processCPU()
	if err != nil {
		return status.Errorf(codes.Internal, "%v", err)
	}
	stats := h.stats()
	return grpc.SetTrailer(ctx, metadata.Pairs(
		trailerSyncs, strconv.FormatUint(stats.syncs, 10),
		trailerWrites, strconv.FormatUint(stats.writes, 10),
		trailerSyncNanos, strconv.FormatInt(int64(stats.syncTime), 10),
		trailerCPUNanos, strconv.FormatInt(int64(cpu), 10),
	))
}

// stats returns the counters of the log and of the store added together,
// because each phase writes to only one of them.
func (h *floorHealth) stats() logStats {
	stats := h.log.stats()
	if h.store != nil {
		storeStats := h.store.stats()
		stats.syncs += storeStats.syncs
		stats.writes += storeStats.writes
		stats.syncTime += storeStats.syncTime
	}
	return stats
}

// newTokenID returns a random id of the size that the authority gives its
// tokens and sessions.
func newTokenID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read crashes the program instead of failing.
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// floorServer is the benchmark's gRPC server with its log.
type floorServer struct {
	addr   string
	dir    string
	log    *groupLog
	health *floorHealth
	server *grpc.Server
	served chan error
	// heap is never written, so it adds no pages of its own. The garbage
	// collector counts it as live, so the garbage between two collections,
	// and the resident memory with it, grows by up to its size.
	heap []byte
}

// startFloorServer creates the log in a new folder under opts.dir and serves
// the health service on a loopback port.
func startFloorServer(opts options) (*floorServer, error) {
	dir, err := os.MkdirTemp(opts.dir, "sockauth-syncfloor-")
	if err != nil {
		return nil, fmt.Errorf("-dir %q: %w", opts.dir, err)
	}
	s := &floorServer{dir: dir, heap: make([]byte, opts.heapSize), served: make(chan error, 1)}
	s.log, err = openGroupLog(filepath.Join(dir, "floor.log"), opts.log)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	health, err := newFloorHealth(s.log, opts.recordSize)
	if err == nil && opts.store {
		health.store, err = openSessionStore(filepath.Join(dir, "badger"), opts.callers)
	}
	if err != nil {
		s.log.close()
		os.RemoveAll(dir)
		return nil, err
	}
	s.health = health

	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		s.log.close()
		os.RemoveAll(dir)
		return nil, err
	}
	s.addr = listener.Addr().String()
	// Stop waits for running handlers, which may wait for a sync, before
	// the log closes.
	s.server = grpc.NewServer(append(serve.TransportServerOptions(), grpc.WaitForHandlers(true))...)
	healthpb.RegisterHealthServer(s.server, health)
	go func() { s.served <- s.server.Serve(listener) }()
	return s, nil
}

// stop stops serving, closes the log and removes its folder.
func (s *floorServer) stop() error {
	s.server.Stop()
	<-s.served
	err := s.log.close()
	if s.health.store != nil {
		err = errors.Join(err, s.health.store.close())
	}
	runtime.KeepAlive(s.heap)
	return errors.Join(err, os.RemoveAll(s.dir))
}

// checkFileSystem rejects a folder on a file system that keeps files in
// memory only, where fdatasync writes nothing and the figures would mean
// nothing.
func checkFileSystem(dir string) error {
	if dir == "" {
		dir = os.TempDir()
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		return fmt.Errorf("-dir %q: %w", dir, err)
	}
	if fs.Type == unix.TMPFS_MAGIC || fs.Type == unix.RAMFS_MAGIC {
		return fmt.Errorf("-dir %q is on a file system in memory, where fdatasync writes nothing; "+
			"choose a folder on a disk with -dir", dir)
	}
	return nil
}

// childFlag makes the program serve for a parent process instead of
// running the benchmark.
const childFlag = "child"

// serveChild serves the benchmark server for the parent process: it prints
// "listening ADDR DIR", with DIR quoted as a Go string, on standard output
// and serves until its standard input ends or it receives SIGTERM.
func serveChild(opts options) error {
	// The parent stops this process by closing its input, also after an
	// interrupt or a hangup that reaches the whole process group.
	signal.Ignore(os.Interrupt, syscall.SIGHUP)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()

	s, err := startFloorServer(opts)
	if err != nil {
		return err
	}
	fmt.Printf("listening %s %q\n", s.addr, s.dir)

	inputEnded := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(inputEnded)
	}()
	select {
	case <-inputEnded:
	case <-ctx.Done():
	}
	return s.stop()
}

// childServer is a benchmark server in a child process.
type childServer struct {
	addr, dir string
	cmd       *exec.Cmd
	input     io.WriteCloser
}

// startChild runs this program as a child process that serves the
// benchmark server, and returns once the child listens. When ctx ends first,
// it stops the child and removes its folder.
func startChild(ctx context.Context, opts options) (*childServer, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find this program to start the server process: %w", err)
	}
	cmd := exec.Command(exe, childArgs(opts)...)
	cmd.Stderr = os.Stderr
	input, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	output, err := cmd.StdoutPipe()
	if err != nil {
		input.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		input.Close()
		return nil, fmt.Errorf("start the server process: %w", err)
	}

	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(output).ReadString('\n')
		lines <- line
	}()
	var line string
	select {
	case line = <-lines:
	case <-ctx.Done():
		child := &childServer{cmd: cmd, input: input}
		// A child that has created its folder removes it once its input
		// ends, and stop removes it too once the line names it.
		select {
		case line := <-lines:
			_, child.dir, _ = parseListening(line)
		default:
		}
		return nil, errors.Join(fmt.Errorf("interrupted while the server process started: %w", context.Cause(ctx)), child.stop())
	}

	addr, dir, ok := parseListening(line)
	if !ok {
		input.Close()
		if waitErr := cmd.Wait(); waitErr != nil {
			return nil, fmt.Errorf("the server process exited before it listened (%v); its error is above", waitErr)
		}
		return nil, fmt.Errorf("the server process printed %q instead of its address", line)
	}
	return &childServer{addr: addr, dir: dir, cmd: cmd, input: input}, nil
}

// parseListening parses the line "listening ADDR DIR" that serveChild
// prints.
func parseListening(line string) (addr, dir string, ok bool) {
	rest, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "listening ")
	if !ok {
		return "", "", false
	}
	addr, quoted, ok := strings.Cut(rest, " ")
	if !ok {
		return "", "", false
	}
	dir, err := strconv.Unquote(quoted)
	return addr, dir, err == nil && addr != "" && dir != ""
}

// childArgs returns the flags that make a child serve with opts.
func childArgs(opts options) []string {
	return []string{
		"-" + childFlag,
		"-record", strconv.Itoa(opts.recordSize),
		"-log-mib", strconv.FormatInt(opts.log.size>>20, 10),
		"-write", string(opts.log.mode),
		"-syncers", strconv.Itoa(opts.log.syncers),
		"-overlap-after", opts.log.overlapAfter.String(),
		"-sparse=" + strconv.FormatBool(opts.log.sparse),
		"-heap-mib", strconv.FormatInt(opts.heapSize>>20, 10),
		"-dir", opts.dir,
		"-store=" + strconv.FormatBool(opts.store),
		"-callers", strconv.Itoa(opts.callers),
	}
}

// stop ends the child's input and waits for it to remove its folder and
// exit. It kills a child that takes longer than 30 s, and then removes the
// folder itself when c.dir names it.
func (c *childServer) stop() error {
	c.input.Close()
	exited := make(chan error, 1)
	go func() { exited <- c.cmd.Wait() }()
	var err error
	select {
	case err = <-exited:
	case <-time.After(30 * time.Second):
		err = errors.Join(errors.New("the server process did not exit within 30 s, so it was killed"), c.cmd.Process.Kill())
		<-exited
	}
	// The child removes the folder itself, unless it died first.
	return errors.Join(err, os.RemoveAll(c.dir))
}

// readTrailerStats returns the counters of a statsService Check's trailer.
func readTrailerStats(trailer metadata.MD) (floorStats, error) {
	values := make(map[string]int64, 4)
	for _, key := range []string{trailerSyncs, trailerWrites, trailerSyncNanos, trailerCPUNanos} {
		got := trailer.Get(key)
		if len(got) != 1 {
			return floorStats{}, fmt.Errorf("the server's stats lack %s", key)
		}
		n, err := strconv.ParseInt(got[0], 10, 64)
		if err != nil || n < 0 {
			return floorStats{}, fmt.Errorf("the server's stats have an invalid %s %q", key, got[0])
		}
		values[key] = n
	}
	return floorStats{
		log: logStats{syncs: uint64(values[trailerSyncs]), writes: uint64(values[trailerWrites]),
			syncTime: time.Duration(values[trailerSyncNanos])},
		cpu: time.Duration(values[trailerCPUNanos]),
	}, nil
}
