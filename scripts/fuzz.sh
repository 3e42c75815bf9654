#!/usr/bin/env bash
# Builds and runs one libFuzzer target of fuzz/ (issue 6 part 2).
#
#   scripts/fuzz.sh TARGET SECONDS [extra libFuzzer flags]
#   TARGET: decode-request | rule-expression | catalog | snapshot | http2 (or the target name, FuzzCatalog, ...)
#
# The corpus is fuzz/corpus/TARGET (seeds committed; new inputs the fuzzer finds are written to a scratch
# corpus under .build, not to the repository). Crashes land in fuzz/crashes/TARGET/. Uses the debug
# configuration: SwiftPM enables testability there, which the HTTP/2 target needs (@testable import).
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $# -lt 2 ]]; then
    echo "usage: $0 TARGET SECONDS [libFuzzer flags]" >&2
    exit 2
fi
target="$1"
seconds="$2"
shift 2
case "$target" in
    decode-request | FuzzDecodeRequest) name=FuzzDecodeRequest short=decode-request ;;
    rule-expression | FuzzRuleExpression) name=FuzzRuleExpression short=rule-expression ;;
    catalog | FuzzCatalog) name=FuzzCatalog short=catalog ;;
    snapshot | FuzzSnapshot) name=FuzzSnapshot short=snapshot ;;
    http2 | FuzzHTTP2) name=FuzzHTTP2 short=http2 ;;
    *) echo "unknown fuzz target $target" >&2; exit 2 ;;
esac

swift build --package-path fuzz --product "$name" \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library
binary="$(swift build --package-path fuzz --show-bin-path)/$name"

seeds="fuzz/corpus/$short"
scratch="fuzz/.build/corpus/$short"
crashes="fuzz/crashes/$short"
mkdir -p "$seeds" "$scratch" "$crashes"
dictionary=()
if [[ -f "fuzz/dictionaries/$short.dict" ]]; then
    dictionary=(-dict="fuzz/dictionaries/$short.dict")
fi
# Sanitizer reports need symbols, not the Swift runtime's backtracer.
export SWIFT_BACKTRACE=enable=no
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0}"
# LeakSanitizer is off: Swift keeps enum case tags in the spare bits of pointers (indirect enums such as
# JSONValue), which LSan cannot recognise as pointers, so it reports reachable objects as direct leaks.
# -rss_limit_mb still catches memory that grows without bound.
exec "$binary" "$scratch" "$seeds" -max_total_time="$seconds" -artifact_prefix="$crashes/" \
    -max_len=65536 -rss_limit_mb=4096 -detect_leaks=0 -print_final_stats=1 "${dictionary[@]}" "$@"
