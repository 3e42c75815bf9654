import Atomics
import Dispatch
import Foundation
import Logging
import NIOConcurrencyHelpers
import OfferdCore
import OfferdEventLog
import OfferdLiveState
import OfferdSnapshot

/// The live state of one server (SPEC 9): its event log, a writer thread that appends what this server records,
/// a follower thread that applies the log to the overlay, and the published overlay Decide reads.
///
/// ## Threads and who may call what
/// - ``enqueue(_:)`` is called by event-loop threads (Decide's decision events). It appends to a queue under a
///   lock held for the append alone, and wakes the writer only when it sleeps: it never waits for I/O. (The
///   queue is touched only for offers with `decision` capping rules; a lock-free stack is the known upgrade if it
///   ever shows in a profile.)
/// - The **writer** thread drains the queue into a buffer of at most `bufferLimit` decision events (past it the
///   oldest are dropped and counted, SPEC 9.1) and appends it in batches: everything queued while one append
///   was in flight goes into the next (group commit). A failed append keeps its batch, with the same batch
///   number, and is retried every 500 ms; so a lost acknowledgement may write a batch twice, which the overlay
///   skips (``LiveOverlay``).
/// - The **follower** thread is the overlay's one writer: it reads the log in position order from the start
///   (the start-up replay), applies every record, and publishes the overlay into ``overlays`` after every read
///   that changed it. ``isReplayed`` turns true once the follower has applied the log up to its end position
///   read when the replay started (``EventLog/endPosition()``), or a read found nothing before it; readiness
///   waits for it (SPEC 7). Not at the first read that finds nothing alone: while other servers write the log
///   without pause no read does. Nor once a read returned less than it asked for: a log may do that while more
///   entries exist (a Redis stream of 100-event batches did so after 4,100 entries, the rest of a batch a read
///   had cut).
/// - Decide loads ``overlays`` once per call, lock-free (``AtomicReferenceStore``).
/// - `RecordEvents`/`UpdateConsent` hand their entries in with ``submit(_:timeout:completion:)`` and answer
///   with a deferred reply: the writer appends them in its next batch, and the follower completes them once it
///   has applied past their position (a timer fails them after the timeout). No event loop waits.
///
/// - This server's decision events count here from the moment the writer takes them until the follower applies
///   them (or the buffer drops them): ``PendingCounts``, changed by both threads under `publication` and
///   published with the overlay in one value.
///
/// - **Snapshot swaps** (SPEC 9.6): the overlay's lifetime counters and consents sit on one snapshot (its folded
///   state plus the log after its watermark), and a published overlay carries that snapshot, so a Decide reads
///   both from one atomic load. ``adopt(_:)`` hands a newly loaded snapshot to the follower, which waits until it
///   has applied up to the new watermark, rebases a copy of its overlay onto the snapshot (re-reading the log
///   from the watermark to where it is), and publishes the pair at once, then the snapshot into `snapshots`
///   (what metrics and the other methods read). Until then the old pair keeps serving. A file log is then trimmed
///   as SPEC 9.1 says (``EventLogTrimming``).
public final class LiveStateRuntime: Sendable {
    /// The overlay Decide reads.
    public let overlays: AtomicReferenceStore<LiveOverlaySnapshot>
    /// Where the snapshot a swap puts in service is published, once its overlay is.
    private let snapshots: AtomicReferenceStore<ProfileSnapshot>
    /// The snapshot being served when the runtime starts (nil only in tests of the runtime alone).
    private let initialSnapshot: ProfileSnapshot?
    /// A snapshot loaded and waiting for the follower to swap it in (the newest wins).
    private let requestedSnapshot = NIOLockedValueBox<ProfileSnapshot?>(nil)
    /// How long a submission waits before it answers UNAVAILABLE (SPEC 9.1: within a second); tests that hold
    /// a write on purpose lengthen it.
    let submitTimeout: Duration
    /// Snapshots swapped in since the start (tests, metrics).
    let swaps = ManagedAtomic<Int>(0)
    private let log: any EventLog
    private let logger: Logger
    /// A fresh id for this run of the writer: batch copies are recognised by (server id, batch number).
    let serverID = UUID().uuidString.lowercased()
    private let bufferLimit: Int
    /// The most submitted entries (RecordEvents, UpdateConsent) that may wait to be written and applied here: past
    /// it a submission is refused at once (``SubmitError/overloaded(_:)``). What bounds the memory of a flood.
    let backlogLimit: Int
    /// Submitted entries not yet applied here, nor given up (see ``Submission/release()``).
    let backlog = ManagedAtomic<Int>(0)
    private let queue = NIOLockedValueBox<[EventLogEntry]>([])
    /// Whether the catalog of the latest recorded decision has `total` capping rules: only then does the writer
    /// count pending decision events in the totals (``PendingCounts``), which no other catalog reads. Entries
    /// queued across a catalog change are counted as the writer finds it; the overlay counts every total once
    /// they are applied.
    private let countsPendingTotals = ManagedAtomic<Bool>(false)
    /// The follower's last overlay and this server's pending decision events: the two threads change them under
    /// this lock and publish them together, so an event moves from pending to the overlay in one publication.
    private let publication = NIOLockedValueBox<(overlay: LiveOverlaySnapshot, pending: PendingCounts)>(
        (LiveOverlaySnapshot.empty, PendingCounts()))
    /// Submissions that wait for their answer (RecordEvents, UpdateConsent), in arrival order.
    private let submissions = NIOLockedValueBox<[Submission]>([])
    /// The follower's last applied position and the submissions waiting for it to pass theirs.
    private let applied = NIOLockedValueBox<(position: EventLogPosition?, waiting: [(EventLogPosition, Submission)])>(
        (nil, []))
    private let wake = DispatchSemaphore(value: 0)
    private let writerSleeping = ManagedAtomic<Bool>(false)
    private let stopping = ManagedAtomic<Bool>(false)
    private let replayed = ManagedAtomic<Bool>(false)
    private let threadsDone = DispatchGroup()

    // What `/metrics` shows (SPEC 9.7).
    /// True from a failed append to the next successful one.
    let writerDown = ManagedAtomic<Bool>(false)
    let followerUp = ManagedAtomic<Bool>(false)
    /// Entries this server wrote, by ``EventLogEventType`` raw value.
    let written = (0...EventLogEventType.allCases.count).map { _ in ManagedAtomic<Int>(0) }
    let eventsDropped = ManagedAtomic<Int>(0)
    /// Submitted entries refused past ``backlogLimit``, by ``EventLogEventType`` raw value.
    let rejected = (0...EventLogEventType.allCases.count).map { _ in ManagedAtomic<Int>(0) }
    let entriesApplied = ManagedAtomic<Int>(0)
    let entriesDuplicate = ManagedAtomic<Int>(0)
    /// Milliseconds between the last applied entry's time and its application here.
    let lagMilliseconds = ManagedAtomic<Int>(0)

    /// The most entries a writer appends in one batch, and a follower reads in one call.
    static let batchLimit = 4096

    /// ``backlogLimit`` unless told: 160 full RecordEvents calls (100 events each), a few MB of entries.
    public static let defaultBacklogLimit = 16_384

    /// - Parameters:
    ///   - snapshot: the snapshot served at start; the start-up replay counts on top of its folded state.
    ///   - snapshots: the store where swapped-in snapshots are published after their overlay.
    public init(
        log: any EventLog, bufferLimit: Int, logger: Logger, snapshot: ProfileSnapshot? = nil,
        snapshots: AtomicReferenceStore<ProfileSnapshot> = AtomicReferenceStore(nil),
        submitTimeout: Duration = .seconds(1), backlogLimit: Int = LiveStateRuntime.defaultBacklogLimit
    ) {
        self.submitTimeout = submitTimeout
        self.backlogLimit = max(1, backlogLimit)
        self.log = log
        self.bufferLimit = max(1, bufferLimit)
        self.logger = logger
        overlays = AtomicReferenceStore(LiveOverlaySnapshot.empty)
        initialSnapshot = snapshot
        self.snapshots = snapshots
    }

    /// Asks the follower to swap `snapshot` in (see the type's documentation); returns at once.
    public func adopt(_ snapshot: ProfileSnapshot) {
        requestedSnapshot.withLockedValue { $0 = snapshot }
    }

    /// True once the follower has applied the log up to its end when the start-up replay began.
    public var isReplayed: Bool { replayed.load(ordering: .acquiring) }

    /// Whether the log answered the last call of both threads (`offerd_event_log_up`).
    var isLogUp: Bool { !writerDown.load(ordering: .relaxed) && followerUp.load(ordering: .relaxed) }

    /// Starts the writer and the follower threads.
    public func start() {
        for (name, body) in [("offerd-events-writer", runWriter), ("offerd-events-follower", runFollower)] {
            threadsDone.enter()
            let thread = Thread { [threadsDone] in
                body()
                threadsDone.leave()
            }
            thread.name = name
            thread.start()
        }
    }

    /// Stops both threads (the writer first tries to write what it holds, for at most `flushTimeout`), then
    /// closes the log.
    public func stop(flushTimeout: Duration = .seconds(2)) {
        stopping.store(true, ordering: .releasing)
        wake.signal()
        let seconds = Double(flushTimeout.components.seconds) + Double(flushTimeout.components.attoseconds) / 1e18
        _ = threadsDone.wait(timeout: .now() + seconds + 1.5)
        log.close()
    }

    /// Why a submission was not recorded.
    public enum SubmitError: Error, Sendable {
        /// The log cannot be reached now (or did not answer in time): the client retries with the same event ids.
        case unavailable(String)
        /// Too many submitted entries wait to be written and applied here (``backlogLimit``): refused, nothing
        /// recorded; the client retries later.
        case overloaded(String)
    }

    /// Entries that must be durable and applied here before their caller answers.
    final class Submission: Sendable {
        let entries: [EventLogEntry]
        private let claimed = ManagedAtomic<Bool>(false)
        private let completion: @Sendable (Result<EventLogPosition, SubmitError>) -> Void

        private let released = ManagedAtomic<Bool>(false)
        private let backlog: ManagedAtomic<Int>

        init(
            entries: [EventLogEntry], backlog: ManagedAtomic<Int>,
            completion: @escaping @Sendable (Result<EventLogPosition, SubmitError>) -> Void
        ) {
            self.entries = entries
            self.backlog = backlog
            self.completion = completion
        }

        /// Takes the entries out of the backlog once the runtime holds them no more (applied, or given up).
        func release() {
            guard !released.exchange(true, ordering: .relaxed) else { return }
            backlog.wrappingDecrement(by: entries.count, ordering: .relaxed)
        }

        /// Completes the submission once (true), or does nothing when it was completed before (false).
        @discardableResult
        func complete(_ outcome: Result<EventLogPosition, SubmitError>) -> Bool {
            guard !claimed.exchange(true, ordering: .acquiringAndReleasing) else { return false }
            completion(outcome)
            return true
        }
    }

    /// Writes `entries` and calls `completion` once they are durable and applied by this server's follower
    /// (SPEC 9.4: OK only then) with the position of the last entry, or with UNAVAILABLE after at most `timeout`
    /// (at once while the log is known to be down). Returns at once; `completion` runs on the follower's, the
    /// writer's or a timer's thread (or this one, when it fails at once).
    public func submit(
        _ entries: [EventLogEntry], timeout: Duration? = nil,
        completion: @escaping @Sendable (Result<EventLogPosition, SubmitError>) -> Void
    ) {
        let timeout = timeout ?? submitTimeout
        if !isLogUp {
            completion(.failure(.unavailable("the event log is unreachable")))
            return
        }
        // A caller's timeout does not take its entries back (they are written all the same), so without this bound
        // a flood faster than the log grows the queue without end.
        let before = backlog.loadThenWrappingIncrement(by: entries.count, ordering: .relaxed)
        if before > 0 && before + entries.count > backlogLimit {
            backlog.wrappingDecrement(by: entries.count, ordering: .relaxed)
            for entry in entries { rejected[Int(entry.type.rawValue)].wrappingIncrement(ordering: .relaxed) }
            completion(
                .failure(
                    .overloaded(
                        "\(before) events wait to be written and applied on this server (at most \(backlogLimit)); retry later with the same event ids"
                    )))
            return
        }
        let submission = Submission(entries: entries, backlog: backlog, completion: completion)
        submissions.withLockedValue { $0.append(submission) }
        if writerSleeping.exchange(false, ordering: .acquiringAndReleasing) { wake.signal() }
        let seconds = Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18
        DispatchQueue.global().asyncAfter(deadline: .now() + seconds) {
            submission.complete(.failure(.unavailable("the event log did not answer within \(timeout)")))
        }
    }

    /// ``submit(_:timeout:completion:)``, waited for: blocks the calling thread (tests; never an event loop).
    public func submitAndWait(_ entries: [EventLogEntry], timeout: Duration? = nil) -> Result<
        EventLogPosition, SubmitError
    > {
        let done = DispatchSemaphore(value: 0)
        let result = NIOLockedValueBox<Result<EventLogPosition, SubmitError>?>(nil)
        submit(entries, timeout: timeout) { outcome in
            result.withLockedValue { $0 = outcome }
            done.signal()
        }
        done.wait()
        return result.withLockedValue { $0 }!
    }

    /// Called by the writer once a submission's entries are in the log at `position` (its last entry's).
    private func awaitApplication(_ submission: Submission, at position: EventLogPosition) {
        let completeNow = applied.withLockedValue { state -> Bool in
            if let applied = state.position, applied >= position { return true }
            state.waiting.append((position, submission))
            return false
        }
        if completeNow {
            submission.release()
            submission.complete(.success(position))
        }
    }

    /// Called by the follower after it applied up to `position`.
    private func didApply(through position: EventLogPosition?) {
        guard let position else { return }
        let ready = applied.withLockedValue { state -> [(EventLogPosition, Submission)] in
            state.position = position
            let ready = state.waiting.filter { $0.0 <= position }
            state.waiting.removeAll { $0.0 <= position }
            return ready
        }
        for (at, submission) in ready {
            submission.release()
            submission.complete(.success(at))
        }
    }

    /// Queues events for the writer; never waits for I/O (see the type's documentation).
    public func enqueue(_ entries: [EventLogEntry]) {
        guard !entries.isEmpty else { return }
        queue.withLockedValue { $0.append(contentsOf: entries) }
        if writerSleeping.exchange(false, ordering: .acquiringAndReleasing) { wake.signal() }
    }

    /// The decision events of one Decide call (SPEC 9.2): one per OFFERS proposition, naming its offers that
    /// have a `decision` capping rule (never a fallback). `makeKey` gives the profile key; it is called only when
    /// the call records an event (most profiles have nothing live, and their Decide builds no key otherwise).
    public func recordDecisions(
        _ result: DecisionResult, catalog: Catalog, timeMs: Int64, key makeKey: () -> EventLogProfileKey
    ) {
        if countsPendingTotals.load(ordering: .relaxed) != catalog.hasTotalScopeCaps {
            countsPendingTotals.store(catalog.hasTotalScopeCaps, ordering: .relaxed)
        }
        enqueue(Self.decisionEntries(result, catalog: catalog, timeMs: timeMs, serverID: serverID, key: makeKey))
    }

    /// The decision events of one decision (SPEC 9.2), as ``recordDecisions(_:catalog:timeMs:key:)`` records
    /// them; `offerd decide batch --events` records the same. `makeKey` is called only when there is one.
    static func decisionEntries(
        _ result: DecisionResult, catalog: Catalog, timeMs: Int64, serverID: String,
        key makeKey: () -> EventLogProfileKey
    ) -> [EventLogEntry] {
        guard !catalog.decisionCountedOfferIDs.isEmpty else { return [] }
        var madeKey: EventLogProfileKey?
        var entries: [EventLogEntry] = []
        for proposition in result.propositions where proposition.outcome == .offers {
            let offers = proposition.items.filter { !$0.isFallback && catalog.decisionCountedOfferIDs.contains($0.id) }
                .map(\.id)
            if offers.isEmpty { continue }
            let key = madeKey ?? makeKey()
            madeKey = key
            entries.append(
                EventLogEntry(
                    key: key, type: .decision, timeMs: timeMs, offerIDs: offers, serverID: serverID, batchNumber: 0))
        }
        return entries
    }

    // MARK: - The writer

    private func runWriter() {
        var pending: [EventLogEntry] = []
        var inFlight: [EventLogEntry]?
        /// The submissions whose entries end the in-flight batch, with their entry counts, in batch order.
        var inFlightSubmissions: [(Submission, Int)] = []
        var batchNumber: UInt64 = 0
        var stopDeadline: ContinuousClock.Instant?
        var reportedDown = false
        while true {
            let drained = queue.withLockedValue { queued -> [EventLogEntry] in
                defer { queued.removeAll(keepingCapacity: true) }
                return queued
            }
            pending.append(contentsOf: drained)
            var droppedEntries: ArraySlice<EventLogEntry> = []
            if pending.count > bufferLimit {
                let excess = pending.count - bufferLimit
                droppedEntries = pending.prefix(excess)
                pending.removeFirst(excess)
            }
            if !drained.isEmpty || !droppedEntries.isEmpty {
                // They count here at once (SPEC 9.1), until the follower applies them or the buffer drops them.
                publication.withLockedValue { state in
                    state.pending.add(drained, countingTotals: countsPendingTotals.load(ordering: .relaxed))
                    state.pending.remove(droppedEntries)
                    overlays.publish(state.overlay.with(pending: state.pending))
                }
            }
            // Counted after the publication: whoever sees the count sees the overlay without them.
            if !droppedEntries.isEmpty {
                eventsDropped.wrappingIncrement(by: droppedEntries.count, ordering: .releasing)
            }
            if stopping.load(ordering: .acquiring) {
                if stopDeadline == nil { stopDeadline = .now + .seconds(2) }
                if pending.isEmpty && inFlight == nil { return }
                if let stopDeadline, ContinuousClock.now >= stopDeadline {
                    let lost = pending.count + (inFlight?.count ?? 0)
                    if lost > 0 {
                        logger.warning(
                            "event log: decision events not written at shutdown", metadata: ["events": "\(lost)"])
                    }
                    return
                }
            }
            let waiting =
                inFlight == nil
                ? submissions.withLockedValue { queued -> [Submission] in
                    defer { queued.removeAll(keepingCapacity: true) }
                    return queued
                } : []
            if inFlight == nil && (!pending.isEmpty || !waiting.isEmpty) {
                batchNumber += 1
                let count = min(Self.batchLimit, pending.count)
                var batch = Array(pending.prefix(count))
                pending.removeFirst(count)
                // Submitted entries go after the decision events, each submission's entries together.
                inFlightSubmissions = []
                for submission in waiting {
                    batch.append(contentsOf: submission.entries)
                    inFlightSubmissions.append((submission, submission.entries.count))
                }
                for index in batch.indices {
                    batch[index].serverID = serverID
                    batch[index].batchNumber = batchNumber
                }
                inFlight = batch
            }
            if let batch = inFlight {
                do {
                    let positions = try log.append(batch)
                    inFlight = nil
                    // Each submission's last entry position: entries were appended in batch order.
                    var end = batch.count - inFlightSubmissions.reduce(0) { $0 + $1.1 }
                    for (submission, count) in inFlightSubmissions {
                        end += count
                        if end - 1 < positions.count, count > 0 {
                            awaitApplication(submission, at: positions[end - 1])
                        } else {
                            submission.release()
                            submission.complete(.failure(.unavailable("the event log returned no position")))
                        }
                    }
                    inFlightSubmissions = []
                    for entry in batch {
                        written[Int(entry.type.rawValue)].wrappingIncrement(ordering: .relaxed)
                    }
                    writerDown.store(false, ordering: .relaxed)
                    if reportedDown {
                        logger.info("event log reachable again (writer)")
                        reportedDown = false
                    }
                } catch {
                    writerDown.store(true, ordering: .relaxed)
                    // Their callers answer UNAVAILABLE now; the batch is still retried, and a client's retry with
                    // the same event ids is then a duplicate.
                    for (submission, _) in inFlightSubmissions {
                        submission.complete(.failure(.unavailable("\(error)")))
                    }
                    if !reportedDown {
                        logger.warning("event log append failed; retrying", metadata: ["error": "\(error)"])
                        reportedDown = true
                    }
                    _ = wake.wait(timeout: .now() + 0.5)
                }
                continue
            }
            // Nothing to write: sleep until an enqueue wakes us (or a while passes, to notice a stop).
            writerSleeping.store(true, ordering: .sequentiallyConsistent)
            let empty = queue.withLockedValue { $0.isEmpty } && submissions.withLockedValue { $0.isEmpty }
            if empty && !stopping.load(ordering: .acquiring) { _ = wake.wait(timeout: .now() + 0.1) }
            writerSleeping.store(false, ordering: .relaxed)
        }
    }

    // MARK: - The follower

    private func runFollower() {
        var serving: ProfileSnapshot? = initialSnapshot
        // The start-up replay counts on top of the served snapshot's folded state (SPEC 9.6).
        var overlay = LiveOverlay(
            folded: initialSnapshot?.folded ?? FoldedState(),
            watermark: initialSnapshot.flatMap { Self.watermark(of: $0, logger: logger) }, replaying: true)
        var reportedWaitFor: String?
        var expiredDay = Int64.min
        var reportedDown = false
        let replayStart = ContinuousClock.now
        // Where the start-up replay ends: the log's last position when it starts (nil: the log was empty), read
        // once before the first read. A log that others write without pause has no read that finds nothing.
        var replayEnd: EventLogPosition?
        var replayEndRead = false
        while !stopping.load(ordering: .acquiring) {
            let replaying = !replayed.load(ordering: .relaxed)
            if !replaying, let next = requestedSnapshot.withLockedValue({ $0 }) {
                switch swap(to: next, overlay: &overlay, waitingFor: &reportedWaitFor) {
                case .swapped:
                    requestedSnapshot.withLockedValue { if $0 === next { $0 = nil } }
                    serving = next
                    publish(overlay.published(snapshot: serving), removingPending: [])
                    snapshots.publish(next)
                    swaps.wrappingIncrement(ordering: .releasing)
                    logger.info(
                        "snapshot swapped in",
                        metadata: [
                            "version": "\(next.version)", "watermark": "\(next.watermark ?? "none")",
                            "applied": "\(overlay.lastApplied.map(String.init(describing:)) ?? "start")",
                        ])
                    trimFileLog(keepingAfter: next.watermark, overlay: &overlay)
                case .refused:
                    requestedSnapshot.withLockedValue { if $0 === next { $0 = nil } }
                case .waiting:
                    break
                }
            }
            do {
                if replaying && !replayEndRead {
                    replayEnd = try log.endPosition()
                    replayEndRead = true
                }
                var records: [EventLogRecord] = []
                if !replaying || !Self.hasApplied(through: replayEnd, overlay.lastApplied) {
                    records = try log.read(
                        after: overlay.lastApplied, maxCount: Self.batchLimit,
                        timeout: replaying ? .zero : .milliseconds(500))
                }
                followerUp.store(true, ordering: .relaxed)
                if reportedDown {
                    logger.info("event log reachable again (follower)")
                    reportedDown = false
                }
                if !records.isEmpty {
                    var applied = 0
                    var duplicates = 0
                    var ownApplied: [EventLogEntry] = []
                    // By index: the records are read in place, not copied out (a copy retains every string).
                    for index in records.indices {
                        switch overlay.apply(records[index]) {
                        case .applied:
                            applied += 1
                            // Only decision events go through the queue, so only they are pending.
                            if records[index].entry.type == .decision && records[index].entry.serverID == serverID {
                                ownApplied.append(records[index].entry)
                            }
                        case .duplicateEvent, .duplicateBatch: duplicates += 1
                        case .alreadyApplied: break
                        }
                    }
                    entriesApplied.wrappingIncrement(by: applied, ordering: .relaxed)
                    entriesDuplicate.wrappingIncrement(by: duplicates, ordering: .relaxed)
                    if let written = records.lazy.reversed().compactMap(Self.writeTimeMs).first {
                        let now = Int64((Date().timeIntervalSince1970 * 1000).rounded(.down))
                        lagMilliseconds.store(max(0, Int(now - written)), ordering: .relaxed)
                    }
                    let day = CalendarBuckets.bucket(.day, timeMs: overlay.logClockMs)
                    if day != expiredDay {
                        overlay.expire()
                        expiredDay = day
                    }
                    // During the replay nobody reads the overlay (Decide answers UNAVAILABLE): publish once, at its end.
                    if !replaying {
                        publish(overlay.published(snapshot: serving), removingPending: ownApplied)
                        didApply(through: overlay.lastApplied)
                    }
                }
                // Also at a read that finds nothing before the end: the log lost entries (a stream deleted and
                // written anew), and what it holds has been applied.
                if replaying && (records.isEmpty || Self.hasApplied(through: replayEnd, overlay.lastApplied)) {
                    Self.checkWatermark(of: &overlay, logger: logger)
                    // Its first publish: the profile table takes the form whose copies share most of it.
                    overlay.finishReplay()
                    publish(overlay.published(snapshot: serving), removingPending: [])
                    didApply(through: overlay.lastApplied)
                    replayed.store(true, ordering: .releasing)
                    logger.info(
                        "event log replayed",
                        metadata: [
                            "position": "\(overlay.lastApplied.map(String.init(describing:)) ?? "start")",
                            "keys": "\(overlay.keyCount)",
                            "counters": "\(overlay.counterCount.profiles)",
                            "seconds": "\(ContinuousClock.now - replayStart)",
                        ])
                }
            } catch {
                if case .malformedEntry(let at, let reason, let resumeAfter) = error {
                    logger.error("event log entry skipped", metadata: ["at": "\(at)", "reason": "\(reason)"])
                    overlay.skip(through: resumeAfter)
                    continue
                }
                followerUp.store(false, ordering: .relaxed)
                if !reportedDown {
                    logger.warning("event log read failed; retrying", metadata: ["error": "\(error)"])
                    reportedDown = true
                }
                Thread.sleep(forTimeInterval: 0.5)
            }
        }
    }

    /// At the end of a start-up replay: a snapshot watermark this log does not reach (the snapshot folded another
    /// log: a file log replaced by a new one, or a log of the other kind) is lowered to the log's end, so that the
    /// consents and lifetime counts of every entry from now on apply (``LiveOverlay/lowerWatermarkToLogEnd()``);
    /// one of the other kind that it passes stays, and its folded lifetime counts may count twice. Both are
    /// errors of the operator's, logged as such.
    static func checkWatermark(of overlay: inout LiveOverlay, logger: Logger) {
        guard let watermark = overlay.watermark else { return }
        let logEnd = overlay.lastApplied.map(String.init(describing:)) ?? "empty"
        if overlay.lowerWatermarkToLogEnd() {
            logger.error(
                "snapshot watermark after the end of the event log (replaced log?): lowered to the log's end; entries the log holds up to the watermark do not count toward lifetime caps, entries from now on count in full",
                metadata: ["watermark": "\(watermark)", "log end": "\(logEnd)"])
        } else if let applied = overlay.lastApplied, isStream(applied) != isStream(watermark) {
            logger.error(
                "snapshot watermark is a position of another kind of event log: lifetime counts the snapshot folded may count twice",
                metadata: ["watermark": "\(watermark)", "log end": "\(logEnd)"])
        }
    }

    /// When `record` was written to the log, as far as the log tells (`offerd_event_log_lag_seconds`, SPEC 9.7):
    /// a Redis stream entry's id holds it; in a file log, decision events and consent updates carry the writing
    /// server's clock, feedback events the client's event time (up to 31 days back), which says nothing of it.
    static func writeTimeMs(_ record: EventLogRecord) -> Int64? {
        if case .stream(let milliseconds, _, _) = record.position { return Int64(clamping: milliseconds) }
        switch record.entry.type {
        case .decision, .consent: return record.entry.timeMs
        case .display, .interact, .dismiss: return nil
        }
    }

    /// Whether a follower that applied up to `applied` has applied everything up to `end` (nil: nothing).
    static func hasApplied(through end: EventLogPosition?, _ applied: EventLogPosition?) -> Bool {
        guard let end else { return true }
        guard let applied else { return false }
        return applied >= end
    }

    /// A snapshot's watermark as a position; nil when it has none, or (logged) when it is no position at all.
    private static func watermark(of snapshot: ProfileSnapshot, logger: Logger) -> EventLogPosition? {
        guard let text = snapshot.watermark else { return nil }
        guard let position = EventLogPosition(text) else {
            logger.error("snapshot watermark is not a log position; ignored", metadata: ["watermark": "\(text)"])
            return nil
        }
        return position
    }

    private enum SwapOutcome {
        case swapped
        /// The follower has not applied up to the watermark yet.
        case waiting
        /// The snapshot cannot sit on this log; the serving pair stays.
        case refused
    }

    /// Rebases a copy of `overlay` onto `snapshot` and, on success, replaces `overlay` with it.
    private func swap(to snapshot: ProfileSnapshot, overlay: inout LiveOverlay, waitingFor: inout String?)
        -> SwapOutcome
    {
        var watermark: EventLogPosition?
        if let text = snapshot.watermark {
            guard let position = EventLogPosition(text) else {
                logger.error(
                    "snapshot not swapped in: its watermark is not a log position; keeping the serving one",
                    metadata: ["version": "\(snapshot.version)", "watermark": "\(text)"])
                return .refused
            }
            if let applied = overlay.lastApplied, Self.isStream(applied) != Self.isStream(position) {
                logger.error(
                    "snapshot not swapped in: its watermark is a position of another kind of log; keeping the serving one",
                    metadata: ["version": "\(snapshot.version)", "watermark": "\(text)"])
                return .refused
            }
            // SPEC 9.6: a watermark ahead of what this server applied waits until it has applied up to it.
            if overlay.lastApplied.map({ $0 < position }) ?? true {
                if waitingFor != text {
                    logger.info(
                        "snapshot waits until the log is applied up to its watermark",
                        metadata: ["version": "\(snapshot.version)", "watermark": "\(text)"])
                    waitingFor = text
                }
                return .waiting
            }
            watermark = position
        }
        waitingFor = nil
        var candidate = overlay
        candidate.rebase(onto: snapshot.folded, watermark: watermark)
        // Re-read the entries after the new watermark that were applied already: their lifetime part counts on
        // top of the new folded state.
        if let end = candidate.lastApplied, watermark.map({ $0 < end }) ?? true {
            var position = watermark
            do {
                reading: while true {
                    let records = try log.read(after: position, maxCount: Self.batchLimit, timeout: .zero)
                    if records.isEmpty { break }
                    for record in records {
                        if record.position > end { break reading }
                        candidate.reapplyAfterWatermark(record)
                    }
                    position = records.last?.position
                    if let position, position >= end { break }
                }
            } catch {
                logger.warning(
                    "snapshot swap: re-reading the log failed; retrying", metadata: ["error": "\(error)"])
                return .waiting
            }
        }
        overlay = candidate
        return .swapped
    }

    private static func isStream(_ position: EventLogPosition) -> Bool {
        if case .stream = position { return true }
        return false
    }

    /// After a swap: a file log, which this server alone owns, is trimmed as `offerd events trim` would
    /// (SPEC 9.1); a shared Redis stream is left to the operator's `events trim`.
    private func trimFileLog(keepingAfter watermark: String?, overlay: inout LiveOverlay) {
        guard let fileLog = log as? FileEventLog, let watermark, let position = EventLogPosition(watermark) else {
            return
        }
        do {
            let cut = try EventLogTrimming.cut(log: fileLog, keepAfter: position, nowMs: Self.nowMilliseconds())
            guard let cut else { return }
            try fileLog.trim(before: cut)
            overlay.forgetSkipped(before: cut)
            logger.info("event log trimmed", metadata: ["before": "\(cut)"])
        } catch {
            logger.warning("event log trim failed", metadata: ["error": "\(error)"])
        }
    }

    private static func nowMilliseconds() -> Int64 { Int64((Date().timeIntervalSince1970 * 1000).rounded(.down)) }

    /// Publishes the follower's overlay with the pending events that are still not in it.
    private func publish(_ published: LiveOverlaySnapshot, removingPending applied: [EventLogEntry]) {
        publication.withLockedValue { state in
            state.pending.remove(applied)
            state.overlay = published
            overlays.publish(published.with(pending: state.pending))
        }
    }

    /// The `/metrics` lines of SPEC 9.7.
    func metricsText() -> String {
        let keys = overlays.load()?.keyCount ?? 0
        var text = ""
        text += "# TYPE offerd_events_total counter\n"
        for type in EventLogEventType.allCases {
            let count = written[Int(type.rawValue)].load(ordering: .relaxed)
            text += "offerd_events_total{type=\"\(type)\",result=\"written\"} \(count)\n"
        }
        for type in EventLogEventType.allCases where type != .decision {
            let count = rejected[Int(type.rawValue)].load(ordering: .relaxed)
            text += "offerd_events_total{type=\"\(type)\",result=\"rejected\"} \(count)\n"
        }
        text += "offerd_events_total{type=\"any\",result=\"applied\"} \(entriesApplied.load(ordering: .relaxed))\n"
        text += "offerd_events_total{type=\"any\",result=\"duplicate\"} \(entriesDuplicate.load(ordering: .relaxed))\n"
        text += "# TYPE offerd_events_waiting gauge\n"
        text += "offerd_events_waiting \(backlog.load(ordering: .relaxed))\n"
        text += "# TYPE offerd_event_log_up gauge\n"
        text += "offerd_event_log_up \(isLogUp ? 1 : 0)\n"
        text += "# TYPE offerd_event_log_lag_seconds gauge\n"
        text += "offerd_event_log_lag_seconds \(Double(lagMilliseconds.load(ordering: .relaxed)) / 1000)\n"
        text += "# TYPE offerd_overlay_keys gauge\n"
        text += "offerd_overlay_keys \(keys)\n"
        text += "# TYPE offerd_events_dropped_total counter\n"
        text += "offerd_events_dropped_total \(eventsDropped.load(ordering: .relaxed))\n"
        return text
    }
}
