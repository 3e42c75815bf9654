import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import OfferdCore
import OfferdEventLog
import OfferdSnapshot
import OfferdTransport
import OfferdWire
import Testing

@testable import OfferdServer

/// An in-memory log whose appends wait at a gate the test opens: a write held back (a slow disk, a stalled
/// Redis) for as long as the test wants, without any timing.
private final class GatedLog: EventLog, @unchecked Sendable {
    // @unchecked: every property is guarded by `condition`.
    private let condition = NSCondition()
    private var records: [EventLogRecord] = []
    private var open = true
    private var waitingAppends = 0

    func close(gate: Bool) {
        condition.lock()
        open = !gate
        condition.broadcast()
        condition.unlock()
    }

    /// Appends that are waiting at the closed gate.
    var heldAppends: Int {
        condition.lock()
        defer { condition.unlock() }
        return waitingAppends
    }

    func append(_ batch: [EventLogEntry]) throws(EventLogError) -> [EventLogPosition] {
        condition.lock()
        defer { condition.unlock() }
        waitingAppends += 1
        while !open { condition.wait() }
        waitingAppends -= 1
        var positions: [EventLogPosition] = []
        for entry in batch {
            let position = EventLogPosition.sequence(UInt64(records.count + 1))
            records.append(EventLogRecord(position: position, entry: entry))
            positions.append(position)
        }
        condition.broadcast()
        return positions
    }

    func endPosition() throws(EventLogError) -> EventLogPosition? {
        condition.lock()
        defer { condition.unlock() }
        return records.last?.position
    }

    func read(after position: EventLogPosition?, maxCount: Int, timeout: Duration) throws(EventLogError)
        -> [EventLogRecord]
    {
        condition.lock()
        defer { condition.unlock() }
        let start: Int
        if case .sequence(let number)? = position { start = Int(number) } else { start = 0 }
        let deadline = Date().addingTimeInterval(Double(timeout.components.seconds) + 0.001)
        while records.count <= start && Date() < deadline && timeout > .zero {
            _ = condition.wait(until: deadline)
        }
        guard records.count > start else { return [] }
        return Array(records[start..<min(records.count, start + maxCount)])
    }

    func trim(before position: EventLogPosition) throws(EventLogError) {}
    func close() { close(gate: false) }
}

/// RecordEvents and UpdateConsent answer with a deferred reply: the handler returns while the write is held,
/// a Decide meanwhile is answered, and the held call completes once the write is durable and applied.
@Suite("Deferred recording")
struct DeferredRecordingTests {
    /// An UpdateConsentRequest in protobuf: event_id = 1, identity = 2 {namespace = 1, id = 2}, consents = 3.
    static func updateConsent(eventID: String, id: String, key: String, value: String) -> ByteBuffer {
        func field(_ number: UInt8, _ bytes: [UInt8]) -> [UInt8] { [number << 3 | 2, UInt8(bytes.count)] + bytes }
        let identity = field(1, Array("ECID".utf8)) + field(2, Array(id.utf8))
        let entry = field(1, Array(key.utf8)) + field(2, Array(value.utf8))
        return ByteBuffer(bytes: field(1, Array(eventID.utf8)) + field(2, identity) + field(3, entry))
    }

    /// Waits up to 30 s for `condition` (work another thread does); false if it never holds.
    static func eventually(_ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(30)
        while !condition() {
            if Date() > deadline { return false }
            Thread.sleep(forTimeInterval: 0.005)
        }
        return true
    }

    @Test func aHeldWriteDoesNotHoldTheHandlerNorDecide() throws {
        let fixture = try DecisioningServiceTests.makeService()
        defer { try? FileManager.default.removeItem(at: fixture.directory) }
        let log = GatedLog()
        let snapshot = try #require(fixture.service.snapshots.load())
        let live = LiveStateRuntime(
            log: log, bufferLimit: 100, logger: Logger(label: "test"), snapshot: snapshot,
            snapshots: fixture.service.snapshots, submitTimeout: .seconds(600))
        let service = DecisioningService(
            catalogs: fixture.service.catalogs, snapshots: fixture.service.snapshots, allowExplain: false,
            metrics: ServerMetrics(), live: live)
        live.start()
        defer { live.stop(flushTimeout: .milliseconds(10)) }
        #expect(Self.eventually { live.isReplayed })

        log.close(gate: true)
        let reply = service.handle(
            GRPCUnaryCall(
                path: DecisioningService.updateConsentPath,
                message: Self.updateConsent(eventID: "c1", id: "gold", key: "personalize.content", value: "n")),
            allocator: ByteBufferAllocator())
        // The handler returned while the write waits at the gate: the event loop is free.
        guard case .deferred(let pending) = reply else {
            Issue.record("expected a deferred reply, got \(reply)")
            return
        }
        #expect(Self.eventually { log.heldAppends == 1 })
        let completed = NIOLockedValueBox(false)
        pending.whenComplete { _ in completed.withLockedValue { $0 = true } }

        // A Decide meanwhile is answered, with the consent as it was (granted).
        let decided = DecisioningServiceTests.call(service, DecisioningServiceTests.request("gold"))
        #expect(try DecisioningServiceTests.response(decided).propositions.first?.items.first?.id == "offer-gold")
        #expect(!completed.withLockedValue { $0 })

        log.close(gate: false)
        guard case .message = pending.wait() else {
            Issue.record("the held UpdateConsent did not succeed")
            return
        }
        // Applied here when answered: the next Decide sees the opt-out (the fallback).
        let after = DecisioningServiceTests.call(service, DecisioningServiceTests.request("gold"))
        #expect(try DecisioningServiceTests.response(after).propositions.first?.items.first?.id == "fallback")
    }
}
