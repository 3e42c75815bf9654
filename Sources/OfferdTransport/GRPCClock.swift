import NIOCore

/// Where the transport reads the time: call deadlines (`grpc-timeout`) and the idle timeout.
///
/// Production uses ``GRPCSystemClock``, NIO's monotonic clock, which is also what event-loop timers are
/// scheduled against. Tests pass a clock that reads an `EmbeddedEventLoop`'s manual time, so a deadline or an
/// idle timeout passes exactly when the test advances that loop, with no sleeps and no races.
///
/// The clock is read only where a decision needs it (a call with a deadline, a read burst for the idle
/// timeout), never on the request path of a call without a deadline.
protocol GRPCClock {
    /// The current time, on the same scale as `NIODeadline.now()`.
    func now() -> NIODeadline
}

/// NIO's monotonic clock: `NIODeadline.now()`.
struct GRPCSystemClock: GRPCClock {
    @inline(__always)
    func now() -> NIODeadline {
        .now()
    }
}
