import NIOCore
import Testing

@testable import OfferdTransport

/// The idle-timeout decisions, with time given as values.
@Suite("idle timeout")
struct GRPCIdleTimeoutTests {
    private static let start = NIODeadline.uptimeNanoseconds(5_000_000_000)
    private static let timeout = TimeAmount.seconds(300)

    @Test("a connection with no input and no stream gets GOAWAY when the period ends, and is closed one later")
    func idle() {
        var idle = GRPCIdleTimeout(timeout: Self.timeout, now: Self.start)
        #expect(idle.firstCheck == Self.start + Self.timeout)
        let goAwayAt = Self.start + Self.timeout
        #expect(idle.timerFired(now: goAwayAt, openStreams: 0) == .goAway(closeAt: goAwayAt + Self.timeout))
        #expect(idle.timerFired(now: goAwayAt + Self.timeout, openStreams: 0) == .close)
    }

    @Test("input moves the check to one period after it")
    func activity() {
        var idle = GRPCIdleTimeout(timeout: Self.timeout, now: Self.start)
        let input = Self.start + .seconds(100)
        idle.activity(now: input)
        #expect(
            idle.timerFired(now: Self.start + Self.timeout, openStreams: 0) == .checkAgain(at: input + Self.timeout))
        // One nanosecond short is not idle; the period's end is.
        #expect(
            idle.timerFired(now: input + Self.timeout - .nanoseconds(1), openStreams: 0)
                == .checkAgain(at: input + Self.timeout)
        )
        #expect(
            idle.timerFired(now: input + Self.timeout, openStreams: 0)
                == .goAway(closeAt: input + Self.timeout + Self.timeout)
        )
    }

    @Test("an open stream keeps the connection however long it lasts")
    func busy() {
        var idle = GRPCIdleTimeout(timeout: Self.timeout, now: Self.start)
        var now = Self.start + Self.timeout
        for _ in 0..<10 {
            #expect(idle.timerFired(now: now, openStreams: 1) == .checkAgain(at: now + Self.timeout))
            now = now + Self.timeout
        }
        #expect(idle.timerFired(now: now, openStreams: 0) == .goAway(closeAt: now + Self.timeout))
    }
}
