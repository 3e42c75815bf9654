import Foundation
import Logging
import OfferdCore
import OfferdEventLog
import OfferdSnapshot
import OfferdSnapshotBuilder
import Testing

@testable import OfferdServer

/// A server started on a snapshot folded from another log than the one it is given (a file log replaced by a new
/// one, a snapshot folded from Redis served on a file log): the new log's positions up to the snapshot's watermark
/// were folded nowhere. Severity one: an `UpdateConsent` answered OK there must apply (SPEC 9.5); before, its
/// consent was skipped as "folded" and personalized offers went on to a person who had opted out.
@Suite("watermark ahead of the log")
struct WatermarkAheadOfTheLogTests {
    static let ana = EventLogProfileKey(namespace: "ECID", id: "ana")

    @Test(
        "an opt-out and a display recorded after the start apply in full",
        arguments: ["1000", "1733540000000-0.5"])
    func entriesAfterTheStartApplyInFull(watermark: String) throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("watermark-ahead-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let source = directory.appendingPathComponent("profiles.jsonl")
        try #"{"identities":[{"namespace":"ECID","id":"ana"}]}"#.appending("\n").write(
            to: source, atomically: true, encoding: .utf8)
        let snapshotPath = directory.appendingPathComponent("profiles.snap").path
        _ = try SnapshotBuilder.build(
            input: source.path, output: snapshotPath, version: "folded", progress: nil,
            folded: FoldedState(watermark: watermark))
        let snapshot = try ProfileSnapshot.load(path: snapshotPath)
        #expect(snapshot.watermark == watermark)

        let live = LiveStateRuntime(
            log: try FileEventLog(path: directory.appendingPathComponent("new.log").path), bufferLimit: 100,
            logger: Logger(label: "test"), snapshot: snapshot)
        live.start()
        defer { live.stop(flushTimeout: .milliseconds(10)) }
        #expect(DeferredRecordingTests.eventually { live.isReplayed })

        let optOut = EventLogEntry(
            key: Self.ana, type: .consent, timeMs: 1_796_644_800_000, eventID: "c1",
            consents: ["personalize.content": "n"], serverID: "", batchNumber: 0)
        // A display, as RecordEvents submits it (decision events go through the writer's queue instead).
        let display = EventLogEntry(
            key: Self.ana, type: .display, timeMs: 1_796_644_800_000, eventID: "d1", offerIDs: ["once"],
            serverID: "", batchNumber: 0)
        guard case .success = live.submitAndWait([optOut, display], timeout: .seconds(20)) else {
            Issue.record("the opt-out was not recorded")
            return
        }
        let overlay = try #require(live.overlays.load())
        #expect(overlay.consents(for: Self.ana, snapshotConsents: .empty).personalizeContent == .n)
        #expect(
            overlay.counts(for: Self.ana).count(
                offer: InternedName("once"), event: .display, period: .lifetime, scope: .profile,
                now: 1_796_644_800) == 1)
    }
}
