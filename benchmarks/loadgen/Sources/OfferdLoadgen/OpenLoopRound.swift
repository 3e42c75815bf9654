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
        promise = eventLoop.makePromise(of: RoundReport.self)
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
        let target = configuration.target
        let bodies = configuration.bodies
        let bootstrap = ClientBootstrap(group: eventLoop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(10))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(LoadgenConnection(target: target, bodies: bodies))
                }
            }
        let attempts = (0..<configuration.connections).map { _ in
            bootstrap.connect(host: target.host, port: target.port)
        }
        EventLoopFuture.whenAllComplete(attempts, on: eventLoop).assumeIsolated().whenSuccess { results in
            self.connected(results)
        }
    }

    private func connected(_ results: [Result<any Channel, any Error>]) {
        var failure: (any Error)?
        for result in results {
            switch result {
            case .success(let channel):
                channels.append(channel)
                do {
                    let connection = try channel.pipeline.syncOperations.handler(type: LoadgenConnection.self)
                    connection.receiver = self
                    connections.append(connection)
                } catch {
                    failure = error
                }
            case .failure(let error):
                failure = error
            }
        }
        if let failure {
            fail("cannot connect to \(configuration.target.authority): \(failure)")
            return
        }
        phase = .probing(open: connections.count)
        for (index, connection) in connections.enumerated() {
            connection.submit(Self.firstProbeCall - UInt64(index), body: 0, at: monotonicNanoseconds())
            connection.flush()
        }
        schedule(at: monotonicNanoseconds() + configuration.probeTimeoutNanoseconds) { round in
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
            fail(
                "the first call on connection \(connection) to \(configuration.target.authority)"
                    + "\(configuration.target.path) failed: \(outcome.description)"
            )
            return
        }
        if open > 1 {
            phase = .probing(open: open - 1)
            return
        }
        cancelTimer()
        startSending()
    }

    // MARK: - Sending

    private func startSending() {
        let rate = configuration.callsPerSecond
        // A little ahead, so that call 0 is not already late when the first timer fires.
        let schedule = SendSchedule(
            startNanoseconds: monotonicNanoseconds() + 2_000_000,
            callsPerSecond: rate,
            seconds: configuration.warmupSeconds + configuration.seconds
        )
        tally = RoundTally(
            schedule: schedule,
            warmupCalls: rate * configuration.warmupSeconds,
            lateThresholdNanoseconds: configuration.lateThresholdNanoseconds
        )
        phase = .sending
        waitForNextSend(at: schedule.startNanoseconds, now: monotonicNanoseconds())
    }

    /// Sleeps until shortly before `time`, or polls if it is that close already: NIO runs a task queued with
    /// `execute` after an `epoll_wait` that does not block, so answers are read while the loop spins. A send
    /// timer already pending at or before the wanted time is kept (it is not re-armed for every call).
    private func waitForNextSend(at time: UInt64, now: UInt64) {
        let spin = configuration.spinNanoseconds
        if spin > 0 && time <= now + spin {
            self.eventLoop.assumeIsolated().execute { self.sendDueCalls() }
            return
        }
        if let pending = sendTimerDeadline, pending <= time - spin {
            return
        }
        let deadline = max(time - spin, now + configuration.timerGapNanoseconds)
        schedule(at: deadline) { round in
            round.sendTimerDeadline = nil
            round.sendDueCalls()
        }
        sendTimerDeadline = deadline
    }

    func connectionReadComplete() {
        if case .sending = phase, configuration.spinNanoseconds == 0 {
            sendDueCalls()
        }
    }

    /// Sends every call due now, then sleeps until the next one is.
    private func sendDueCalls() {
        guard case .sending = phase, let schedule = tally?.schedule,
            let firstMeasuredCall = tally?.firstMeasuredCall
        else {
            return
        }
        let now = monotonicNanoseconds()
        let due = schedule.dueCount(at: now)
        if due == nextCall {
            // Polling ahead of the next call, or a timer that fired a hair early.
            waitForNextSend(at: schedule.sendTime(of: nextCall), now: now)
            return
        }
        if nextCall <= firstMeasuredCall && firstMeasuredCall < due {
            cpuSecondsAtMeasuredStart = processCPUSeconds()
        }
        let connectionCount = UInt64(connections.count)
        let bodyCount = UInt64(configuration.bodies.count)
        while nextCall < due {
            let call = nextCall
            nextCall += 1
            openCalls += 1
            tally!.recordSend(call, at: now)
            connections[Int(call % connectionCount)].submit(call, body: Int(call % bodyCount), at: now)
        }
        for connection in connections where connection.hasUnwrittenOutput {
            connection.flush()
        }
        if nextCall < schedule.callCount {
            waitForNextSend(at: schedule.sendTime(of: nextCall), now: now)
            return
        }
        cpuSecondsAtSendingEnd = processCPUSeconds()
        phase = .draining
        if openCalls == 0 {
            finish()
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
        switch phase {
        case .probing(let open):
            probeFinished(call, outcome, open: open)
        case .sending, .draining:
            guard call < Self.firstProbeCall - UInt64(connections.count) else {
                return
            }
            openCalls -= 1
            tally!.recordOutcome(call, outcome, at: nanoseconds)
            if case .draining = phase, openCalls == 0 {
                finish()
            }
        case .connecting, .done:
            break
        }
    }

    // MARK: - Ending

    private func finish() {
        phase = .done
        cancelTimer()
        let cpuSeconds = (cpuSecondsAtSendingEnd ?? 0) - (cpuSecondsAtMeasuredStart ?? 0)
        let report = RoundReport(
            label: configuration.label,
            connections: connections.count,
            tally: tally!,
            generatorCPUSeconds: cpuSeconds
        )
        closeChannels { $0.promise.succeed(report) }
    }

    private func fail(_ message: String) {
        guard !isDone else {
            return
        }
        phase = .done
        cancelTimer()
        closeChannels { $0.promise.fail(RoundError(description: message)) }
    }

    private var isDone: Bool {
        if case .done = phase {
            return true
        }
        return false
    }

    /// Closes every connection; `then` runs once all are closed, so no channel event reaches a finished round.
    private func closeChannels(then: @escaping (OpenLoopRound) -> Void) {
        for channel in channels {
            channel.close(promise: nil)
        }
        EventLoopFuture.andAllComplete(channels.map(\.closeFuture), on: eventLoop).assumeIsolated()
            .whenComplete { _ in then(self) }
    }

    // MARK: - Timers

    /// One timer at a time: the next send, the probe deadline or the drain deadline.
    private func schedule(at nanoseconds: UInt64, _ action: @escaping (OpenLoopRound) -> Void) {
        cancelTimer()
        pendingTimer = try? eventLoop.assumeIsolated().scheduleCallback(
            at: .uptimeNanoseconds(nanoseconds),
            handler: RoundTimer(round: self, action: action)
        )
    }

    private func cancelTimer() {
        sendTimerDeadline = nil
        if let timer = pendingTimer {
            eventLoop.assumeIsolated().cancelScheduledCallback(timer)
            pendingTimer = nil
        }
    }
}

/// A scheduled callback into the round (NIO's scheduled callbacks cost no promise per wake-up, unlike
/// `scheduleTask`). Holds the round strongly: a round waiting on a timer stays alive.
private struct RoundTimer: NIOScheduledCallbackHandler {
    let round: OpenLoopRound
    let action: (OpenLoopRound) -> Void

    func handleScheduledCallback(eventLoop: some EventLoop) {
        action(round)
    }
}
