import Testing

@Suite struct OfferdSnapshotTestsPlaceholder {}
