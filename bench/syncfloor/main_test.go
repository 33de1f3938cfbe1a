//go:build linux

package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// mainEnv makes the test binary run the command, for tests of its signal
// handling.
const mainEnv = "SYNCFLOOR_TEST_MAIN"

// TestMain lets the test binary serve as the child process that run starts
// without -in-process, and run the command when mainEnv is set.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "-"+childFlag || os.Getenv(mainEnv) != "" {
		main()
		return
	}
	os.Exit(m.Run())
}

func smallOptions(t *testing.T) options {
	return options{
		callers: 8, connections: 2, count: 20, rounds: 2, recordSize: 128,
		log:      logConfig{size: 1 << 20, mode: writeMapped, syncers: 1},
		heapSize: 1 << 20, dir: t.TempDir(), timeout: 10 * time.Second, inProcess: true,
	}
}

// reportRow matches a row of the report: the phase, its rate, its share of
// the no-op rate and its writes per sync.
var reportRow = regexp.MustCompile(`(?m)^\s*(no-op|synced write[^\d]*?|Badger [^\d]*?)\s+(\d+)\s+(\d+)%.*?\s(-|\d+\.\d)\s`)

// checkReport checks that the report has a row with plausible figures for
// every phase of opts.
func checkReport(t *testing.T, report string, opts options) {
	t.Helper()
	rows := map[string][]string{}
	for _, match := range reportRow.FindAllStringSubmatch(report, -1) {
		rows[strings.TrimSpace(match[1])] = match[2:]
	}
	for _, kind := range append([]phaseKind{noopPhase}, opts.workPhases()...) {
		row, ok := rows[kind.label]
		if !ok {
			t.Errorf("no row for phase %q in:\n%s", kind.label, report)
			continue
		}
		if rate, _ := strconv.Atoi(row[0]); rate <= 0 {
			t.Errorf("phase %q has rate %s", kind.label, row[0])
		}
		share, _ := strconv.Atoi(row[1])
		if share <= 0 || (kind != noopPhase && share > 100) {
			t.Errorf("phase %q has share %d%% of the no-op rate", kind.label, share)
		}
		perSync, err := strconv.ParseFloat(row[2], 64)
		switch {
		case kind == rawPhase:
			if row[2] != "-" {
				t.Errorf("phase %q has %s writes per sync, want - because Badger's syncs are not counted", kind.label, row[2])
			}
		case kind != noopPhase && (err != nil || perSync < 1):
			t.Errorf("phase %q has %s writes per sync, want at least 1", kind.label, row[2])
		}
	}
}

// checkNoFolderLeft fails when dir holds anything.
func checkNoFolderLeft(t *testing.T, dir string) {
	t.Helper()
	left, err := filepath.Glob(filepath.Join(dir, "*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Errorf("the run left %v behind", left)
	}
}

func TestRunReportsEveryPhase(t *testing.T) {
	for _, test := range []struct {
		name  string
		mode  writeMode
		store bool
	}{{"mmap", writeMapped, false}, {"pwrite", writePwrite, false}, {"store", writeMapped, true}} {
		t.Run(test.name, func(t *testing.T) {
			opts := smallOptions(t)
			opts.log.mode = test.mode
			opts.store = test.store
			mode := test.mode
			var out bytes.Buffer
			if err := run(context.Background(), &out, opts); err != nil {
				t.Fatal(err)
			}
			checkReport(t, out.String(), opts)
			if !strings.Contains(out.String(), "written with "+string(mode)) {
				t.Errorf("the report does not name the write mode %s:\n%s", mode, out.String())
			}
			checkNoFolderLeft(t, opts.dir)
		})
	}
}

func TestRunServesFromChildProcess(t *testing.T) {
	opts := smallOptions(t)
	opts.inProcess = false
	// The child opens the stores only when the parent passes -store on.
	opts.store = true
	// The child prints the folder's path, which may hold spaces.
	opts.dir = filepath.Join(opts.dir, "with space")
	if err := os.Mkdir(opts.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := run(context.Background(), &out, opts); err != nil {
		t.Fatal(err)
	}
	checkReport(t, out.String(), opts)
	if !strings.Contains(out.String(), "in a separate process") {
		t.Errorf("the report does not say that the server ran in a separate process:\n%s", out.String())
	}
	checkNoFolderLeft(t, opts.dir)
}

func TestRunFailedCallsReturnError(t *testing.T) {
	for _, inProcess := range []bool{true, false} {
		t.Run("in-process="+strconv.FormatBool(inProcess), func(t *testing.T) {
			opts := smallOptions(t)
			opts.inProcess = inProcess
			// Three sync loops make many short syncs, and with a deadline
			// of a few milliseconds some calls time out while others still
			// wait for a sync in the server.
			opts.callers, opts.count, opts.log.syncers = 32, 200, 3
			opts.timeout = 3 * time.Millisecond
			err := run(context.Background(), &bytes.Buffer{}, opts)
			if err == nil || !strings.Contains(err.Error(), "DeadlineExceeded") {
				t.Errorf("run returned %v, want a deadline error", err)
			}
			checkNoFolderLeft(t, opts.dir)
		})
	}
}

func TestRunStopsWhenCancelled(t *testing.T) {
	opts := smallOptions(t)
	opts.inProcess = false
	opts.count, opts.rounds = 100_000, 1
	// A signal cancels the run's context. A deadline would not do here:
	// gRPC fails a call at the deadline, which can be before the context
	// itself reports that it has ended.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	time.AfterFunc(300*time.Millisecond, cancel)
	err := run(ctx, &bytes.Buffer{}, opts)
	if err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Errorf("a cancelled run returned %v, want an error that says it was interrupted", err)
	}
	checkNoFolderLeft(t, opts.dir)
}

func TestSignalsRemoveLogFolder(t *testing.T) {
	for _, signal := range []syscall.Signal{syscall.SIGTERM, syscall.SIGHUP} {
		t.Run(signal.String(), func(t *testing.T) {
			dir := t.TempDir()
			cmd := exec.Command(os.Args[0], "-callers", "8", "-count", "1000000", "-rounds", "1", "-dir", dir)
			cmd.Env = append(os.Environ(), mainEnv+"=1")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}

			// The signal comes once the child has created the log folder.
			deadline := time.Now().Add(30 * time.Second)
			for {
				if folders, _ := filepath.Glob(filepath.Join(dir, "sockauth-syncfloor-*")); len(folders) > 0 {
					break
				}
				if time.Now().After(deadline) {
					cmd.Process.Kill()
					cmd.Wait()
					t.Fatalf("no log folder appeared within 30 s; the command wrote %q", stderr.String())
				}
				time.Sleep(20 * time.Millisecond)
			}
			time.Sleep(200 * time.Millisecond)
			if err := cmd.Process.Signal(signal); err != nil {
				t.Fatal(err)
			}

			err := cmd.Wait()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 {
				t.Errorf("the command ended with %v, want exit status 1", err)
			}
			if !strings.Contains(stderr.String(), "interrupted") {
				t.Errorf("the command wrote %q, want a message that it was interrupted", stderr.String())
			}
			checkNoFolderLeft(t, dir)
		})
	}
}

func TestRunRejectsMemoryFileSystem(t *testing.T) {
	var fs unix.Statfs_t
	if err := unix.Statfs("/dev/shm", &fs); err != nil || fs.Type != unix.TMPFS_MAGIC {
		t.Skip("no tmpfs at /dev/shm on this machine")
	}
	opts := smallOptions(t)
	opts.dir = "/dev/shm"
	err := run(context.Background(), &bytes.Buffer{}, opts)
	if err == nil || !strings.Contains(err.Error(), "in memory") {
		t.Errorf("a log on tmpfs returned %v, want an error about memory", err)
	}
}

func TestReportDividesByFasterNeighbour(t *testing.T) {
	second := func(calls int) phase { return phase{calls: calls, elapsed: time.Second, cpu: time.Second} }
	synced := func(calls int) phase {
		p := second(calls)
		p.syncs = logStats{syncs: 10, writes: uint64(calls), syncTime: 10 * time.Millisecond}
		return p
	}
	noops := []phase{second(1000), second(800), second(2000)}
	kinds := []phaseKind{syncedPhase, cryptoPhase, rawPhase}
	work := [][]phase{
		{synced(500), synced(500)}, // 500/1000 and 500/2000: 50% and 25%
		{synced(100), synced(100)},
		{second(100), second(100)},
	}
	var out bytes.Buffer
	if err := printReport(&out, kinds, noops, work); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`synced write\s+500\s+38%\s+25-50%\s+50\.0\s+1ms\s`).MatchString(out.String()) {
		t.Errorf("the synced write row does not show a median of 38%% over 25-50%% and 50 writes per 1 ms sync:\n%s", out.String())
	}
	// A phase whose syncs are not counted shows none.
	if !regexp.MustCompile(`Badger synced writes \+ token codec\s+100\s+8%\s+5-10%\s+-\s+-\s`).MatchString(out.String()) {
		t.Errorf("the row of Badger's own synced writes does not show its share and no syncs:\n%s", out.String())
	}
	if !regexp.MustCompile(`no-op\s+1000\s+100%\s+40-100%`).MatchString(out.String()) {
		t.Errorf("the no-op row does not show its median of 1000 and a range of 40-100%%:\n%s", out.String())
	}
}

// newTestHealth returns the health service of a server without -store, on a
// small log that is closed when the test ends.
func newTestHealth(t *testing.T) (*floorHealth, *groupLog) {
	t.Helper()
	l, err := openGroupLog(filepath.Join(t.TempDir(), "floor.log"), logConfig{size: 1 << 20, mode: writePwrite, syncers: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.close(); err != nil {
			t.Error(err)
		}
	})
	health, err := newFloorHealth(l, 64)
	if err != nil {
		t.Fatal(err)
	}
	return health, l
}

func TestCheckRejectsUnknownService(t *testing.T) {
	health, l := newTestHealth(t)

	_, err := health.Check(context.Background(), &healthpb.HealthCheckRequest{Service: "sockauth.v1.AuthorityService"})
	if status.Code(err) != codes.NotFound {
		t.Errorf("an unknown service returned %v, want NotFound", err)
	}
	logPhases := options{}.workPhases()
	for _, kind := range logPhases {
		if _, err := health.Check(context.Background(), &healthpb.HealthCheckRequest{Service: kind.service}); err != nil {
			t.Errorf("service %q: %v", kind.service, err)
		}
	}
	if writes := l.stats().writes; writes != uint64(len(logPhases)) {
		t.Errorf("%d synced writes, want one per work phase (%d)", writes, len(logPhases))
	}
	// Without -store the server has no store to write to.
	for _, kind := range []phaseKind{storePhase, groupPhase, rawPhase} {
		_, err := health.Check(context.Background(), &healthpb.HealthCheckRequest{Service: kind.service})
		if status.Code(err) != codes.FailedPrecondition {
			t.Errorf("service %q without -store returned %v, want FailedPrecondition", kind.service, err)
		}
	}
}

func TestParseOptions(t *testing.T) {
	opts, err := parseOptions(nil)
	if err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if opts.callers != 64 || opts.log.syncers != 1 || opts.log.mode != writeMapped || opts.inProcess || opts.store {
		t.Errorf("unexpected defaults %+v", opts)
	}
	for _, args := range [][]string{
		{"-callers", "0"},
		{"-rounds", "0"},
		{"-record", "0"},
		{"-log-mib", "1", "-record", "1048577"},
		{"-log-mib", "0"},
		{"-log-mib", "1025"},
		{"-write", "fsync"},
		{"-syncers", "0"},
		{"-overlap-after", "-1ms"},
		{"-overlap-after", "1ms", "-syncers", "1"},
		{"-heap-mib", "-1"},
		{"-heap-mib", "4097"},
		{"-timeout", "0"},
		{"-rounds", "1", "extra"},
	} {
		if _, err := parseOptions(args); err == nil || errors.Is(err, flag.ErrHelp) {
			t.Errorf("%q: accepted", args)
		}
	}
}

func TestChildArgsKeepOptions(t *testing.T) {
	// The child makes no calls, so its arguments leave the load settings
	// at their defaults, which opts repeats.
	opts := options{
		callers: 7, connections: 4, count: 300, rounds: 5, recordSize: 64,
		log:      logConfig{size: 2 << 20, mode: writePwrite, syncers: 2, overlapAfter: time.Millisecond, sparse: true},
		heapSize: 3 << 20, dir: "/tmp/a b", timeout: 10 * time.Second, store: true,
	}
	got, err := parseOptions(childArgs(opts))
	if err != nil {
		t.Fatal(err)
	}
	if !got.child {
		t.Error("the child's arguments do not make it serve as a child")
	}
	got.child = false
	if got != opts {
		t.Errorf("the child parsed\n%+v\nfrom its arguments, want\n%+v", got, opts)
	}
}

func TestParseListening(t *testing.T) {
	addr, dir, ok := parseListening("listening 127.0.0.1:4000 \"/tmp/a b/sockauth-syncfloor-1\"\n")
	if !ok || addr != "127.0.0.1:4000" || dir != "/tmp/a b/sockauth-syncfloor-1" {
		t.Errorf("got %q, %q, %v", addr, dir, ok)
	}
	for _, line := range []string{"", "listening\n", "listening 127.0.0.1:4000\n", "listening 127.0.0.1:4000 /tmp/x\n", "serving 127.0.0.1:4000 \"/tmp\"\n"} {
		if _, _, ok := parseListening(line); ok {
			t.Errorf("%q was accepted", line)
		}
	}
}
