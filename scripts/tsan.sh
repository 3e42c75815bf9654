#!/bin/sh
# Runs the snapshot tests under ThreadSanitizer: the lock-free store, the
# watcher and the reloaders, the lease hand-over (OfferdSnapshot) and the
# parallel builder (OfferdSnapshotBuilder) are the concurrent parts of the
# snapshot modules; `decide batch`'s pipeline (BatchDeciderTests) is the
# other threaded code. A report fails the run.
set -eu
cd "$(dirname "$0")/.."
exec swift test --sanitize=thread --filter 'OfferdSnapshotTests|OfferdSnapshotBuilderTests|BatchDeciderTests|OfferdLiveStateTests|LiveStateRuntimeTests|DeferredRecordingTests' "$@"
