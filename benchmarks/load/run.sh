#!/usr/bin/env bash
# Load benchmark, servers side by side in one run:
#   offerd          Decide on a real catalog and snapshot (nghttp2 + SwiftNIO transport)
#   offerd-health   the same offerd process answering grpc.health.v1.Health/Check: a trivial unary RPC through the
#                   same transport, so offerd minus offerd-health is what deciding costs per call
#   grpc-swift      the same DecisioningService behind grpc-swift-2 (benchmarks/peers): same decode, decide and
#                   encode work, so the difference between the two is the transport
#   grpc-cpp        C++ gRPC (Debian libgrpc++, benchmarks/peers/cpp): async, one completion queue, answering a fixed
#                   Decide response built at startup: what a general-purpose gRPC stack costs doing trivial work
#   nghttpd         a static file of a Decide response's size: the HTTP/2 floor
#   base, base-health  with BASE_BIN=PATH: another offerd build (say, main before a change) serving the same
#                   catalog and snapshot, measured in the same interleaved rounds, so a change is judged by a ratio
#                   taken in one run rather than by figures from two runs on a noisy machine
# Every server is pinned to core 0 with one event loop thread, h2load to core 1. Rounds are interleaved
# (A B C A B C ...) because the machine is shared and noisy; the report quotes medians over rounds.
#
# Per round and server: a closed-loop load round (h2load -n CALLS -c CONNECTIONS -m STREAMS, latency logged), then
# SINGLE_CALLS calls with one in flight. Then open-loop rounds at fixed rates (h2load --rps) at 10%, 50% and 80% of
# offerd's measured maximum. One `nghttp -v` call per server and round checks the trailers (grpc-status: 0).
# h2load times a call from its actual send and sends in bursts, so those open-loop percentiles understate what
# callers see (coordinated omission); benchmarks/load/open_loop.sh measures latency against rate with
# offerd-loadgen (benchmarks/loadgen), which times each call from its scheduled send time.
# Loopback only; every step is bounded in calls and time.
#
#   benchmarks/load/run.sh                     # defaults below
#   PROFILES=200000 ROUNDS=3 benchmarks/load/run.sh
#   BASE_BIN=/tmp/main-before/offerd SERVERS="offerd offerd-health nghttpd" benchmarks/load/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

PROFILES=${PROFILES:-1000000}   # profiles in the snapshot
ROUNDS=${ROUNDS:-5}             # interleaved closed-loop rounds per server
CALLS=${CALLS:-100000}          # calls per closed-loop round
CONNECTIONS=${CONNECTIONS:-16}
STREAMS=${STREAMS:-32}
SINGLE_CALLS=${SINGLE_CALLS:-2000}  # calls with one in flight, per round
SCOPES=${SCOPES:-1}             # scopes per request (1 or 3)
BODIES=${BODIES:-16}            # distinct request bodies (profiles), rotated over rounds
RATES=${RATES:-"10 50 80"}      # open-loop rates, percent of offerd's median closed-loop calls/s
RATE_SECONDS=${RATE_SECONDS:-10}  # duration of each open-loop round
RATE_CLIENTS=${RATE_CLIENTS:-8}   # h2load connections in the open-loop rounds, each at rate/RATE_CLIENTS
RATE_STREAMS=${RATE_STREAMS:-64}  # streams per connection: high enough that the rate, not -m, is the limit
ROUND_TIMEOUT=${ROUND_TIMEOUT:-300}  # seconds; a stuck h2load is killed and its round reported as missing
SERVERS=${SERVERS:-"offerd offerd-health grpc-swift grpc-cpp nghttpd"}
if [ -n "${BASE_BIN:-}" ] && [[ " $SERVERS " != *" base "* ]]; then SERVERS="$SERVERS base base-health"; fi
WORK=${WORK:-/tmp/offerd-bench}

scripts/install-deps.sh --with-python
command -v nghttpd >/dev/null || { apt-get install -y -qq nghttp2-server >/dev/null; }
if [[ " $SERVERS " == *" grpc-cpp "* ]] && ! { command -v grpc_cpp_plugin && command -v protoc \
        && pkg-config --exists grpc++ protobuf; } >/dev/null 2>&1; then
    apt-get install -y -qq libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler pkg-config >/dev/null
fi
command -v taskset >/dev/null || { echo "taskset (util-linux) is needed"; exit 1; }

# offerd and the peer are built in the peers package, which depends on this one by path: one compilation of the
# shared sources, same release settings as the root package's build.
# OFFERD_BIN / PEER_BIN use prebuilt executables instead.
peers=benchmarks/peers
if [ -z "${OFFERD_BIN:-}" ] || { [ -z "${PEER_BIN:-}" ] && [[ " $SERVERS " == *" grpc-swift "* ]]; }; then
    bin="$(swift build -c release --package-path "$peers" --show-bin-path)"
fi
if [ -z "${OFFERD_BIN:-}" ]; then swift build -c release --package-path "$peers" --product offerd >/dev/null; fi
if [ -z "${PEER_BIN:-}" ] && [[ " $SERVERS " == *" grpc-swift "* ]]; then
    swift build -c release --package-path "$peers" --product offerd-grpc-swift-peer >/dev/null
fi
# The C++ peer: about 20 s of g++ the first time, then make finds it up to date.
cpp_peer=benchmarks/peers/cpp/.build/decide_server
if [[ " $SERVERS " == *" grpc-cpp "* ]]; then make -s -C benchmarks/peers/cpp >/dev/null; fi
offerd="${OFFERD_BIN:-${bin:-}/offerd}"
peer="${PEER_BIN:-${bin:-}/offerd-grpc-swift-peer}"
mkdir -p "$WORK"

if [ ! -f "$WORK/profiles-$PROFILES.snap" ]; then
    echo "generating $PROFILES profiles and their snapshot"
    "$offerd" profiles generate --count "$PROFILES" --seed 42 --output "$WORK/profiles-$PROFILES.jsonl"
    /usr/bin/time -f "snapshot build: %e s, max RSS %M KiB" \
        "$offerd" snapshot build --input "$WORK/profiles-$PROFILES.jsonl" --output "$WORK/profiles-$PROFILES.snap" \
        --version "bench-$PROFILES"
fi
python3 benchmarks/load/make_catalog.py "$WORK/catalog.json"
rm -rf "$WORK/bodies" && python3 benchmarks/load/make_requests.py "$WORK/bodies" "$BODIES" "$PROFILES" "$SCOPES"
# An empty HealthCheckRequest (service ""), gRPC-framed: flag 0, length 0.
printf '\x00\x00\x00\x00\x00' > "$WORK/bodies/health.bin"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for_port() {  # port: up to 60 s, loading a 1M-profile snapshot takes a moment
    for _ in $(seq 1 600); do
        python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),0.2)" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on port $1"; exit 1
}
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
peak_rss_kib() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

declare -A pid url
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT

offerd_port=$(free_port)
# OFFERD_ARGS: more `serve` options for this build only (e.g. `--events none`, which the base build may not know).
# shellcheck disable=SC2086
taskset -c 0 "$offerd" serve --catalog "$WORK/catalog.json" --snapshot "$WORK/profiles-$PROFILES.snap" \
    --port "$offerd_port" --admin-port 0 --threads 1 --log-level warning ${OFFERD_ARGS:-} &
pid[offerd]=$!; pids+=($!)
url[offerd]="http://127.0.0.1:$offerd_port/offerd.v1.Decisioning/Decide"
wait_for_port "$offerd_port"
# The same process: its CPU ticks are read around its own rounds only.
pid[offerd-health]=${pid[offerd]}
url[offerd-health]="http://127.0.0.1:$offerd_port/grpc.health.v1.Health/Check"

if [[ " $SERVERS " == *" base "* ]]; then
    # Its own snapshot, built by its own builder from the same profiles: the format may differ between builds.
    if [ ! -f "$WORK/profiles-$PROFILES.base.snap" ]; then
        "$BASE_BIN" snapshot build --input "$WORK/profiles-$PROFILES.jsonl" \
            --output "$WORK/profiles-$PROFILES.base.snap" --version "bench-$PROFILES" >/dev/null
    fi
    base_port=$(free_port)
    taskset -c 0 "$BASE_BIN" serve --catalog "$WORK/catalog.json" --snapshot "$WORK/profiles-$PROFILES.base.snap" \
        --port "$base_port" --admin-port 0 --threads 1 --log-level warning &
    pid[base]=$!; pids+=($!)
    url[base]="http://127.0.0.1:$base_port/offerd.v1.Decisioning/Decide"
    wait_for_port "$base_port"
    pid[base-health]=${pid[base]}
    url[base-health]="http://127.0.0.1:$base_port/grpc.health.v1.Health/Check"
fi

if [[ " $SERVERS " == *" grpc-swift "* ]]; then
    peer_port=$(free_port)
    taskset -c 0 "$peer" --catalog "$WORK/catalog.json" --snapshot "$WORK/profiles-$PROFILES.snap" \
        --port "$peer_port" --threads 1 >/dev/null &
    pid[grpc-swift]=$!; pids+=($!)
    url[grpc-swift]="http://127.0.0.1:$peer_port/offerd.v1.Decisioning/Decide"
    wait_for_port "$peer_port"
fi

if [[ " $SERVERS " == *" grpc-cpp "* ]]; then
    cpp_port=$(free_port)
    taskset -c 0 "$cpp_peer" --port "$cpp_port" 2>/dev/null &
    pid[grpc-cpp]=$!; pids+=($!)
    url[grpc-cpp]="http://127.0.0.1:$cpp_port/offerd.v1.Decisioning/Decide"
    wait_for_port "$cpp_port"
fi

if [[ " $SERVERS " == *" nghttpd "* ]]; then
    # The floor: nghttpd answering a static file of a Decide response's size.
    response_size=$(python3 benchmarks/load/analyze.py response-size "127.0.0.1:$offerd_port" \
        "$WORK/bodies/req-$SCOPES-0.bin")
    mkdir -p "$WORK/docroot" && head -c "$response_size" /dev/zero > "$WORK/docroot/decide"
    nghttpd_port=$(free_port)
    taskset -c 0 nghttpd --no-tls -n 1 -d "$WORK/docroot" "$nghttpd_port" >/dev/null 2>&1 &
    pid[nghttpd]=$!; pids+=($!)
    url[nghttpd]="http://127.0.0.1:$nghttpd_port/decide"
    wait_for_port "$nghttpd_port"
fi

rm -f "$WORK"/{cpu,memory,trailers,rates}.txt "$WORK"/out-*.txt "$WORK"/*.log "$WORK"/rate-*.txt "$WORK"/nghttp-*.txt
for name in $SERVERS; do echo "$name idle $(rss_kib "${pid[$name]}")" >> "$WORK/memory.txt"; done

request_body() {  # name body: the body `name` is sent (Decide servers: `body`)
    if [[ "$1" == *-health ]]; then echo "$WORK/bodies/health.bin"; else echo "$2"; fi
}

data_args_for() {  # name body: h2load/nghttp arguments for a gRPC call (none for the static file)
    if [ "$1" = nghttpd ]; then return; fi
    echo "-d $(request_body "$1" "$2") -H content-type:application/grpc -H te:trailers"
}

h2load_bounded() { timeout "$ROUND_TIMEOUT" taskset -c 1 h2load "$@" || echo "h2load: exit $? (timeout or failure)"; }

check_trailers() {  # name body round: one verbose call; gRPC servers must end with grpc-status: 0
    local name=$1 body=$2 round=$3 verdict
    if [ "$name" = nghttpd ]; then
        timeout 10 nghttp -v "${url[$name]}" > "$WORK/nghttp-$name-$round.txt" 2>&1 || true
        grep -q ':status: 200' "$WORK/nghttp-$name-$round.txt" && verdict=ok || verdict=bad
    else
        timeout 10 nghttp -v -d "$(request_body "$name" "$body")" -H "content-type: application/grpc" \
            -H "te: trailers" "${url[$name]}" \
            > "$WORK/nghttp-$name-$round.txt" 2>&1 || true
        grep -q 'grpc-status: 0' "$WORK/nghttp-$name-$round.txt" && verdict=ok || verdict=bad
    fi
    echo "$name $round $verdict" >> "$WORK/trailers.txt"
}

run_round() {  # name body round
    local name=$1 body=$2 round=$3 before after
    # shellcheck disable=SC2046  # the arguments are split on purpose; paths have no spaces
    set -- "$name" "$body" "$round" $(data_args_for "$name" "$body")
    local data_args=("${@:4}")
    before=$(cpu_ticks "${pid[$name]}")
    h2load_bounded -n "$CALLS" -c "$CONNECTIONS" -m "$STREAMS" "${data_args[@]}" \
        --log-file "$WORK/load-$name-$round.log" "${url[$name]}" > "$WORK/out-$name-$round.txt"
    after=$(cpu_ticks "${pid[$name]}")
    echo "$name $round $before $after" >> "$WORK/cpu.txt"
    echo "$name load-$round $(rss_kib "${pid[$name]}")" >> "$WORK/memory.txt"
    # One call in flight: latency without queueing.
    h2load_bounded -n "$SINGLE_CALLS" -c 1 -m 1 "${data_args[@]}" --log-file "$WORK/single-$name-$round.log" \
        "${url[$name]}" > /dev/null
    check_trailers "$name" "$body" "$round"
}

echo "warming up"
for name in $SERVERS; do
    # shellcheck disable=SC2046
    h2load_bounded -n 20000 -c "$CONNECTIONS" -m "$STREAMS" $(data_args_for "$name" "$WORK/bodies/req-$SCOPES-0.bin") \
        "${url[$name]}" > /dev/null
done
for round in $(seq 1 "$ROUNDS"); do
    body="$WORK/bodies/req-$SCOPES-$(( (round - 1) % BODIES )).bin"
    echo "round $round/$ROUNDS ($(cut -d' ' -f1-3 /proc/loadavg) load average)"
    for name in $SERVERS; do run_round "$name" "$body" "$round"; done
done

max_rate=$(python3 benchmarks/load/analyze.py max-rate "$WORK" offerd)
echo "offerd closed-loop median: $max_rate calls/s"
for percent in $RATES; do
    rate=$(( max_rate * percent / 100 ))
    per_client=$(( rate / RATE_CLIENTS > 0 ? rate / RATE_CLIENTS : 1 ))
    echo "open loop at $percent% = $(( per_client * RATE_CLIENTS )) calls/s for ${RATE_SECONDS}s per server"
    for name in $SERVERS; do
        body="$WORK/bodies/req-$SCOPES-$(( percent % BODIES )).bin"
        # shellcheck disable=SC2046
        h2load_bounded -D "$RATE_SECONDS" -c "$RATE_CLIENTS" -m "$RATE_STREAMS" --rps "$per_client" \
            $(data_args_for "$name" "$body") --log-file "$WORK/rate-$name-$percent.log" "${url[$name]}" \
            > "$WORK/rate-$name-$percent.txt"
        echo "$name $percent $(( per_client * RATE_CLIENTS ))" >> "$WORK/rates.txt"
    done
done

for name in $SERVERS; do echo "$name peak $(peak_rss_kib "${pid[$name]}")" >> "$WORK/memory.txt"; done
snapshot_bytes=$(stat -L -c %s "$WORK/profiles-$PROFILES.snap")
python3 benchmarks/load/analyze.py report "$WORK" "$CALLS" "$snapshot_bytes"
python3 benchmarks/load/analyze.py plot "$WORK" "$WORK/latency.png" || echo "no plot (matplotlib missing?)"
