#!/usr/bin/env bash
# Starts offerd on the bundled example data: builds (release), builds the
# example snapshot, then serves gRPC on 127.0.0.1:50051 and the admin
# endpoints on 127.0.0.1:9090. Extra arguments go to `offerd serve`.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
swift build -c release --product offerd
bin="$(swift build -c release --show-bin-path)/offerd"
mkdir -p .example
"$bin" snapshot build --input examples/profiles.jsonl --output .example/profiles.snap --version example-1
"$bin" catalog check examples/catalog.json
# The event log is a file next to the snapshot (pass --events redis://HOST:PORT to share live state, or none).
exec "$bin" serve --catalog examples/catalog.json --snapshot .example/profiles.snap \
    --events file:.example/offerd-events.log "$@"
