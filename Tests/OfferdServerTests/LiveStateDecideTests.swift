import Foundation
import Logging
import OfferdCore
import OfferdEventLog
import OfferdSnapshot
import OfferdSnapshotBuilder
import OfferdTransport
import OfferdWire
import Testing

@testable import OfferdServer

/// Decide through the service with a file log: a profile key with live state (a cap reached, a consent update, a
/// decision event of its own) is decided with it, through every identity that names it, and a profile key
/// without live state is decided as before, whether or not its Decide looks the key up (the server skips the
/// lookup for most such keys, `LiveOverlaySnapshot.mayHaveState`).
@Suite("Decide with live state")
struct LiveStateDecideTests {
    static let catalogJSON = """
        {"version": "live-1",
         "placements": [{"id": "web", "channel": "web", "contentType": "text"}],
         "offers": [
           {"id": "once", "status": "approved", "priority": 30, "capping": [{"limit": 1}],
            "representations": [{"placement": "web", "content": "once"}]},
           {"id": "shown", "status": "approved", "priority": 20,
            "capping": [{"limit": 1, "event": "display", "period": "day"}],
            "representations": [{"placement": "web", "content": "shown"}]},
           {"id": "other", "status": "approved", "priority": 10,
            "representations": [{"placement": "web", "content": "other"}]}],
         "fallbackOffers": [{"id": "fallback", "representations": [{"placement": "web", "content": "hi"}]}],
         "collections": [{"id": "all", "offers": ["once", "shown", "other"]}],
         "decisions": [{"id": "dec", "status": "live", "fallback": "fallback",
                        "scopes": [{"placement": "web", "criteria": [{"collection": "all"}]}]}]}
        """

    /// Many profiles, so that the overlay's filters hold many keys besides the ones a test looks at.
    static let profileLines =
        [#"{"identities":[{"namespace":"ECID","id":"ana"},{"namespace":"Email","id":"Ana@Example.com"}]}"#]
        + (0..<300).map { #"{"identities":[{"namespace":"ECID","id":"p\#($0)"}]}"# }

    /// 2026-12-07 12:00 UTC.
    static let noonSeconds: Double = 1_796_644_800

    static func makeService(directory: URL) throws -> (DecisioningService, LiveStateRuntime) {
        let source = directory.appendingPathComponent("profiles.jsonl")
        try (profileLines.joined(separator: "\n") + "\n").write(to: source, atomically: true, encoding: .utf8)
        let snapshotPath = directory.appendingPathComponent("profiles.snap").path
        _ = try SnapshotBuilder.build(input: source.path, output: snapshotPath, version: "snap-1", progress: nil)
        let snapshot = try ProfileSnapshot.load(path: snapshotPath)
        let snapshots = AtomicReferenceStore(snapshot)
        let catalog = try Catalog.load(bytes: Array(catalogJSON.utf8), fileName: "catalog.json")
        let metrics = ServerMetrics()
        // A buffer that holds every decision event the tests make: with a small one, a writer slowed by a busy
        // machine (each append waits for fsync) dropped the oldest of the 300 Decides' events, and their caps
        // never counted (seen failing under four parallel builds).
        let live = LiveStateRuntime(
            log: try FileEventLog(path: directory.appendingPathComponent("events.log").path), bufferLimit: 100_000,
            logger: Logger(label: "test"), snapshot: snapshot, snapshots: snapshots)
        let service = DecisioningService(
            catalogs: AtomicReferenceStore(
                LoadedCatalog(engine: DecisionEngine(catalog: catalog), path: "catalog.json", metrics: metrics)),
            snapshots: snapshots, allowExplain: false, metrics: metrics, live: live, now: { noonSeconds })
        return (service, live)
    }

    static func firstItem(_ service: DecisioningService, _ namespace: String, _ id: String) throws -> String? {
        let request = DecisionRequest(
            requestID: "r1", identity: Identity(namespace: namespace, id: id),
            scopes: [ScopeRequest(decisionID: "dec", placementID: "web", itemCount: 1)])
        return try DecisioningServiceTests.response(DecisioningServiceTests.call(service, request))
            .propositions.first?.items.first?.id
    }

    static func event(
        _ namespace: String, _ id: String, _ type: EventLogEventType, offers: [String] = [], eventID: String,
        consents: [String: String] = [:]
    ) -> EventLogEntry {
        EventLogEntry(
            key: EventLogProfileKey(namespace: namespace, id: id), type: type,
            timeMs: Int64(noonSeconds * 1000), eventID: eventID, offerIDs: offers, consents: consents, serverID: "",
            batchNumber: 0)
    }

    @Test func keysWithLiveStateAreDecidedWithItAndOthersAsBefore() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("live-decide-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let (service, live) = try Self.makeService(directory: directory)
        live.start()
        defer { live.stop(flushTimeout: .milliseconds(10)) }
        #expect(DeferredRecordingTests.eventually { live.isReplayed })

        // Live state for many keys (a display each), so that the filters are not empty where the test looks.
        let crowd = (0..<300).filter { $0 % 2 == 0 }.map {
            Self.event("ecid", "p\($0)", .display, offers: ["shown"], eventID: "crowd-\($0)")
        }
        guard case .success = live.submitAndWait(crowd, timeout: .seconds(20)) else {
            Issue.record("the crowd's displays were not recorded")
            return
        }
        // A display caps `shown` today; `once` is capped by the profile's own decision event (below).
        guard
            case .success = live.submitAndWait(
                [Self.event("ecid", "ana", .display, offers: ["shown"], eventID: "d1")], timeout: .seconds(20))
        else {
            Issue.record("ana's display was not recorded")
            return
        }
        // ana's first Decide proposes `once` and records its decision event under ana's primary key; asked
        // through the secondary identity, so that the key must be resolved, not taken from the request.
        #expect(try Self.firstItem(service, "EMAIL", "Ana@Example.com") == "once")
        let anaKey = EventLogProfileKey(namespace: "ecid", id: "ana")
        // Applied (display and decision, 4 periods each), not merely pending.
        #expect(DeferredRecordingTests.eventually { live.overlays.load()?.state(for: anaKey)?.counterCount ?? 0 >= 8 })
        for (namespace, id) in [("ECID", "ana"), ("ecid", "ana"), ("Email", "Ana@Example.com")] {
            #expect(try Self.firstItem(service, namespace, id) == "other", "\(namespace):\(id)")
        }
        // Keys with a display each and keys with nothing are decided as before: `once` first, then `shown`
        // for keys without a display today. (Their Decides record `once` too: each key is asked once.)
        for number in 0..<300 {
            #expect(try Self.firstItem(service, "ECID", "p\(number)") == "once", "p\(number)")
        }
        #expect(
            DeferredRecordingTests.eventually {
                guard let overlay = live.overlays.load() else { return false }
                return (0..<300).allSatisfy { number in
                    overlay.counts(for: EventLogProfileKey(namespace: "ecid", id: "p\(number)")).count(
                        offer: InternedName("once"), event: .decision, period: .lifetime, scope: .profile,
                        now: Self.noonSeconds) == 1
                }
            })
        for number in 0..<300 {
            let expected = number % 2 == 0 ? "other" : "shown"
            #expect(try Self.firstItem(service, "ECID", "p\(number)") == expected, "p\(number)")
        }

        // A consent update for an identity no profile holds, under any spelling of its namespace.
        guard
            case .success = live.submitAndWait(
                [Self.event("CRMID", "Zed", .consent, eventID: "c1", consents: ["personalize.content": "n"])],
                timeout: .seconds(20))
        else {
            Issue.record("the consent update was not recorded")
            return
        }
        #expect(try Self.firstItem(service, "crmid", "Zed") == "fallback")
        #expect(try Self.firstItem(service, "CrmId", "Zed") == "fallback")
        // The id is not folded: another key, with nothing live.
        #expect(try Self.firstItem(service, "CRMID", "zed") == "once")
    }
}
