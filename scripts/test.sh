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

swift build --build-tests
swift test --skip-build --parallel

OFFERD_BIN="$(swift build --show-bin-path)/offerd" python3 -m pytest -q -p no:cacheprovider tests/interop
OFFERD_BIN="$(swift build --show-bin-path)/offerd" python3 -m pytest -q -p no:cacheprovider tests/hostile

scripts/tsan.sh
