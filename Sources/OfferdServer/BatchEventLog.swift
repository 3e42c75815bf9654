import Foundation
import Logging
import OfferdCore
import OfferdEventLog
import OfferdLiveState
import OfferdSnapshot

/// The event log as `offerd decide batch --events LOG` uses it (SPEC 12): its counts and consent updates read
/// once, when the run starts, and the batch's own decision events counted for the lines after them and appended
/// to the log.
///
/// - **At the start** the log is applied from the snapshot's watermark up to the end it has then, on top of the
///   snapshot's folded state, exactly as a server's start-up replay does (``LiveStateRuntime``): the lines see
///   the same counts and consents a server started at that moment would.
/// - **During the run** the batch's decision events (SPEC 9.2: what a Decide would record) count at once for the
///   lines decided after them, and are appended to the log after each chunk of lines, before the chunk's output
///   is written: an output line whose events could not be recorded is not written. Entries that other writers
///   append meanwhile are not read (a batch is a snapshot in time plus its own decisions).
/// - **Order**: a recording batch decides on one thread, in input order, so that "the lines after them" is the
///   input's order and a cap of 1 holds between two lines of one profile. `--dry-run` records nothing and reads
///   only: it may use every thread.
///
/// Confined to that one worker thread while recording (`@unchecked Sendable`); read-only otherwise.
public final class BatchEventLog: @unchecked Sendable {
    private let log: any EventLog
    /// The log as the run found it (folded state plus the entries after the watermark).
    let replayed: LiveOverlaySnapshot
    /// This run's decision events, counted on top of ``replayed``.
    private var recorded = PendingCounts()
    /// This run's decision events not yet appended.
    private var unwritten: [EventLogEntry] = []
    /// Batches are recognised by (writer id, batch number): a retried append that the log had taken is skipped by
    /// every reader.
    let writerID = "batch-" + UUID().uuidString.lowercased()
    private var batchNumber: UInt64 = 0
    /// Decision events appended to the log.
    public private(set) var eventsRecorded = 0
    /// Whether decision events are recorded (false: `--dry-run`).
    public let records: Bool
    private let describedLog: String
    private let retryDelay: Duration
    private let attempts: Int

    /// Entries applied at the start, and entries skipped there as malformed.
    public let replayedEntries: Int
    public let skippedEntries: Int

    /// Applies `log` up to its current end on top of `snapshot`'s folded state.
    ///
    /// - Parameters:
    ///   - describedLog: how error messages name the log (the `--events` value).
    ///   - records: false for `--dry-run`.
    ///   - attempts: tries of each read and append before the run stops (a Redis restart takes a few seconds).
    /// - Throws: ``BatchDecider/Failure`` naming the log when it cannot be read.
    public init(
        log: any EventLog, describedLog: String, snapshot: ProfileSnapshot, records: Bool, logger: Logger,
        attempts: Int = 10, retryDelay: Duration = .milliseconds(500)
    ) throws(BatchDecider.Failure) {
        self.log = log
        self.describedLog = describedLog
        self.records = records
        self.attempts = max(1, attempts)
        self.retryDelay = retryDelay
        var watermark: EventLogPosition?
        if let text = snapshot.watermark {
            guard let position = EventLogPosition(text) else {
                throw BatchDecider.Failure(
                    message: "the snapshot's watermark \(text) is not a position of the event log \(describedLog)")
            }
            watermark = position
        }
        var overlay = LiveOverlay(folded: snapshot.folded, watermark: watermark, replaying: true)
        var applied = 0
        var skipped = 0
        let retry = (attempts: self.attempts, delay: retryDelay)
        do throws(EventLogError) {
            let end = try Self.retrying(retry) { () throws(EventLogError) in try log.endPosition() }
            while !LiveStateRuntime.hasApplied(through: end, overlay.lastApplied) {
                let after = overlay.lastApplied
                let records: [EventLogRecord]
                do throws(EventLogError) {
                    records = try Self.retrying(retry) { () throws(EventLogError) in
                        try log.read(after: after, maxCount: LiveStateRuntime.batchLimit, timeout: .zero)
                    }
                } catch {
                    // Skipped with a warning, as the server's follower skips it.
                    guard case .malformedEntry(let at, let reason, let resumeAfter) = error else { throw error }
                    logger.warning("event log entry skipped", metadata: ["at": "\(at)", "reason": "\(reason)"])
                    overlay.skip(through: resumeAfter)
                    skipped += 1
                    continue
                }
                // A read that finds nothing before the end: the log lost entries; what it holds is applied.
                if records.isEmpty { break }
                applied += overlay.apply(records).applied
            }
        } catch {
            throw BatchDecider.Failure(message: "cannot read the event log \(describedLog): \(error)")
        }
        LiveStateRuntime.checkWatermark(of: &overlay, logger: logger)
        overlay.finishReplay()
        replayed = overlay.published(snapshot: snapshot)
        replayedEntries = applied
        skippedEntries = skipped
    }

    /// The overlay a decision reads: the log as replayed plus this run's decision events so far.
    func overlay() -> LiveOverlaySnapshot {
        recorded.isEmpty ? replayed : replayed.with(pending: recorded)
    }

    /// Counts `entries` for the lines after this one and keeps them for the next ``flush()``.
    /// With `countingTotals` (a catalog with `total` capping rules) they count in the totals too.
    func record(_ entries: [EventLogEntry], countingTotals: Bool) {
        guard records, !entries.isEmpty else { return }
        recorded.add(entries, countingTotals: countingTotals)
        unwritten.append(contentsOf: entries)
    }

    /// Appends the decision events recorded since the last flush, in batches the log takes.
    ///
    /// - Throws: ``BatchDecider/Failure`` naming the log when an append still fails after every attempt: what
    ///   those events' lines decided must not be written.
    func flush() throws(BatchDecider.Failure) {
        while !unwritten.isEmpty {
            batchNumber += 1
            let count = min(unwritten.count, LiveStateRuntime.batchLimit)
            var batch = Array(unwritten.prefix(count))
            for index in batch.indices {
                batch[index].serverID = writerID
                batch[index].batchNumber = batchNumber
            }
            do throws(EventLogError) {
                _ = try Self.retrying((attempts, retryDelay)) { () throws(EventLogError) in try log.append(batch) }
            } catch {
                throw BatchDecider.Failure(message: "cannot record decision events in \(describedLog): \(error)")
            }
            unwritten.removeFirst(count)
            eventsRecorded += count
        }
    }

    /// Closes the log (after the last ``flush()``).
    public func close() { log.close() }

    /// `body`, tried again after `delay` while the log is unavailable (up to `attempts` tries); other errors at once.
    private static func retrying<T>(
        _ retry: (attempts: Int, delay: Duration), _ body: () throws(EventLogError) -> T
    ) throws(EventLogError) -> T {
        var attempt = 1
        while true {
            do {
                return try body()
            } catch {
                guard case .unavailable = error, attempt < retry.attempts else { throw error }
                attempt += 1
                let components = retry.delay.components
                Thread.sleep(forTimeInterval: Double(components.seconds) + Double(components.attoseconds) / 1e18)
            }
        }
    }
}
