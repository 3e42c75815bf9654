import Histogram

/// What one open-loop round saw: every measured call's send lag and outcome, and every successful call's latency
/// from its scheduled send time. Calls before ``firstMeasuredCall`` warm the server and the connections up and
/// are not counted.
public struct RoundTally: Sendable {
    public let schedule: SendSchedule
    /// Calls `0 ..< firstMeasuredCall` are the warm-up.
    public let firstMeasuredCall: UInt64
    /// A send later than this after its scheduled time is late: the generator did not keep up with that call.
    public let lateThresholdNanoseconds: UInt64

    /// Scheduled send time to the end of the answer, successful measured calls only; nanoseconds.
    public private(set) var latency: Histogram<UInt64>
    /// Actual send time minus scheduled send time, measured calls only; nanoseconds.
    public private(set) var sendLag: Histogram<UInt64>
    public private(set) var sent: UInt64 = 0
    public private(set) var lateSends: UInt64 = 0
    public private(set) var succeeded: UInt64 = 0
    public private(set) var failures: [FailureKind: UInt64] = [:]
    /// Arrival time of the last measured answer (any outcome); nanoseconds, 0 before the first.
    public private(set) var lastAnswerNanoseconds: UInt64 = 0

    /// Latencies above an hour are recorded as an hour (the histogram's range); the generator drains a round for
    /// far less than that.
    public static let highestTrackableNanoseconds: UInt64 = 3_600_000_000_000

    public init(schedule: SendSchedule, warmupCalls: UInt64, lateThresholdNanoseconds: UInt64) {
        precondition(warmupCalls <= schedule.callCount, "more warm-up calls than calls")
        self.schedule = schedule
        firstMeasuredCall = warmupCalls
        self.lateThresholdNanoseconds = lateThresholdNanoseconds
        latency = Self.makeHistogram()
        sendLag = Self.makeHistogram()
    }

    private static func makeHistogram() -> Histogram<UInt64> {
        Histogram(highestTrackableValue: Self.highestTrackableNanoseconds, numberOfSignificantValueDigits: .three)
    }

    /// Calls counted in the report.
    public var measuredCalls: UInt64 { schedule.callCount - firstMeasuredCall }

    public func isMeasured(_ call: UInt64) -> Bool {
        call >= firstMeasuredCall && call < schedule.callCount
    }

    /// Call `call` was handed to the connection at `now`.
    public mutating func recordSend(_ call: UInt64, at now: UInt64) {
        guard isMeasured(call) else {
            return
        }
        let lag = now &- schedule.sendTime(of: call)
        // A send is never early (calls are sent once due), but the clock read before the loop may be older than
        // the schedule's start by a few nanoseconds in tests that build times by hand.
        let clampedLag = now >= schedule.sendTime(of: call) ? lag : 0
        sent += 1
        if clampedLag > lateThresholdNanoseconds {
            lateSends += 1
        }
        _ = sendLag.record(min(clampedLag, Self.highestTrackableNanoseconds))
    }

    /// Call `call` ended with `outcome`, its answer (or the failure) seen at `now`.
    public mutating func recordOutcome(_ call: UInt64, _ outcome: CallOutcome, at now: UInt64) {
        guard isMeasured(call) else {
            return
        }
        lastAnswerNanoseconds = max(lastAnswerNanoseconds, now)
        if let kind = outcome.failureKind {
            failures[kind, default: 0] += 1
            return
        }
        succeeded += 1
        let scheduled = schedule.sendTime(of: call)
        let latency = now > scheduled ? now - scheduled : 0
        _ = self.latency.record(min(latency, Self.highestTrackableNanoseconds))
    }

    /// Every failed measured call.
    public var errors: UInt64 { failures.values.reduce(0, +) }
}
