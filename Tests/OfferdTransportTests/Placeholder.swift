import Testing

@Suite struct OfferdTransportTestsPlaceholder {}
