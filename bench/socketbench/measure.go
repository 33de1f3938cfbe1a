package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// process is one server process whose CPU time a run counts.
type process struct {
	name string
	pid  int
	// mainThread also reports the CPU time of the process's main thread,
	// the one that runs the event loop of a Node server.
	mainThread bool
}

// server is a running server that the load generator drives, with the
// processes that serve its handshakes.
type server struct {
	name      string
	url       string
	processes []process
	stop      func()
}

// startSockauth starts `sockauth serve` with its data in dataDir and the chat
// demo in front of it with the extra flags demoArgs, both built into binDir.
func startSockauth(binDir, dataDir, name string, demoArgs ...string) (*server, error) {
	authorityAddr := freeAddr()
	authority, err := start(filepath.Join(binDir, "sockauth"), "serve", "--listen", authorityAddr,
		"--data", dataDir, "--log-level", "error")
	if err != nil {
		return nil, err
	}
	if err := waitTCP(authorityAddr); err != nil {
		stop(authority)
		return nil, fmt.Errorf("authority: %w", err)
	}

	demoAddr := freeAddr()
	args := append([]string{"--listen", demoAddr, "--authority", authorityAddr, "--log-level", "error"}, demoArgs...)
	demo, err := start(filepath.Join(binDir, "chat-demo"), args...)
	if err != nil {
		stop(authority)
		return nil, err
	}
	url := "http://" + demoAddr
	if err := waitHTTP(url + "/"); err != nil {
		stop(demo)
		stop(authority)
		return nil, fmt.Errorf("chat demo: %w", err)
	}

	return &server{
		name: name,
		url:  url,
		processes: []process{
			{name: "chat-demo", pid: demo.Process.Pid},
			{name: "sockauth serve", pid: authority.Process.Pid},
		},
		stop: func() { stop(demo); stop(authority) },
	}, nil
}

// startPeer starts the Node socketio-jwt server of peer-server.js.
func startPeer(script string) (*server, error) {
	addr := freeAddr()
	_, port, _ := net.SplitHostPort(addr)
	peer, err := start("node", script, port)
	if err != nil {
		return nil, err
	}
	if err := waitTCP(addr); err != nil {
		stop(peer)
		return nil, fmt.Errorf("peer server: %w", err)
	}
	return &server{
		name:      "Node socketio-jwt 4.6.2",
		url:       "http://" + addr,
		processes: []process{{name: "node peer-server.js", pid: peer.Process.Pid, mainThread: true}},
		stop:      func() { stop(peer) },
	}, nil
}

// measurement is one handshake run of the load generator against a server.
type measurement struct {
	load loadResult
	// cpu is the CPU seconds that each of the server's processes used during
	// the run, in the order of server.processes.
	cpu []float64
	// mainThread is the CPU seconds of each process's main thread, or zero.
	mainThread []float64
	// machineBusy is the share of all cores' time that was not idle during
	// the run, other programs included.
	machineBusy float64
}

// handshakeRun is one measured run.
type handshakeRun struct {
	server   *server
	protocol int
	measurement
}

// measure runs the load generator once against target and reads the CPU
// time of every server process and of the machine before and after.
func measure(target *server, run loadRun) (measurement, error) {
	cpuBefore, threadBefore, err := processTimes(target.processes)
	if err != nil {
		return measurement{}, err
	}
	machineBefore, err := machineTimes()
	if err != nil {
		return measurement{}, err
	}

	result, _, err := runLoad(run)
	if err != nil {
		return measurement{}, err
	}

	cpuAfter, threadAfter, err := processTimes(target.processes)
	if err != nil {
		return measurement{}, err
	}
	machineAfter, err := machineTimes()
	if err != nil {
		return measurement{}, err
	}

	m := measurement{load: result}
	for i := range target.processes {
		m.cpu = append(m.cpu, cpuAfter[i]-cpuBefore[i])
		m.mainThread = append(m.mainThread, threadAfter[i]-threadBefore[i])
	}
	if total := machineAfter.total - machineBefore.total; total > 0 {
		m.machineBusy = (machineAfter.busy - machineBefore.busy) / total
	}
	return m, nil
}

// perHandshake returns seconds of CPU per completed handshake in milliseconds.
func (m measurement) perHandshake(seconds float64) float64 {
	return seconds * 1000 / float64(max(m.load.Completed, 1))
}

// serverCPU returns the CPU seconds of all the server's processes.
func (m measurement) serverCPU() float64 {
	var total float64
	for _, seconds := range m.cpu {
		total += seconds
	}
	return total
}

// printHandshakes prints the runs as Markdown tables: one line per run, then
// the CPU of each party per handshake, then the ratios of each round.
func printHandshakes(runs []handshakeRun) {
	fmt.Println("| server | client | handshakes/s | p50 ms | p99 ms | errors | server CPU per handshake | load generator CPU per handshake | machine busy |")
	fmt.Println("|---|---|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range runs {
		fmt.Printf("| %s | socket.io-client %d.x | %.0f | %.1f | %.1f | %d | %.2f ms | %.2f ms | %.0f%% |\n",
			r.server.name, r.protocol, r.load.Rate, r.load.P50, r.load.P99, r.load.Errors,
			r.perHandshake(r.serverCPU()), r.perHandshake(r.load.CPUMillis/1000), r.machineBusy*100)
		if r.load.Errors > 0 && r.load.FirstError != nil {
			fmt.Printf("\nfirst error: %s\n\n", *r.load.FirstError)
		}
	}

	fmt.Println()
	fmt.Println("CPU by process: per handshake, and as a share of one core over the run.")
	fmt.Println()
	fmt.Println("| server | client | process | CPU per handshake | share of one core |")
	fmt.Println("|---|---|---|---:|---:|")
	for _, r := range runs {
		row := func(name string, seconds float64) {
			fmt.Printf("| %s | %d.x | %s | %.3f ms | %.0f%% |\n", r.server.name, r.protocol, name,
				r.perHandshake(seconds), seconds/r.load.Seconds*100)
		}
		for i, p := range r.server.processes {
			row(p.name, r.cpu[i])
			if p.mainThread {
				row(p.name+", main thread", r.mainThread[i])
			}
		}
		row("load generator", r.load.CPUMillis/1000)
		fmt.Printf("| %s | %d.x | load generator event loop busy | | %.0f%% |\n", r.server.name, r.protocol, r.load.EventLoopUtilization*100)
	}

	// Each round ends with the peer's run; the ratios compare every sockauth
	// run of 2.x clients with the peer's run of the same round.
	fmt.Println()
	var round []handshakeRun
	for _, r := range runs {
		if !r.server.processes[0].mainThread {
			round = append(round, r)
			continue
		}
		for _, ours := range round {
			if ours.protocol != 2 {
				continue
			}
			fmt.Printf("%s / socketio-jwt with 2.x clients: %.2f× the handshake rate, %.2f× the handshakes per server CPU second\n",
				ours.server.name, ours.load.Rate/r.load.Rate, r.perHandshake(r.serverCPU())/ours.perHandshake(ours.serverCPU()))
		}
		round = nil
	}
}

// clockTicksPerSecond is USER_HZ, the unit of the times in /proc, which is
// 100 on Linux for every architecture that Go supports.
const clockTicksPerSecond = 100

// processTimes returns the user and system CPU seconds that each process
// and, where asked, its main thread have used so far.
func processTimes(processes []process) (total, mainThread []float64, err error) {
	for _, p := range processes {
		seconds, err := statCPUSeconds(fmt.Sprintf("/proc/%d/stat", p.pid))
		if err != nil {
			return nil, nil, err
		}
		total = append(total, seconds)

		var threadSeconds float64
		if p.mainThread {
			threadSeconds, err = statCPUSeconds(fmt.Sprintf("/proc/%d/task/%d/stat", p.pid, p.pid))
			if err != nil {
				return nil, nil, err
			}
		}
		mainThread = append(mainThread, threadSeconds)
	}
	return total, mainThread, nil
}

// statCPUSeconds returns utime + stime of a /proc stat file in seconds.
func statCPUSeconds(path string) (float64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	// The command name in field 2 may contain spaces; fields after the
	// closing parenthesis start with field 3.
	fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	if len(fields) < 13 {
		return 0, fmt.Errorf("%s has fewer fields than expected: %q", path, data)
	}
	var total float64
	for _, field := range fields[11:13] { // utime and stime, fields 14 and 15
		ticks, err := strconv.ParseFloat(field, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", path, err)
		}
		total += ticks / clockTicksPerSecond
	}
	return total, nil
}

// cpuTimes are the machine's CPU times summed over all cores, in ticks.
type cpuTimes struct {
	total, busy float64
}

// machineTimes reads the first line of /proc/stat. Idle and iowait time
// count as not busy.
func machineTimes() (cpuTimes, error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}, err
	}
	line, _, _ := strings.Cut(string(data), "\n")
	fields := strings.Fields(line)
	if len(fields) < 9 || fields[0] != "cpu" {
		return cpuTimes{}, fmt.Errorf("unexpected first line of /proc/stat: %q", line)
	}
	var t cpuTimes
	// user nice system idle iowait irq softirq steal; guest time is already
	// part of user time.
	for i, field := range fields[1:9] {
		ticks, err := strconv.ParseFloat(field, 64)
		if err != nil {
			return cpuTimes{}, fmt.Errorf("/proc/stat: %w", err)
		}
		t.total += ticks
		if i != 3 && i != 4 {
			t.busy += ticks
		}
	}
	return t, nil
}
