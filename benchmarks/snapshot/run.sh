#!/usr/bin/env bash
# Snapshot benchmark: build rate, file size, load+verify, publish, resident memory and lookup latency.
#
#   benchmarks/snapshot/run.sh                     # 1,000,000 profiles
#   PROFILES=10000000 benchmarks/snapshot/run.sh   # 10,000,000 profiles
#   BUILD_CPUS=0,1 benchmarks/snapshot/run.sh      # build on both cores (the build parses on every core it may use)
#
# Work files go to $WORK (default /tmp/offerd-snapbench); the generated source is reused when present (delete it to
# regenerate). The build and the measurements run pinned to the CPUs in $CPUS (default: core 1, the "server core"),
# so that other work on core 0 disturbs them less (CPUS=0,1 lets the load use both cores); $BUILD_CPUS (default
# $CPUS) overrides it for the build alone. Results are printed and
# appended to $WORK/results.txt.
set -euo pipefail

PROFILES=${PROFILES:-1000000}
WORK=${WORK:-/tmp/offerd-snapbench}
CPUS=${CPUS:-1}
BUILD_CPUS=${BUILD_CPUS:-$CPUS}
SAMPLES=${SAMPLES:-200000}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SOURCE="$WORK/profiles-$PROFILES.jsonl"
SNAPSHOT="$WORK/profiles-$PROFILES.snap"
RESULTS="$WORK/results.txt"
mkdir -p "$WORK"

# OFFERD and BENCH may name prebuilt binaries (e.g. an older build, to compare); otherwise both are built here.
if [[ -z "${OFFERD:-}" || -z "${BENCH:-}" ]]; then
    echo "== building release binaries" >&2
    (cd "$ROOT" && swift build -c release --product offerd >&2)
    (cd "$ROOT/benchmarks/micro" && swift build -c release --product offerd-snapshot-bench >&2)
    OFFERD="$ROOT/.build/release/offerd"
    BENCH="$ROOT/benchmarks/micro/.build/release/offerd-snapshot-bench"
fi

now() { date +%s.%N; }

if [[ ! -s "$SOURCE" ]]; then
    echo "== generating $PROFILES profiles into $SOURCE" >&2
    "$OFFERD" profiles generate --count "$PROFILES" --seed 1 --output "$SOURCE.partial"
    mv "$SOURCE.partial" "$SOURCE"
fi
SOURCE_BYTES=$(stat -c %s "$SOURCE")

{
    echo "== $(date -u '+%Y-%m-%d %H:%M:%S UTC'), $PROFILES profiles, commit $(git -C "$ROOT" rev-parse --short HEAD), offerd $OFFERD, cpus $CPUS, build cpus $BUILD_CPUS"
    echo "source: $SOURCE_BYTES bytes"
    # Warm the page cache with the source so the build measures parsing and writing, not the disk.
    cat "$SOURCE" > /dev/null
    rm -f "$SNAPSHOT"
    started=$(now)
    # CPU time too: on a shared machine the wall time also counts waiting for a core.
    /usr/bin/time -f "%U %S" -o "$WORK/build-cpu.txt" \
        taskset -c "$BUILD_CPUS" "$OFFERD" snapshot build --input "$SOURCE" --output "$SNAPSHOT" --version bench
    finished=$(now)
    SNAPSHOT_BYTES=$(stat -c %s "$SNAPSHOT")
    read -r user_seconds system_seconds < "$WORK/build-cpu.txt"
    awk -v s="$started" -v f="$finished" -v n="$PROFILES" -v b="$SNAPSHOT_BYTES" -v u="$user_seconds" \
        -v y="$system_seconds" 'BEGIN {
        printf "build: %.2f s wall, %.0f profiles/s; CPU %.2f s user + %.2f s sys, %.0f profiles per CPU second\n",
            f - s, n / (f - s), u, y, n / (u + y)
        printf "file size: %.0f bytes (%.1f MiB, %.0f bytes/profile)\n", b, b / 1048576, b / n }'
    # Page cache warm, as after a build or a copy onto the server.
    cat "$SNAPSHOT" > /dev/null
    taskset -c "$CPUS" "$BENCH" "$SNAPSHOT" "$SOURCE" "$SAMPLES"
} 2>&1 | tee -a "$RESULTS"
