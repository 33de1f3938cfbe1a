//go:build linux

package main

import (
	"bytes"
	"context"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

func smallOptions(t *testing.T) options {
	return options{
		callers: 8, connections: 2, count: 20, rounds: 2, recordSize: 128, logSize: 1 << 20,
		mode: writeMapped, syncers: 1, heapSize: 1 << 20, dir: t.TempDir(), timeout: 10 * time.Second,
	}
}

// reportRow matches a row of the report: the phase, its rate, its share of
// the no-op rate and its writes per sync.
var reportRow = regexp.MustCompile(`(?m)^\s*(no-op|synced write[^\d]*?)\s+(\d+)\s+(\d+)%.*?\s(-|\d+\.\d)\s`)

func TestRunReportsEveryPhase(t *testing.T) {
	for _, mode := range []writeMode{writeMapped, writePwrite} {
		t.Run(string(mode), func(t *testing.T) {
			opts := smallOptions(t)
			opts.mode = mode
			var out bytes.Buffer
			if err := run(context.Background(), &out, opts); err != nil {
				t.Fatal(err)
			}

			rows := map[string][]string{}
			for _, match := range reportRow.FindAllStringSubmatch(out.String(), -1) {
				rows[strings.TrimSpace(match[1])] = match[2:]
			}
			for _, kind := range append([]phaseKind{noopPhase}, workPhases...) {
				row, ok := rows[kind.label]
				if !ok {
					t.Errorf("no row for phase %q in:\n%s", kind.label, out.String())
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
				if kind != noopPhase && (err != nil || perSync < 1) {
					t.Errorf("phase %q has %s writes per sync, want at least 1", kind.label, row[2])
				}
			}
			if !strings.Contains(out.String(), "written with "+string(mode)) {
				t.Errorf("the report does not name the write mode %s:\n%s", mode, out.String())
			}
		})
	}
}

func TestRunRemovesLogFolder(t *testing.T) {
	opts := smallOptions(t)
	opts.rounds = 1
	if err := run(context.Background(), &bytes.Buffer{}, opts); err != nil {
		t.Fatal(err)
	}
	left, err := filepath.Glob(filepath.Join(opts.dir, "*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Errorf("the run left %v behind", left)
	}
}

func TestCheckRejectsUnknownService(t *testing.T) {
	l, err := openGroupLog(filepath.Join(t.TempDir(), "floor.log"), 1<<20, writePwrite, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer l.close()
	health, err := newFloorHealth(l, 64)
	if err != nil {
		t.Fatal(err)
	}

	_, err = health.Check(context.Background(), &healthpb.HealthCheckRequest{Service: "sockauth.v1.AuthorityService"})
	if status.Code(err) != codes.NotFound {
		t.Errorf("an unknown service returned %v, want NotFound", err)
	}
	for _, kind := range workPhases {
		if _, err := health.Check(context.Background(), &healthpb.HealthCheckRequest{Service: kind.service}); err != nil {
			t.Errorf("service %q: %v", kind.service, err)
		}
	}
	if writes := l.stats().writes; writes != uint64(len(workPhases)) {
		t.Errorf("%d synced writes, want one per work phase (%d)", writes, len(workPhases))
	}
}

func TestOptionsValidate(t *testing.T) {
	valid := smallOptions(t)
	if err := valid.validate(); err != nil {
		t.Fatalf("valid options: %v", err)
	}
	for name, change := range map[string]func(*options){
		"no callers":         func(o *options) { o.callers = 0 },
		"no rounds":          func(o *options) { o.rounds = 0 },
		"record over log":    func(o *options) { o.recordSize = int(o.logSize) + 1 },
		"empty log":          func(o *options) { o.logSize = 0 },
		"unknown write mode": func(o *options) { o.mode = "fsync" },
		"no syncers":         func(o *options) { o.syncers = 0 },
		"negative heap":      func(o *options) { o.heapSize = -1 },
	} {
		opts := valid
		change(&opts)
		if err := opts.validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
