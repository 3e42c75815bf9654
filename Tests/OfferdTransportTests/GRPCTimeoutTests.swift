import NIOCore
import Testing

@testable import OfferdTransport

@Suite("grpc-timeout parsing")
struct GRPCTimeoutTests {
    @Test(
        "valid values",
        arguments: [
            ("1H", TimeAmount.hours(1)),
            ("2M", .minutes(2)),
            ("30S", .seconds(30)),
            ("250m", .milliseconds(250)),
            ("7u", .microseconds(7)),
            ("99999999n", .nanoseconds(99_999_999)),
            ("0S", .zero),
            ("00000001m", .milliseconds(1)),
        ]
    )
    func valid(text: String, expected: TimeAmount) {
        #expect(GRPCTimeout.parse(text) == expected)
    }

    @Test(
        "malformed values",
        arguments: [
            "", "S", "1", "10", "123456789S", "1s", "1h", "-1S", "1.5S", " 1S", "1S ", "1 S", "1SS", "+1S", "１S",
        ]
    )
    func malformed(text: String) {
        #expect(GRPCTimeout.parse(text) == nil)
    }

    @Test("huge values saturate instead of overflowing")
    func saturates() {
        #expect(GRPCTimeout.parse("99999999H") == .nanoseconds(Int64.max))
        // 99999999 minutes still fits in Int64 nanoseconds (about 6e18).
        #expect(GRPCTimeout.parse("99999999M") == .nanoseconds(99_999_999 * 60_000_000_000))
    }
}
