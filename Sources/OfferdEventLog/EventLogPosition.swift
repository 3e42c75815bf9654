/// Where an entry sits in a log: positions grow in log order, and every entry has its own.
///
/// Clients see the string form only and treat it as opaque (SPEC 9.1). The forms:
/// - a file log's position is the entry's sequence number, `42` (the first entry of a new file is 1);
/// - a Redis stream's is the stream entry id and the entry's index in that stream entry's batch,
///   `1733540000000-0.17`.
///
/// Positions compare as numbers, field by field (`9-0.2` < `10-0.0`, `5-0.9` < `5-0.10`), never as strings.
/// Every number is written in decimal without leading zeros, so equal positions have equal strings and the
/// string form parses back to the same position. A file position and a stream position never meet in one log;
/// they still have a total order (file positions first) so that `Comparable` holds.
public enum EventLogPosition: Hashable, Comparable, Sendable, LosslessStringConvertible {
    /// A file log's sequence number.
    case sequence(UInt64)
    /// A Redis stream entry id (`milliseconds-sequence`) and the index of the entry within its batch.
    case stream(milliseconds: UInt64, sequence: UInt64, index: UInt32)

    public var description: String {
        switch self {
        case .sequence(let number): "\(number)"
        case .stream(let milliseconds, let sequence, let index): "\(milliseconds)-\(sequence).\(index)"
        }
    }

    /// Parses the string form; nil for anything else (signs, spaces, leading zeros, overflow, other separators).
    public init?(_ description: String) {
        let utf8 = Array(description.utf8)
        if let number = Self.parseNumber(utf8[...], limit: UInt64.max) {
            self = .sequence(number)
            return
        }
        guard let dash = utf8.firstIndex(of: UInt8(ascii: "-")),
            let dot = utf8[dash...].firstIndex(of: UInt8(ascii: ".")),
            let milliseconds = Self.parseNumber(utf8[..<dash], limit: UInt64.max),
            let sequence = Self.parseNumber(utf8[(dash + 1)..<dot], limit: UInt64.max),
            let index = Self.parseNumber(utf8[(dot + 1)...], limit: UInt64(UInt32.max))
        else { return nil }
        self = .stream(milliseconds: milliseconds, sequence: sequence, index: UInt32(index))
    }

    /// The stream entry id (`milliseconds-sequence`) of a stream position; nil for a file position.
    public var streamEntryID: String? {
        guard case .stream(let milliseconds, let sequence, _) = self else { return nil }
        return "\(milliseconds)-\(sequence)"
    }

    /// A canonical decimal number (no sign, no leading zero unless it is `0`) at most `limit`.
    private static func parseNumber(_ digits: ArraySlice<UInt8>, limit: UInt64) -> UInt64? {
        guard let first = digits.first, digits.count == 1 || first != UInt8(ascii: "0") else { return nil }
        var value: UInt64 = 0
        for digit in digits {
            guard digit >= UInt8(ascii: "0"), digit <= UInt8(ascii: "9") else { return nil }
            let (times10, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times10.addingReportingOverflow(UInt64(digit - UInt8(ascii: "0")))
            guard !overflow1, !overflow2, sum <= limit else { return nil }
            value = sum
        }
        return value
    }
}

/// A Redis stream entry id, `milliseconds-sequence`, compared as two numbers.
struct RedisStreamID: Hashable, Comparable, Sendable, CustomStringConvertible {
    var milliseconds: UInt64
    var sequence: UInt64

    static let zero = RedisStreamID(milliseconds: 0, sequence: 0)

    init(milliseconds: UInt64, sequence: UInt64) {
        self.milliseconds = milliseconds
        self.sequence = sequence
    }

    /// Parses an id as Redis returns it; nil for anything else.
    init?(_ text: String) {
        guard let position = EventLogPosition(text + ".0"),
            case .stream(let milliseconds, let sequence, _) = position
        else { return nil }
        self.init(milliseconds: milliseconds, sequence: sequence)
    }

    static func < (lhs: RedisStreamID, rhs: RedisStreamID) -> Bool {
        (lhs.milliseconds, lhs.sequence) < (rhs.milliseconds, rhs.sequence)
    }

    var description: String { "\(milliseconds)-\(sequence)" }

    func position(index: UInt32) -> EventLogPosition {
        .stream(milliseconds: milliseconds, sequence: sequence, index: index)
    }
}
