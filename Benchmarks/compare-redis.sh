#!/usr/bin/env bash
# Stockpile against Redis 7 running an equivalent Lua reserve, driven by the same redis-benchmark
# command in the same run, over loopback:
#   - durability off: `stockpile serve --fsync none`  vs  redis-server with no persistence;
#   - durability on:  `stockpile serve --fsync always` vs  redis-server --appendonly yes --appendfsync always;
#   - workloads: RESERVE of 1 unit on one hot cell, and on 100,000 cells; pipeline 1 and 16; 50 clients.
# The Lua reserve does what RESERVE does for one line: it is idempotent by id (a known id answers its
# quantity again), checks available, increments reserved and records the id. Each row also gives
# PING on the same Stockpile server at the same pipeline depth, and RESERVE's rate as a share of it:
# how much of the loop's own ceiling a reservation leaves; and the CPU each party used per request
# (Stockpile's server, the client driving it, Redis's server), from /proc and the shell's `time`.
#
#   Benchmarks/compare-redis.sh [--requests N] [--clients N] [--loops N] [--rounds N]
#
# --loops passes `--loops N` to stockpile serve (default: the server's own, one event loop per core).
# --rounds N runs the whole table N times (fresh servers each round, so Stockpile and Redis alternate
# all along) and ends with each row's median and range: on a machine whose speed drifts from minute to
# minute, one run's ratio can be a fifth off either way.
#
# Needs redis-server and redis-benchmark (Debian: apt-get install redis-server redis-tools). The
# server and the load generator share this machine's cores: read the figures as ratios of one run.
set -euo pipefail
cd "$(dirname "$0")/.."

requests=200000
loops=()
clients=50
rounds=1
while [ $# -gt 0 ]; do
    case "$1" in
    --requests) requests="$2"; shift 2 ;;
    --clients) clients="$2"; shift 2 ;;
    --loops) loops=(--loops "$2"); shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    *) echo "usage: $0 [--requests N] [--clients N] [--loops N] [--rounds N]" >&2; exit 2 ;;
    esac
done
case "$rounds" in ''|*[!0-9]*|0) echo "--rounds takes a whole number of at least 1" >&2; exit 2 ;; esac
cells=100000
stock=1000000000000
sp_port=7399
redis_port=6399
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT

swift build -c release --product stockpile >/dev/null
stockpile=.build/release/stockpile

lua='local rid = "res:" .. ARGV[1]
local known = redis.call("HGET", rid, "qty")
if known then return tonumber(known) end
local q = tonumber(ARGV[2])
local cell = redis.call("HMGET", KEYS[1], "on_hand", "reserved")
local available = tonumber(cell[1] or "0") - tonumber(cell[2] or "0")
if available < q then return redis.error_reply("INSUFFICIENT " .. KEYS[1] .. " available " .. available .. " requested " .. q) end
redis.call("HINCRBY", KEYS[1], "reserved", q)
redis.call("HSET", rid, "cell", KEYS[1], "qty", q)
return q'

wait_port() {
    for _ in $(seq 100); do
        redis-cli -p "$1" PING >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "server on port $1 did not start" >&2
    exit 1
}

# One redis-benchmark run; prints "<rps> <p50 ms> <p99 ms> <the client's CPU µs per request>".
bench() {
    local port=$1 pipeline=$2
    shift 2
    local TIMEFORMAT="%U %S"
    { time redis-benchmark -p "$port" -c "$clients" -n "$requests" -P "$pipeline" -r 100000 --precision 3 --csv "$@" 2>"$work/bench.err" \
        | awk -F, 'NR == 2 { for (i = 1; i <= NF; i++) gsub(/"/, "", $i); print $2, $5, $7 }' >"$work/bench.out"; } 2>"$work/bench.time"
    if [ -s "$work/bench.err" ]; then echo "redis-benchmark reported errors:" >&2; cat "$work/bench.err" >&2; fi
    read -r user system <"$work/bench.time"
    awk -v u="$user" -v s="$system" -v n="$requests" '{ printf "%s %s %s %.1f\n", $1, $2, $3, (u + s) * 1e6 / n }' "$work/bench.out"
}

# The CPU a process has used so far (user and system), in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
ticks_per_second=$(getconf CLK_TCK)
# CPU µs per request between two readings of cpu_ticks.
per_request() { awk -v a="$1" -v b="$2" -v hz="$ticks_per_second" -v n="$requests" 'BEGIN { printf "%.1f", (b - a) * 1e6 / hz / n }'; }

# Stock every cell first (redis-benchmark stops at the first error reply, so nothing may sell out).
seed_stockpile() {
    awk -v n="$cells" -v s="$stock" 'BEGIN { print "ADJUST HOT MAIN " s " REASON received"
        for (i = 0; i < n; i++) printf "ADJUST SKU-%012d MAIN %s REASON received\n", i, s }' \
        | redis-cli -p "$sp_port" --pipe >/dev/null
}

seed_redis() {
    awk -v n="$cells" -v s="$stock" 'BEGIN { print "HSET cell:hot on_hand " s " reserved 0"
        for (i = 0; i < n; i++) printf "HSET cell:%012d on_hand %s reserved 0\n", i, s }' \
        | redis-cli -p "$redis_port" --pipe >/dev/null
}

# The last three columns are CPU µs per request: Stockpile's server (every thread), the client
# driving it (redis-benchmark), and Redis's server; with the server and the client sharing the two
# cores, their sum says how close a run is to what the cores allow.
header() { printf "%-8s %-7s %-3s %12s %9s %9s   %12s %9s %9s   %-7s %12s %-7s   %6s %9s %8s\n" durability cells P "stockpile/s" p50_ms p99_ms "redis-lua/s" p50_ms p99_ms ratio "ping/s" "vs_ping" sp_us client_us redis_us; }
header
for round in $(seq "$rounds"); do
[ "$rounds" -gt 1 ] && echo "# round $round of $rounds"
for durability in none always; do
    rm -rf "$work/sp" "$work/redis"
    mkdir -p "$work/redis"
    "$stockpile" serve --port "$sp_port" --fsync "$durability" ${loops[@]+"${loops[@]}"} --data-dir "$work/sp" 2>"$work/stockpile.log" &
    sp_pid=$!
    if [ "$durability" = none ]; then
        redis-server --port "$redis_port" --dir "$work/redis" --save "" --appendonly no --daemonize no >"$work/redis.log" 2>&1 &
    else
        redis-server --port "$redis_port" --dir "$work/redis" --save "" --appendonly yes --appendfsync always --daemonize no >"$work/redis.log" 2>&1 &
    fi
    redis_pid=$!
    wait_port "$sp_port"
    wait_port "$redis_port"
    seed_stockpile
    seed_redis
    sha=$(redis-cli -p "$redis_port" SCRIPT LOAD "$lua")
    # PING on the same server and settings: what the loop does with no engine behind it.
    read -r ping1 _ _ _ <<<"$(bench "$sp_port" 1 PING)"
    read -r ping16 _ _ _ <<<"$(bench "$sp_port" 16 PING)"
    for workload in hot spread; do
        for pipeline in 1 16; do
            # Ids are three random numbers after a letter of the row's own: a repeat within a row (a
            # replay, or a CONFLICT when its cell differs, which stops redis-benchmark) is about one
            # in 10^15 per pair of requests, and no row can repeat another's ids. With one prefix for
            # every row, one run of many stopped on a CONFLICT: the four rows' 800,000 ids make some
            # 2.4 x 10^11 pairs on different cells, five in six of them across rows. (One letter, as
            # long as the one prefix was: the requests keep their length.)
            case "$workload$pipeline" in hot1) prefix=a ;; hot16) prefix=b ;; spread1) prefix=c ;; *) prefix=d ;; esac
            sp_before=$(cpu_ticks "$sp_pid")
            if [ "$workload" = hot ]; then
                sp=$(bench "$sp_port" "$pipeline" RESERVE "$prefix:__rand_int__:__rand_int__:__rand_int__" HOT MAIN 1)
            else
                sp=$(bench "$sp_port" "$pipeline" RESERVE "$prefix:__rand_int__:__rand_int__:__rand_int__" "SKU-__rand_int__" MAIN 1)
            fi
            sp_us=$(per_request "$sp_before" "$(cpu_ticks "$sp_pid")")
            rd_before=$(cpu_ticks "$redis_pid")
            if [ "$workload" = hot ]; then
                rd=$(bench "$redis_port" "$pipeline" EVALSHA "$sha" 1 cell:hot "__rand_int__:__rand_int__:__rand_int__" 1)
            else
                rd=$(bench "$redis_port" "$pipeline" EVALSHA "$sha" 1 "cell:__rand_int__" "__rand_int__:__rand_int__:__rand_int__" 1)
            fi
            rd_us=$(per_request "$rd_before" "$(cpu_ticks "$redis_pid")")
            read -r sp_rps sp_p50 sp_p99 client_us <<<"$sp"
            read -r rd_rps rd_p50 rd_p99 _ <<<"$rd"
            # A run that printed no figures (redis-benchmark's errors are above) keeps the row's
            # columns in place with zeros, its ratio "-", and stays out of the medians.
            for v in sp_rps sp_p50 sp_p99 client_us rd_rps rd_p50 rd_p99 ping1 ping16; do
                [ -n "${!v}" ] || printf -v "$v" '%s' 0
            done
            ratio=$(awk -v a="$sp_rps" -v b="$rd_rps" 'BEGIN { if (a > 0 && b > 0) printf "%.2fx", a / b; else print "-" }')
            ping=$([ "$pipeline" = 1 ] && echo "$ping1" || echo "$ping16")
            vs_ping=$(awk -v a="$sp_rps" -v b="$ping" 'BEGIN { if (a > 0 && b > 0) printf "%.2fx", a / b; else print "-" }')
            printf "%-8s %-7s %-3s %12s %9s %9s   %12s %9s %9s   %-7s %12s %-7s   %6s %9s %8s\n" "$durability" "$([ "$workload" = hot ] && echo 1 || echo $cells)" \
                "$pipeline" "$sp_rps" "$sp_p50" "$sp_p99" "$rd_rps" "$rd_p50" "$rd_p99" "$ratio" "$ping" "$vs_ping" "$sp_us" "$client_us" "$rd_us" \
                | tee -a "$work/rows"
        done
    done
    kill "$sp_pid" "$redis_pid"
    wait "$sp_pid" "$redis_pid" 2>/dev/null || true
done
done

# Each row's median over the rounds (the lower middle one of an even count), and the range of its
# ratios: every column is a median of its own, so a row's medians may come from different rounds.
if [ "$rounds" -gt 1 ]; then
    echo "# medians of $rounds rounds; the last column is the range of the ratio"
    header | sed 's/$/   ratio_range/'
    awk '$10 == "-" || $12 == "-" { failed++; next }
         { key = $1 " " $2 " " $3; if (!(key in seen)) { seen[key] = 1; order[++keys] = key }
           n[key]++; for (c = 4; c <= 15; c++) { v = $c; sub(/x$/, "", v); col[key, c, n[key]] = v + 0 } }
         # Column c of row key over the rounds, sorted into a[1..k]; returns k.
         function sorted(key, c, a,   i, j, k, t) { k = n[key]; for (i = 1; i <= k; i++) a[i] = col[key, c, i]
             for (i = 2; i <= k; i++) { t = a[i]; j = i - 1; while (j > 0 && a[j] > t) { a[j + 1] = a[j]; j-- } a[j + 1] = t }
             return k }
         function median(key, c,   a, k) { k = sorted(key, c, a); return a[int((k + 1) / 2)] }
         END { for (r = 1; r <= keys; r++) { key = order[r]; split(key, f, " ")
             rps = median(key, 4); p50 = median(key, 5); p99 = median(key, 6); rrps = median(key, 7); rp50 = median(key, 8); rp99 = median(key, 9)
             ratio = median(key, 10); ping = median(key, 11); vs = median(key, 12); spus = median(key, 13); cus = median(key, 14); rus = median(key, 15)
             k = sorted(key, 10, ratios); rlo = ratios[1]; rhi = ratios[k]
             printf "%-8s %-7s %-3s %12.2f %9.3f %9.3f   %12.2f %9.3f %9.3f   %-7s %12.2f %-7s   %6.1f %9.1f %8.1f   %.2f-%.2fx\n", f[1], f[2], f[3], rps, p50, p99, rrps, rp50, rp99, sprintf("%.2fx", ratio), ping, sprintf("%.2fx", vs), spus, cus, rus, rlo, rhi }
             if (failed) printf "# %d row(s) whose runs printed no figures left out (their errors are above)\n", failed }' "$work/rows"
fi
