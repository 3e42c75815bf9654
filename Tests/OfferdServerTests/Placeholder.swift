import Testing

@Suite struct OfferdServerTestsPlaceholder {}
