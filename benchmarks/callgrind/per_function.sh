#!/usr/bin/env bash
# Instructions per Decide call of each function (inclusive and self), for finding where a call's instructions go:
# the engine alone is the `DecisionEngine.decide` row. Like run.sh, runs offerd-decide-loop twice (FEW and FEW + CALLS
# calls) and divides the difference by CALLS, with --dump-instr=yes so that the output files can also be annotated
# by instruction (callgrind_annotate, or objdump against the per-address counts). Uses run.sh's catalog, snapshot
# and request bodies: run run.sh first with the same SHAPE, PAGE, SCOPES and WORK.
#
#   SHAPE=real PAGE=home DECIDE_LOOP_BIN=… benchmarks/callgrind/run.sh
#   SHAPE=real PAGE=home DECIDE_LOOP_BIN=… benchmarks/callgrind/per_function.sh | head -40
set -euo pipefail
cd "$(dirname "$0")/../.."

CALLS=${CALLS:-1000}
FEW=${FEW:-200}
SCOPES=${SCOPES:-1}
BODIES=${BODIES:-16}
PROFILES=${PROFILES:-10000}
WORK=${WORK:-/tmp/offerd-callgrind}
: "${DECIDE_LOOP_BIN:?the offerd-decide-loop to measure}"
[ -f "$WORK/catalog.json" ] || { echo "no $WORK/catalog.json: run benchmarks/callgrind/run.sh first"; exit 1; }

objcopy --strip-debug "$DECIDE_LOOP_BIN" "$WORK/offerd-decide-loop-functions"
requests=()
for n in $(seq 0 $((BODIES - 1))); do requests+=(--request "$WORK/bodies/req-$SCOPES-$n.bin"); done
for calls in "$FEW" $((FEW + CALLS)); do
    timeout 1800 valgrind --tool=callgrind --dump-instr=yes --callgrind-out-file="$WORK/functions.out.$calls" \
        "$WORK/offerd-decide-loop-functions" --catalog "$WORK/catalog.json" \
        --snapshot "$WORK/profiles-$PROFILES.snap" "${requests[@]}" --calls "$calls" > /dev/null 2>&1
    callgrind_annotate --inclusive=yes "$WORK/functions.out.$calls" > "$WORK/functions.inclusive.$calls"
    callgrind_annotate "$WORK/functions.out.$calls" > "$WORK/functions.self.$calls"
done
python3 - "$WORK" "$FEW" $((FEW + CALLS)) "$CALLS" <<'PY'
import re, sys
work, few, many, calls = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
def table(path):
    rows = {}
    for line in open(path):
        match = re.match(r"\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(.*)$", line)
        if match:
            name = match.group(2).strip()
            rows[name] = rows.get(name, 0) + int(match.group(1).replace(",", ""))
    return rows
for kind in ("inclusive", "self"):
    before, after = table(f"{work}/functions.{kind}.{few}"), table(f"{work}/functions.{kind}.{many}")
    rows = sorted(((after.get(n, 0) - before.get(n, 0)) / calls, n) for n in set(before) | set(after))
    print(f"== instructions per call, {kind}")
    for value, name in reversed(rows[-60:]):
        print(f"{value:12.1f}  {name[:160]}")
PY
