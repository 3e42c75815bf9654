import Foundation
import Logging
import OfferdCore
import OfferdEventLog
import OfferdLiveState
import Testing

@testable import OfferdServer

/// Polls `condition` until it holds; fails the test after `seconds` (a bound, never a verdict).
private func waitFor(_ what: String, seconds: Double = 20, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while !condition() {
        if Date() > deadline {
            Issue.record("timed out waiting for \(what)")
            return false
        }
        Thread.sleep(forTimeInterval: 0.005)
    }
    return true
}

/// A log that is down: appends fail, reads find nothing.
private final class DownLog: EventLog, @unchecked Sendable {
    func append(_ batch: [EventLogEntry]) throws(EventLogError) -> [EventLogPosition] {
        throw .unavailable("down for the test")
    }
    func read(after position: EventLogPosition?, maxCount: Int, timeout: Duration) throws(EventLogError)
        -> [EventLogRecord]
    {
        Thread.sleep(forTimeInterval: 0.01)
        return []
    }
    func endPosition() throws(EventLogError) -> EventLogPosition? { nil }
    func trim(before position: EventLogPosition) throws(EventLogError) {}
    func close() {}
}

/// Submission outcomes by name, from whichever thread completes them.
private final class LockedOutcomes: @unchecked Sendable {
    private let lock = NSLock()
    private var outcomes: [String: Result<EventLogPosition, LiveStateRuntime.SubmitError>] = [:]

    func withLockedValue<T>(_ body: (inout [String: Result<EventLogPosition, LiveStateRuntime.SubmitError>]) -> T) -> T
    {
        lock.withLock { body(&outcomes) }
    }
}

/// A log in memory whose appends wait until the test opens it: submissions pile up behind the first one.
private final class HeldLog: EventLog, @unchecked Sendable {
    private let lock = NSLock()
    private var records: [EventLogRecord] = []
    private var held = true
    private let gate = DispatchSemaphore(value: 0)
    /// Signalled when an append starts.
    let appendStarted = DispatchSemaphore(value: 0)

    func open() {
        lock.withLock { held = false }
        gate.signal()
    }

    func append(_ batch: [EventLogEntry]) throws(EventLogError) -> [EventLogPosition] {
        appendStarted.signal()
        if lock.withLock({ held }) { gate.wait() }
        return lock.withLock {
            batch.map { entry in
                let position = EventLogPosition.sequence(UInt64(records.count + 1))
                records.append(EventLogRecord(position: position, entry: entry))
                return position
            }
        }
    }

    func read(after position: EventLogPosition?, maxCount: Int, timeout: Duration) throws(EventLogError)
        -> [EventLogRecord]
    {
        let found = lock.withLock { records.filter { position == nil || $0.position > position! }.prefix(maxCount) }
        if found.isEmpty { Thread.sleep(forTimeInterval: 0.005) }
        return Array(found)
    }

    func endPosition() throws(EventLogError) -> EventLogPosition? { lock.withLock { records.last?.position } }

    func trim(before position: EventLogPosition) throws(EventLogError) {}
    func close() {}
}

/// A log of `count` decision events that returns at most `readLimit` per read (as a Redis stream of small
/// batches does) and never delivers a live entry: a read that may wait (the follower's reads after the start-up
/// replay) waits a little and returns nothing, so the overlay stays where the replay left it.
private final class ShortReadLog: EventLog, @unchecked Sendable {
    private let records: [EventLogRecord]
    private let readLimit: Int

    init(count: Int, readLimit: Int, entry: EventLogEntry) {
        records = (0..<count).map { index in
            EventLogRecord(position: .stream(milliseconds: 1, sequence: UInt64(index), index: 0), entry: entry)
        }
        self.readLimit = readLimit
    }

    var lastPosition: EventLogPosition? { records.last?.position }

    func append(_ batch: [EventLogEntry]) throws(EventLogError) -> [EventLogPosition] {
        throw .unavailable("read only for the test")
    }

    func read(after position: EventLogPosition?, maxCount: Int, timeout: Duration) throws(EventLogError)
        -> [EventLogRecord]
    {
        if timeout > .zero {
            Thread.sleep(forTimeInterval: 0.01)
            return []
        }
        let rest = records.filter { position == nil || $0.position > position! }
        return Array(rest.prefix(min(maxCount, readLimit)))
    }

    func endPosition() throws(EventLogError) -> EventLogPosition? { lastPosition }

    func trim(before position: EventLogPosition) throws(EventLogError) {}
    func close() {}
}

/// A log that others write without pause: every read first appends one more decision event, so a read that
/// does not wait never comes back empty. A read that may wait (the follower's after the start-up replay) returns
/// nothing, so the overlay stays where the replay left it. Reads return at most `readLimit` entries.
private final class GrowingLog: EventLog, @unchecked Sendable {
    // @unchecked: every property is guarded by `lock`.
    private let lock = NSLock()
    private var records: [EventLogRecord] = []
    private let readLimit: Int
    private let entry: EventLogEntry
    private var endsAnswered: [EventLogPosition?] = []

    init(count: Int, readLimit: Int, entry: EventLogEntry) {
        self.readLimit = readLimit
        self.entry = entry
        for _ in 0..<count { appendOne() }
    }

    /// What ``endPosition()`` answered, in order.
    var endPositionsAnswered: [EventLogPosition?] { lock.withLock { endsAnswered } }

    /// Entries up to and including `position`.
    func count(through position: EventLogPosition) -> Int {
        lock.withLock { records.filter { $0.position <= position }.count }
    }

    private func appendOne() {
        records.append(EventLogRecord(position: .sequence(UInt64(records.count + 1)), entry: entry))
    }

    func append(_ batch: [EventLogEntry]) throws(EventLogError) -> [EventLogPosition] {
        throw .unavailable("read only for the test")
    }

    func read(after position: EventLogPosition?, maxCount: Int, timeout: Duration) throws(EventLogError)
        -> [EventLogRecord]
    {
        if timeout > .zero {
            Thread.sleep(forTimeInterval: 0.01)
            return []
        }
        return lock.withLock {
            appendOne()
            let rest = records.filter { position == nil || $0.position > position! }
            return Array(rest.prefix(min(maxCount, readLimit)))
        }
    }

    func endPosition() throws(EventLogError) -> EventLogPosition? {
        lock.withLock {
            let end = records.last?.position
            endsAnswered.append(end)
            return end
        }
    }

    func trim(before position: EventLogPosition) throws(EventLogError) {}
    func close() {}
}

@Suite("Live state runtime")
struct LiveStateRuntimeTests {
    static let ana = EventLogProfileKey(namespace: "ECID", id: "ana")

    static func decision(_ offers: [String]) -> EventLogEntry {
        EventLogEntry(
            key: ana, type: .decision, timeMs: 1_796_644_800_000, offerIDs: offers, serverID: "", batchNumber: 0)
    }

    static func count(_ runtime: LiveStateRuntime, _ offer: String) -> Int {
        runtime.overlays.load()?.counts(for: ana).count(
            offer: InternedName(offer), event: .decision, period: .lifetime, scope: .profile, now: 1_796_644_800) ?? 0
    }

    @Test func decisionEventsAndSubmissionsReachTheOverlayAndTheFile() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("live-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("events.log").path
        let runtime = LiveStateRuntime(
            log: try FileEventLog(path: path), bufferLimit: 100, logger: Logger(label: "test"))
        runtime.start()
        guard waitFor("the replay", { runtime.isReplayed }) else { return }
        runtime.enqueue([Self.decision(["a"]), Self.decision(["a", "b"])])
        // Pending first, then applied: the count is 2 throughout once both are taken, never 4.
        guard waitFor("two decision events counted", { Self.count(runtime, "a") == 2 }) else { return }
        guard waitFor("the pending table to empty", { runtime.overlays.load()?.pending.isEmpty == true }) else {
            return
        }
        #expect(Self.count(runtime, "a") == 2)
        #expect((runtime.overlays.load()?.state(for: Self.ana)?.counterCount ?? 0) > 0)
        // A submission is applied when it returns: no waiting after it.
        var consent = Self.decision([])
        consent.type = .consent
        consent.eventID = "c1"
        consent.consents = ["personalize.content": "n"]
        let result = runtime.submitAndWait([consent], timeout: .seconds(10))
        guard case .success(let position) = result else {
            Issue.record("submission failed: \(result)")
            return
        }
        let overlay = try #require(runtime.overlays.load())
        #expect(overlay.lastApplied.map { $0 >= position } == true)
        #expect(overlay.consents(for: Self.ana, snapshotConsents: .empty).personalizeContent == .n)
        #expect(overlay.knows(eventID: "c1", for: Self.ana))
        runtime.enqueue([Self.decision(["b"])])
        runtime.stop()
        // What the writer held at the stop is in the file: a new runtime replays all of it.
        let again = LiveStateRuntime(log: try FileEventLog(path: path), bufferLimit: 100, logger: Logger(label: "test"))
        again.start()
        defer { again.stop() }
        guard waitFor("the second replay", { again.isReplayed }) else { return }
        #expect(Self.count(again, "a") == 2)
        #expect(Self.count(again, "b") == 2)
        #expect(again.overlays.load()?.consents(for: Self.ana, snapshotConsents: .empty).personalizeContent == .n)
    }

    /// A read may return fewer entries than asked while more exist (``EventLog``): the start-up replay ends at
    /// the end of the log, not at the first short read, so a ready server has applied all of it.
    @Test func theReplayEndsAtTheEndOfTheLogNotAtTheFirstShortRead() {
        let log = ShortReadLog(count: 100, readLimit: 10, entry: Self.decision(["a"]))
        let runtime = LiveStateRuntime(log: log, bufferLimit: 100, logger: Logger(label: "test"))
        runtime.start()
        defer { runtime.stop(flushTimeout: .milliseconds(10)) }
        guard waitFor("the replay", { runtime.isReplayed }) else { return }
        #expect(runtime.overlays.load()?.lastApplied == log.lastPosition)
        #expect(Self.count(runtime, "a") == 100)
    }

    /// Other servers may write the log without pause: the start-up replay ends at the log's end position read
    /// when it starts, having applied everything up to it, not at a read that finds nothing (which never comes).
    @Test func theReplayEndsAtTheEndPositionReadAtItsStartWhileTheLogKeepsGrowing() throws {
        let log = GrowingLog(count: 100, readLimit: 10, entry: Self.decision(["a"]))
        let runtime = LiveStateRuntime(log: log, bufferLimit: 100, logger: Logger(label: "test"))
        runtime.start()
        defer { runtime.stop(flushTimeout: .milliseconds(10)) }
        guard waitFor("the replay of a log that keeps growing", { runtime.isReplayed }) else { return }
        #expect(log.endPositionsAnswered == [.sequence(100)])
        let overlay = try #require(runtime.overlays.load())
        let applied = try #require(overlay.lastApplied)
        #expect(applied >= .sequence(100))
        // Every entry read is applied: the entries appended during the replay up to where it stopped count too.
        #expect(Self.count(runtime, "a") == log.count(through: applied))
    }

    /// An empty log: the replay ends at once, with nothing applied.
    @Test func theReplayOfAnEmptyLogEndsAtOnce() {
        let log = ShortReadLog(count: 0, readLimit: 10, entry: Self.decision(["a"]))
        let runtime = LiveStateRuntime(log: log, bufferLimit: 100, logger: Logger(label: "test"))
        runtime.start()
        defer { runtime.stop(flushTimeout: .milliseconds(10)) }
        guard waitFor("the replay of an empty log", { runtime.isReplayed }) else { return }
        #expect(runtime.overlays.load()?.lastApplied == nil)
        #expect(Self.count(runtime, "a") == 0)
    }

    @Test func whileTheLogIsDownTheBufferIsBoundedAndSubmissionsFail() {
        let runtime = LiveStateRuntime(log: DownLog(), bufferLimit: 4, logger: Logger(label: "test"))
        runtime.start()
        defer { runtime.stop(flushTimeout: .milliseconds(10)) }
        guard waitFor("the replay", { runtime.isReplayed }) else { return }
        // The first batch (up to 4 events) is in flight and retried; of the rest, the buffer keeps 4.
        runtime.enqueue((0..<3).map { _ in Self.decision(["a"]) })
        guard waitFor("the first append to fail", { runtime.writerDown.load(ordering: .relaxed) }) else { return }
        runtime.enqueue((0..<10).map { _ in Self.decision(["a"]) })
        guard waitFor("the oldest events dropped", { runtime.eventsDropped.load(ordering: .acquiring) == 6 }) else {
            return
        }
        let started = Date()
        if case .success = runtime.submitAndWait([Self.decision(["a"])], timeout: .seconds(5)) {
            Issue.record("a submission succeeded on a log that is down")
        }
        #expect(Date().timeIntervalSince(started) < 1, "UNAVAILABLE comes at once while the log is known down")
        #expect(!runtime.isLogUp)
        #expect(runtime.metricsText().contains("offerd_events_dropped_total 6"))
        // Decisions made while the log is down count here at once (SPEC 9.1): the 3 in flight and the 4 kept,
        // not the 6 dropped.
        #expect(Self.count(runtime, "a") == 7)
        #expect(runtime.overlays.load()?.state(for: Self.ana) == nil)
    }

    /// Submissions past the backlog limit are refused at once, counted, and take nothing; the backlog empties
    /// as the log catches up, and recording works again.
    @Test func submissionsPastTheBacklogLimitAreRefusedAtOnce() {
        let log = HeldLog()
        let runtime = LiveStateRuntime(
            log: log, bufferLimit: 100, logger: Logger(label: "test"), submitTimeout: .seconds(600), backlogLimit: 10)
        runtime.start()
        defer { runtime.stop(flushTimeout: .milliseconds(10)) }
        guard waitFor("the replay", { runtime.isReplayed }) else { return }
        func display(_ id: String) -> EventLogEntry {
            var entry = Self.decision(["a"])
            entry.type = .display
            entry.eventID = id
            return entry
        }
        let answered = DispatchGroup()
        let outcomes = LockedOutcomes()
        func submit(_ name: String, _ entries: [EventLogEntry]) {
            answered.enter()
            runtime.submit(entries) { outcome in
                outcomes.withLockedValue { $0[name] = outcome }
                answered.leave()
            }
        }
        submit("first", [display("e0")])
        log.appendStarted.wait()
        // The first is being written (and counts); nine more fit, the eleventh does not.
        submit("second", (1...9).map { display("e\($0)") })
        submit("third", [display("e10")])
        guard case .failure(.overloaded(let reason))? = outcomes.withLockedValue({ $0["third"] }) else {
            Issue.record("past the limit: \(String(describing: outcomes.withLockedValue { $0["third"] }))")
            log.open()
            return
        }
        #expect(reason.contains("at most 10"))
        #expect(runtime.backlog.load(ordering: .relaxed) == 10)
        #expect(runtime.metricsText().contains("offerd_events_total{type=\"display\",result=\"rejected\"} 1"))
        log.open()
        answered.wait()
        outcomes.withLockedValue { outcomes in
            for name in ["first", "second"] {
                guard case .success? = outcomes[name] else {
                    Issue.record("\(name): \(String(describing: outcomes[name]))")
                    continue
                }
            }
        }
        #expect(runtime.backlog.load(ordering: .relaxed) == 0)
        guard case .success = runtime.submitAndWait([display("e10")]) else {
            Issue.record("recording after the backlog emptied failed")
            return
        }
        #expect(runtime.overlays.load()?.knows(eventID: "e10", for: Self.ana) == true)
    }
}

extension LiveStateRuntimeTests {
    /// `offerd_event_log_lag_seconds` measures from an entry's write (SPEC 9.7): a Redis entry id's time, or in a
    /// file log the server-stamped time of decision events and consent updates; a feedback event's own time is the
    /// client's event time (up to 31 days back) and must not make the lag read days.
    @Test func theLagMetricReadsWriteTimesNotClientEventTimes() {
        func record(_ position: EventLogPosition, _ type: EventLogEventType, time: Int64) -> EventLogRecord {
            EventLogRecord(
                position: position,
                entry: EventLogEntry(
                    key: EventLogProfileKey(namespace: "ECID", id: "ana"), type: type, timeMs: time, serverID: "s",
                    batchNumber: 1))
        }
        let stream = EventLogPosition.stream(milliseconds: 5_000, sequence: 0, index: 3)
        #expect(LiveStateRuntime.writeTimeMs(record(stream, .display, time: 1)) == 5_000)
        #expect(LiveStateRuntime.writeTimeMs(record(.sequence(7), .display, time: 1)) == nil)
        #expect(LiveStateRuntime.writeTimeMs(record(.sequence(7), .interact, time: 1)) == nil)
        #expect(LiveStateRuntime.writeTimeMs(record(.sequence(7), .decision, time: 9)) == 9)
        #expect(LiveStateRuntime.writeTimeMs(record(.sequence(7), .consent, time: 9)) == 9)
    }
}
