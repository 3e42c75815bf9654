#!/usr/bin/env bash
# Instructions per Decide call, counted by callgrind: a stable number on a noisy shared machine, where wall-clock
# figures move by tens of percent. Runs benchmarks/peers' offerd-decide-loop (N in-process calls through
# DecisioningService.handle: decode, decide, encode, no transport) twice, with FEW and with FEW + CALLS calls, and
# divides the difference in instructions by CALLS, which cancels loading the catalog and the snapshot and the
# first calls' one-time costs (lazy initialisation, first-touch of pages).
#
# The executable is a copy stripped of debug info (objcopy --strip-debug): valgrind then starts in seconds instead
# of reading DWARF for minutes; the symbol table stays, so callgrind_annotate still names the functions.
#
#   benchmarks/callgrind/run.sh                  # defaults below
#   CALLS=5000 SCOPES=3 benchmarks/callgrind/run.sh
#   SHAPE=real PAGE=home benchmarks/callgrind/run.sh       # issue 15's catalog, answered by the formula criterion
#   SHAPE=real PAGE=checkout benchmarks/callgrind/run.sh   # ... by the priority criterion
set -euo pipefail
cd "$(dirname "$0")/../.."

PROFILES=${PROFILES:-10000}   # the per-call cost is a hash lookup away from the snapshot's size
CALLS=${CALLS:-2000}          # measured calls
FEW=${FEW:-200}               # calls in the baseline run
SCOPES=${SCOPES:-1}
BODIES=${BODIES:-16}          # distinct profiles, used in turn
SHAPE=${SHAPE:-bench}         # benchmarks/load/make_catalog.py's catalog shape: bench or real
PAGE=${PAGE:-home}            # the requests' context.page
WORK=${WORK:-/tmp/offerd-callgrind}

command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)"; exit 1; }
scripts/install-deps.sh --with-python
# DECIDE_LOOP_BIN / OFFERD_BIN use prebuilt executables instead of building benchmarks/peers.
peers=benchmarks/peers
if [ -z "${DECIDE_LOOP_BIN:-}" ] || [ -z "${OFFERD_BIN:-}" ]; then
    swift build -c release --package-path "$peers" --product offerd-decide-loop >/dev/null
    swift build -c release --package-path "$peers" --product offerd >/dev/null
    bin="$(swift build -c release --package-path "$peers" --show-bin-path)"
fi
decide_loop="${DECIDE_LOOP_BIN:-$bin/offerd-decide-loop}"
offerd="${OFFERD_BIN:-$bin/offerd}"
mkdir -p "$WORK"
objcopy --strip-debug "$decide_loop" "$WORK/offerd-decide-loop"

if [ ! -f "$WORK/profiles-$PROFILES.snap" ]; then
    "$offerd" profiles generate --count "$PROFILES" --seed 42 --output "$WORK/profiles-$PROFILES.jsonl"
    "$offerd" snapshot build --input "$WORK/profiles-$PROFILES.jsonl" --output "$WORK/profiles-$PROFILES.snap" \
        --version "callgrind-$PROFILES"
fi
python3 benchmarks/load/make_catalog.py "$WORK/catalog.json" "$SHAPE"
rm -rf "$WORK/bodies" && python3 benchmarks/load/make_requests.py "$WORK/bodies" "$BODIES" "$PROFILES" "$SCOPES" "$PAGE"
requests=()
for n in $(seq 0 $((BODIES - 1))); do requests+=(--request "$WORK/bodies/req-$SCOPES-$n.bin"); done

instructions() {  # calls: total instructions (Ir) of one run
    local out="$WORK/callgrind.out.$1"
    timeout 1800 valgrind --tool=callgrind --callgrind-out-file="$out" \
        "$WORK/offerd-decide-loop" --catalog "$WORK/catalog.json" --snapshot "$WORK/profiles-$PROFILES.snap" \
        "${requests[@]}" --calls "$1" > "$WORK/stdout.$1" 2> "$WORK/valgrind.$1.log"
    awk '/^(summary|totals):/ {print $2; exit}' "$out"
}

few=$(instructions "$FEW")
many=$(instructions $((FEW + CALLS)))
per_call=$(( (many - few) / CALLS ))
echo "catalog shape $SHAPE, page $PAGE, scopes $SCOPES, $BODIES profiles in turn, snapshot of $PROFILES profiles"
echo "instructions: $few with $FEW calls, $many with $((FEW + CALLS)) calls"
echo "instructions per Decide call: $per_call"
echo "top functions: callgrind_annotate $WORK/callgrind.out.$((FEW + CALLS)) | head -40"
