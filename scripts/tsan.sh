#!/bin/sh
# Runs the snapshot tests under ThreadSanitizer: the lock-free store, the
# watcher and the reloaders, the lease hand-over (OfferdSnapshot) and the
# parallel builder (OfferdSnapshotBuilder) are the concurrent parts of the
# snapshot modules; `decide batch`'s pipeline (BatchDeciderTests) is the
# other threaded code, with an event log (BatchEventLogTests) too. A report fails
# the run.
#
# It builds into its own scratch directory (.build-tsan, as scripts/sanitizers.sh does): in the default .build it
# would replace the debug `offerd` with a ThreadSanitizer build, which takes about a second to start instead of
# 60 ms, and every later run of the interop suites against that binary would be three to four times slower.
set -eu
cd "$(dirname "$0")/.."
exec swift test --sanitize=thread --scratch-path .build-tsan --filter 'OfferdSnapshotTests|OfferdSnapshotBuilderTests|BatchDeciderTests|BatchEventLogTests|OfferdLiveStateTests|LiveStateRuntimeTests|DeferredRecordingTests' "$@"
