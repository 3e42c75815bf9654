#!/usr/bin/env bash
# Load benchmark, side by side in one run: offerd (Decide on a real catalog and
# snapshot) and nghttpd serving a static file of the same size as a Decide
# response (the HTTP/2 floor). Server pinned to core 0, h2load to core 1,
# rounds interleaved (A B A B ...) because the machine is shared and noisy.
# Loopback only; every step is bounded in calls and time.
#
#   benchmarks/load/run.sh                     # defaults below
#   PROFILES=100000 ROUNDS=3 benchmarks/load/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

PROFILES=${PROFILES:-1000000}   # profiles in the snapshot
ROUNDS=${ROUNDS:-5}             # interleaved rounds per server
CALLS=${CALLS:-100000}          # calls per round
CONNECTIONS=${CONNECTIONS:-16}
STREAMS=${STREAMS:-32}
SCOPES=${SCOPES:-1}             # scopes per request (1 or 3)
BODIES=${BODIES:-16}            # distinct request bodies (profiles) rotated over rounds
WORK=${WORK:-/tmp/offerd-bench}

scripts/install-deps.sh --with-python
command -v nghttpd >/dev/null || { apt-get install -y -qq nghttp2-server >/dev/null; }
command -v taskset >/dev/null || { echo "taskset (util-linux) is needed"; exit 1; }

swift build -c release --product offerd >/dev/null
offerd="$(swift build -c release --show-bin-path)/offerd"
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

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
offerd_port=$(free_port)
taskset -c 0 "$offerd" serve --catalog "$WORK/catalog.json" --snapshot "$WORK/profiles-$PROFILES.snap" \
    --port "$offerd_port" --admin-port 0 --threads 1 --log-level warning &
offerd_pid=$!

# The floor: nghttpd answering a static file of a Decide response's size.
response_size=$(python3 benchmarks/load/analyze.py response-size "127.0.0.1:$offerd_port" "$WORK/bodies/req-$SCOPES-0.bin")
mkdir -p "$WORK/docroot" && head -c "$response_size" /dev/zero > "$WORK/docroot/decide"
nghttpd_port=$(free_port)
taskset -c 0 nghttpd --no-tls -d "$WORK/docroot" "$nghttpd_port" >/dev/null 2>&1 &
nghttpd_pid=$!
trap 'kill $offerd_pid $nghttpd_pid 2>/dev/null || true' EXIT
sleep 1

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

run_round() {  # server pid url body-or-empty tag round
    local name=$1 pid=$2 url=$3 body=$4 round=$5
    local before after
    local data_args=()
    [ -n "$body" ] && data_args=(-d "$body" -H "content-type: application/grpc" -H "te: trailers")
    before=$(cpu_ticks "$pid")
    taskset -c 1 h2load -n "$CALLS" -c "$CONNECTIONS" -m "$STREAMS" "${data_args[@]}" "$url" \
        > "$WORK/out-$name-$round.txt"
    after=$(cpu_ticks "$pid")
    echo "$name $round $before $after" >> "$WORK/cpu.txt"
    # One call in flight: latency without queueing.
    taskset -c 1 h2load -n 2000 -c 1 -m 1 "${data_args[@]}" --log-file "$WORK/single-$name-$round.log" "$url" \
        > /dev/null
}

rm -f "$WORK/cpu.txt" "$WORK"/out-*.txt "$WORK"/single-*.log
echo "warming up"
taskset -c 1 h2load -n 20000 -c "$CONNECTIONS" -m "$STREAMS" -d "$WORK/bodies/req-$SCOPES-0.bin" \
    -H "content-type: application/grpc" -H "te: trailers" \
    "http://127.0.0.1:$offerd_port/offerd.v1.Decisioning/Decide" >/dev/null
for round in $(seq 1 "$ROUNDS"); do
    body="$WORK/bodies/req-$SCOPES-$(( (round - 1) % BODIES )).bin"
    echo "round $round/$ROUNDS"
    run_round offerd "$offerd_pid" "http://127.0.0.1:$offerd_port/offerd.v1.Decisioning/Decide" "$body" "$round"
    run_round nghttpd "$nghttpd_pid" "http://127.0.0.1:$nghttpd_port/decide" "" "$round"
done
rss_kib=$(awk '/VmRSS/ {print $2}' "/proc/$offerd_pid/status")
snapshot_bytes=$(stat -c %s "$WORK/profiles-$PROFILES.snap")
python3 benchmarks/load/analyze.py report "$WORK" "$CALLS" "$rss_kib" "$snapshot_bytes"
