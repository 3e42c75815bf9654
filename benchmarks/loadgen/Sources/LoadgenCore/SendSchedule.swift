/// When each call of an open-loop round is due: call `k` at `start + k / rate` seconds (to the nanosecond, rounded
/// down), whatever happened to the calls before it. A generator that sends late still sends every call, and each
/// call's latency counts from this time, not from when it was actually sent: a stall (the server's or the
/// generator's) then shows in the latencies of every call it delayed, instead of thinning the load while it lasts
/// (coordinated omission).
public struct SendSchedule: Sendable, Equatable {
    /// Monotonic-clock time of call 0, in nanoseconds.
    public let startNanoseconds: UInt64
    /// Calls per second, the same for the whole round.
    public let callsPerSecond: UInt64
    /// Calls in the round, warm-up included.
    public let callCount: UInt64

    /// The largest rate and span the arithmetic below handles without overflow, with a wide margin.
    public static let maximumCallsPerSecond: UInt64 = 10_000_000
    public static let maximumSeconds: UInt64 = 86_400

    public init(startNanoseconds: UInt64, callsPerSecond: UInt64, callCount: UInt64) {
        precondition(callsPerSecond > 0 && callsPerSecond <= Self.maximumCallsPerSecond, "rate out of range")
        precondition(callCount <= callsPerSecond * Self.maximumSeconds, "round too long")
        self.startNanoseconds = startNanoseconds
        self.callsPerSecond = callsPerSecond
        self.callCount = callCount
    }

    /// A round of `seconds` at `callsPerSecond`, starting at `startNanoseconds`.
    public init(startNanoseconds: UInt64, callsPerSecond: UInt64, seconds: UInt64) {
        precondition(seconds <= Self.maximumSeconds, "round too long")
        self.init(
            startNanoseconds: startNanoseconds, callsPerSecond: callsPerSecond, callCount: callsPerSecond * seconds)
    }

    /// Nanoseconds between two calls, as a fraction (the schedule itself never accumulates rounding).
    public var intervalNanoseconds: Double { 1e9 / Double(callsPerSecond) }

    /// When call `call` is due (it may be past the end of the round: that is when the round ends).
    public func sendTime(of call: UInt64) -> UInt64 {
        // 128-bit: call * 1e9 overflows 64 bits past 1.8e10 calls, which a valid round (up to 8.6e11) can reach.
        startNanoseconds + UInt64(UInt128(call) * 1_000_000_000 / UInt128(callsPerSecond))
    }

    /// When the round's sending ends: the time the call after the last one would be due.
    public var endNanoseconds: UInt64 { sendTime(of: callCount) }

    /// How many calls are due at `now`: every call whose send time is at or before it, at most ``callCount``.
    ///
    /// Call `k` is due when `floor(k * 1e9 / rate) <= elapsed`, that is when `k * 1e9 < (elapsed + 1) * rate`; the
    /// calls 0 ..< ceil((elapsed + 1) * rate / 1e9) are.
    public func dueCount(at now: UInt64) -> UInt64 {
        guard now >= startNanoseconds else {
            return 0
        }
        let elapsed = UInt128(now - startNanoseconds)
        let due = ((elapsed + 1) * UInt128(callsPerSecond) + 999_999_999) / 1_000_000_000
        return due >= UInt128(callCount) ? callCount : UInt64(due)
    }
}
