// The read path's tests make their snapshot files with the builder and share helpers with the builder's tests
// (OfferdSnapshotTestSupport). Re-exported here so that every file of this target sees both, including those that
// predate the split and do not import them themselves (ReloaderTests.swift).
@_exported import OfferdSnapshotBuilder
@_exported import OfferdSnapshotTestSupport
