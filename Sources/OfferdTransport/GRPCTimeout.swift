import NIOCore

/// The `grpc-timeout` request header: `TimeoutValue TimeoutUnit`, 1 to 8 ASCII digits followed by one of
/// `H` (hours), `M` (minutes), `S` (seconds), `m` (milliseconds), `u` (microseconds), `n` (nanoseconds).
///
/// A malformed value is answered `INVALID_ARGUMENT` (the client sent something wrong; offerd keeps `INTERNAL`
/// for its own bugs). `0` with any unit is valid and means the deadline has already passed.
public enum GRPCTimeout {
    /// Parses a `grpc-timeout` value; `nil` when it is malformed. Values too large for `TimeAmount`
    /// (e.g. `99999999H`) saturate at the largest representable amount.
    public static func parse<Bytes: BidirectionalCollection>(_ value: Bytes) -> TimeAmount?
    where Bytes.Element == UInt8 {
        let digitCount = value.count - 1
        guard digitCount >= 1, digitCount <= 8, let unitByte = value.last else {
            return nil
        }
        var amount: Int64 = 0
        for byte in value.prefix(digitCount) {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else {
                return nil
            }
            amount = amount * 10 + Int64(byte - UInt8(ascii: "0"))
        }
        let nanosecondsPerUnit: Int64
        switch unitByte {
        case UInt8(ascii: "H"): nanosecondsPerUnit = 3_600_000_000_000
        case UInt8(ascii: "M"): nanosecondsPerUnit = 60_000_000_000
        case UInt8(ascii: "S"): nanosecondsPerUnit = 1_000_000_000
        case UInt8(ascii: "m"): nanosecondsPerUnit = 1_000_000
        case UInt8(ascii: "u"): nanosecondsPerUnit = 1_000
        case UInt8(ascii: "n"): nanosecondsPerUnit = 1
        default: return nil
        }
        let (nanoseconds, overflow) = amount.multipliedReportingOverflow(by: nanosecondsPerUnit)
        return .nanoseconds(overflow ? Int64.max : nanoseconds)
    }

    /// Parses a `grpc-timeout` value given as a string; `nil` when it is malformed.
    public static func parse(_ value: String) -> TimeAmount? {
        Self.parse(Array(value.utf8))
    }
}
