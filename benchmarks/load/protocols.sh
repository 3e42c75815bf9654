#!/usr/bin/env bash
# Server CPU per Decide by protocol, side by side in one run: gRPC over HTTP/2 (the reference), Connect JSON and
# Connect proto over HTTP/1.1 keep-alive, Connect JSON over HTTP/2, at the same calls in flight (CONNECTIONS
# connections, STREAMS calls in flight on each; HTTP/1.1 always has one). With BASE_BIN, a second build (say,
# main before a change) serves the same catalog and snapshot and is measured in the same rounds.
#
# Every server is pinned to core 0 with one event loop, h2load (`--h1` for HTTP/1.1) to core 1. Rounds are
# interleaved (build x protocol, then again); a round's server CPU is the process's utime + stime from
# /proc/PID/stat (10 ms ticks; a round of 30,000 calls is about 100 of them) read before and after it. The report gives, per build and
# protocol, the median µs per call and its ratio to the same build's gRPC.
#
#   OFFERD_BIN=.build/release/offerd benchmarks/load/protocols.sh
#   OFFERD_BIN=new/offerd BASE_BIN=old/offerd ROUNDS=7 benchmarks/load/protocols.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

PROFILES=${PROFILES:-100000}
ROUNDS=${ROUNDS:-5}
CALLS=${CALLS:-30000}          # calls per round and protocol
CONNECTIONS=${CONNECTIONS:-4}
STREAMS=${STREAMS:-1}          # HTTP/2 calls in flight per connection (HTTP/1.1: always 1)
PROTOCOLS=${PROTOCOLS:-"grpc-h2 connect-json-h1 connect-proto-h1 connect-json-h2"}
WORK=${WORK:-/tmp/offerd-protocols}
ROUND_TIMEOUT=${ROUND_TIMEOUT:-120}

: "${OFFERD_BIN:?OFFERD_BIN=path to a release offerd}"
command -v h2load >/dev/null || { echo "h2load (nghttp2-client) is needed"; exit 1; }
mkdir -p "$WORK"

if [ ! -f "$WORK/profiles-$PROFILES.jsonl" ]; then
    "$OFFERD_BIN" profiles generate --count "$PROFILES" --seed 42 --output "$WORK/profiles-$PROFILES.jsonl"
fi
python3 benchmarks/load/make_catalog.py "$WORK/catalog.json"
rm -rf "$WORK/bodies" && OFFERD_CONNECT_BODIES=1 python3 benchmarks/load/make_requests.py "$WORK/bodies" 1 \
    "$PROFILES" 1

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for_port() {
    for _ in $(seq 1 600); do
        python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),0.2)" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on port $1"; exit 1
}
tick_ns=$(( 1000000000 / $(getconf CLK_TCK) ))
cpu_ns() { awk -v tick="$tick_ns" '{printf "%.0f\n", ($14 + $15) * tick}' "/proc/$1/stat"; }

declare -A pid port
builds=(new)
[ -n "${BASE_BIN:-}" ] && builds+=(base)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
for build in "${builds[@]}"; do
    bin=$OFFERD_BIN
    [ "$build" = base ] && bin=$BASE_BIN
    # Each build's own snapshot: the format may differ between builds.
    "$bin" snapshot build --input "$WORK/profiles-$PROFILES.jsonl" --output "$WORK/$build.snap" \
        --version "protocols-$PROFILES" >/dev/null
    port[$build]=$(free_port)
    taskset -c 0 "$bin" serve --catalog "$WORK/catalog.json" --snapshot "$WORK/$build.snap" \
        --port "${port[$build]}" --admin-port 0 --threads 1 --log-level warning --events none &
    pid[$build]=$!; pids+=($!)
    wait_for_port "${port[$build]}"
done

load() {  # build protocol calls
    local url="http://127.0.0.1:${port[$1]}/offerd.v1.Decisioning/Decide" body=$WORK/bodies/req-1-0
    local args
    case $2 in
        grpc-h2) args=(-m "$STREAMS" -d "$body.bin" -H "content-type: application/grpc" -H "te: trailers") ;;
        connect-json-h1) args=(--h1 -m 1 -d "$body.json" -H "content-type: application/json") ;;
        connect-proto-h1) args=(--h1 -m 1 -d "$body.proto" -H "content-type: application/proto") ;;
        connect-json-h2) args=(-m "$STREAMS" -d "$body.json" -H "content-type: application/json") ;;
        *) echo "unknown protocol $2"; exit 1 ;;
    esac
    timeout "$ROUND_TIMEOUT" taskset -c 1 h2load -n "$3" -c "$CONNECTIONS" "${args[@]}" "$url" > "$WORK/out.txt"
    # Every call must have succeeded (HTTP 200), or the round measures errors.
    grep -q "status codes: $3 2xx" "$WORK/out.txt" || { echo "$1 $2: not all calls answered 200:"; cat "$WORK/out.txt"; exit 1; }
}

for build in "${builds[@]}"; do for protocol in $PROTOCOLS; do load "$build" "$protocol" 3000; done; done
: > "$WORK/cpu.txt"
for round in $(seq 1 "$ROUNDS"); do
    echo "round $round/$ROUNDS ($(cut -d' ' -f1-3 /proc/loadavg) load average)"
    for build in "${builds[@]}"; do
        for protocol in $PROTOCOLS; do
            before=$(cpu_ns "${pid[$build]}")
            load "$build" "$protocol" "$CALLS"
            after=$(cpu_ns "${pid[$build]}")
            echo "$build $protocol $round $(( (after - before) / CALLS ))" >> "$WORK/cpu.txt"
        done
    done
done

python3 - "$WORK/cpu.txt" "$PROTOCOLS" <<'EOF'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
protocols = sys.argv[2].split()
builds = list(dict.fromkeys(r[0] for r in rows))
ns = {(b, p): [int(r[3]) for r in rows if r[0] == b and r[1] == p] for b in builds for p in protocols}
print("| protocol | " + " | ".join(f"{b} µs/call (x {protocols[0]})" for b in builds) + " |")
print("|---|" + "---:|" * len(builds))
for p in protocols:
    cells = []
    for b in builds:
        median = statistics.median(ns[(b, p)])
        cells.append(f"{median / 1000:.1f} ({median / statistics.median(ns[(b, protocols[0])]):.2f}x)")
    print(f"| {p} | " + " | ".join(cells) + " |")
if len(builds) == 2:
    for p in protocols:
        per_round = [n / b for n, b in zip(ns[("new", p)], ns[("base", p)])]
        print(f"{p}: new/base per round {', '.join(f'{x:.2f}' for x in per_round)}; median {statistics.median(per_round):.2f}")
EOF
