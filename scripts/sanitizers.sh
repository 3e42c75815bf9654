#!/usr/bin/env bash
# The whole Swift test suite under AddressSanitizer, then ThreadSanitizer (issue 6 part 6).
#
#   scripts/sanitizers.sh            # both
#   scripts/sanitizers.sh address    # one of them
#
# Each sanitizer builds into its own scratch directory (.build-asan, .build-tsan) so the normal debug build is
# not invalidated. Not part of scripts/test.sh: each run roughly doubles the build time; the timings printed
# here are for deciding whether CI can afford them.
set -euo pipefail
cd "$(dirname "$0")/.."

sanitizers=("${@:-address thread}")
read -r -a sanitizers <<<"${sanitizers[*]}"
status=0
for sanitizer in "${sanitizers[@]}"; do
    case "$sanitizer" in
        address) scratch=.build-asan ;;
        thread) scratch=.build-tsan ;;
        *) echo "unknown sanitizer $sanitizer (address or thread)" >&2; exit 2 ;;
    esac
    started=$(date +%s)
    # LeakSanitizer stays off: Swift keeps enum case tags in the spare bits of pointers (indirect enums such as
    # JSONValue), which LSan cannot recognise, so it reports reachable objects as leaks. ASan's memory errors
    # (overflows, use after free) are still fatal.
    export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0}"
    # The Swift runtime's backtracer and ASan both want the crash signal; let ASan report.
    if SWIFT_BACKTRACE=enable=no swift build --build-tests --sanitize="$sanitizer" --scratch-path "$scratch"; then
        built=$(date +%s)
        if SWIFT_BACKTRACE=enable=no swift test --skip-build --sanitize="$sanitizer" --scratch-path "$scratch"; then
            result=passed
        else
            result=FAILED
            status=1
        fi
    else
        built=$(date +%s)
        result="BUILD FAILED"
        status=1
    fi
    ended=$(date +%s)
    echo "sanitizer=$sanitizer result=$result build_s=$((built - started)) test_s=$((ended - built))"
done
exit $status
