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
}

type options struct {
	clients     int
	concurrency int
	idle        int
	idleHook    string
	demoArgs    string
	skipBuild   bool
	binDir      string
}

func main() {
	var opts options
	flag.IntVar(&opts.clients, "clients", 2000, "clients per handshake run")
	flag.IntVar(&opts.concurrency, "concurrency", 50, "clients in flight at once")
	flag.IntVar(&opts.idle, "idle", 10000, "idle authenticated sockets held for the memory measurement; 0 skips it")
	flag.StringVar(&opts.idleHook, "idle-hook", "", "shell command run while the idle sockets are held, with SERVER_PID, PROTOCOL and METRICS_URL set, such as one that saves profiles")
	flag.StringVar(&opts.demoArgs, "idle-demo-args", "", "extra chat-demo flags for the idle memory runs, separated by spaces")
	flag.StringVar(&opts.binDir, "bin", "", "folder with prebuilt sockauth and chat-demo binaries; empty builds them")
	flag.Parse()

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

	authorityAddr := freeAddr()
	authority, err := start(filepath.Join(binDir, "sockauth"), "serve", "--listen", authorityAddr,
		"--data", filepath.Join(work, "authority"), "--log-level", "error")
	if err != nil {
		return err
	}
	defer stop(authority)
	if err := waitTCP(authorityAddr); err != nil {
		return fmt.Errorf("authority: %w", err)
	}

	demoAddr := freeAddr()
	demo, err := start(filepath.Join(binDir, "chat-demo"), "--listen", demoAddr, "--authority", authorityAddr, "--log-level", "error")
	if err != nil {
		return err
	}
	defer stop(demo)
	demoURL := "http://" + demoAddr
	if err := waitHTTP(demoURL + "/"); err != nil {
		return fmt.Errorf("chat demo: %w", err)
	}

	peerAddr := freeAddr()
	_, peerPort, _ := net.SplitHostPort(peerAddr)
	peer, err := start("node", filepath.Join(filepath.Dir(loadgen), "peer-server.js"), peerPort)
	if err != nil {
		return err
	}
	defer stop(peer)
	peerURL := "http://" + peerAddr
	if err := waitTCP(peerAddr); err != nil {
		return fmt.Errorf("peer server: %w", err)
	}

	fmt.Printf("socket handshakes: %d clients, %d in flight, login + authenticate + one echo with ack, WebSocket\n\n",
		opts.clients, opts.concurrency)
	fmt.Println("The load generator shares the machine's cores with the servers, so the rate may be the")
	fmt.Println("load generator's limit; the server CPU per handshake (user + system time of the server")
	fmt.Println("processes, the authority included for sockauth) does not depend on it.")
	fmt.Println()
	fmt.Println("| server | client | handshakes/s | p50 ms | p99 ms | errors | server CPU per handshake |")
	fmt.Println("|---|---|---:|---:|---:|---:|---:|")
	sockauthPIDs := []int{demo.Process.Pid, authority.Process.Pid}
	runs := []struct {
		server, url string
		protocol    int
		pids        []int
	}{
		// A warm-up run of each server first, so that neither pays for its
		// start in the measured runs.
		{"", demoURL, 2, nil}, {"", peerURL, 2, nil},
		{"sockauth chat-demo", demoURL, 2, sockauthPIDs},
		{"Node socketio-jwt 4.6.2", peerURL, 2, []int{peer.Process.Pid}},
		{"sockauth chat-demo", demoURL, 4, sockauthPIDs},
	}
	type measured struct{ rate, cpu float64 }
	results := map[string]measured{}
	for _, r := range runs {
		clients := opts.clients
		if r.server == "" {
			clients = opts.concurrency * 4
		}
		cpuBefore, err := cpuSeconds(r.pids)
		if err != nil {
			return err
		}
		result, _, err := runLoad(loadgen, r.url, r.protocol, clients, opts.concurrency, false)
		if err != nil {
			return err
		}
		cpuAfter, err := cpuSeconds(r.pids)
		if err != nil {
			return err
		}
		if r.server == "" {
			continue
		}
		perHandshake := (cpuAfter - cpuBefore) / float64(max(result.Completed, 1))
		results[fmt.Sprintf("%s/%d", r.server, r.protocol)] = measured{result.Rate, perHandshake}
		fmt.Printf("| %s | socket.io-client %d.x | %.0f | %.1f | %.1f | %d | %.2f ms |\n",
			r.server, r.protocol, result.Rate, result.P50, result.P99, result.Errors, perHandshake*1000)
		if result.Errors > 0 && result.FirstError != nil {
			fmt.Printf("\nfirst error: %s\n\n", *result.FirstError)
		}
	}
	ours, peerResult := results["sockauth chat-demo/2"], results["Node socketio-jwt 4.6.2/2"]
	if peerResult.rate > 0 && ours.cpu > 0 {
		fmt.Printf("\nsockauth / socketio-jwt with 2.x clients: %.2f× the handshake rate, %.2f× the handshakes per server CPU second\n",
			ours.rate/peerResult.rate, peerResult.cpu/ours.cpu)
	}

	if opts.idle == 0 {
		return nil
	}
	// The chat demo keeps the heap that the handshake runs grew, so each
	// client generation gets a fresh chat demo process of its own.
	stop(demo)
	fmt.Printf("\nidle memory: %d authenticated sockets held open, RSS of the server process\n\n", opts.idle)
	fmt.Println("Each chat demo row runs in a new chat demo process, measured after a warm-up of")
	fmt.Printf("%d handshakes. Goroutines and heap in use come from its /metrics; the peer has neither.\n", opts.concurrency*4)
	fmt.Println()
	fmt.Println("| server | client | RSS before | RSS with sockets | per socket | goroutines per socket | heap in use per socket |")
	fmt.Println("|---|---|---:|---:|---:|---:|---:|")
	for _, protocol := range []int{2, 4} {
		if err := measureIdleDemo(loadgen, binDir, authorityAddr, protocol, opts); err != nil {
			return err
		}
	}
	return measureIdle(loadgen, idleTarget{"Node socketio-jwt 4.6.2", peerURL, 2, peer.Process.Pid, ""}, opts)
}

// measureIdleDemo starts a chat demo with its metrics endpoint, warms it up
// with handshakes of protocol, measures its idle sockets and stops it.
func measureIdleDemo(loadgen, binDir, authorityAddr string, protocol int, opts options) error {
	demoAddr, metricsAddr := freeAddr(), freeAddr()
	args := []string{"--listen", demoAddr, "--authority", authorityAddr, "--metrics-listen", metricsAddr, "--log-level", "error"}
	args = append(args, strings.Fields(opts.demoArgs)...)
	demo, err := start(filepath.Join(binDir, "chat-demo"), args...)
	if err != nil {
		return err
	}
	defer stop(demo)
	demoURL := "http://" + demoAddr
	if err := waitHTTP(demoURL + "/"); err != nil {
		return fmt.Errorf("chat demo: %w", err)
	}

	if _, _, err := runLoad(loadgen, demoURL, protocol, opts.concurrency*4, opts.concurrency, false); err != nil {
		return err
	}
	return measureIdle(loadgen, idleTarget{"sockauth chat-demo", demoURL, protocol, demo.Process.Pid, "http://" + metricsAddr + "/metrics"}, opts)
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
	result, release, err := runLoad(loadgen, target.url, target.protocol, opts.idle, opts.concurrency*2, true)
	if err != nil {
		return err
	}
	// Let timers and buffers settle before reading the memory.
	time.Sleep(3 * time.Second)
	after, err := sampleIdle(target)
	if opts.idleHook != "" && err == nil {
		err = runIdleHook(opts.idleHook, target)
	}
	release()
	if err != nil {
		return err
	}
	if result.Held == 0 {
		return fmt.Errorf("%s: no socket was held: %+v", target.name, result)
	}

	held := float64(result.Held)
	goroutines, heap := "", ""
	if target.metricsURL != "" {
		goroutines = fmt.Sprintf("%.2f", (after.goroutines-before.goroutines)/held)
		heap = fmt.Sprintf("%.1f KiB", (after.heapInUse-before.heapInUse)/1024/held)
	}
	fmt.Printf("| %s | socket.io-client %d.x | %.1f MiB | %.1f MiB | %.1f KiB (%d sockets) | %s | %s |\n",
		target.name, target.protocol, float64(before.rssKiB)/1024, float64(after.rssKiB)/1024,
		float64(after.rssKiB-before.rssKiB)/held, result.Held, goroutines, heap)

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

// runLoad runs loadgen.js and returns its summary. With hold set, the sockets
// stay open until release is called.
func runLoad(loadgen, url string, protocol, clients, concurrency int, hold bool) (loadResult, func(), error) {
	cmd := exec.Command("node", loadgen)
	cmd.Env = append(os.Environ(), "URL="+url, "PROTOCOL="+strconv.Itoa(protocol),
		"CLIENTS="+strconv.Itoa(clients), "CONCURRENCY="+strconv.Itoa(concurrency))
	if hold {
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
	release := func() {
		stdin.Close()
		cmd.Wait()
	}

	line, err := bufio.NewReader(stdout).ReadBytes('\n')
	if err != nil {
		release()
		return loadResult{}, nil, fmt.Errorf("loadgen against %s wrote no summary: %w", url, err)
	}
	var result loadResult
	if err := json.Unmarshal(line, &result); err != nil {
		release()
		return loadResult{}, nil, fmt.Errorf("loadgen summary %q: %w", line, err)
	}
	if !hold {
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

// cpuSeconds returns the user and system CPU time that the processes have
// used so far, from /proc/PID/stat, in seconds.
func cpuSeconds(pids []int) (float64, error) {
	// The kernel reports these times in clock ticks of USER_HZ, which is 100
	// on Linux for every architecture that Go supports.
	const ticksPerSecond = 100
	var total float64
	for _, pid := range pids {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return 0, err
		}
		// The command name in field 2 may contain spaces; fields after the
		// closing parenthesis start with field 3.
		fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
		if len(fields) < 13 {
			return 0, fmt.Errorf("short /proc/%d/stat", pid)
		}
		for _, field := range fields[11:13] { // utime and stime, fields 14 and 15
			ticks, err := strconv.ParseFloat(field, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
			}
			total += ticks / ticksPerSecond
		}
	}
	return total, nil
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
