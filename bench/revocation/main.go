// Command revocation measures how long a logout on one socket server takes
// to disconnect a socket of the same session on another socket server while
// many other sockets are connected.
//
// Everything runs in this process on loopback. Two authority replicas share
// a Redis server, or with -store badger one authority serves both socket
// servers. Socket server A uses the first replica and socket server B the
// second. Both are go-socket.io servers with the gosocketio binding, and the
// clients speak socket.io 2.x over websockets. Server B holds -sockets idle authenticated
// sockets, each of its own session, for the whole run. Each measured
// session has one socket on A and one on B. The clock starts when the
// client on A emits logout and stops when the client on B reads
// logged_out, so the figure covers the Logout call, the event over Redis
// pub/sub and the revocation stream, and the write to the socket.
//
//	go run ./bench/revocation -sockets 1000 -logouts 500
//
// With -store redis it writes sessions under the key prefix "sockauth:" of
// the Redis database in -redis-url, where they expire with their tokens
// after -token-ttl.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	socketio "github.com/googollee/go-socket.io"
	"github.com/googollee/go-socket.io/engineio"
	"github.com/googollee/go-socket.io/engineio/transport"
	"github.com/googollee/go-socket.io/engineio/transport/websocket"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/sockauth/sockauth/adapter"
	"github.com/sockauth/sockauth/adapter/gosocketio"
	sockauthv1 "github.com/sockauth/sockauth/gen/sockauth/v1"
	"github.com/sockauth/sockauth/internal/serve"
)

// options are the command-line flags.
type options struct {
	sockets  int
	logouts  int
	warmup   int
	interval time.Duration
	parallel int
	store    string
	redisURL string
	tokenTTL time.Duration
	timeout  time.Duration
	verbose  bool
}

// eventTimeout bounds the wait for one event on one socket.
const eventTimeout = 5 * time.Second

// pingInterval is how often every client sends an engine.io ping. The
// go-socket.io v1.7.0 server closes a connection that sends nothing for its
// ping interval plus ping timeout, 80 s by default.
const pingInterval = 15 * time.Second

func main() {
	var opts options
	flag.IntVar(&opts.sockets, "sockets", 1000, "idle authenticated sockets on server B, each of its own session")
	flag.IntVar(&opts.logouts, "logouts", 500, "measured logouts, each of a session with one socket on A and one on B")
	flag.IntVar(&opts.warmup, "warmup", 10, "logouts before the measured ones, not counted")
	flag.DurationVar(&opts.interval, "interval", 20*time.Millisecond, "time between the starts of two logouts")
	flag.IntVar(&opts.parallel, "parallel", 16, "sockets connected and authenticated at once during setup")
	flag.StringVar(&opts.store, "store", "redis", "redis: two authority replicas on one Redis; badger: one authority for both socket servers")
	flag.StringVar(&opts.redisURL, "redis-url", "redis://127.0.0.1:6379/0", "Redis URL for -store redis")
	flag.DurationVar(&opts.tokenTTL, "token-ttl", 10*time.Minute, "lifetime of the session tokens, and so of their Redis keys")
	flag.DurationVar(&opts.timeout, "timeout", 3*time.Minute, "bound of the whole run")
	flag.BoolVar(&opts.verbose, "v", false, "log the authorities and adapters at info level")
	flag.Parse()

	if err := checkOptions(opts); err != nil {
		fmt.Fprintln(os.Stderr, "revocation:", err)
		os.Exit(2)
	}
	if err := run(opts); err != nil {
		fmt.Fprintln(os.Stderr, "revocation:", err)
		os.Exit(1)
	}
}

func checkOptions(opts options) error {
	if opts.sockets < 0 || opts.logouts < 1 || opts.warmup < 0 || opts.parallel < 1 {
		return errors.New("invalid counts: -sockets and -warmup must not be negative, -logouts and -parallel must be positive")
	}
	if opts.store != "redis" && opts.store != "badger" {
		return fmt.Errorf("invalid -store %q: use redis or badger", opts.store)
	}
	if !strings.HasPrefix(opts.redisURL, "redis://127.0.0.1:") && !strings.HasPrefix(opts.redisURL, "redis://localhost:") {
		return fmt.Errorf("invalid -redis-url %q: the benchmark runs on loopback only, use redis://127.0.0.1:PORT/DB", opts.redisURL)
	}
	return nil
}

func run(opts options) error {
	ctx, cancel := context.WithTimeout(context.Background(), opts.timeout)
	defer cancel()

	level := slog.LevelWarn
	if opts.verbose {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	dataDir, err := os.MkdirTemp("", "sockauth-bench-revocation-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dataDir)

	replicas, err := startAuthorities(ctx, opts, dataDir, logger)
	if err != nil {
		return err
	}
	defer closeAll(replicas)
	addrA, addrB := replicas[0].Addr(), replicas[len(replicas)-1].Addr()

	serverA, err := startSocketServer(addrA, logger.With("server", "A"))
	if err != nil {
		return err
	}
	defer serverA.close()
	serverB, err := startSocketServer(addrB, logger.With("server", "B"))
	if err != nil {
		return err
	}
	defer serverB.close()

	issuerConn, err := grpc.NewClient(addrB, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer issuerConn.Close()
	issuer := sockauthv1.NewAuthorityServiceClient(issuerConn)

	var clients clientSet
	defer clients.closeAll()
	stopPings := clients.pingEvery(pingInterval)
	defer stopPings()

	setupStart := time.Now()
	idle, err := connectIdle(ctx, opts, issuer, serverB.addr, &clients)
	if err != nil {
		return err
	}
	idleTime := time.Since(setupStart)

	pairStart := time.Now()
	pairs, err := connectPairs(ctx, opts, issuer, serverA.addr, serverB.addr, &clients)
	if err != nil {
		return err
	}
	pairTime := time.Since(pairStart)

	// The warm-up logouts also prove that both revocation streams are open.
	if _, failures := measure(ctx, pairs[:opts.warmup], opts.interval); len(failures) > 0 {
		return fmt.Errorf("warm-up logouts failed: %w", errors.Join(failures...))
	}
	latencies, failures := measure(ctx, pairs[opts.warmup:], opts.interval)

	stillConnected := countConnected(idle)
	report(os.Stdout, opts, reportData{
		replicas:       len(replicas),
		idleTime:       idleTime,
		pairTime:       pairTime,
		latencies:      latencies,
		failures:       failures,
		stillConnected: stillConnected,
	})
	if len(failures) > 0 {
		return fmt.Errorf("%d of %d logouts failed, the first: %w", len(failures), opts.logouts, failures[0])
	}
	if stillConnected != len(idle) {
		return fmt.Errorf("%d of %d idle sockets were disconnected", len(idle)-stillConnected, len(idle))
	}
	return nil
}

// startAuthorities starts two replicas on Redis, which share the key file in
// dataDir, or one authority on Badger.
func startAuthorities(ctx context.Context, opts options, dataDir string, logger *slog.Logger) ([]*serve.Authority, error) {
	count := 2
	if opts.store == "badger" {
		count = 1
	}

	var started []*serve.Authority
	for i := range count {
		a, err := serve.Start(ctx, serve.Config{
			Listen:   "127.0.0.1:0",
			DataDir:  dataDir,
			Store:    opts.store,
			RedisURL: opts.redisURL,
			TokenTTL: opts.tokenTTL,
			Logger:   logger.With("replica", i),
		})
		if err != nil {
			closeAll(started)
			return nil, fmt.Errorf("start authority %d: %w", i, err)
		}
		started = append(started, a)
	}
	return started, nil
}

func closeAll(authorities []*serve.Authority) {
	for _, a := range authorities {
		a.Close()
	}
}

// socketServer is a go-socket.io server with the sockauth binding, served
// over HTTP on a loopback port.
type socketServer struct {
	addr       string
	conn       *grpc.ClientConn
	server     *socketio.Server
	binding    *gosocketio.Binding
	httpServer *http.Server
}

func startSocketServer(authorityAddr string, logger *slog.Logger) (*socketServer, error) {
	conn, err := grpc.NewClient(authorityAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}

	server := gosocketio.NewServer(&engineio.Options{Transports: []transport.Transport{websocket.Default}})
	binding, err := gosocketio.New(server, adapter.Config{
		Authority: sockauthv1.NewAuthorityServiceClient(conn),
		Logger:    logger,
	})
	if err != nil {
		conn.Close()
		return nil, err
	}
	go func() { _ = server.Serve() }()

	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		binding.Close()
		server.Close()
		conn.Close()
		return nil, err
	}
	httpServer := &http.Server{Handler: server, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = httpServer.Serve(listener) }()

	return &socketServer{addr: listener.Addr().String(), conn: conn, server: server, binding: binding, httpServer: httpServer}, nil
}

func (s *socketServer) close() {
	s.binding.Close()
	s.httpServer.Close()
	s.server.Close()
	s.conn.Close()
}

// clientSet contains every client of the run, for the pings and the final
// close.
type clientSet struct {
	mu      sync.Mutex
	clients []*socketClient
}

func (s *clientSet) add(c *socketClient) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clients = append(s.clients, c)
}

func (s *clientSet) snapshot() []*socketClient {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.clients)
}

// pingSlices is the number of groups whose pings are spread over one ping
// interval, as the pings of independent clients would be. In runs with
// 5,000 idle sockets on a 2-core machine, pinging every client at once
// during the measurement raised the p99 from 11-24 ms to 235-706 ms.
const pingSlices = 50

// pingEvery pings every client once per interval until the returned
// function is called.
func (s *clientSet) pingEvery(interval time.Duration) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		ticker := time.NewTicker(interval / pingSlices)
		defer ticker.Stop()
		for slice := 0; ; slice = (slice + 1) % pingSlices {
			select {
			case <-done:
				return
			case <-ticker.C:
			}
			clients := s.snapshot()
			for i := slice; i < len(clients); i += pingSlices {
				_ = clients[i].ping()
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

func (s *clientSet) closeAll() {
	for _, c := range s.snapshot() {
		c.close()
	}
}

// connectIdle connects opts.sockets clients to httpAddr and authenticates
// each with a code of its own session.
func connectIdle(ctx context.Context, opts options, issuer sockauthv1.AuthorityServiceClient, httpAddr string, clients *clientSet) ([]*socketClient, error) {
	idle := make([]*socketClient, opts.sockets)
	err := forEach(ctx, opts.sockets, opts.parallel, func(ctx context.Context, i int) error {
		code, err := issueCode(ctx, issuer, fmt.Sprintf("bench-idle-%d", i))
		if err != nil {
			return err
		}
		c, err := dialSocket(ctx, httpAddr)
		if err != nil {
			return err
		}
		clients.add(c)
		if _, err := c.authenticate(ctx, code); err != nil {
			return fmt.Errorf("idle socket %d: %w", i, err)
		}
		idle[i] = c
		return nil
	})
	return idle, err
}

// pair is a session with one socket on server A and one on server B.
type pair struct {
	onA, onB *socketClient
}

// connectPairs connects warm-up plus measured sessions. The socket on B
// authenticates with the login code and the socket on A with the token that
// B received, as a second tab would, so both sockets share the session.
func connectPairs(ctx context.Context, opts options, issuer sockauthv1.AuthorityServiceClient, addrA, addrB string, clients *clientSet) ([]pair, error) {
	pairs := make([]pair, opts.warmup+opts.logouts)
	err := forEach(ctx, len(pairs), opts.parallel, func(ctx context.Context, i int) error {
		code, err := issueCode(ctx, issuer, fmt.Sprintf("bench-session-%d", i))
		if err != nil {
			return err
		}

		onB, err := dialSocket(ctx, addrB)
		if err != nil {
			return err
		}
		clients.add(onB)
		token, err := onB.authenticate(ctx, code)
		if err != nil {
			return fmt.Errorf("session %d on B: %w", i, err)
		}

		onA, err := dialSocket(ctx, addrA)
		if err != nil {
			return err
		}
		clients.add(onA)
		if _, err := onA.authenticate(ctx, token); err != nil {
			return fmt.Errorf("session %d on A: %w", i, err)
		}
		pairs[i] = pair{onA: onA, onB: onB}
		return nil
	})
	return pairs, err
}

func issueCode(ctx context.Context, issuer sockauthv1.AuthorityServiceClient, subject string) (string, error) {
	resp, err := issuer.IssueCode(ctx, &sockauthv1.IssueCodeRequest{Subject: subject})
	if err != nil {
		return "", fmt.Errorf("IssueCode(%s): %w", subject, err)
	}
	return resp.GetCode(), nil
}

// forEach runs fn for 0..n-1 with at most parallel calls at once and
// returns the first error.
func forEach(ctx context.Context, n, parallel int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	indexes := make(chan int)
	var wg sync.WaitGroup
	for range min(parallel, max(n, 1)) {
		wg.Go(func() {
			for i := range indexes {
				if err := fn(ctx, i); err != nil {
					cancel(err)
				}
			}
		})
	}
feed:
	for i := range n {
		select {
		case indexes <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(indexes)
	wg.Wait()
	return context.Cause(ctx)
}

// measure starts one logout every interval, on the socket on A of each
// pair, and returns the time until the socket on B read logged_out.
func measure(ctx context.Context, pairs []pair, interval time.Duration) ([]time.Duration, []error) {
	var (
		mu        sync.Mutex
		latencies []time.Duration
		failures  []error
		wg        sync.WaitGroup
	)
	ticker := time.NewTicker(interval)
	defer ticker.Stop()

	for i, p := range pairs {
		if i > 0 {
			<-ticker.C
		}
		wg.Go(func() {
			latency, err := logoutOnce(ctx, p)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failures = append(failures, fmt.Errorf("logout %d: %w", i, err))
				return
			}
			latencies = append(latencies, latency)
		})
	}
	wg.Wait()
	return latencies, failures
}

func logoutOnce(ctx context.Context, p pair) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, eventTimeout)
	defer cancel()

	start := time.Now()
	if err := p.onA.emit("logout"); err != nil {
		return 0, err
	}
	arrived, err := p.onB.waitEvent(ctx, "logged_out")
	if err != nil {
		return 0, fmt.Errorf("socket on B: %w", err)
	}
	if _, err := p.onA.waitEvent(ctx, "logged_out"); err != nil {
		return 0, fmt.Errorf("socket on A: %w", err)
	}
	return arrived.Sub(start), nil
}

// countConnected returns how many clients received no packet and still
// have an open connection.
func countConnected(clients []*socketClient) int {
	connected := 0
	for _, c := range clients {
		select {
		case <-c.packets:
		default:
			connected++
		}
	}
	return connected
}

// reportData contains the figures of one run.
type reportData struct {
	replicas       int
	idleTime       time.Duration
	pairTime       time.Duration
	latencies      []time.Duration
	failures       []error
	stillConnected int
}

func report(w io.Writer, opts options, data reportData) {
	fmt.Fprintf(w, "store: %s, authority replicas: %d, socket servers: 2\n", opts.store, data.replicas)
	fmt.Fprintf(w, "machine: %s/%s, %d CPUs, GOMAXPROCS %d, %s\n", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version())
	fmt.Fprintf(w, "sockets on B: %d idle, %d of measured sessions; setup took %v and %v\n",
		opts.sockets, opts.warmup+opts.logouts, data.idleTime.Round(time.Millisecond), data.pairTime.Round(time.Millisecond))
	fmt.Fprintf(w, "logouts: %d measured after %d warm-up, one every %v, %d failed\n", opts.logouts, opts.warmup, opts.interval, len(data.failures))

	fmt.Fprintf(w, "websocket connections opened: %d\n", opts.sockets+2*(opts.warmup+opts.logouts))

	if len(data.latencies) > 0 {
		sorted := slices.Clone(data.latencies)
		slices.Sort(sorted)
		fmt.Fprintf(w, "logout on A to logged_out on B: min %v, p50 %v, p90 %v, p99 %v, max %v\n",
			round(sorted[0]), round(percentile(sorted, 0.50)), round(percentile(sorted, 0.90)),
			round(percentile(sorted, 0.99)), round(sorted[len(sorted)-1]))
	}
	fmt.Fprintf(w, "idle sockets still connected: %d of %d\n", data.stillConnected, opts.sockets)
}

// percentile returns the nearest-rank percentile q of sorted durations.
func percentile(sorted []time.Duration, q float64) time.Duration {
	rank := int(math.Ceil(q * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

func round(d time.Duration) time.Duration {
	return d.Round(10 * time.Microsecond)
}
