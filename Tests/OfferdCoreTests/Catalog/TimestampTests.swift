import Testing

@testable import OfferdCore

@Suite struct TimestampTests {
    @Test(arguments: [
        ("1970-01-01T00:00:00Z", 0.0),
        ("2026-11-29T10:00:00Z", 1_795_946_400),
        ("2026-11-29t10:00:00z", 1_795_946_400),
        ("2026-11-29T11:00:00+01:00", 1_795_946_400),
        ("2026-11-29T04:30:00-05:30", 1_795_946_400),
        ("2026-11-29T10:00:00.5Z", 1_795_946_400.5),
        ("2026-11-29T10:00:00.123456789Z", 1_795_946_400.123456789),
        ("2024-02-29T00:00:00Z", 1_709_164_800),
        ("2000-02-29T23:59:59Z", 951_868_799),
        ("1969-12-31T23:59:59Z", -1),
    ])
    func parses(text: String, expected: Double) throws {
        let value = try Timestamp.parse(text)
        #expect(abs(value - expected) < 1e-6, "\(text) -> \(value)")
    }

    @Test(arguments: [
        ("2026-11-29T23:59:60Z", "leap seconds"),
        ("2026-11-29", "expected 'T'"),
        ("2026-11-29T10:00:00", "the time zone offset is missing"),
        ("2026-11-29 10:00:00Z", "expected 'T'"),
        ("2026-13-01T00:00:00Z", "month 13"),
        ("2026-02-29T00:00:00Z", "day 29 does not exist"),
        ("1900-02-29T00:00:00Z", "day 29 does not exist"),
        ("2026-04-31T00:00:00Z", "day 31"),
        ("2026-11-29T24:00:00Z", "hour 24"),
        ("2026-11-29T10:60:00Z", "minute 60"),
        ("2026-11-29T10:00:00.Z", "expected digits after '.'"),
        ("2026-11-29T10:00:00+0100", "expected ':' in the offset"),
        ("2026-11-29T10:00:00+24:00", "offset hour 24"),
        ("2026-11-29T10:00:00Zx", "unexpected characters"),
        ("26-11-29T10:00:00Z", "the year must be 4 digits"),
        ("", "the year is missing"),
    ])
    func rejects(text: String, fragment: String) {
        do {
            _ = try Timestamp.parse(text)
            Issue.record("\(text) parsed")
        } catch {
            #expect(error.message.contains(fragment), "\(text): \(error.message)")
        }
    }

    @Test(arguments: [
        (Int64(0), "1970-01-01T00:00:00Z"),
        (Int64(951_782_400), "2000-02-29T00:00:00Z"),
        (Int64(1_796_619_599), "2026-12-07T04:59:59Z"),
        (Int64(-1), "1969-12-31T23:59:59Z"),
    ])
    func formats(seconds: Int64, text: String) throws {
        #expect(Timestamp.format(epochSeconds: seconds) == text)
        #expect(try Timestamp.parse(text) == Double(seconds))
    }

    @Test func formatReadsBackEveryDayOfACentury() throws {
        var seconds: Int64 = -86_400 * 366
        while seconds < 4_102_444_800 {
            #expect(try Timestamp.parse(Timestamp.format(epochSeconds: seconds + 3_723)) == Double(seconds + 3_723))
            seconds += 86_400 * 7 + 1
        }
    }
}
