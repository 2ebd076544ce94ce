#!/usr/bin/env bash
# What the log's thread does, write by write, while redis-benchmark drives RESERVEs at a
# `stockpile serve --fsync always`: each write's bytes and time, each sync's time, and the time the
# thread waited before it (for records to come, or for a group of them to be handed over). Read with
# the kernel's syscall tracepoints (`perf record`), which cost the server little, where `perf trace`
# and `strace` slowed it by a fifth or more.
#
#   Benchmarks/log-timeline.sh [--pipeline N] [--clients N] [--cells N] [--seconds S] [--lines N]
#
# Prints the last --lines writes (default 40) and a summary: syncs per second, records per sync
# (from the bytes, at the run's bytes per record), how the bytes per sync spread (a few large writes
# and many small ones mean the connections move as one cohort: all their requests decided, synced and
# answered together, with the cores idle while the sync runs), and the share of the thread's time in
# writes, in syncs and waiting.
#
# Needs perf (Debian: linux-perf), redis-benchmark and redis-cli (redis-tools), and root or
# kernel.perf_event_paranoid ≤ 0 for the tracepoints.
set -euo pipefail
cd "$(dirname "$0")/.."

pipeline=16
clients=50
cells=100000
seconds=1
lines=40
while [ $# -gt 0 ]; do
    case "$1" in
    --pipeline) pipeline="$2"; shift 2 ;;
    --clients) clients="$2"; shift 2 ;;
    --cells) cells="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --lines) lines="$2"; shift 2 ;;
    *) echo "usage: $0 [--pipeline N] [--clients N] [--cells N] [--seconds S] [--lines N]" >&2; exit 2 ;;
    esac
done
for value in "$pipeline" "$clients" "$cells" "$seconds" "$lines"; do
    case "$value" in ''|*[!0-9]*|0) echo "$0: each option takes a whole number of at least 1" >&2; exit 2 ;; esac
done
port=7398
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT

swift build -c release --product stockpile >/dev/null
.build/release/stockpile serve --port "$port" --fsync always --data-dir "$work/sp" 2>"$work/stockpile.log" &
pid=$!
for _ in $(seq 100); do redis-cli -p "$port" PING >/dev/null 2>&1 && break; sleep 0.1; done
awk -v n="$cells" 'BEGIN { for (i = 0; i < n; i++) printf "ADJUST SKU-%012d MAIN 1000000000000 REASON received\n", i }' \
    | redis-cli -p "$port" --pipe >/dev/null
log_thread=""
for t in /proc/"$pid"/task/*; do [ "$(cat "$t/comm")" = sp-wal ] && log_thread=$(basename "$t"); done
[ -n "$log_thread" ] || { echo "no sp-wal thread in the server" >&2; exit 1; }

# The load runs a second before the recording and a second after it.
timeout $((seconds + 3)) redis-benchmark -p "$port" -c "$clients" -n 1000000000 -P "$pipeline" -r "$cells" \
    RESERVE "o:__rand_int__:__rand_int__:__rand_int__" "SKU-__rand_int__" MAIN 1 >/dev/null 2>&1 &
load=$!
sleep 1
# The log's last LSN and its record bytes so far.
log_counters() { redis-cli -p "$port" INFO | tr -d '\r' | awk -F: '/^wal_last_lsn:/ { n = $2 } /^wal_record_bytes:/ { b = $2 } END { print n + 0, b + 0 }'; }
before=$(log_counters)
perf record -q -t "$log_thread" -o "$work/perf.data" \
    -e syscalls:sys_enter_pwrite64,syscalls:sys_exit_pwrite64,syscalls:sys_enter_fdatasync,syscalls:sys_exit_fdatasync,syscalls:sys_enter_futex,syscalls:sys_exit_futex \
    -- sleep "$seconds" >/dev/null 2>&1
after=$(log_counters)
# Bytes per RESERVE record, from the server's own counters around the recording (the seeding's
# ADJUST records are larger).
per_record=$(awk -v a="$before" -v b="$after" 'BEGIN { split(a, x, " "); split(b, y, " "); if (y[1] > x[1]) printf "%.2f", (y[2] - x[2]) / (y[1] - x[1]); else print 0 }')
wait "$load" || true

# One line per write: when it started (ms into the recording), the time the thread waited since the
# last sync ended, the bytes and time of the write, and the time of the sync after it.
perf script -i "$work/perf.data" -F time,event,trace 2>/dev/null | awk -v lines="$lines" -v per_record="$per_record" '
function hex(s,   i, c, v) { v = 0; s = tolower(s); sub(/^0x/, "", s)
    for (i = 1; i <= length(s); i++) { c = index("0123456789abcdef", substr(s, i, 1)) - 1; v = v * 16 + c }
    return v }
{ t = $1; sub(/:$/, "", t); t *= 1000; ev = $2 }
NR == 1 { t0 = t; free_since = t }
# A write or sync counts from its start: one under way when the recording began is left out.
ev ~ /sys_enter_pwrite64/ { match($0, /count: 0x[0-9a-f]+/); bytes = hex(substr($0, RSTART + 7, RLENGTH - 7)); w0 = t; waited = t - free_since; writing = 1 }
ev ~ /sys_exit_pwrite64/ && writing { wt = t - w0; wtotal += wt; writing = 0; written = 1 }
ev ~ /sys_enter_fdatasync/ && written { s0 = t; syncing = 1 }
ev ~ /sys_exit_fdatasync/ && syncing { st = t - s0; stotal += st; n++; b[n] = bytes; syncing = 0; written = 0
    row[n] = sprintf("%10.3f %9.3f %8d %9.3f %9.3f", w0 - t0, waited, bytes, wt, st); free_since = t; total_bytes += bytes }
END {
    if (n == 0) { print "no sync recorded"; exit 1 }
    span = free_since - t0
    printf "%10s %9s %8s %9s %9s\n", "start_ms", "wait_ms", "bytes", "write_ms", "sync_ms"
    for (i = (n > lines ? n - lines + 1 : 1); i <= n; i++) print row[i]
    # Bytes per sync, sorted (insertion sort: a few thousand syncs).
    for (i = 2; i <= n; i++) { v = b[i]; j = i - 1; while (j > 0 && b[j] > v) { b[j + 1] = b[j]; j-- } b[j + 1] = v }
    printf "\n%d syncs in %.0f ms: %.0f per second", n, span, n * 1000 / span
    if (per_record > 0) printf "; %.1f bytes per record, %.1f records per sync", per_record, total_bytes / per_record / n
    printf "\nbytes per sync: p10 %d, p50 %d, p90 %d, max %d\n", b[int(n * 0.1) + 1], b[int(n * 0.5) + 1], b[int(n * 0.9) + 1], b[n]
    printf "the log thread: %.0f%% in writes, %.0f%% in syncs, %.0f%% waiting or framing\n", wtotal * 100 / span, stotal * 100 / span, 100 - (wtotal + stotal) * 100 / span
}'
kill "$pid" 2>/dev/null || true
