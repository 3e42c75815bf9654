import Foundation
import Testing

@testable import OfferdEventLog

/// Each test starts its own `redis-server` (the install script installs it; CI runs these).
@Suite(
    "Redis stream event log",
    .enabled(if: RedisTestServer.binary != nil, "redis-server is not installed: run scripts/install-deps.sh"))
struct RedisStreamEventLogTests {
    private func log(_ server: RedisTestServer, key: String = "test:events") -> RedisStreamEventLog {
        var configuration = server.configuration
        configuration.key = key
        return RedisStreamEventLog(configuration: configuration)
    }

    @Test("batches appended by one server are read back in order, whole, by two other readers")
    func twoReaders() throws {
        let server = try RedisTestServer()
        defer { server.kill() }
        let writer = log(server)
        let readers = [log(server), log(server)]
        defer { for log in [writer] + readers { log.close() } }
        var written: [EventLogEntry] = []
        var positions: [EventLogPosition] = []
        for (number, size) in [1, 3, 2, 5].enumerated() {
            let batch = sampleBatch(size, from: written.count, batch: UInt64(number))
            positions += try writer.append(batch)
            written += batch
        }
        #expect(positions.count == written.count)
        for reader in readers {
            let records = try readAll(reader, count: written.count, maxCount: 4)
            #expect(records.map(\.entry) == written)
            #expect(records.map(\.position) == positions)
        }
    }

    @Test("positions grow across batches, count the index within a batch, and survive their string form")
    func positions() throws {
        let server = try RedisTestServer()
        defer { server.kill() }
        let writer = log(server)
        defer { writer.close() }
        let first = try writer.append(sampleBatch(12))
        let second = try writer.append(sampleBatch(2))
        let all = first + second
        for (earlier, later) in zip(all, all.dropFirst()) { #expect(earlier < later) }
        for (index, position) in first.enumerated() {
            guard case .stream(_, _, let inBatch) = position else {
                Issue.record("\(position)")
                continue
            }
            #expect(inBatch == UInt32(index))
            #expect(position.streamEntryID == first[0].streamEntryID)
            #expect(EventLogPosition(position.description) == position)
        }
        // "x-y.10" sorts before "x-y.9" as a string; as positions it is after.
        #expect(first[10] > first[9])
        #expect(first[10].description < first[9].description)
        #expect(throws: EventLogError.invalidPosition("3 is not a stream position")) {
            try writer.read(after: .sequence(3), maxCount: 1, timeout: .zero)
        }
    }

    @Test("a read cut inside a batch goes on inside it, from the cache or from another connection")
    func readsSplitInsideABatch() throws {
        let server = try RedisTestServer()
        defer { server.kill() }
        let writer = log(server)
        defer { writer.close() }
        let batch = sampleBatch(5)
        let positions = try writer.append(batch)
        let next = try writer.append(sampleBatch(1, from: 5, batch: 2))

        let reader = log(server)
        defer { reader.close() }
        let head = try reader.read(after: nil, maxCount: 2, timeout: .zero)
        #expect(head.map(\.position) == Array(positions[0..<2]))
        let rest = try reader.read(after: head.last?.position, maxCount: 10, timeout: .zero)
        #expect(rest.map(\.entry) == Array(batch[2...]))
        #expect(try reader.read(after: rest.last?.position, maxCount: 10, timeout: .zero).map(\.position) == next)

        // A fresh reader resuming inside the batch fetches it (XRANGE) instead of using a cache.
        let fresh = log(server)
        defer { fresh.close() }
        #expect(try fresh.read(after: positions[3], maxCount: 10, timeout: .zero).map(\.position) == [positions[4]])
    }

    @Test("XREAD BLOCK returns as soon as another connection appends")
    func blockingReadWokenByAnotherConnection() async throws {
        let server = try RedisTestServer()
        defer { server.kill() }
        let writer = log(server)
        let reader = log(server)
        defer {
            writer.close()
            reader.close()
        }
        let start = try writer.append(sampleBatch(1))
        // The read blocks far longer than the test can take: only the append can end it with entries.
        async let read = onThread {
            Result { try reader.read(after: start.last, maxCount: 10, timeout: .seconds(120)) }
        }
        let appended = try writer.append(sampleBatch(3, from: 1, batch: 2))
        let records = try await read.get()
        #expect(records.map(\.position) == appended)
        #expect(records.map(\.entry) == sampleBatch(3, from: 1, batch: 2))
    }

    @Test("a read with nothing to read returns empty: at once with a zero timeout, at the timeout otherwise")
    func emptyReads() throws {
        let server = try RedisTestServer()
        defer { server.kill() }
        let reader = log(server)
        defer { reader.close() }
        #expect(try reader.read(after: nil, maxCount: 10, timeout: .zero).isEmpty)
        #expect(try reader.read(after: nil, maxCount: 10, timeout: .milliseconds(10)).isEmpty)
    }

    @Test("trim removes the stream entries before the position's entry")
    func trim() throws {
        let server = try RedisTestServer()
        defer { server.kill() }
        let writer = log(server)
        defer { writer.close() }
        _ = try writer.append(sampleBatch(2, batch: 1))
        let second = try writer.append(sampleBatch(3, from: 2, batch: 2))
        let third = try writer.append(sampleBatch(1, from: 5, batch: 3))
        try writer.trim(before: second[1])
        let reader = log(server)
        defer { reader.close() }
        #expect(try readAll(reader, count: 4).map(\.position) == second + third)
        #expect(throws: EventLogError.invalidPosition("7 is not a stream position")) {
            try writer.trim(before: .sequence(7))
        }
    }

    @Test(
        "Redis killed: calls throw unavailable; Redis back: the next calls reconnect and nothing acknowledged is lost")
    func outageAndReconnect() throws {
        let server = try RedisTestServer(extraArguments: ["--appendonly", "yes", "--appendfsync", "always"])
        let writer = log(server)
        let reader = log(server)
        defer {
            writer.close()
            reader.close()
            server.kill()
        }
        let before = try writer.append(sampleBatch(2, batch: 1))
        #expect(try reader.read(after: nil, maxCount: 10, timeout: .zero).map(\.position) == before)

        server.kill()
        let down = #expect(throws: EventLogError.self) { try writer.append(sampleBatch(1, batch: 2)) }
        #expect(down?.isUnavailable == true, "\(String(describing: down))")
        let readDown = #expect(throws: EventLogError.self) {
            try reader.read(after: before.last, maxCount: 10, timeout: .seconds(1))
        }
        #expect(readDown?.isUnavailable == true, "\(String(describing: readDown))")
        // Still down: a new connection attempt fails the same way.
        let stillDown = #expect(throws: EventLogError.self) { try writer.ping() }
        #expect(stillDown?.isUnavailable == true)

        // Restarted with its append-only file (appendfsync always): what was acknowledged is still there.
        try server.start()
        let after = try writer.append(sampleBatch(1, from: 2, batch: 3))
        let records = try readAll(reader, after: before.last, count: 1)
        #expect(records.map(\.position) == after)
        let everything = try reader.read(after: nil, maxCount: 10, timeout: .zero)
        #expect(everything.map(\.position) == before + after)
    }

    @Test("a read blocked in XREAD when Redis dies throws unavailable")
    func blockedReadWhenRedisDies() async throws {
        let server = try RedisTestServer()
        defer { server.kill() }
        let reader = log(server)
        defer { reader.close() }
        // Connect first, so the blocked read is on an established connection.
        #expect(try reader.read(after: nil, maxCount: 1, timeout: .zero).isEmpty)
        async let read = onThread { Result { try reader.read(after: nil, maxCount: 10, timeout: .seconds(120)) } }
        server.kill()
        let result = await read
        let error = #expect(throws: EventLogError.self) { try result.get() }
        #expect(error?.isUnavailable == true, "\(String(describing: error))")
    }

    @Test("without persistence a restarted Redis has lost acknowledged batches: the risk the docs warn about")
    func noPersistenceLosesAcknowledgedBatches() throws {
        let server = try RedisTestServer() // --save '' --appendonly no
        defer { server.kill() }
        let writer = log(server)
        defer { writer.close() }
        let acknowledged = try writer.append(sampleBatch(3))
        #expect(acknowledged.count == 3)
        server.kill()
        try server.start()
        #expect(try writer.read(after: nil, maxCount: 10, timeout: .zero).isEmpty)
    }

    @Test("an entry that is no batch is reported with a position to resume after")
    func malformedEntry() throws {
        let server = try RedisTestServer()
        defer { server.kill() }
        let writer = log(server)
        defer { writer.close() }
        let good = try writer.append(sampleBatch(1))
        let raw = RedisConnection(configuration: server.configuration, timeouts: RedisTimeouts())
        let garbage = try raw.command(["XADD", "test:events", "*", "batch", "\u{2}junk"].map { Array($0.utf8) })
        let garbageID = try #require(garbage.text)
        _ = try raw.command(["XADD", "test:events", "*", "other", "x"].map { Array($0.utf8) })
        let later = try writer.append(sampleBatch(1, from: 1, batch: 2))

        let reader = log(server)
        defer { reader.close() }
        #expect(try reader.read(after: nil, maxCount: 1, timeout: .zero).map(\.position) == good)
        let error = #expect(throws: EventLogError.self) {
            try reader.read(after: good.last, maxCount: 10, timeout: .zero)
        }
        guard case .malformedEntry(let at, let reason, let resumeAfter)? = error else {
            Issue.record("expected a malformed entry, got \(String(describing: error))")
            return
        }
        #expect(at == garbageID)
        #expect(reason.contains("unsupported batch version 2"))
        let second = #expect(throws: EventLogError.self) {
            try reader.read(after: resumeAfter, maxCount: 10, timeout: .zero)
        }
        guard case .malformedEntry(_, "no batch field", let resumeAfterSecond)? = second else {
            Issue.record("expected a malformed entry, got \(String(describing: second))")
            return
        }
        #expect(try reader.read(after: resumeAfterSecond, maxCount: 10, timeout: .zero).map(\.position) == later)
    }

    @Test(
        "the end position is the last entry of the last batch; nil for no stream; a malformed last entry ends after it")
    func endPosition() throws {
        let server = try RedisTestServer()
        defer { server.kill() }
        let writer = log(server)
        let reader = log(server)
        defer { for log in [writer, reader] { log.close() } }
        #expect(try reader.endPosition() == nil)
        _ = try writer.append(sampleBatch(3))
        let second = try writer.append(sampleBatch(5, from: 3, batch: 2))
        #expect(try reader.endPosition() == second.last)
        // The end read decoded the last batch: a read cut inside it goes on to its end.
        let all = try readAll(reader, count: 8, maxCount: 3)
        #expect(all.last?.position == second.last)
        let raw = RedisConnection(configuration: server.configuration, timeouts: RedisTimeouts())
        let garbage = try raw.command(["XADD", "test:events", "*", "other", "x"].map { Array($0.utf8) })
        let garbageID = try #require(garbage.text)
        #expect(try reader.endPosition()?.description == "\(garbageID).\(UInt32.max)")
        #expect(try writer.endPosition()?.description == "\(garbageID).\(UInt32.max)")
        _ = try raw.command(["SET", "other:key", "x"].map { Array($0.utf8) })
        var configuration = server.configuration
        configuration.key = "other:key"
        let wrongType = RedisStreamEventLog(configuration: configuration)
        defer { wrongType.close() }
        let error = #expect(throws: EventLogError.self) { try wrongType.endPosition() }
        guard case .rejected("XREVRANGE", _)? = error else {
            Issue.record("expected a refusal, got \(String(describing: error))")
            return
        }
    }

    @Test("a key of another type is a refusal, not an outage")
    func wrongType() throws {
        let server = try RedisTestServer()
        defer { server.kill() }
        let raw = RedisConnection(configuration: server.configuration, timeouts: RedisTimeouts())
        _ = try raw.command(["SET", "test:events", "x"].map { Array($0.utf8) })
        let writer = log(server)
        defer { writer.close() }
        let error = #expect(throws: EventLogError.self) { try writer.append(sampleBatch(1)) }
        guard case .rejected("XADD", let message)? = error else {
            Issue.record("expected a refusal, got \(String(describing: error))")
            return
        }
        #expect(message.hasPrefix("WRONGTYPE"))
    }

    @Test("AUTH and SELECT come from the URL; a wrong password is refused")
    func authAndDatabase() throws {
        let server = try RedisTestServer(extraArguments: ["--requirepass", "s@cret"])
        defer { server.kill() }
        let onThree = RedisStreamEventLog(
            configuration: try RedisEventLogConfiguration(url: "redis://:s%40cret@127.0.0.1:\(server.port)/3?key=k"))
        let onZero = RedisStreamEventLog(
            configuration: try RedisEventLogConfiguration(
                url: "redis://default:s%40cret@127.0.0.1:\(server.port)?key=k"))
        let wrong = RedisStreamEventLog(
            configuration: try RedisEventLogConfiguration(url: "redis://:nope@127.0.0.1:\(server.port)/3?key=k"))
        let none = RedisStreamEventLog(
            configuration: try RedisEventLogConfiguration(url: "redis://127.0.0.1:\(server.port)/3?key=k"))
        defer { for log in [onThree, onZero, wrong, none] { log.close() } }
        let positions = try onThree.append(sampleBatch(2))
        #expect(try onThree.read(after: nil, maxCount: 10, timeout: .zero).map(\.position) == positions)
        #expect(try onZero.read(after: nil, maxCount: 10, timeout: .zero).isEmpty)
        let refused = #expect(throws: EventLogError.self) { try wrong.append(sampleBatch(1)) }
        guard case .rejected("AUTH", _)? = refused else {
            Issue.record("expected AUTH to be refused, got \(String(describing: refused))")
            return
        }
        let noAuth = #expect(throws: EventLogError.self) { try none.append(sampleBatch(1)) }
        guard case .rejected(_, let message)? = noAuth else {
            Issue.record("expected a refusal, got \(String(describing: noAuth))")
            return
        }
        #expect(message.hasPrefix("NOAUTH"))
    }

    @Test("a server that is not there is unavailable; --events redis:// opens a log that connects later")
    func nothingListening() throws {
        let port = try RedisTestServer.freePort()
        let configuration = try EventLogConfiguration(parsing: "redis://127.0.0.1:\(port)")
        let log = try #require(try configuration.open())
        defer { log.close() }
        let error = #expect(throws: EventLogError.self) { try log.append(sampleBatch(1)) }
        #expect(error?.isUnavailable == true)
    }
}

extension EventLogError {
    var isUnavailable: Bool {
        if case .unavailable = self { return true }
        return false
    }
}
