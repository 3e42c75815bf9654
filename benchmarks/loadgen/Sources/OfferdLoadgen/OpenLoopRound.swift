import LoadgenCore
import NIOCore
import NIOPosix

/// What one round needs: where, what, how fast, for how long.
struct RoundConfiguration: Sendable {
    var label: String
    var target: CallTarget
    var bodies: [GRPCRequestBody]
    var callsPerSecond: UInt64
    var warmupSeconds: UInt64
    var seconds: UInt64
    var connections: Int
    var drainTimeoutNanoseconds: UInt64
    var lateThresholdNanoseconds: UInt64
    /// The loop stops sleeping this long before a call is due and polls (sockets included) until it is: waking
    /// from a timer costs tens of microseconds and is late by as much on a virtual machine; 0 always sleeps.
    var spinNanoseconds: UInt64
    /// Send timers are at least this far apart; calls due in between go out when the loop wakes for answers, or
    /// at the next timer (late, and counted so). A timer per call costs a `timerfd_settime` and a wake-up each;
    /// 0 arms one per call.
    var timerGapNanoseconds: UInt64 = 0
    /// How long the first call on each connection may take before the round gives up.
    var probeTimeoutNanoseconds: UInt64 = 10_000_000_000
}

/// A round that could not be measured at all (no connection, or the first calls failed).
struct RoundError: Error, CustomStringConvertible {
    let description: String
}

/// One open-loop round at one rate, on the one event loop:
///
/// 1. connect ``RoundConfiguration/connections`` HTTP/2 connections;
/// 2. probe: one call on each (with the first body), which must succeed (the server's SETTINGS are then known, and a wrong URL or body
///    is an error, not a round of failures);
/// 3. send: call `k` with body `k % bodies` on connection `k % connections` at ``SendSchedule/sendTime(of:)``. A timer wakes the loop
///    at the next call's time; every call due by then is sent in that wake-up (late ones with their lag recorded)
///    and each connection written once;
/// 4. drain: wait for the open calls, at most ``RoundConfiguration/drainTimeoutNanoseconds``; calls still open
///    then count as unanswered;
/// 5. close the connections and report.
final class OpenLoopRound: LoadgenConnectionReceiver {
    private enum Phase {
        case connecting
        case probing(open: Int)
        case sending
        case draining
        case done
    }

    private let configuration: RoundConfiguration
    private let eventLoop: any EventLoop
    private let promise: EventLoopPromise<RoundReport>
    private var phase = Phase.connecting
    private var channels: [any Channel] = []
    private var connections: [LoadgenConnection] = []
    private var tally: RoundTally?
    private var nextCall: UInt64 = 0
    /// Calls sent and not finished.
    private var openCalls = 0
    private var cpuSecondsAtMeasuredStart: Double?
    private var cpuSecondsAtSendingEnd: Double?
    private var pendingTimer: NIOScheduledCallback?
    /// Whether the pending timer is the send timer, and when it fires.
    private var sendTimerDeadline: UInt64?

    /// Probe calls are numbered down from here, far above any scheduled call.
    private static let firstProbeCall = UInt64.max

    private init(configuration: RoundConfiguration, eventLoop: any EventLoop) {
        self.configuration = configuration
        self.eventLoop = eventLoop
        self.promise = eventLoop.makePromise(of: RoundReport.self)
    }

    /// Runs a round on `eventLoop` (a loop of a one-thread group: the round, its connections and its timers all
    /// run there).
    static func run(_ configuration: RoundConfiguration, on eventLoop: any EventLoop) -> EventLoopFuture<RoundReport> {
        eventLoop.flatSubmit {
            let round = OpenLoopRound(configuration: configuration, eventLoop: eventLoop)
            round.connect()
            return round.promise.futureResult
        }
    }

    // MARK: - Connecting and probing

    private func connect() {
        let target = self.configuration.target
        let bodies = self.configuration.bodies
        let bootstrap = ClientBootstrap(group: self.eventLoop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(10))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(LoadgenConnection(target: target, bodies: bodies))
                }
            }
        let attempts = (0..<self.configuration.connections).map { _ in
            bootstrap.connect(host: target.host, port: target.port)
        }
        EventLoopFuture.whenAllComplete(attempts, on: self.eventLoop).assumeIsolated().whenSuccess { results in
            self.connected(results)
        }
    }

    private func connected(_ results: [Result<any Channel, any Error>]) {
        var failure: (any Error)?
        for result in results {
            switch result {
            case .success(let channel):
                self.channels.append(channel)
                do {
                    let connection = try channel.pipeline.syncOperations.handler(type: LoadgenConnection.self)
                    connection.receiver = self
                    self.connections.append(connection)
                } catch {
                    failure = error
                }
            case .failure(let error):
                failure = error
            }
        }
        if let failure {
            self.fail("cannot connect to \(self.configuration.target.authority): \(failure)")
            return
        }
        self.phase = .probing(open: self.connections.count)
        for (index, connection) in self.connections.enumerated() {
            connection.submit(Self.firstProbeCall - UInt64(index), body: 0, at: monotonicNanoseconds())
            connection.flush()
        }
        self.schedule(at: monotonicNanoseconds() + self.configuration.probeTimeoutNanoseconds) { round in
            if case .probing = round.phase {
                round.fail(
                    "no answer to the first call on every connection within "
                        + "\(round.configuration.probeTimeoutNanoseconds / 1_000_000_000) s"
                )
            }
        }
    }

    private func probeFinished(_ call: UInt64, _ outcome: CallOutcome, open: Int) {
        guard outcome == .succeeded else {
            let connection = Self.firstProbeCall - call + 1
            self.fail(
                "the first call on connection \(connection) to \(self.configuration.target.authority)"
                    + "\(self.configuration.target.path) failed: \(outcome.description)"
            )
            return
        }
        if open > 1 {
            self.phase = .probing(open: open - 1)
            return
        }
        self.cancelTimer()
        self.startSending()
    }

    // MARK: - Sending

    private func startSending() {
        let rate = self.configuration.callsPerSecond
        // A little ahead, so that call 0 is not already late when the first timer fires.
        let schedule = SendSchedule(
            startNanoseconds: monotonicNanoseconds() + 2_000_000,
            callsPerSecond: rate,
            seconds: self.configuration.warmupSeconds + self.configuration.seconds
        )
        self.tally = RoundTally(
            schedule: schedule,
            warmupCalls: rate * self.configuration.warmupSeconds,
            lateThresholdNanoseconds: self.configuration.lateThresholdNanoseconds
        )
        self.phase = .sending
        self.waitForNextSend(at: schedule.startNanoseconds, now: monotonicNanoseconds())
    }

    /// Sleeps until shortly before `time`, or polls if it is that close already: NIO runs a task queued with
    /// `execute` after an `epoll_wait` that does not block, so answers are read while the loop spins. A send
    /// timer already pending at or before the wanted time is kept (it is not re-armed for every call).
    private func waitForNextSend(at time: UInt64, now: UInt64) {
        let spin = self.configuration.spinNanoseconds
        if spin > 0 && time <= now + spin {
            self.eventLoop.assumeIsolated().execute { self.sendDueCalls() }
            return
        }
        if let pending = self.sendTimerDeadline, pending <= time - spin {
            return
        }
        let deadline = max(time - spin, now + self.configuration.timerGapNanoseconds)
        self.schedule(at: deadline) { round in
            round.sendTimerDeadline = nil
            round.sendDueCalls()
        }
        self.sendTimerDeadline = deadline
    }

    func connectionReadComplete() {
        if case .sending = self.phase, self.configuration.spinNanoseconds == 0 {
            self.sendDueCalls()
        }
    }

    /// Sends every call due now, then sleeps until the next one is.
    private func sendDueCalls() {
        guard case .sending = self.phase, let schedule = self.tally?.schedule,
            let firstMeasuredCall = self.tally?.firstMeasuredCall
        else {
            return
        }
        let now = monotonicNanoseconds()
        let due = schedule.dueCount(at: now)
        if due == self.nextCall {
            // Polling ahead of the next call, or a timer that fired a hair early.
            self.waitForNextSend(at: schedule.sendTime(of: self.nextCall), now: now)
            return
        }
        if self.nextCall <= firstMeasuredCall && firstMeasuredCall < due {
            self.cpuSecondsAtMeasuredStart = processCPUSeconds()
        }
        let connectionCount = UInt64(self.connections.count)
        let bodyCount = UInt64(self.configuration.bodies.count)
        while self.nextCall < due {
            let call = self.nextCall
            self.nextCall += 1
            self.openCalls += 1
            self.tally!.recordSend(call, at: now)
            self.connections[Int(call % connectionCount)].submit(call, body: Int(call % bodyCount), at: now)
        }
        for connection in self.connections where connection.hasUnwrittenOutput {
            connection.flush()
        }
        if self.nextCall < schedule.callCount {
            self.waitForNextSend(at: schedule.sendTime(of: self.nextCall), now: now)
            return
        }
        self.cpuSecondsAtSendingEnd = processCPUSeconds()
        self.phase = .draining
        if self.openCalls == 0 {
            self.finish()
            return
        }
        self.schedule(at: now + self.configuration.drainTimeoutNanoseconds) { round in
            guard case .draining = round.phase else {
                return
            }
            let now = monotonicNanoseconds()
            for connection in round.connections {
                connection.close(failingOpenCallsWith: .unanswered, at: now)
            }
            // Every open call was just reported and the last report finished the round; if the count of open
            // calls ever disagreed with the connections', the round still ends here rather than hang.
            if case .draining = round.phase {
                reportError("\(round.openCalls) calls unaccounted for at the end of the round")
                round.finish()
            }
        }
    }

    func callFinished(_ call: UInt64, _ outcome: CallOutcome, at nanoseconds: UInt64) {
        switch self.phase {
        case .probing(let open):
            self.probeFinished(call, outcome, open: open)
        case .sending, .draining:
            guard call < Self.firstProbeCall - UInt64(self.connections.count) else {
                return
            }
            self.openCalls -= 1
            self.tally!.recordOutcome(call, outcome, at: nanoseconds)
            if case .draining = self.phase, self.openCalls == 0 {
                self.finish()
            }
        case .connecting, .done:
            break
        }
    }

    // MARK: - Ending

    private func finish() {
        self.phase = .done
        self.cancelTimer()
        let cpuSeconds = (self.cpuSecondsAtSendingEnd ?? 0) - (self.cpuSecondsAtMeasuredStart ?? 0)
        let report = RoundReport(
            label: self.configuration.label,
            connections: self.connections.count,
            tally: self.tally!,
            generatorCPUSeconds: cpuSeconds
        )
        self.closeChannels { $0.promise.succeed(report) }
    }

    private func fail(_ message: String) {
        guard !self.isDone else {
            return
        }
        self.phase = .done
        self.cancelTimer()
        self.closeChannels { $0.promise.fail(RoundError(description: message)) }
    }

    private var isDone: Bool {
        if case .done = self.phase {
            return true
        }
        return false
    }

    /// Closes every connection; `then` runs once all are closed, so no channel event reaches a finished round.
    private func closeChannels(then: @escaping (OpenLoopRound) -> Void) {
        for channel in self.channels {
            channel.close(promise: nil)
        }
        EventLoopFuture.andAllComplete(self.channels.map(\.closeFuture), on: self.eventLoop).assumeIsolated()
            .whenComplete { _ in then(self) }
    }

    // MARK: - Timers

    /// One timer at a time: the next send, the probe deadline or the drain deadline.
    private func schedule(at nanoseconds: UInt64, _ action: @escaping (OpenLoopRound) -> Void) {
        self.cancelTimer()
        self.pendingTimer = try? self.eventLoop.assumeIsolated().scheduleCallback(
            at: .uptimeNanoseconds(nanoseconds),
            handler: RoundTimer(round: self, action: action)
        )
    }

    private func cancelTimer() {
        self.sendTimerDeadline = nil
        if let timer = self.pendingTimer {
            self.eventLoop.assumeIsolated().cancelScheduledCallback(timer)
            self.pendingTimer = nil
        }
    }
}

/// A scheduled callback into the round (NIO's scheduled callbacks cost no promise per wake-up, unlike
/// `scheduleTask`). Holds the round strongly: a round waiting on a timer stays alive.
private struct RoundTimer: NIOScheduledCallbackHandler {
    let round: OpenLoopRound
    let action: (OpenLoopRound) -> Void

    func handleScheduledCallback(eventLoop: some EventLoop) {
        self.action(self.round)
    }
}
