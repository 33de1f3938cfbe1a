#!/usr/bin/env bash
# Runs every benchmark whose figures docs/BENCHMARKS.md records, on this
# machine, and prints them. Servers bind loopback only. Takes several minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

FILL_SESSIONS=${FILL_SESSIONS:-1000000}

work=$(mktemp -d)
pids=()
cleanup() {
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

npm ci --prefix bench/socket --no-audit --no-fund >/dev/null
go build -o "$work/sockauth" ./cmd/sockauth
go build -o "$work/chat-demo" ./cmd/chat-demo
go build -o "$work/syncfloor" ./bench/syncfloor

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
# rss_split prints the resident size of process $1 in KiB, split into anonymous
# memory (Go heap, Badger's caches and memtables) and file pages (the binary
# and Badger's memory-mapped tables).
rss_split() { awk '/^(VmRSS|RssAnon|RssFile):/ {printf "%s %s KiB  ", $1, $2}' "/proc/$1/status"; }
# cpu_ticks prints the machine's total and stolen CPU ticks from /proc/stat.
# A virtual machine's hypervisor steals ticks when it runs other guests on
# the same cores, which slows every process here by the same share.
cpu_ticks() { awk '/^cpu / {total = 0; for (i = 2; i <= NF; i++) total += $i; print total, $9}' /proc/stat; }
steal_since() { # steal_since "TOTAL STOLEN" prints the share stolen since then
	local now
	now=$(cpu_ticks)
	awk -v a="$1" -v b="$now" 'BEGIN {split(a, x, " "); split(b, y, " "); printf "%.0f%%", 100 * (y[2] - x[2]) / (y[1] - x[1])}'
}
wait_port() {
	for _ in $(seq 200); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	echo "nothing listens on 127.0.0.1:$1" >&2
	return 1
}
start_authority() { # start_authority DATA_DIR PORT
	"$work/sockauth" serve --data "$1" --listen "127.0.0.1:$2" --log-level error &
	pids+=($!)
	wait_port "$2"
}

echo "machine: $(nproc) cores ($(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr), $(go version | cut -d' ' -f3)"
echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"

echo
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== Go benchmarks: go test -run '^\$' -bench . -benchmem ./authority/ ./authority/badgerstore/"
go test -run '^$' -bench . -benchmem ./authority/ ./authority/badgerstore/ | grep -E '^Benchmark'

echo
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== gRPC load: sockauth bench authority --callers 64 --count 300 --rounds 7 against sockauth serve (synced Badger writes)"
port=$(free_port)
start_authority "$work/load" "$port"
ticks=$(cpu_ticks)
"$work/sockauth" bench authority --authority "127.0.0.1:$port" --callers 64 --count 300 --rounds 7
echo "CPU time stolen by the hypervisor during the gRPC load: $(steal_since "$ticks")"

echo
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== rotations and store syncs: sockauth bench authority --callers 64 --count 300 --rounds 7 --rpc Authenticate --phases (in-process authority)"
# The rate of each rotation phase against the time its syncs took, which
# the rotation target depends on. The in-process authority reports its
# syncs without a metrics endpoint, whose interceptors would add CPU time to
# every call of the load above.
"$work/sockauth" bench authority --callers 64 --count 300 --rounds 7 --rpc Authenticate --phases

echo
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== floor of one synced write per call: go run ./bench/syncfloor -callers 64 -count 300 -rounds 5 -store -dir DATA, with the server in its own process and then -in-process"
# The same transport and the same group-committed fdatasync as the
# rotations above, first into a plain log. With -store three more phases
# write to the authority's Badger store, to Badger with the store's group
# commit alone, and to Badger with its own synced writes. The first run
# serves from a separate process as sockauth serve does in the gRPC load,
# and the second compares with the in-process rotations. The files go
# into the same folder as the authorities' data. The floor rejects a folder on tmpfs, and the sections
# after it still run then.
ticks=$(cpu_ticks)
"$work/syncfloor" -callers 64 -count 300 -rounds 5 -store -dir "$work" || echo "the floor did not run"
"$work/syncfloor" -callers 64 -count 300 -rounds 5 -store -dir "$work" -in-process || echo "the floor did not run"
echo "CPU time stolen by the hypervisor during the floor: $(steal_since "$ticks")"

echo
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== authority memory with $FILL_SESSIONS live sessions"
port=$(free_port)
start_authority "$work/fill" "$port"
fill_pid=${pids[-1]}
before=$(rss_kib "$fill_pid")
"$work/sockauth" bench authority --authority "127.0.0.1:$port" --callers 64 --count 1 --fill "$FILL_SESSIONS" | grep created
sleep 5
after=$(rss_kib "$fill_pid")
echo "sockauth serve RSS: ${before} KiB before, ${after} KiB with $FILL_SESSIONS live sessions ($(du -sh "$work/fill/badger" | cut -f1) on disk)"
echo "  split 5 s after the fill: $(rss_split "$fill_pid")"
echo "  sst files: $(find "$work/fill/badger" -name '*.sst' | wc -l), $(du -ch "$work/fill/badger"/*.sst | tail -1 | cut -f1)"
# Badger keeps compacting for a while after the last write.
sleep 55
echo "  split 60 s after the fill: $(rss_split "$fill_pid")"
# The heap that the fill and compactions left goes back to the system when
# the authority's idle release runs, once an interval of 5 s is quiet, or
# with the runtime's forced collection every two minutes.
sleep 90
echo "  split 150 s after the fill: $(rss_split "$fill_pid"), VmRSS $(rss_kib "$fill_pid") KiB"
kill "$fill_pid"
wait "$fill_pid" 2>/dev/null || true

# A restarted authority maps the same tables but holds only the pages it
# reads, unlike the one that wrote them.
start_authority "$work/fill" "$port"
restart_pid=${pids[-1]}
sleep 5
echo "  restarted on the same data, 5 s after start: $(rss_split "$restart_pid")"
"$work/sockauth" bench authority --authority "127.0.0.1:$port" --callers 64 --count 300 --rounds 1 >/dev/null
echo "  restarted, after a gRPC load run: $(rss_split "$restart_pid")"
kill "$restart_pid"

echo
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== socket load: go run ./bench/socketbench"
go run ./bench/socketbench --bin "$work"

echo
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== socket load at a fixed rate: go run ./bench/socketbench -idle 0 -rate 150 -clients 1500 -rounds 2"
go run ./bench/socketbench --bin "$work" -idle 0 -rate 150 -clients 1500 -rounds 2
