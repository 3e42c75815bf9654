/// RFC 3339 timestamps (SPEC section 3), parsed by hand so OfferdCore needs no Foundation.
///
/// Accepted: `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)`, with `t` and `z`
/// allowed in lower case and any number of fraction digits. A leap second
/// (`:60`) is refused: offerd's clock is epoch seconds, which has none.
public enum Timestamp {
    /// Why a timestamp was refused.
    public struct ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    /// Parses an RFC 3339 timestamp into epoch seconds (with fraction).
    public static func parse(_ text: String) throws(ParseError) -> Double {
        let bytes = Array(text.utf8)
        var index = 0

        func fail(_ message: String) -> ParseError {
            ParseError(message: "\"\(text)\" is not an RFC 3339 timestamp: \(message)")
        }
        func digits(_ count: Int, _ what: String) throws(ParseError) -> Int {
            guard index + count <= bytes.count else { throw fail("\(what) is missing") }
            var value = 0
            for offset in 0..<count {
                let byte = bytes[index + offset]
                guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else {
                    throw fail("\(what) must be \(count) digits")
                }
                value = value * 10 + Int(byte - UInt8(ascii: "0"))
            }
            index += count
            return value
        }
        func expect(_ accepted: [UInt8], _ what: String) throws(ParseError) {
            guard index < bytes.count, accepted.contains(bytes[index]) else { throw fail("expected \(what)") }
            index += 1
        }

        let year = try digits(4, "the year")
        try expect([UInt8(ascii: "-")], "'-' after the year")
        let month = try digits(2, "the month")
        try expect([UInt8(ascii: "-")], "'-' after the month")
        let day = try digits(2, "the day")
        try expect([UInt8(ascii: "T"), UInt8(ascii: "t")], "'T' between date and time")
        let hour = try digits(2, "the hour")
        try expect([UInt8(ascii: ":")], "':' after the hour")
        let minute = try digits(2, "the minute")
        try expect([UInt8(ascii: ":")], "':' after the minute")
        let second = try digits(2, "the second")

        var fraction = 0.0
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            var scale = 0.1
            var count = 0
            while index < bytes.count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") {
                fraction += Double(bytes[index] - UInt8(ascii: "0")) * scale
                scale /= 10
                count += 1
                index += 1
            }
            guard count > 0 else { throw fail("expected digits after '.'") }
        }

        var offsetSeconds = 0
        guard index < bytes.count else { throw fail("the time zone offset is missing (use Z or +HH:MM)") }
        switch bytes[index] {
        case UInt8(ascii: "Z"), UInt8(ascii: "z"):
            index += 1
        case UInt8(ascii: "+"), UInt8(ascii: "-"):
            let sign = bytes[index] == UInt8(ascii: "-") ? -1 : 1
            index += 1
            let offsetHour = try digits(2, "the offset hour")
            try expect([UInt8(ascii: ":")], "':' in the offset")
            let offsetMinute = try digits(2, "the offset minute")
            guard offsetHour <= 23 else { throw fail("offset hour \(offsetHour) is out of range") }
            guard offsetMinute <= 59 else { throw fail("offset minute \(offsetMinute) is out of range") }
            offsetSeconds = sign * (offsetHour * 3600 + offsetMinute * 60)
        default:
            throw fail("expected Z or an offset such as +01:00")
        }
        guard index == bytes.count else { throw fail("unexpected characters after the offset") }

        guard (1...12).contains(month) else { throw fail("month \(month) is out of range") }
        guard day >= 1, day <= daysInMonth(year: year, month: month) else {
            throw fail("day \(day) does not exist in \(year)-\(month < 10 ? "0" : "")\(month)")
        }
        guard hour <= 23 else { throw fail("hour \(hour) is out of range") }
        guard minute <= 59 else { throw fail("minute \(minute) is out of range") }
        if second == 60 { throw fail("leap seconds (:60) are not supported") }
        guard second <= 59 else { throw fail("second \(second) is out of range") }

        let days = daysFromCivil(year: year, month: month, day: day)
        let whole = days * 86_400 + hour * 3600 + minute * 60 + second - offsetSeconds
        return Double(whole) + fraction
    }

    static func isLeapYear(_ year: Int) -> Bool {
        (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
    }

    static func daysInMonth(year: Int, month: Int) -> Int {
        switch month {
        case 2: isLeapYear(year) ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    /// Formats epoch seconds as an RFC 3339 timestamp in UTC, `2026-12-07T04:58:00Z` (what ``parse(_:)`` reads back).
    public static func format(epochSeconds: Int64) -> String {
        let days = Int(epochSeconds >= 0 ? epochSeconds / 86_400 : (epochSeconds - 86_399) / 86_400)
        let secondOfDay = Int(epochSeconds - Int64(days) * 86_400)
        let (year, month, day) = civilFromDays(days)
        func two(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }
        let yearText = String(repeating: "0", count: max(0, 4 - String(year).count)) + String(year)
        return "\(yearText)-\(two(month))-\(two(day))T\(two(secondOfDay / 3600)):\(two(secondOfDay / 60 % 60))"
            + ":\(two(secondOfDay % 60))Z"
    }

    /// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
    static func civilFromDays(_ days: Int) -> (year: Int, month: Int, day: Int) {
        let shifted = days + 719_468
        let era = (shifted >= 0 ? shifted : shifted - 146_096) / 146_097
        let dayOfEra = shifted - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
    static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let shiftedYear = month <= 2 ? year - 1 : year
        let era = (shiftedYear >= 0 ? shiftedYear : shiftedYear - 399) / 400
        let yearOfEra = shiftedYear - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }
}
