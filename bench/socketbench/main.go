// Command socketbench compares sockauth's socket side with a Node socket.io
// server that uses socketio-jwt, in one run on one machine. It measures socket
// handshakes per second (login, authenticate, one event with ack) with
// socket.io-client 2.x and 4.x, and the resident memory of each connected,
// authenticated, idle socket.
//
// It starts `sockauth serve`, the chat demo and the Node server itself, all
// on loopback, and drives them with bench/socket/loadgen.js. Run it from the
// repository root after `npm ci --prefix bench/socket`:
//
//	go run ./bench/socketbench
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// loadResult is the summary line of loadgen.js.
type loadResult struct {
	Clients    int     `json:"clients"`
	Completed  int     `json:"completed"`
	Errors     int     `json:"errors"`
	FirstError *string `json:"first_error"`
	Seconds    float64 `json:"seconds"`
	Rate       float64 `json:"handshakes_per_second"`
	P50        float64 `json:"p50_ms"`
	P99        float64 `json:"p99_ms"`
	Held       int     `json:"held"`
	Workers    int     `json:"workers"`
	// CPUMillis is the user and system CPU time of the load generator
	// during the run, and EventLoopUtilization the share of the run in which
	// its event loop was busy.
	CPUMillis            float64 `json:"cpu_ms"`
	EventLoopUtilization float64 `json:"event_loop_utilization"`
}

type options struct {
	clients     int
	concurrency int
	idle        int
	rounds      int
	workers     int
	rate        float64
	idleHook    string
	demoArgs    string
	binDir      string
	compareDir  string
	// idleReads are the times after the last idle socket connected at which
	// the memory is read, in increasing order.
	idleReads []time.Duration
}

func main() {
	var opts options
	flag.IntVar(&opts.clients, "clients", 2000, "clients per handshake run")
	flag.IntVar(&opts.concurrency, "concurrency", 50, "clients in flight at once")
	flag.IntVar(&opts.idle, "idle", 10000, "idle authenticated sockets held for the memory measurement; 0 skips it")
	flag.IntVar(&opts.workers, "workers", 1, "worker processes of the load generator")
	flag.Float64Var(&opts.rate, "rate", 0, "handshakes started per second in the measured runs; 0 starts the next as soon as one finishes")
	flag.IntVar(&opts.rounds, "rounds", 1, "measured rounds; each runs every server once with each client version")
	flag.StringVar(&opts.idleHook, "idle-hook", "", "shell command run while the idle sockets are held, with SERVER_PID, PROTOCOL and METRICS_URL set, such as one that saves profiles")
	flag.StringVar(&opts.demoArgs, "idle-demo-args", "", "extra chat-demo flags for the idle memory runs, separated by spaces")
	flag.StringVar(&opts.binDir, "bin", "", "folder with prebuilt sockauth and chat-demo binaries; empty builds them")
	flag.StringVar(&opts.compareDir, "compare", "", "folder with a second build of sockauth and chat-demo to measure in the same rounds, for A/B runs")
	idleReads := flag.String("idle-reads", "3s,30s", "comma-separated times after the last idle socket connected at which to read the memory")
	flag.Parse()
	var err error
	if opts.idleReads, err = parseIdleReads(*idleReads); err != nil {
		fmt.Fprintln(os.Stderr, "socketbench:", err)
		os.Exit(2)
	}

	if err := run(opts); err != nil {
		fmt.Fprintln(os.Stderr, "socketbench:", err)
		os.Exit(1)
	}
}

func run(opts options) error {
	loadgen, err := filepath.Abs("bench/socket/loadgen.js")
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(loadgen), "node_modules", "socketio-jwt")); err != nil {
		return errors.New("bench/socket/node_modules is missing: run npm ci --prefix bench/socket")
	}

	work, err := os.MkdirTemp("", "socketbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	binDir := opts.binDir
	if binDir == "" {
		binDir = work
		for _, pkg := range []string{"sockauth", "chat-demo"} {
			build := exec.Command("go", "build", "-o", filepath.Join(binDir, pkg), "./cmd/"+pkg)
			build.Stderr = os.Stderr
			if err := build.Run(); err != nil {
				return fmt.Errorf("build %s: %w", pkg, err)
			}
		}
	}

	ours, err := startSockauth(binDir, filepath.Join(work, "authority"), "sockauth chat-demo")
	if err != nil {
		return err
	}
	defer ours.stop()
	servers := []*server{ours}
	if opts.compareDir != "" {
		other, err := startSockauth(opts.compareDir, filepath.Join(work, "authority-compare"), "sockauth chat-demo (--compare)")
		if err != nil {
			return err
		}
		defer other.stop()
		servers = append(servers, other)
	}

	peer, err := startPeer(filepath.Join(filepath.Dir(loadgen), "peer-server.js"))
	if err != nil {
		return err
	}
	defer peer.stop()

	pace := "each lane starts its next client when one finishes"
	if opts.rate > 0 {
		pace = fmt.Sprintf("%g clients started per second", opts.rate)
	}
	fmt.Printf("socket handshakes: %d clients, at most %d in flight, %s, %d load generator processes;\n",
		opts.clients, opts.concurrency, pace, opts.workers)
	fmt.Printf("login + authenticate + one echo with ack, WebSocket\n\n")
	fmt.Println("The load generator shares the machine's cores with the servers, so the rate depends on the")
	fmt.Println("CPU that it and other programs take. Server CPU counts user and system time of the server")
	fmt.Println("processes, the authority included for sockauth; load generator CPU is that of the Node")
	fmt.Println("processes of loadgen.js during the run. Machine busy is the share of all cores in use,")
	fmt.Println("other programs on the machine included.")
	fmt.Println()

	// A warm-up run of each server first, so that none pays for its start in
	// the measured runs.
	for _, target := range append(slices.Clone(servers), peer) {
		warmUp := loadRun{loadgen: loadgen, url: target.url, protocol: 2,
			clients: opts.concurrency * 4, concurrency: opts.concurrency, workers: opts.workers}
		if _, err := measure(target, warmUp); err != nil {
			return err
		}
	}

	var runs []handshakeRun
	for round := 0; round < opts.rounds; round++ {
		for _, target := range servers {
			for _, protocol := range []int{2, 4} {
				m, err := measure(target, loadRun{loadgen: loadgen, url: target.url, protocol: protocol,
					clients: opts.clients, concurrency: opts.concurrency, workers: opts.workers, rate: opts.rate})
				if err != nil {
					return err
				}
				runs = append(runs, handshakeRun{target, protocol, m})
			}
		}
		m, err := measure(peer, loadRun{loadgen: loadgen, url: peer.url, protocol: 2,
			clients: opts.clients, concurrency: opts.concurrency, workers: opts.workers, rate: opts.rate})
		if err != nil {
			return err
		}
		runs = append(runs, handshakeRun{peer, 2, m})
	}
	printHandshakes(runs)

	if opts.idle == 0 {
		return nil
	}
	// The chat demo keeps the heap that the handshake runs grew, so each
	// client generation gets a fresh authority and chat demo of its own.
	ours.stop()
	fmt.Printf("\nidle memory: %d authenticated sockets held open, RSS of the server process\n\n", opts.idle)
	fmt.Println("Each chat demo row runs in a new chat demo process, measured after a warm-up of")
	fmt.Printf("%d handshakes. Goroutines and heap in use come from its /metrics; the peer has neither.\n", opts.concurrency*4)
	fmt.Println()
	fmt.Println("| server | client | read after | RSS before | RSS with sockets | per socket | goroutines per socket | heap in use per socket |")
	fmt.Println("|---|---|---:|---:|---:|---:|---:|---:|")
	for _, protocol := range []int{2, 4} {
		dataDir := filepath.Join(work, fmt.Sprintf("authority-idle-%d", protocol))
		if err := measureIdleDemo(loadgen, binDir, dataDir, protocol, opts); err != nil {
			return err
		}
	}
	return measureIdle(loadgen, idleTarget{"Node socketio-jwt 4.6.2", peer.url, 2, peer.processes[0].pid, ""}, opts)
}

// loadRun is one run of loadgen.js.
type loadRun struct {
	loadgen     string
	url         string
	protocol    int
	clients     int
	concurrency int
	workers     int
	rate        float64
	// hold keeps the sockets open until the caller releases them.
	hold bool
}

// runLoad runs loadgen.js and returns its summary. With run.hold set, the
// sockets stay open until release is called.
func runLoad(run loadRun) (result loadResult, release func(), err error) {
	cmd := exec.Command("node", run.loadgen)
	cmd.Env = append(os.Environ(), "URL="+run.url, "PROTOCOL="+strconv.Itoa(run.protocol),
		"CLIENTS="+strconv.Itoa(run.clients), "CONCURRENCY="+strconv.Itoa(run.concurrency),
		"WORKERS="+strconv.Itoa(run.workers), "RATE="+strconv.FormatFloat(run.rate, 'f', -1, 64))
	if run.hold {
		cmd.Env = append(cmd.Env, "HOLD=1")
	}
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return loadResult{}, nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return loadResult{}, nil, err
	}
	if err := cmd.Start(); err != nil {
		return loadResult{}, nil, err
	}
	release = func() {
		stdin.Close()
		cmd.Wait()
	}

	line, err := bufio.NewReader(stdout).ReadBytes('\n')
	if err != nil {
		release()
		return loadResult{}, nil, fmt.Errorf("loadgen against %s wrote no summary: %w", run.url, err)
	}
	if err := json.Unmarshal(line, &result); err != nil {
		release()
		return loadResult{}, nil, fmt.Errorf("loadgen summary %q: %w", line, err)
	}
	if !run.hold {
		release()
	}
	return result, release, nil
}

func start(name string, args ...string) (*exec.Cmd, error) {
	cmd := exec.Command(name, args...)
	cmd.Stdout = io.Discard
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	return cmd, nil
}

func stop(cmd *exec.Cmd) {
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
	}
}

func freeAddr() string {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer listener.Close()
	return listener.Addr().String()
}

func waitHTTP(url string) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		cancel()
		if err == nil {
			resp.Body.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func waitTCP(addr string) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// rss returns the resident set size of a process in KiB, from /proc.
func rss(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if value, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(value), "kB")), 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// measureIdleDemo starts an authority with its data in dataDir and a chat
// demo with its metrics endpoint, warms the demo up with handshakes of
// protocol, measures its idle sockets and stops both.
func measureIdleDemo(loadgen, binDir, dataDir string, protocol int, opts options) error {
	metricsAddr := freeAddr()
	demoArgs := append([]string{"--metrics-listen", metricsAddr}, strings.Fields(opts.demoArgs)...)
	demo, err := startSockauth(binDir, dataDir, "sockauth chat-demo", demoArgs...)
	if err != nil {
		return err
	}
	defer demo.stop()

	if _, _, err := runLoad(loadRun{loadgen: loadgen, url: demo.url, protocol: protocol,
		clients: opts.concurrency * 4, concurrency: opts.concurrency, workers: opts.workers}); err != nil {
		return err
	}
	return measureIdle(loadgen, idleTarget{demo.name, demo.url, protocol, demo.processes[0].pid, "http://" + metricsAddr + "/metrics"}, opts)
}

// idleTarget is one row of the idle memory table.
type idleTarget struct {
	name     string
	url      string
	protocol int
	pid      int
	// metricsURL is the server's Prometheus endpoint, or empty when it has
	// none.
	metricsURL string
}

// idleSample is the memory of a server process at one moment.
type idleSample struct {
	rssKiB     int64
	goroutines float64
	heapInUse  float64 // bytes
}

func sampleIdle(target idleTarget) (idleSample, error) {
	var sample idleSample
	var err error
	if sample.rssKiB, err = rss(target.pid); err != nil {
		return sample, err
	}
	if target.metricsURL == "" {
		return sample, nil
	}
	values, err := scrapeMetrics(target.metricsURL, "go_goroutines", "go_memstats_heap_inuse_bytes")
	if err != nil {
		return sample, err
	}
	sample.goroutines, sample.heapInUse = values[0], values[1]
	return sample, nil
}

// measureIdle holds opts.idle authenticated sockets open against target and
// prints the growth of the server's memory per socket.
func measureIdle(loadgen string, target idleTarget, opts options) error {
	// Let the server settle after the previous run before reading.
	time.Sleep(2 * time.Second)
	before, err := sampleIdle(target)
	if err != nil {
		return err
	}
	result, release, err := runLoad(loadRun{loadgen: loadgen, url: target.url, protocol: target.protocol,
		clients: opts.idle, concurrency: opts.concurrency * 2, workers: opts.workers, hold: true})
	if err != nil {
		return err
	}
	// Let timers and buffers settle before each reading. The first reading
	// still includes heap that the connection burst left to the garbage
	// collector. Later ones show what the server keeps once it is idle.
	connected := time.Now()
	var afters []idleSample
	for i, wait := range opts.idleReads {
		time.Sleep(time.Until(connected.Add(wait)))
		after, err := sampleIdle(target)
		// The hook runs after the last reading, so that it cannot delay one.
		if err == nil && i == len(opts.idleReads)-1 && opts.idleHook != "" {
			err = runIdleHook(opts.idleHook, target)
		}
		if err != nil {
			release()
			return err
		}
		afters = append(afters, after)
	}
	release()
	if result.Held == 0 {
		return fmt.Errorf("%s: no socket was held: %+v", target.name, result)
	}

	held := float64(result.Held)
	for i, after := range afters {
		goroutines, heap := "", ""
		if target.metricsURL != "" {
			goroutines = fmt.Sprintf("%.2f", (after.goroutines-before.goroutines)/held)
			heap = fmt.Sprintf("%.1f KiB", (after.heapInUse-before.heapInUse)/1024/held)
		}
		fmt.Printf("| %s | socket.io-client %d.x | %s | %.1f MiB | %.1f MiB | %.1f KiB (%d sockets) | %s | %s |\n",
			target.name, target.protocol, opts.idleReads[i], float64(before.rssKiB)/1024, float64(after.rssKiB)/1024,
			float64(after.rssKiB-before.rssKiB)/held, result.Held, goroutines, heap)
	}

	// Give the server time to close the released sockets.
	time.Sleep(3 * time.Second)
	return nil
}

// runIdleHook runs the -idle-hook command while the sockets are held, with
// the server's process id, protocol and metrics URL in its environment, so
// that it can take profiles or read /proc/PID/smaps_rollup.
func runIdleHook(hook string, target idleTarget) error {
	cmd := exec.Command("sh", "-c", hook)
	cmd.Env = append(os.Environ(), "SERVER_PID="+strconv.Itoa(target.pid),
		"PROTOCOL="+strconv.Itoa(target.protocol), "METRICS_URL="+target.metricsURL)
	cmd.Stdout = os.Stderr
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("idle hook: %w", err)
	}
	return nil
}

// scrapeMetrics returns the values of unlabelled Prometheus metrics, in the
// order of names, from the text format at url.
func scrapeMetrics(url string, names ...string) ([]float64, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: HTTP status %d", url, resp.StatusCode)
	}

	found := map[string]float64{}
	scanner := bufio.NewScanner(resp.Body)
	scanner.Buffer(make([]byte, 64<<10), 1<<20)
	for scanner.Scan() {
		name, value, ok := strings.Cut(scanner.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") {
			continue
		}
		if parsed, err := strconv.ParseFloat(value, 64); err == nil {
			found[name] = parsed
		}
	}
	if err := scanner.Err(); err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}

	values := make([]float64, len(names))
	for i, name := range names {
		value, ok := found[name]
		if !ok {
			return nil, fmt.Errorf("GET %s: no metric %s", url, name)
		}
		values[i] = value
	}
	return values, nil
}

// parseIdleReads reads the -idle-reads list: positive durations in
// increasing order.
func parseIdleReads(list string) ([]time.Duration, error) {
	var reads []time.Duration
	for _, field := range strings.Split(list, ",") {
		wait, err := time.ParseDuration(strings.TrimSpace(field))
		if err != nil {
			return nil, fmt.Errorf("invalid -idle-reads %q: %w", list, err)
		}
		if wait <= 0 || (len(reads) > 0 && wait <= reads[len(reads)-1]) {
			return nil, fmt.Errorf("invalid -idle-reads %q: expected positive durations in increasing order", list)
		}
		reads = append(reads, wait)
	}
	return reads, nil
}
