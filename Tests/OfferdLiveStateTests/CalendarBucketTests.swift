import Foundation
import OfferdCore
import Testing

@testable import OfferdLiveState

/// Unix milliseconds of an RFC 3339 UTC time with milliseconds (`2026-12-06T00:00:00.000Z`).
func ms(_ text: String) -> Int64 {
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    guard let date = formatter.date(from: text) else { preconditionFailure("bad test time \(text)") }
    return Int64((date.timeIntervalSince1970 * 1000).rounded())
}

@Suite("UTC calendar buckets")
struct CalendarBucketTests {
    /// (last millisecond of one period, first millisecond of the next) for each period.
    @Test(
        arguments: [
            (CappingPeriod.day, "2026-12-06T23:59:59.999Z", "2026-12-07T00:00:00.000Z"),
            (.day, "1969-12-31T23:59:59.999Z", "1970-01-01T00:00:00.000Z"),
            // 2026-12-06 is a Sunday: the week starts there, not on Monday.
            (.week, "2026-12-05T23:59:59.999Z", "2026-12-06T00:00:00.000Z"),
            (.week, "2027-01-02T23:59:59.999Z", "2027-01-03T00:00:00.000Z"),
            (.week, "1970-01-03T23:59:59.999Z", "1970-01-04T00:00:00.000Z"),
            (.month, "2026-11-30T23:59:59.999Z", "2026-12-01T00:00:00.000Z"),
            (.month, "2026-12-31T23:59:59.999Z", "2027-01-01T00:00:00.000Z"),
            (.month, "2024-02-29T23:59:59.999Z", "2024-03-01T00:00:00.000Z"),
            (.month, "2100-02-28T23:59:59.999Z", "2100-03-01T00:00:00.000Z"),
            (.month, "1969-12-31T23:59:59.999Z", "1970-01-01T00:00:00.000Z"),
        ])
    func periodsChangeExactlyAtTheirEdge(period: CappingPeriod, last: String, first: String) {
        let lastBucket = CalendarBuckets.bucket(period, timeMs: ms(last))
        let firstBucket = CalendarBuckets.bucket(period, timeMs: ms(first))
        #expect(firstBucket == lastBucket + 1, "\(period): \(last) -> \(first)")
        #expect(
            CalendarBuckets.bucket(.lifetime, timeMs: ms(last)) == CalendarBuckets.bucket(.lifetime, timeMs: ms(first)))
    }

    /// Times that share a period: a leap day with the rest of February, a year end inside one week.
    @Test(
        arguments: [
            (CappingPeriod.month, "2024-02-01T00:00:00.000Z", "2024-02-29T12:00:00.000Z"),
            (.day, "2024-02-29T00:00:00.000Z", "2024-02-29T23:59:59.999Z"),
            (.week, "2026-12-27T00:00:00.000Z", "2027-01-02T23:59:59.999Z"),
            (.week, "2026-12-06T00:00:00.000Z", "2026-12-12T23:59:59.999Z"),
            (.month, "2000-02-29T00:00:00.000Z", "2000-02-01T00:00:00.000Z"),
        ])
    func timesInOnePeriodShareABucket(period: CappingPeriod, one: String, other: String) {
        #expect(CalendarBuckets.bucket(period, timeMs: ms(one)) == CalendarBuckets.bucket(period, timeMs: ms(other)))
    }

    @Test func leapDaysAreDays() {
        // 2024-02-28 -> 29 -> 03-01 are three consecutive days; 2100 has no 29 February.
        let day28 = CalendarBuckets.bucket(.day, timeMs: ms("2024-02-28T12:00:00.000Z"))
        #expect(CalendarBuckets.bucket(.day, timeMs: ms("2024-03-01T12:00:00.000Z")) == day28 + 2)
        let day2100 = CalendarBuckets.bucket(.day, timeMs: ms("2100-02-28T12:00:00.000Z"))
        #expect(CalendarBuckets.bucket(.day, timeMs: ms("2100-03-01T12:00:00.000Z")) == day2100 + 1)
    }

    /// The integer civil-date arithmetic against Foundation's Gregorian calendar in UTC, day by day over four
    /// centuries around the epoch (leap years, centuries, 2000), and the week against its weekday.
    @Test func civilDatesMatchFoundationsCalendar() {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        var day: Int64 = -80_000
        while day < 80_000 {
            let date = Date(timeIntervalSince1970: Double(day) * 86_400 + 43_200)
            let parts = calendar.dateComponents([.year, .month, .day, .weekday], from: date)
            let civil = CalendarBuckets.civilDate(day: day)
            #expect(
                civil.year == Int64(parts.year!) && civil.month == Int64(parts.month!)
                    && civil.day == Int64(parts.day!),
                "day \(day)")
            let timeMs = day * CalendarBuckets.millisecondsPerDay + 43_200_000
            #expect(CalendarBuckets.bucket(.month, timeMs: timeMs) == Int64(parts.year!) * 12 + Int64(parts.month!) - 1)
            // weekday 1 is Sunday: a new week bucket starts exactly there.
            let week = CalendarBuckets.bucket(.week, timeMs: timeMs)
            let dayBefore = CalendarBuckets.bucket(.week, timeMs: timeMs - CalendarBuckets.millisecondsPerDay)
            #expect((week == dayBefore + 1) == (parts.weekday == 1), "day \(day)")
            day += 7 * 13 + 1
        }
    }

    @Test func secondsBecomeFlooredMilliseconds() {
        #expect(CalendarBuckets.milliseconds(1.0015) == 1001)
        #expect(CalendarBuckets.milliseconds(-0.0005) == -1)
        #expect(CalendarBuckets.milliseconds(.infinity) > 0)
        _ = CalendarBuckets.bucket(.day, now: .nan)
        // Far-out values do not trap.
        _ = CalendarBuckets.bucket(.month, now: 1e300)
        _ = CalendarBuckets.bucket(.week, now: -1e300)
    }
}
