import OfferdCore

/// The UTC calendar periods of capping rules (SPEC 3) as bucket numbers: two event times are in the same
/// period exactly when their bucket numbers are equal.
///
/// - `day`: days since 1970-01-01, a day running from 00:00 UTC;
/// - `week`: weeks since the Sunday 1969-12-28, a week running from Sunday 00:00 UTC;
/// - `month`: `year * 12 + month - 1` of the proleptic Gregorian calendar, a month from the 1st 00:00 UTC;
/// - `lifetime`: always 0.
///
/// Integer arithmetic only (no `Calendar`, no time zone database): the same bucket on every server, whatever its
/// locale or time zone. Times before 1970 floor correctly (negative buckets).
public enum CalendarBuckets {
    /// Milliseconds in a UTC day (UTC has no leap seconds in Unix time).
    public static let millisecondsPerDay: Int64 = 86_400_000

    /// The bucket of `period` that holds the Unix time `timeMs` (milliseconds).
    public static func bucket(_ period: CappingPeriod, timeMs: Int64) -> Int64 {
        switch period {
        case .lifetime:
            return 0
        case .day:
            return day(timeMs)
        case .week:
            // 1970-01-01 was a Thursday: day 3 (1970-01-04) is the first Sunday, so day + 4 counts from the
            // Sunday before the epoch.
            return floorDivide(day(timeMs) + 4, 7)
        case .month:
            let (year, month, _) = civilDate(day: day(timeMs))
            return year * 12 + month - 1
        }
    }

    /// The bucket of `period` that holds the epoch time `now` (seconds, as the engine passes it).
    public static func bucket(_ period: CappingPeriod, now: Double) -> Int64 {
        bucket(period, timeMs: milliseconds(now))
    }

    /// Epoch seconds as whole milliseconds, floored; clamped for non-finite or far-out values.
    public static func milliseconds(_ seconds: Double) -> Int64 {
        let value = (seconds * 1000).rounded(.down)
        guard value.isFinite else { return value > 0 ? Int64.max / 2 : Int64.min / 2 }
        // Far beyond any calendar use, and keeps `day + 4` and `year * 12` from overflowing.
        return Int64(max(-9.0e15, min(9.0e15, value)))
    }

    /// Days since 1970-01-01 (floored).
    static func day(_ timeMs: Int64) -> Int64 { floorDivide(timeMs, millisecondsPerDay) }

    /// The (year, month 1-12, day 1-31) of a day number: Howard Hinnant's `civil_from_days`.
    static func civilDate(day: Int64) -> (year: Int64, month: Int64, day: Int64) {
        let shifted = day + 719_468
        let era = floorDivide(shifted, 146_097)
        let dayOfEra = shifted - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let dayOfMonth = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        return (year, month, dayOfMonth)
    }

    /// The Unix time (ms) of the 1st of the month before the one holding `timeMs`, 00:00 UTC (SPEC 9.1's
    /// retention: the current and the previous calendar month).
    public static func startOfPreviousMonth(timeMs: Int64) -> Int64 {
        let (year, month, _) = civilDate(day: day(timeMs))
        let previous = month == 1 ? (year - 1, Int64(12)) : (year, month - 1)
        return days(year: previous.0, month: previous.1, day: 1) * millisecondsPerDay
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date: Howard Hinnant's `days_from_civil`.
    static func days(year: Int64, month: Int64, day: Int64) -> Int64 {
        let shiftedYear = month <= 2 ? year - 1 : year
        let era = floorDivide(shiftedYear, 400)
        let yearOfEra = shiftedYear - era * 400
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    private static func floorDivide(_ lhs: Int64, _ rhs: Int64) -> Int64 {
        let quotient = lhs / rhs
        return (lhs % rhs != 0 && (lhs < 0) != (rhs < 0)) ? quotient - 1 : quotient
    }
}

/// The day, week and month buckets of the day asked for last: the follower needs all three for every counted
/// event, and a log's consecutive events fall on the same day, where the month's civil-date arithmetic was about
/// 1.5 % of the follower's time (benchmarks/README.md).
struct CalendarBucketCache: Sendable {
    /// Never a day of an `Int64` time in milliseconds, so the first call computes.
    private var day: Int64 = .min
    private var week: Int64 = 0
    private var month: Int64 = 0

    /// ``CalendarBuckets/bucket(_:timeMs:)`` of `.day`, `.week` and `.month`.
    mutating func buckets(timeMs: Int64) -> (day: Int64, week: Int64, month: Int64) {
        let day = CalendarBuckets.day(timeMs)
        if day != self.day {
            self.day = day
            week = CalendarBuckets.bucket(.week, timeMs: timeMs)
            month = CalendarBuckets.bucket(.month, timeMs: timeMs)
        }
        return (day, week, month)
    }
}
