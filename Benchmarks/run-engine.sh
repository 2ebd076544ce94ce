#!/usr/bin/env bash
# Runs the in-process engine scenarios (durability off) and prints one line of figures per scenario.
#   Benchmarks/run-engine.sh [--duration S] [--tasks N]
# Release build; on a shared 2-core machine run it alone, and read the figures as a ratio of one run.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product stockpile-bench >/dev/null
for scenario in hot spread multiline; do
    .build/release/stockpile-bench "$scenario" --json "$@" | tail -n 1
done
