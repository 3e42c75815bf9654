#!/bin/sh
# Runs the snapshot tests under ThreadSanitizer: the lock-free store, the
# watcher and the reloaders, the lease hand-over and the parallel builder are
# the concurrent parts of OfferdSnapshot. A report fails the run.
set -eu
cd "$(dirname "$0")/.."
exec swift test --sanitize=thread --filter OfferdSnapshotTests "$@"
