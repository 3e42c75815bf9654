#!/bin/sh
# Runs the snapshot tests under ThreadSanitizer: the lock-free store, the
# watcher and the reloaders are the concurrent parts of OfferdSnapshot.
set -eu
cd "$(dirname "$0")/.."
exec swift test --sanitize=thread --filter OfferdSnapshotTests "$@"
