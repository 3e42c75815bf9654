import OfferdCore
import OfferdEventLog
import OfferdSnapshot
import PropertyBased
import Testing

@testable import OfferdLiveState

@Suite("Folding the log into snapshots")
struct FoldingTests {
    typealias Props = LiveOverlayPropertyTests

    /// The folded state of `records` (a prefix of a log), on top of `base`.
    static func fold(_ records: some Sequence<EventLogRecord>, base: FoldedState = FoldedState()) throws
        -> FoldedState
    {
        var folder = try LogFolder(base: base)
        for record in records { try folder.add(record) }
        return folder.state
    }

    static func watermark(_ state: FoldedState) -> EventLogPosition? { state.watermark.flatMap(EventLogPosition.init) }

    static func expectSameAnswers(
        _ overlay: LiveOverlay, _ whole: LiveOverlay, _ note: String, sourceLocation: SourceLocation = #_sourceLocation
    ) {
        for now in [noon, noon - 3 * 86_400_000, noon + 20 * 86_400_000] {
            #expect(
                Props.answers(overlay.published(), now: now) == Props.answers(whole.published(), now: now), "\(note)",
                sourceLocation: sourceLocation)
        }
        for key in Props.keys {
            #expect(
                (overlay.published().state(for: key)?.consents ?? ConsentOverride())
                    == (whole.published().state(for: key)?.consents ?? ConsentOverride()), "\(note)",
                sourceLocation: sourceLocation)
        }
    }

    /// SPEC 9.6: a snapshot folded at any watermark, served by a server that replays the whole log on top of it,
    /// answers as a server with no folding; so does a server that had applied the whole log and swaps the folded
    /// snapshot in (rebase and re-read from the watermark); and folding in two steps (`--base`) folds the same.
    @Test func aFoldAtAnyWatermarkNeitherDoublesNorLosesCounts() async throws {
        await propertyCheck(count: 300, input: Gen.int(in: 0...Int(Int32.max))) { seed in
            var random = SplitMix64(state: UInt64(seed))
            let records = Props.randomLog(&random)
            var whole = LiveOverlay()
            whole.apply(records)

            let cut = Int.random(in: 0...records.count, using: &random)
            let folded: FoldedState
            do {
                folded = try Self.fold(records[..<cut])
            } catch {
                Issue.record("fold failed: \(error)")
                return
            }
            #expect(Self.watermark(folded) == (cut == 0 ? nil : records[cut - 1].position))

            // Started on the folded snapshot: the replay of the whole log counts only the lifetime after the cut.
            var started = LiveOverlay(folded: folded, watermark: Self.watermark(folded))
            started.apply(records)
            Self.expectSameAnswers(started, whole, "started on a fold, seed \(seed), cut \(cut)")

            // Swapped in after applying everything: rebase, then re-read the records after the watermark.
            var swapped = whole
            swapped.rebase(onto: folded, watermark: Self.watermark(folded))
            for record in records[cut...] { swapped.reapplyAfterWatermark(record) }
            Self.expectSameAnswers(swapped, whole, "swapped in, seed \(seed), cut \(cut)")

            // Back to a snapshot without folding (a rollback): re-read everything.
            var rolledBack = swapped
            rolledBack.rebase(onto: FoldedState(), watermark: nil)
            for record in records { rolledBack.reapplyAfterWatermark(record) }
            Self.expectSameAnswers(rolledBack, whole, "rolled back, seed \(seed), cut \(cut)")

            // Folding in two steps: a first fold at an earlier cut as --base, then the whole export on top.
            let first = Int.random(in: 0...cut, using: &random)
            do {
                let twoSteps = try Self.fold(records[..<cut], base: try Self.fold(records[..<first]))
                #expect(twoSteps == folded, "two-step fold, seed \(seed), cuts \(first) and \(cut)")
            } catch {
                Issue.record("fold failed: \(error)")
            }
        }
    }

    @Test func exportLinesReadBackAsTheSameRecords() async throws {
        await propertyCheck(count: 100, input: Gen.int(in: 0...Int(Int32.max))) { seed in
            var random = SplitMix64(state: UInt64(seed))
            for record in Props.randomLog(&random) {
                var record = record
                record.entry.propositionID = "p\"\\\u{1}é"
                #expect((try? EventLogExport.record(fromLine: EventLogExport.line(record))) == record)
            }
        }
        let stream = EventLogRecord(
            position: .stream(milliseconds: 1_733_540_000_000, sequence: 3, index: 17),
            entry: EventLogEntry(
                key: EventLogProfileKey(namespace: "ecid", id: "4711"), type: .consent, timeMs: 1_733_540_000_000,
                eventID: "e1", consents: ["marketing.email": "n"], serverID: "s", batchNumber: 9))
        let line = String(decoding: EventLogExport.line(stream), as: UTF8.self)
        #expect(
            line
                == #"{"position":"1733540000000-3.17","key":{"namespace":"ecid","id":"4711"},"type":"consent","#
                + #""timeMs":1733540000000,"eventId":"e1","offerIds":[],"propositionId":"","#
                + #""consents":{"marketing.email":"n"},"serverId":"s","batch":9}"#)
    }

    @Test(arguments: [
        (#"{"position":"x","key":{"namespace":"a","id":"b"},"type":"display","timeMs":1}"#, "position"),
        (#"{"position":"1","key":{"namespace":"a"},"type":"display","timeMs":1}"#, "key"),
        (#"{"position":"1","key":{"namespace":"a","id":"b"},"type":"click","timeMs":1}"#, "type"),
        (#"{"position":"1","key":{"namespace":"a","id":"b"},"type":"display"}"#, "timeMs"),
        (#"{"position":"1","key":{"namespace":"a","id":"b"},"type":"display","timeMs":1,"extra":1}"#, "extra"),
        (#"{"position":"1","key":{"namespace":"a","id":"b"},"type":"display","timeMs":1.5}"#, "timeMs"),
    ])
    func aBadExportLineNamesTheKey(line: String, key: String) {
        #expect {
            _ = try EventLogExport.record(fromLine: Array(line.utf8))
        } throws: { error in
            "\(error)".contains(key)
        }
    }

    @Test func aFoldRefusesEntriesOutOfOrderOrOfAnotherLog() throws {
        let entry = EventLogEntry(
            key: EventLogProfileKey(namespace: "ecid", id: "1"), type: .display, timeMs: 1, offerIDs: ["a"],
            serverID: "s", batchNumber: 1)
        var folder = try LogFolder()
        try folder.add(EventLogRecord(position: .sequence(5), entry: entry))
        #expect(throws: EventLogExportError.self) {
            try folder.add(EventLogRecord(position: .sequence(5), entry: entry))
        }
        #expect(throws: EventLogExportError.self) {
            try folder.add(
                EventLogRecord(position: .stream(milliseconds: 9, sequence: 0, index: 0), entry: entry))
        }
    }

    @Test func foldedStateSurvivesItsEncoding() throws {
        var state = FoldedState(watermark: "1733540000000-0.4")
        state.totals["a"] = FoldedCounts(decision: 3, display: 1, interact: 0)
        state.profiles[FoldedKey(namespace: "ecid", id: "4711")] = FoldedProfile(
            counts: ["a": FoldedCounts(decision: 2)], consents: ["personalize.content": "n"])
        state.profiles[FoldedKey(namespace: "email", id: "ana@example.com")] = FoldedProfile(counts: [:], consents: [:])
        let bytes = state.encoded()
        #expect(try FoldedState.decode(bytes).get() == state)
        // Every truncation is refused, never a crash.
        for length in 0..<bytes.count {
            if case .success = FoldedState.decode(Array(bytes[..<length])) { Issue.record("accepted \(length) bytes") }
        }
    }

    @Test func theTrimCutKeepsThePreviousMonth() throws {
        // 2026-12-07 12:00 UTC: the previous month starts 2026-11-01 00:00 UTC.
        let now: Int64 = 1_796_644_800_000
        #expect(CalendarBuckets.startOfPreviousMonth(timeMs: now) == 1_793_491_200_000)
        // January: the previous month is December of the year before.
        #expect(CalendarBuckets.startOfPreviousMonth(timeMs: 1_768_478_400_000) == 1_764_547_200_000)
    }
}
