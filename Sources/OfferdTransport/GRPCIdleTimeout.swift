import NIOCore

/// When an idle connection is ended, as a value: the handler reports activity and timer expiries with the
/// time read from its clock, and does what the returned action says.
///
/// A connection is idle when it has had no open stream and no input for `timeout`. Then it is sent
/// GOAWAY(NO_ERROR) and closes once nghttp2 is done with it; a client that never lets it finish still loses it
/// one more `timeout` later. The check runs on a single timer that is re-armed for the earliest moment the
/// connection could become idle, so input costs no timer operation, only an update of ``lastActivity``.
struct GRPCIdleTimeout {
    /// What the handler does when the idle timer fires.
    enum Action: Equatable {
        /// Not idle yet: arm the timer again for this time.
        case checkAgain(at: NIODeadline)
        /// Idle: send GOAWAY(NO_ERROR) and arm the timer for this time, when the connection is closed
        /// whether or not the client finished.
        case goAway(closeAt: NIODeadline)
        /// The GOAWAY went out a whole period ago and the connection is still open: close it.
        case close
    }

    let timeout: TimeAmount
    private(set) var lastActivity: NIODeadline
    private var goAwaySent = false

    /// Starts the count at `now` (the connection became active); the first check is due at ``firstCheck``.
    init(timeout: TimeAmount, now: NIODeadline) {
        self.timeout = timeout
        lastActivity = now
    }

    /// When the timer must first fire.
    var firstCheck: NIODeadline { lastActivity + timeout }

    /// Bytes arrived.
    @inline(__always)
    mutating func activity(now: NIODeadline) {
        lastActivity = now
    }

    /// The timer fired at `now`, with `openStreams` streams not yet closed.
    mutating func timerFired(now: NIODeadline, openStreams: Int) -> Action {
        if goAwaySent {
            return .close
        }
        if openStreams > 0 {
            return .checkAgain(at: now + timeout)
        }
        let idleAt = lastActivity + timeout
        if now < idleAt {
            return .checkAgain(at: idleAt)
        }
        goAwaySent = true
        return .goAway(closeAt: now + timeout)
    }
}
