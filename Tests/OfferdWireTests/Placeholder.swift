import Testing

@Suite struct OfferdWireTestsPlaceholder {}
