import Foundation
import Logging
import OfferdCore
import OfferdEventLog
import OfferdSnapshot
import OfferdSnapshotBuilder
import Testing

@testable import OfferdServer

/// `offerd decide batch --events` (SPEC 12): the log's counts and consent updates apply to the batch, its decision
/// events count for the lines after them and reach the log, `--dry-run` (and a line's `dryRun`) records nothing,
/// and a log that will not take them stops the run without writing the lines they belong to.
@Suite("batch decisions with an event log")
struct BatchEventLogTests {
    /// LiveStateDecideTests' catalog (`once` capped at 1 decision per profile, `shown` at 1 display a day, `other`
    /// uncapped) and profiles (`ana` with a secondary Email identity, `p0` ...).
    final class World: @unchecked Sendable {
        let directory: URL
        let snapshot: ProfileSnapshot
        let catalog: LoadedCatalog
        var logPath: String { directory.appendingPathComponent("events.log").path }

        init() throws {
            directory = FileManager.default.temporaryDirectory.appendingPathComponent("batch-events-\(UUID())")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            let source = directory.appendingPathComponent("profiles.jsonl")
            try (LiveStateDecideTests.profileLines.joined(separator: "\n") + "\n").write(
                to: source, atomically: true, encoding: .utf8)
            let snapshotPath = directory.appendingPathComponent("profiles.snap").path
            _ = try SnapshotBuilder.build(input: source.path, output: snapshotPath, version: "snap-1", progress: nil)
            snapshot = try ProfileSnapshot.load(path: snapshotPath)
            let parsed = try Catalog.load(bytes: Array(LiveStateDecideTests.catalogJSON.utf8), fileName: "catalog.json")
            catalog = LoadedCatalog(engine: DecisionEngine(catalog: parsed), path: "catalog.json")
        }

        deinit { try? FileManager.default.removeItem(at: directory) }

        /// Appends `entries` to the file log, as a server would have.
        func append(_ entries: [EventLogEntry]) throws {
            let log = try FileEventLog(path: logPath)
            defer { log.close() }
            _ = try log.append(entries)
        }

        /// Every entry the file log holds.
        func entries() throws -> [EventLogEntry] {
            let log = try FileEventLog(readingOnly: logPath)
            defer { log.close() }
            return try log.read(after: nil, maxCount: 10_000, timeout: .zero).map(\.entry)
        }

        /// Runs a batch over `lines` with the file log (or `log`) and returns the first item of each output line
        /// (nil for a line without items), the run's event log and its stats.
        func run(
            _ lines: [String], dryRun: Bool = false, log: (any EventLog)? = nil, attempts: Int = 10
        ) throws -> (firstItems: [String?], events: BatchEventLog) {
            let events = try BatchEventLog(
                log: log ?? FileEventLog(path: logPath), describedLog: "file:events.log", snapshot: snapshot,
                records: !dryRun, logger: Logger(label: "test"), attempts: attempts, retryDelay: .zero)
            defer { events.close() }
            let decider = BatchDecider(
                catalog: catalog, snapshot: snapshot, configuration: BatchDecider.Configuration(threads: 1),
                events: events, now: { LiveStateDecideTests.noonSeconds })
            let input = directory.appendingPathComponent("in-\(UUID()).jsonl")
            try (lines.joined(separator: "\n") + "\n").write(to: input, atomically: true, encoding: .utf8)
            let outputPath = directory.appendingPathComponent("out-\(UUID()).jsonl").path
            let output = try BatchOutput(path: outputPath)
            _ = try decider.run(input: .lines(path: input.path), output: output)
            try output.close()
            return (try Self.firstItems(outputPath), events)
        }

        static func firstItems(_ path: String) throws -> [String?] {
            try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map { line in
                let json = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
                let propositions = json?["propositions"] as? [[String: Any]]
                let items = propositions?.first?["items"] as? [[String: Any]]
                return items?.first?["id"] as? String
            }
        }
    }

    static func line(_ namespace: String, _ id: String, dryRun: Bool = false) -> String {
        #"{"identity":{"namespace":"\#(namespace)","id":"\#(id)"},"scopes":[{"decisionId":"dec","placementId":"web"}]"#
            + (dryRun ? #","dryRun":true}"# : "}")
    }

    @Test func decisionEventsCountForTheLinesAfterThemAndReachTheLog() throws {
        let world = try World()
        // ana twice (the second time through her secondary identity: one profile key), then p1.
        let first = try world.run([
            Self.line("ECID", "ana"), Self.line("Email", "Ana@Example.com"), Self.line("ECID", "p1"),
        ])
        #expect(first.firstItems == ["once", "shown", "once"])
        #expect(first.events.eventsRecorded == 2)
        let written = try world.entries()
        #expect(written.map(\.type) == [.decision, .decision])
        #expect(
            written.map(\.key) == [
                EventLogProfileKey(namespace: "ecid", id: "ana"), EventLogProfileKey(namespace: "ecid", id: "p1"),
            ])
        #expect(written.allSatisfy { $0.offerIDs == ["once"] && $0.serverID == first.events.writerID })

        // A second batch reads them back from the log: both profiles have had `once`.
        let second = try world.run([Self.line("ECID", "p1"), Self.line("ECID", "ana"), Self.line("ECID", "p2")])
        #expect(second.firstItems == ["shown", "shown", "once"])
        #expect(second.events.replayedEntries == 2)
        #expect(try world.entries().count == 3)
    }

    @Test func dryRunReadsTheLogAndRecordsNothing() throws {
        let world = try World()
        try world.append([LiveStateDecideTests.event("ecid", "ana", .decision, offers: ["once"], eventID: "")])
        let dry = try world.run(
            [Self.line("ECID", "ana"), Self.line("ECID", "p1"), Self.line("ECID", "p1")], dryRun: true)
        // The log's count applies; p1's decisions record nothing, so its second line still gets `once`.
        #expect(dry.firstItems == ["shown", "once", "once"])
        #expect(dry.events.eventsRecorded == 0)
        // A line's own dryRun, in a recording batch.
        let lineDry = try world.run([Self.line("ECID", "p1", dryRun: true), Self.line("ECID", "p1")])
        #expect(lineDry.firstItems == ["once", "once"])
        #expect(lineDry.events.eventsRecorded == 1)
        #expect(try world.entries().count == 2)
    }

    /// Severity one: an opt-out recorded in the log (UpdateConsent) must hold in a batch, under every spelling
    /// of the identity that names the profile.
    @Test func consentUpdatesInTheLogDenyPersonalization() throws {
        let world = try World()
        try world.append([
            LiveStateDecideTests.event("ECID", "ana", .consent, eventID: "c1", consents: ["personalize.content": "n"])
        ])
        let result = try world.run([
            Self.line("ECID", "ana"), Self.line("Email", "Ana@Example.com"), Self.line("ecid", "ana"),
            Self.line("ECID", "p1"),
        ])
        #expect(result.firstItems == ["fallback", "fallback", "fallback", "once"])
        // The fallback records no decision event; p1's offer does.
        #expect(result.events.eventsRecorded == 1)
    }

    /// A log that will not take the decision events: the run stops with the log's name, and the lines whose events
    /// were not recorded are not written.
    @Test func aLogThatRefusesAppendsStopsTheRunWithoutItsLines() throws {
        let world = try World()
        let failure = #expect(throws: BatchDecider.Failure.self) {
            _ = try world.run([Self.line("ECID", "ana")], log: RefusingEventLog(), attempts: 2)
        }
        #expect(failure?.message.contains("cannot record decision events in file:events.log") == true)
        #expect(failure?.message.contains("disk on fire") == true)
    }

    /// A log that cannot be read at the start: no batch, an error naming the log.
    @Test func anUnreadableLogStopsBeforeTheFirstLine() throws {
        let world = try World()
        let log = RefusingEventLog(refusesReads: true)
        let failure = #expect(throws: BatchDecider.Failure.self) {
            _ = try world.run([Self.line("ECID", "ana")], log: log, attempts: 2)
        }
        #expect(failure?.message.contains("cannot read the event log file:events.log") == true)
    }
}

/// An empty log whose appends (and, if asked, reads) fail as an unreachable log's do.
private final class RefusingEventLog: EventLog {
    let refusesReads: Bool

    init(refusesReads: Bool = false) { self.refusesReads = refusesReads }

    func append(_ batch: [EventLogEntry]) throws(EventLogError) -> [EventLogPosition] {
        throw .unavailable("disk on fire")
    }

    func read(after position: EventLogPosition?, maxCount: Int, timeout: Duration) throws(EventLogError)
        -> [EventLogRecord]
    {
        if refusesReads { throw .unavailable("disk on fire") }
        return []
    }

    func endPosition() throws(EventLogError) -> EventLogPosition? {
        if refusesReads { throw .unavailable("disk on fire") }
        return nil
    }

    func trim(before position: EventLogPosition) throws(EventLogError) {}
    func close() {}
}
