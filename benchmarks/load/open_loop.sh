#!/usr/bin/env bash
# Open-loop latency against rate: offerd-loadgen (benchmarks/loadgen) sends Decide calls at exact intervals on
# several HTTP/2 connections and times each from its scheduled send time, so a stall shows in the latencies of
# every call it held up (h2load's --rps rounds time calls from their actual send and send in bursts: their p99 is
# not what callers see). Every latency goes into an HdrHistogram.
#
# Server: offerd on issue 15's catalog (make_catalog.py `real`: 1,000 offers in 10 collections of 100, each with an
# eligibility condition on a profile attribute and a context value; each scope ranks one collection by priority on
# checkout pages only, then another by a formula over the offer and the profile), PROFILES profiles. Workloads:
#   priority  context.page = "checkout": answered by the priority criterion
#   formula   context.page = "home": answered by the formula criterion
#   health    grpc.health.v1.Health/Check on the same process (the transport alone), at the priority workload's
#             rates; not run by default (WORKLOADS="priority formula health" adds it)
#
# 1. Maximum rate per workload: the median calls/s of MAX_ROUNDS closed-loop h2load rounds (-c 16 -m 32, as
#    run.sh), interleaved.
# 2. The sweep: for each fraction in FRACTIONS (percent of that workload's maximum), a round per workload
#    (interleaved: 10% priority, 10% formula, 20% priority, ...) of WARMUP + DURATION seconds at that rate on
#    LOADGEN_CONNECTIONS connections.
# offerd is pinned to core 0 with one event loop thread; h2load and offerd-loadgen to core 1. REALTIME=1 runs all
# three under SCHED_FIFO (chrt -f 10), so that on a machine shared with other work the server and the generator
# get their cores when they need them (what is measured is then offerd, not the scheduler's queue); the kernel
# still leaves 5% of each core to everything else, and stops a SCHED_FIFO task that keeps its core busier than
# that for the rest of the second: a generator that reaches ~95% of core 1 then shows 50 ms gaps in its sends
# (reported: its rounds say the generator fell behind). SPIN_US > 0 makes offerd-loadgen poll instead of sleeping
# before each send (cheaper and more exact on a dedicated core); not with REALTIME=1, for that reason.
# TIMER_GAP_US (50) keeps offerd-loadgen's send timers at least that far apart: calls due in between go out when
# it wakes to read answers, or at the next timer, their lag counted (a timer per call costs a timerfd_settime and
# a wake-up each: at 21,700 calls/s under REALTIME=1 it turned a generator that fell behind into one that kept up).
#
# Output: $WORK/open-loop.csv (offerd-loadgen's rows), $WORK/max-rates.txt, a Markdown table on standard output
# and the plot OUT (latency percentiles against the rate, PNG, matplotlib).
#
#   benchmarks/load/open_loop.sh
#   REALTIME=1 OUT=benchmarks/load/results/open-loop.png benchmarks/load/open_loop.sh
#   FRACTIONS="50" DURATION=20 benchmarks/load/open_loop.sh            # p99 at half the maximum, longer
set -euo pipefail
cd "$(dirname "$0")/../.."

PROFILES=${PROFILES:-100000}
WORKLOADS=${WORKLOADS:-"priority formula"}
FRACTIONS=${FRACTIONS:-"10 20 30 40 50 60 70 80 90"}
DURATION=${DURATION:-8}           # measured seconds per round
WARMUP=${WARMUP:-2}               # seconds at the round's rate before measuring
LOADGEN_CONNECTIONS=${LOADGEN_CONNECTIONS:-8}
MAX_ROUNDS=${MAX_ROUNDS:-3}       # closed-loop rounds per workload for the maximum rate
MAX_CALLS=${MAX_CALLS:-50000}     # calls per closed-loop round
BODIES=${BODIES:-16}              # request bodies (profiles) per workload, rotated call by call
REALTIME=${REALTIME:-0}
SPIN_US=${SPIN_US:-0}             # offerd-loadgen --spin-us
TIMER_GAP_US=${TIMER_GAP_US:-50}  # offerd-loadgen --timer-gap-us: send timers at least this far apart
ROUND_TIMEOUT=${ROUND_TIMEOUT:-120}
WORK=${WORK:-/tmp/offerd-open-loop}
OUT=${OUT:-$WORK/open-loop.png}

scripts/install-deps.sh --with-python
python3 -c "import matplotlib" 2>/dev/null || python3 -m pip install -q --disable-pip-version-check matplotlib
command -v taskset >/dev/null || { echo "taskset (util-linux) is needed"; exit 1; }

# OFFERD_BIN / LOADGEN_BIN use prebuilt executables instead.
if [ -z "${OFFERD_BIN:-}" ]; then
    swift build -c release --product offerd >/dev/null
    OFFERD_BIN="$(swift build -c release --show-bin-path)/offerd"
fi
if [ -z "${LOADGEN_BIN:-}" ]; then
    swift build -c release --package-path benchmarks/loadgen --product offerd-loadgen >/dev/null
    LOADGEN_BIN="$(swift build -c release --package-path benchmarks/loadgen --show-bin-path)/offerd-loadgen"
fi

priority=()
if [ "$REALTIME" = 1 ]; then priority=(chrt -f 10); fi
server_core=(taskset -c 0 "${priority[@]}")
load_core=(taskset -c 1 "${priority[@]}")

mkdir -p "$WORK"
if [ ! -f "$WORK/profiles-$PROFILES.snap" ]; then
    echo "generating $PROFILES profiles and their snapshot"
    "$OFFERD_BIN" profiles generate --count "$PROFILES" --seed 42 --output "$WORK/profiles-$PROFILES.jsonl"
    "$OFFERD_BIN" snapshot build --input "$WORK/profiles-$PROFILES.jsonl" --output "$WORK/profiles-$PROFILES.snap" \
        --version "open-loop-$PROFILES" >/dev/null
fi
python3 benchmarks/load/make_catalog.py "$WORK/catalog.json" real
rm -rf "$WORK/bodies-priority" "$WORK/bodies-formula"
python3 benchmarks/load/make_requests.py "$WORK/bodies-priority" "$BODIES" "$PROFILES" 1 checkout
python3 benchmarks/load/make_requests.py "$WORK/bodies-formula" "$BODIES" "$PROFILES" 1 home
mkdir -p "$WORK/bodies-health"
# An empty HealthCheckRequest (service ""), gRPC-framed: flag 0, length 0.
printf '\x00\x00\x00\x00\x00' > "$WORK/bodies-health/req-1-0.bin"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"${server_core[@]}" "$OFFERD_BIN" serve --catalog "$WORK/catalog.json" --snapshot "$WORK/profiles-$PROFILES.snap" \
    --port "$port" --admin-port 0 --threads 1 --log-level warning --events none &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
listening=no
for _ in $(seq 1 600); do  # up to 60 s
    if python3 -c "import socket; socket.create_connection(('127.0.0.1',$port),0.2)" 2>/dev/null; then
        listening=yes; break
    fi
    kill -0 "$server" 2>/dev/null || break
    sleep 0.1
done
[ "$listening" = yes ] || { echo "offerd did not start listening on port $port"; exit 1; }

url_of() {  # workload
    if [ "$1" = health ]; then echo "http://127.0.0.1:$port/grpc.health.v1.Health/Check"
    else echo "http://127.0.0.1:$port/offerd.v1.Decisioning/Decide"; fi
}
body_args() {  # workload: --body FILE ... (every body of the workload)
    for file in "$WORK/bodies-$1"/*.bin; do printf -- '--body %s ' "$file"; done
}

# 1. Maximum rates, closed loop, interleaved rounds.
rm -f "$WORK"/closed-*.txt "$WORK/max-rates.txt" "$WORK/open-loop.csv"
echo "closed-loop maximum: $MAX_ROUNDS rounds of $MAX_CALLS calls per workload ($(cut -d' ' -f1-3 /proc/loadavg))"
for workload in $WORKLOADS; do  # warm-up
    timeout "$ROUND_TIMEOUT" "${load_core[@]}" h2load -n 20000 -c 16 -m 32 -d "$WORK/bodies-$workload/req-1-0.bin" \
        -H content-type:application/grpc -H te:trailers "$(url_of "$workload")" >/dev/null
done
for round in $(seq 1 "$MAX_ROUNDS"); do
    for workload in $WORKLOADS; do
        bodies=("$WORK/bodies-$workload"/*.bin)
        body=${bodies[$(( (round - 1) % ${#bodies[@]} ))]}
        timeout "$ROUND_TIMEOUT" "${load_core[@]}" h2load -n "$MAX_CALLS" -c 16 -m 32 -d "$body" \
            -H content-type:application/grpc -H te:trailers "$(url_of "$workload")" \
            > "$WORK/closed-$workload-$round.txt" || echo "h2load: exit $? ($workload, round $round)"
    done
done
for workload in $WORKLOADS; do
    rate=$(python3 benchmarks/load/open_loop.py max-rate "$WORK" "$workload" "$MAX_CALLS")
    # The health workload runs at the priority workload's rates: the transport's share of the same load.
    echo "$workload $rate" >> "$WORK/max-rates.txt"
    echo "$workload: $rate calls/s"
done
rate_of() {  # workload percent: calls/s
    local basis=$1
    if [ "$basis" = health ] && grep -q '^priority ' "$WORK/max-rates.txt"; then basis=priority; fi
    awk -v w="$basis" -v p="$2" '$1 == w { r = int($2 * p / 100); print (r > 0 ? r : 1) }' "$WORK/max-rates.txt"
}

# 2. The sweep, interleaved by rate.
for percent in $FRACTIONS; do
    for workload in $WORKLOADS; do
        rate=$(rate_of "$workload" "$percent")
        echo "open loop: $workload at $percent% = $rate calls/s ($(cut -d' ' -f1-3 /proc/loadavg))"
        # shellcheck disable=SC2046  # body_args is split on purpose; paths have no spaces
        timeout "$ROUND_TIMEOUT" "${load_core[@]}" "$LOADGEN_BIN" --url "$(url_of "$workload")" \
            $(body_args "$workload") --rate "$rate" --duration "$DURATION" --warmup "$WARMUP" \
            --connections "$LOADGEN_CONNECTIONS" --spin-us "$SPIN_US" --timer-gap-us "$TIMER_GAP_US" \
            --label "$workload" \
            --csv "$WORK/open-loop.csv" --pause 0 \
            || echo "offerd-loadgen: exit $? ($workload at $percent%)"
    done
done

python3 benchmarks/load/open_loop.py report "$WORK/open-loop.csv" "$WORK/max-rates.txt"
python3 benchmarks/load/open_loop.py plot "$WORK/open-loop.csv" "$WORK/max-rates.txt" "$OUT"
