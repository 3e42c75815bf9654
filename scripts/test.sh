#!/usr/bin/env bash
# Runs every test of offerd from a fresh clone: installs what it needs, checks
# the generated protobuf-c code is current, builds, runs the Swift test suite,
# then the interop suite against a real server with real clients
# (grpcio, nghttp, h2load, nginx), then the snapshot suites under
# ThreadSanitizer (the lock-free store, the reloaders, the lease hand-over and
# the parallel builder are the concurrent code).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh --with-python
proto/generate.sh --check
# The house format (.swift-format: 4 spaces, 120 columns), checked, never applied here: `swift format format -i -r`
# with the same paths applies it.
swift format lint --strict -r Sources Tests benchmarks/micro/Sources benchmarks/peers/Sources fuzz/Sources \
    benchmarks/loadgen/Sources benchmarks/loadgen/Tests \
    Package.swift benchmarks/micro/Package.swift benchmarks/peers/Package.swift fuzz/Package.swift \
    benchmarks/loadgen/Package.swift

swift build --build-tests
swift test --skip-build --parallel

# The open-loop load generator of the load benchmarks (a separate package): its own tests, and the interop suite
# drives it against a real server (tests/interop/test_loadgen.py).
swift build --package-path benchmarks/loadgen --build-tests
swift test --package-path benchmarks/loadgen --skip-build

OFFERD_BIN="$(swift build --show-bin-path)/offerd" \
    LOADGEN_BIN="$(swift build --package-path benchmarks/loadgen --show-bin-path)/offerd-loadgen" \
    python3 -m pytest -q -p no:cacheprovider tests/interop
OFFERD_BIN="$(swift build --show-bin-path)/offerd" python3 -m pytest -q -p no:cacheprovider tests/hostile

scripts/tsan.sh
