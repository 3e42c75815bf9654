#!/usr/bin/env bash
# Instructions per call through the HTTP/2 transport, counted by callgrind: the over-the-wire cost of a call
# without the sockets, repeatable on a noisy shared machine. Runs benchmarks/peers' offerd-transport-loop (N calls
# on an EmbeddedChannel with the production pipeline, fed h2load's request bytes BATCH at a time) twice, with FEW
# and with FEW + CALLS calls, and divides the difference in instructions by CALLS, which cancels the set-up (the
# catalog and snapshot with SERVICE=decide or health, the connection preface) and the first calls' one-time costs.
#
# SERVICE=fixed answers every call with the same RESPONSE_BYTES-byte message: the transport alone. SERVICE=health
# and SERVICE=decide go through offerd's DecisioningService like the load benchmark's offerd-health and offerd
# rows. valgrind cannot run the NIO server itself (it aborts), which is why the connection runs in process.
#
#   benchmarks/callgrind/transport.sh                     # transport alone
#   SERVICE=decide benchmarks/callgrind/transport.sh      # a Decide over the wire, minus the kernel
#   SERVICE=decide SHAPE=real PAGE=checkout benchmarks/callgrind/transport.sh   # issue 15's priority path
#   TRANSPORT_LOOP_BIN=/path/offerd-transport-loop OFFERD_BIN=/path/offerd benchmarks/callgrind/transport.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

SERVICE=${SERVICE:-fixed}     # fixed, health or decide
CALLS=${CALLS:-4000}          # measured calls
FEW=${FEW:-800}               # calls in the baseline run
BATCH=${BATCH:-32}            # requests per read, as h2load -m 32
RESPONSE_BYTES=${RESPONSE_BYTES:-200}  # SERVICE=fixed: the message size (the load benchmark's Decide answers 199 bytes)
PROFILES=${PROFILES:-10000}
SCOPES=${SCOPES:-1}
BODIES=${BODIES:-16}
SHAPE=${SHAPE:-bench}         # make_catalog.py's catalog, as benchmarks/load/run.sh: bench, or real (issue 15's)
PAGE=${PAGE:-home}            # the requests' context.page (with SHAPE=real: checkout is the priority path)
WORK=${WORK:-/tmp/offerd-callgrind-transport}

command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)"; exit 1; }
peers=benchmarks/peers
if [ -z "${TRANSPORT_LOOP_BIN:-}" ] || { [ "$SERVICE" != fixed ] && [ -z "${OFFERD_BIN:-}" ]; }; then
    swift build -c release --package-path "$peers" --product offerd-transport-loop >/dev/null
    bin="$(swift build -c release --package-path "$peers" --show-bin-path)"
    if [ "$SERVICE" != fixed ] && [ -z "${OFFERD_BIN:-}" ]; then
        swift build -c release --package-path "$peers" --product offerd >/dev/null
    fi
fi
loop="${TRANSPORT_LOOP_BIN:-$bin/offerd-transport-loop}"
mkdir -p "$WORK"
objcopy --strip-debug "$loop" "$WORK/offerd-transport-loop"

args=(--service "$SERVICE" --batch "$BATCH" --response-bytes "$RESPONSE_BYTES")
if [ "$SERVICE" != fixed ]; then
    scripts/install-deps.sh --with-python
    offerd="${OFFERD_BIN:-$bin/offerd}"
    if [ ! -f "$WORK/profiles-$PROFILES.jsonl" ]; then
        "$offerd" profiles generate --count "$PROFILES" --seed 42 --output "$WORK/profiles-$PROFILES.jsonl"
    fi
    # Built by the offerd given, every time: the snapshot format may differ between the builds compared.
    "$offerd" snapshot build --input "$WORK/profiles-$PROFILES.jsonl" --output "$WORK/profiles-$PROFILES.snap" \
        --version "callgrind-$PROFILES" >/dev/null
    python3 benchmarks/load/make_catalog.py "$WORK/catalog.json" "$SHAPE"
    rm -rf "$WORK/bodies" && python3 benchmarks/load/make_requests.py "$WORK/bodies" "$BODIES" "$PROFILES" "$SCOPES" "$PAGE"
    args+=(--catalog "$WORK/catalog.json" --snapshot "$WORK/profiles-$PROFILES.snap")
    for n in $(seq 0 $((BODIES - 1))); do args+=(--request "$WORK/bodies/req-$SCOPES-$n.bin"); done
fi

instructions() {  # calls: total instructions (Ir) of one run
    local out="$WORK/callgrind.out.$SERVICE.$1"
    SWIFT_DETERMINISTIC_HASHING=1 timeout 1800 valgrind --tool=callgrind --callgrind-out-file="$out" \
        "$WORK/offerd-transport-loop" "${args[@]}" --calls "$1" > "$WORK/stdout.$SERVICE.$1" \
        2> "$WORK/valgrind.$SERVICE.$1.log" || { cat "$WORK/stdout.$SERVICE.$1" "$WORK/valgrind.$SERVICE.$1.log"; exit 1; }
    awk '/^(summary|totals):/ {print $2; exit}' "$out"
}

few=$(instructions "$FEW")
many=$(instructions $((FEW + CALLS)))
per_call=$(( (many - few) / CALLS ))
echo "service $SERVICE, $BATCH requests per read, $(cat "$WORK/stdout.$SERVICE.$((FEW + CALLS))")"
echo "instructions: $few with $FEW calls, $many with $((FEW + CALLS)) calls"
echo "instructions per call: $per_call"
echo "top functions: callgrind_annotate $WORK/callgrind.out.$SERVICE.$((FEW + CALLS)) | head -40"
