import Foundation
import Testing

@testable import OfferdEventLog

@Suite("File event log")
struct FileEventLogTests {
    @Test("appends return sequence positions; reads return entries after a position, in order, up to maxCount")
    func appendAndRead() throws {
        let directory = try TemporaryDirectory()
        let log = try FileEventLog(path: directory.file("events.log"))
        defer { log.close() }
        #expect(log.recovery.createdFile)
        #expect(log.lastPosition == nil)
        #expect(try log.endPosition() == nil)
        #expect(try log.read(after: nil, maxCount: 10, timeout: .zero).isEmpty)
        let first = sampleBatch(3, batch: 1)
        let second = sampleBatch(2, from: 3, batch: 2)
        #expect(try log.append(first) == (1...3).map { EventLogPosition.sequence($0) })
        #expect(try log.append([]) == [])
        #expect(try log.append(second) == [.sequence(4), .sequence(5)])
        #expect(log.lastPosition == .sequence(5))
        #expect(try log.endPosition() == .sequence(5))

        let all = try log.read(after: nil, maxCount: 100, timeout: .zero)
        #expect(all.map(\.position) == (1...5).map { EventLogPosition.sequence($0) })
        #expect(all.map(\.entry) == first + second)
        #expect(
            try log.read(after: .sequence(2), maxCount: 100, timeout: .zero).map(\.entry)
                == Array((first + second)[2...]))
        #expect(try log.read(after: .sequence(5), maxCount: 100, timeout: .zero).isEmpty)
        // maxCount cuts inside a batch and the next read goes on from there, across the batch boundary.
        #expect(try log.read(after: nil, maxCount: 2, timeout: .zero).map(\.position) == [.sequence(1), .sequence(2)])
        #expect(
            try log.read(after: .sequence(2), maxCount: 2, timeout: .zero).map(\.position) == [
                .sequence(3), .sequence(4),
            ])
        #expect(try log.read(after: .sequence(4), maxCount: 2, timeout: .zero).map(\.position) == [.sequence(5)])
        // Far beyond the end (a hostile or stale position) is simply nothing yet, never an overflow.
        #expect(try log.read(after: .sequence(UInt64.max), maxCount: 2, timeout: .zero).isEmpty)
        #expect(throws: EventLogError.invalidPosition("1-0.0 is not a file log position")) {
            try log.read(after: .stream(milliseconds: 1, sequence: 0, index: 0), maxCount: 1, timeout: .zero)
        }
    }

    @Test("reads after every position, with every maxCount, return the log's entries in order, each once")
    func readsAtEveryPositionAndCount() throws {
        let directory = try TemporaryDirectory()
        let log = try FileEventLog(path: directory.file("events.log"))
        defer { log.close() }
        var whole: [EventLogEntry] = []
        for (number, size) in [1, 3, 5, 2, 4].enumerated() {
            let batch = sampleBatch(size, from: whole.count, batch: UInt64(number + 1))
            _ = try log.append(batch)
            whole += batch
        }
        for after in 0...(whole.count + 1) {
            for maxCount in 1...(whole.count + 1) {
                var position: EventLogPosition? = after == 0 ? nil : .sequence(UInt64(after))
                var read: [EventLogRecord] = []
                while true {
                    let got = try log.read(after: position, maxCount: maxCount, timeout: .zero)
                    #expect(got.count <= maxCount)
                    guard let last = got.last else { break }
                    read += got
                    position = last.position
                }
                let expected = Array(whole.dropFirst(after))
                #expect(read.map(\.entry) == expected, "after \(after), maxCount \(maxCount)")
                #expect(
                    read.map(\.position) == (min(after, whole.count)..<whole.count).map { .sequence(UInt64($0 + 1)) },
                    "after \(after), maxCount \(maxCount)")
            }
        }
    }

    @Test("a reopened log reads everything back and appends after it")
    func reopen() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("events.log")
        var written: [EventLogEntry] = []
        do {
            let log = try FileEventLog(path: path)
            for batch in 1...4 {
                let entries = sampleBatch(batch, from: written.count, batch: UInt64(batch))
                _ = try log.append(entries)
                written += entries
            }
            log.close()
        }
        let log = try FileEventLog(path: path)
        defer { log.close() }
        #expect(
            log.recovery
                == FileEventLogRecovery(createdFile: false, recordCount: 4, entryCount: 10, cutBytes: 0))
        #expect(try log.read(after: nil, maxCount: 100, timeout: .zero).map(\.entry) == written)
        #expect(try log.append(sampleBatch(1)) == [.sequence(11)])
    }

    /// A log of three batches, its bytes, and where its last record starts.
    private func threeBatchLog(_ path: String) throws -> (
        bytes: [UInt8], lastRecordStart: Int, entries: [EventLogEntry]
    ) {
        let log = try FileEventLog(path: path)
        let first = sampleBatch(2, batch: 1)
        let second = sampleBatch(3, from: 2, batch: 2)
        _ = try log.append(first)
        _ = try log.append(second)
        let lastRecordStart = try readBytes(path).count
        _ = try log.append(sampleBatch(2, from: 5, batch: 3))
        log.close()
        return (try readBytes(path), lastRecordStart, first + second)
    }

    /// Opens a damaged copy and checks that exactly the whole records before the damage are kept, the tail is
    /// cut off the file, and appends continue right after the kept entries (also across another reopen).
    private func expectRecovered(
        _ damaged: [UInt8], at path: String, keeping kept: [EventLogEntry], cutAt offset: Int,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        try writeBytes(damaged, to: path)
        do {
            let log = try FileEventLog(path: path)
            defer { log.close() }
            #expect(log.recovery.recordCount == 2, sourceLocation: sourceLocation)
            #expect(log.recovery.cutOffset == (damaged.count > offset ? offset : nil), sourceLocation: sourceLocation)
            #expect(log.recovery.cutBytes == damaged.count - offset, sourceLocation: sourceLocation)
            #expect(try readBytes(path).count == offset, sourceLocation: sourceLocation)
            #expect(
                try log.read(after: nil, maxCount: 100, timeout: .zero).map(\.entry) == kept,
                sourceLocation: sourceLocation)
            #expect(
                try log.append(sampleBatch(1, from: 50, batch: 9)) == [.sequence(6)], sourceLocation: sourceLocation)
        }
        let reopened = try FileEventLog(path: path)
        defer { reopened.close() }
        #expect(reopened.recovery.cutBytes == 0, sourceLocation: sourceLocation)
        #expect(
            try reopened.read(after: nil, maxCount: 100, timeout: .zero).map(\.entry)
                == kept + sampleBatch(1, from: 50, batch: 9), sourceLocation: sourceLocation)
    }

    @Test("a last record cut at any byte is cut off at open; the records before it stay whole")
    func tornTailAtEveryOffset() throws {
        let directory = try TemporaryDirectory()
        let (bytes, start, kept) = try threeBatchLog(directory.file("source.log"))
        for length in start..<bytes.count {
            try expectRecovered(Array(bytes[0..<length]), at: directory.file("torn.log"), keeping: kept, cutAt: start)
        }
    }

    @Test("a tail of zeros (a size that reached the disk before the data did) is cut", arguments: [1, 8, 100])
    func zeroTail(count: Int) throws {
        let directory = try TemporaryDirectory()
        let (bytes, start, kept) = try threeBatchLog(directory.file("source.log"))
        let twoRecords = Array(bytes[0..<start])
        try expectRecovered(
            twoRecords + [UInt8](repeating: 0, count: count), at: directory.file("zeros.log"), keeping: kept,
            cutAt: start)
    }

    @Test("a changed byte anywhere in the last record (length, CRC or payload) ends the log before it")
    func corruptLastRecord() throws {
        let directory = try TemporaryDirectory()
        let (bytes, start, kept) = try threeBatchLog(directory.file("source.log"))
        for index in start..<bytes.count {
            for change: UInt8 in [0x01, 0x80, 0xFF] {
                var damaged = bytes
                damaged[index] ^= change
                try expectRecovered(damaged, at: directory.file("flipped.log"), keeping: kept, cutAt: start)
            }
        }
    }

    @Test("a log closed and reopened while another thread starts programs is never refused")
    func reopenWhileSpawning() throws {
        // A child between its fork and its exec shares the just-closed log's open file description and so its
        // lock for an instant; the suite's other tests start programs (redis-server, shells) at any moment.
        let directory = try TemporaryDirectory()
        let path = directory.file("events.log")
        let spawning = ManagedAtomicFlag()
        let spawner = Thread {
            while !spawning.isSet {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: "/bin/true")
                try? process.run()
                process.waitUntilExit()
            }
        }
        spawner.start()
        defer { spawning.set() }
        for round in 0..<300 {
            let log = try FileEventLog(path: path)
            #expect(try log.append(sampleBatch(1, from: round, batch: UInt64(round))).count == 1)
            log.close()
        }
        let reopened = try FileEventLog(path: path)
        defer { reopened.close() }
        #expect(try reopened.read(after: nil, maxCount: 1_000, timeout: .zero).count == 300)
    }

    @Test("a damaged record in the middle ends the log there (nothing after a bad record is trusted)")
    func corruptMiddleRecord() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("events.log")
        let log = try FileEventLog(path: path)
        _ = try log.append(sampleBatch(2, batch: 1))
        let secondStart = try readBytes(path).count
        _ = try log.append(sampleBatch(2, from: 2, batch: 2))
        _ = try log.append(sampleBatch(2, from: 4, batch: 3))
        log.close()
        var bytes = try readBytes(path)
        bytes[secondStart + 12] ^= 0x40
        try writeBytes(bytes, to: path)
        let reopened = try FileEventLog(path: path)
        defer { reopened.close() }
        #expect(reopened.recovery.recordCount == 1)
        #expect(reopened.recovery.cutOffset == secondStart)
        #expect(reopened.recovery.cutReason == "a record checksum mismatch")
        #expect(try reopened.read(after: nil, maxCount: 100, timeout: .zero).map(\.entry) == sampleBatch(2, batch: 1))
    }

    @Test("a file that is not an event log is refused and left untouched")
    func notAnEventLog() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("other.txt")
        for content in [
            Array("this is somebody's notes, not an event log at all".utf8), Array("abc".utf8),
            FileEventLog.header(firstSequence: 7).map { $0 ^ 1 },
        ] {
            try writeBytes(content, to: path)
            #expect(throws: EventLogError.self) { try FileEventLog(path: path) }
            #expect(try readBytes(path) == content)
        }
    }

    @Test("--events file:PATH opens a file log; a path that cannot be a file is a system error naming it")
    func openFromConfiguration() throws {
        let directory = try TemporaryDirectory()
        let log = try #require(try EventLogConfiguration(parsing: "file:" + directory.file("events.log")).open())
        defer { log.close() }
        #expect(log is FileEventLog)
        #expect(try EventLogConfiguration.none.open() == nil)
        let error = #expect(throws: EventLogError.self) { try FileEventLog(path: directory.path) }
        guard case .system("open", directory.path, EISDIR, _)? = error else {
            Issue.record("expected open to fail with EISDIR, got \(String(describing: error))")
            return
        }
    }

    @Test("a header torn while the file was created is completed", arguments: [0, 1, 8, 20, 31])
    func tornHeader(length: Int) throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("events.log")
        try writeBytes(Array(FileEventLog.header(firstSequence: 1)[0..<length]), to: path)
        let log = try FileEventLog(path: path)
        defer { log.close() }
        #expect(log.recovery.createdFile)
        #expect(try log.append(sampleBatch(1)) == [.sequence(1)])
    }

    @Test("a second open of the same file, in this process, fails and names this process")
    func lockedInProcess() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("events.log")
        let owner = try FileEventLog(path: path)
        #expect(throws: EventLogError.locked(path: path, pid: getpid())) { try FileEventLog(path: path) }
        _ = try owner.append(sampleBatch(1))
        owner.close()
        let next = try FileEventLog(path: path)
        defer { next.close() }
        #expect(try next.read(after: nil, maxCount: 10, timeout: .zero).count == 1)
    }

    static let python3: String? = {
        (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":").map { "\($0)/python3" }
            .first { FileManager.default.isExecutableFile(atPath: $0) }
    }()

    @Test(
        "a file locked by another process is refused with that process's PID",
        .enabled(if: python3 != nil, "python3 is needed to hold the lock from another process"))
    func lockedByAnotherProcess() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("events.log")
        try FileEventLog(path: path).close()
        // The child takes a POSIX record lock on the whole file, says so, and holds it until its stdin closes.
        let script = """
            import fcntl, os, sys
            fd = os.open(sys.argv[1], os.O_RDWR)
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            print("locked", flush=True)
            sys.stdin.read()
            """
        let child = Process()
        child.executableURL = URL(fileURLWithPath: try #require(Self.python3))
        child.arguments = ["-c", script, path]
        let input = Pipe()
        let output = Pipe()
        child.standardInput = input
        child.standardOutput = output
        try child.run()
        defer {
            try? input.fileHandleForWriting.close()
            child.waitUntilExit()
        }
        let said = String(decoding: output.fileHandleForReading.availableData, as: UTF8.self)
        try #require(said.hasPrefix("locked"), "the child did not take the lock: \(said)")
        #expect(throws: EventLogError.locked(path: path, pid: child.processIdentifier)) { try FileEventLog(path: path) }
        try input.fileHandleForWriting.close()
        child.waitUntilExit()
        let log = try FileEventLog(path: path)
        log.close()
    }

    @Test("a blocked read returns as soon as an append gives it an entry")
    func blockingReadWokenByAppend() async throws {
        let directory = try TemporaryDirectory()
        let log = try FileEventLog(path: directory.file("events.log"))
        defer { log.close() }
        _ = try log.append(sampleBatch(1, batch: 1))
        // The reader waits far longer than the test can take: only the append can end its wait with an entry.
        async let read = onThread { Result { try log.read(after: .sequence(1), maxCount: 10, timeout: .seconds(120)) } }
        let appended = try log.append(sampleBatch(2, from: 1, batch: 2))
        let records = try await read.get()
        #expect(!records.isEmpty)
        #expect(records.map(\.position) == Array(appended.prefix(records.count)))
        #expect(records.map(\.entry) == Array(sampleBatch(2, from: 1, batch: 2).prefix(records.count)))
    }

    @Test("appends from many threads get distinct, gap-free positions and each thread's batches stay in order")
    func concurrentAppends() async throws {
        let directory = try TemporaryDirectory()
        let log = try FileEventLog(path: directory.file("events.log"))
        defer { log.close() }
        let threads = 4
        let batchesEach = 25
        let results = await withTaskGroup(of: Result<[EventLogPosition], EventLogError>.self) { group in
            for thread in 0..<threads {
                group.addTask {
                    await onThread {
                        Result { () throws(EventLogError) -> [EventLogPosition] in
                            var positions: [EventLogPosition] = []
                            for batch in 0..<batchesEach {
                                positions += try log.append(
                                    sampleBatch(
                                        1 + batch % 3, from: batch, server: "thread-\(thread)", batch: UInt64(batch)))
                            }
                            return positions
                        }
                    }
                }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        let positions = try results.flatMap { try $0.get() }
        let total = threads * (0..<batchesEach).reduce(0) { $0 + 1 + $1 % 3 }
        #expect(Set(positions) == Set((1...UInt64(total)).map { EventLogPosition.sequence($0) }))
        let records = try log.read(after: nil, maxCount: total + 1, timeout: .zero)
        #expect(records.map(\.position) == (1...UInt64(total)).map { .sequence($0) })
        for thread in 0..<threads {
            let batches = records.filter { $0.entry.serverID == "thread-\(thread)" }.map(\.entry.batchNumber)
            #expect(batches == batches.sorted())
            #expect(Set(batches).count == batchesEach)
        }
    }

    @Test("a read copies a bounded slice of a large log; a batch over the record limit is refused")
    func largeRecords() throws {
        let directory = try TemporaryDirectory()
        let log = try FileEventLog(path: directory.file("events.log"))
        defer { log.close() }
        let large = String(repeating: "x", count: 7 << 20)
        for batch in 0..<4 {
            var entry = sampleEntry(batch, batch: UInt64(batch))
            entry.propositionID = large
            _ = try log.append([entry])
        }
        let first = try log.read(after: nil, maxCount: Int.max, timeout: .zero)
        #expect(first.count == 3) // 3 x 7 MiB starts within 16 MiB, the fourth does not
        let rest = try log.read(after: first.last?.position, maxCount: Int.max, timeout: .zero)
        #expect(rest.map(\.position) == [.sequence(4)])
        #expect(rest.first?.entry.propositionID == large)

        var tooLarge = sampleEntry(9)
        tooLarge.propositionID = String(repeating: "y", count: FileEventLog.maxRecordBytes)
        let error = #expect(throws: EventLogError.self) { try log.append([tooLarge]) }
        guard case .batchTooLarge(_, FileEventLog.maxRecordBytes)? = error else {
            Issue.record("expected batchTooLarge, got \(String(describing: error))")
            return
        }
        #expect(log.lastPosition == .sequence(4))
    }

    @Test("the recovery's description is a diagnostic line")
    func recoveryDescription() throws {
        let directory = try TemporaryDirectory()
        let (bytes, start, _) = try threeBatchLog(directory.file("source.log"))
        try writeBytes(Array(bytes.dropLast(3)), to: directory.file("torn.log"))
        let log = try FileEventLog(path: directory.file("torn.log"))
        defer { log.close() }
        #expect(
            log.recovery.description
                == "event log: 2 batches, 5 events; cut a torn tail of \(bytes.count - 3 - start) bytes at byte \(start) "
                + "(a record of \(bytes.count - start - 8) bytes cut short)")
    }

    @Test("a read with nothing to read returns empty at its timeout")
    func readTimesOut() throws {
        let directory = try TemporaryDirectory()
        let log = try FileEventLog(path: directory.file("events.log"))
        defer { log.close() }
        #expect(try log.read(after: nil, maxCount: 10, timeout: .milliseconds(20)).isEmpty)
        #expect(try log.read(after: nil, maxCount: 10, timeout: .seconds(-5)).isEmpty)
    }

    @Test("close wakes a blocked reader with closed, and later calls throw closed")
    func closeWakesReaders() async throws {
        let directory = try TemporaryDirectory()
        let log = try FileEventLog(path: directory.file("events.log"))
        async let read = onThread { Result { try log.read(after: nil, maxCount: 10, timeout: .seconds(120)) } }
        log.close()
        let result = await read
        #expect(throws: EventLogError.closed("the log is closed")) { try result.get() }
        #expect(throws: EventLogError.closed("the log is closed")) { try log.append(sampleBatch(1)) }
        #expect(throws: EventLogError.closed("the log is closed")) { try log.trim(before: .sequence(1)) }
        #expect(throws: EventLogError.closed("the log is closed")) { try log.endPosition() }
    }

    @Test("trim drops the records before the one holding the position; positions and appends carry on")
    func trim() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("events.log")
        let log = try FileEventLog(path: path)
        _ = try log.append(sampleBatch(2, batch: 1)) // 1, 2
        _ = try log.append(sampleBatch(3, from: 2, batch: 2)) // 3, 4, 5
        _ = try log.append(sampleBatch(2, from: 5, batch: 3)) // 6, 7
        let sizeBefore = try readBytes(path).count
        try log.trim(before: .sequence(1)) // nothing before 1
        #expect(try readBytes(path).count == sizeBefore)
        try log.trim(before: .sequence(4)) // keeps the batch holding 4
        #expect(try readBytes(path).count < sizeBefore)
        let kept = try log.read(after: nil, maxCount: 100, timeout: .zero)
        #expect(kept.map(\.position) == (3...7).map { EventLogPosition.sequence($0) })
        #expect(
            kept.map(\.entry)
                == sampleBatch(5, from: 2, batch: 2).enumerated().map { index, entry in
                    var entry = entry
                    entry.batchNumber = index < 3 ? 2 : 3
                    return entry
                })
        #expect(try log.append(sampleBatch(1, from: 7, batch: 4)) == [.sequence(8)])
        // The trimmed file is still this log's: a second open is refused, and a reopen sees the same positions.
        #expect(throws: EventLogError.locked(path: path, pid: getpid())) { try FileEventLog(path: path) }
        log.close()
        let reopened = try FileEventLog(path: path)
        #expect(
            try reopened.read(after: nil, maxCount: 100, timeout: .zero).map(\.position)
                == (3...8).map { .sequence($0) })
        try reopened.trim(before: .sequence(1000)) // everything
        #expect(try reopened.read(after: nil, maxCount: 100, timeout: .zero).isEmpty)
        #expect(try reopened.append(sampleBatch(1)) == [.sequence(9)])
        reopened.close()
        let last = try FileEventLog(path: path)
        defer { last.close() }
        #expect(try last.read(after: nil, maxCount: 100, timeout: .zero).map(\.position) == [.sequence(9)])
        #expect(!FileManager.default.fileExists(atPath: path + ".trim"))
    }
}

/// A flag one thread sets and another reads.
private final class ManagedAtomicFlag: @unchecked Sendable {
    // @unchecked: `value` is only touched under `lock`.
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.withLock { value } }
    func set() { lock.withLock { value = true } }
}
