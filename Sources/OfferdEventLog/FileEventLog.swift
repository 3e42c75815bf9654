/// What opening a file log found: the records kept and the torn tail cut off, if any. Its description is the
/// diagnostic line for the server's log.
public struct FileEventLogRecovery: Hashable, Sendable, CustomStringConvertible {
    /// Whether the file was new (missing, empty, or a header torn while it was being created).
    public var createdFile: Bool
    /// The whole records kept (one per appended batch) and the entries they hold.
    public var recordCount: Int
    public var entryCount: Int
    /// The bytes cut off the end (0 when the file ended with a whole record).
    public var cutBytes: Int
    /// The offset where the cut was made, and why; nil when nothing was cut.
    public var cutOffset: Int?
    public var cutReason: String?

    public var description: String {
        let kept = "\(recordCount) batches, \(entryCount) events"
        if createdFile { return "new event log" }
        guard let cutOffset else { return "event log: \(kept)" }
        return "event log: \(kept); cut a torn tail of \(cutBytes) bytes at byte \(cutOffset) (\(cutReason ?? "?"))"
    }
}

/// The embedded event log: an append-only file that one server alone writes (`--events file:PATH`).
///
/// ## Format
/// A 32-byte header (the magic `OFFEVLOG`, a format version, the sequence number of the first entry, and the
/// CRC32C of those), then one record per appended batch: the payload's length (u32, little-endian), the
/// CRC32C of the length's four bytes and the payload (u32), and the payload, which is ``EventLogCodec``'s
/// encoding of the batch. Entry positions are sequence numbers: the header's first sequence for the first
/// entry of the first record, counting up by one per entry across records.
///
/// ## Guarantees
/// - **Group commit**: an append is one `pwrite` of the whole record and one `fdatasync`; when it returns, the
///   batch survives a crash. A failed write is cut back off the file before the error is thrown; a failed
///   `fdatasync` closes the log for appends (after a failed sync Linux may have dropped the dirty pages, so
///   the file's content is unknown until it is reopened and checked).
/// - **Torn tail**: at open, the first record whose length runs past the end or past
///   ``maxRecordBytes``, or whose CRC is wrong, ends the log; it and everything after it are truncated away
///   and reported in ``recovery``. Only a batch that was never acknowledged can be torn, because an
///   acknowledged one was synced whole before anything was written after it.
/// - **One owner**: the file is locked at open (see `EventLogFile.lockExclusively`); a second open, in this
///   process or another, fails with ``EventLogError/locked(path:pid:)`` naming the holder's PID.
///
/// ## Reads
/// Records are indexed in memory (offset and first sequence number, 16 bytes per batch) and read back with
/// `pread`; ``read(after:maxCount:timeout:)`` waits on a condition variable that ``append(_:)`` signals.
/// Reads never hold the state lock during I/O.
///
/// ## Trim
/// ``trim(before:)`` rewrites the file: the records from the one holding `position` on are copied behind a
/// new header (whose first sequence keeps every kept entry's position), the copy is synced and renamed over
/// the log. It is a rewrite rather than a no-op because SPEC 9.1 wants the file trimmed after snapshot swaps;
/// it costs a copy of what is kept, which is at most two months of events. The copy is locked before the
/// rename, and an opener checks after locking that the path still names the file it locked, so the log never
/// has two owners across a trim. Appends wait for a trim; reads do not (they finish on the old file).
public final class FileEventLog: EventLog, @unchecked Sendable {
    // @unchecked: every mutable property is guarded by `state` (see each), and appends and trims are serialised
    // by `writeLock`.

    /// The largest payload a record may have: a batch whose encoding is longer is refused, and a length field
    /// above it marks a torn tail.
    public static let maxRecordBytes = 64 << 20

    static let headerSize = 32
    static let frameHeaderSize = 8
    private static let magic: [UInt8] = Array("OFFEVLOG".utf8)
    private static let formatVersion: UInt32 = 1

    /// The log's file path.
    public let path: String
    /// What opening the file found.
    public let recovery: FileEventLogRecovery

    /// Serialises appends, trims and close.
    private let writeLock = EventLogConditionLock()
    /// Guards everything below; readers wait on it for appends.
    private let state = EventLogConditionLock()
    private var file: EventLogFile?
    private var index: RecordIndex
    /// Set when the log can no longer append (closed, or a failed sync).
    private var stopped: EventLogError?

    /// Opens or creates the log at `path`, takes its lock, and cuts a torn tail.
    public init(path: String) throws(EventLogError) {
        self.path = path
        var attempts = 0
        var opened: EventLogFile
        while true {
            opened = try EventLogFile.openOrCreate(path)
            try Self.lockExclusively(opened)
            // A trim of the previous owner may have renamed a new file over the path between our open and our
            // lock: the lock we hold is then on a file that is no longer the log.
            if opened.isStillNamedByPath() { break }
            attempts += 1
            guard attempts < 10 else { throw EventLogError.locked(path: path, pid: nil) }
        }
        let (index, recovery) = try Self.recover(opened)
        file = opened
        self.index = index
        self.recovery = recovery
    }

    /// Opens the log at `path` for reading only, without its lock: the entries of the whole records it holds at
    /// this moment, while its server may go on appending (`offerd events export`, `snapshot build --events`).
    /// Appends and trims throw; a torn or half-written tail is left alone and not read; reads do not see what is
    /// appended after the open. A trim by the owner renames a new file over the path: this log keeps reading the
    /// file it opened.
    public init(readingOnly path: String) throws(EventLogError) {
        self.path = path
        let opened = try EventLogFile.openForReading(path)
        let (index, recovery) = try Self.recover(opened, readOnly: true)
        file = opened
        self.index = index
        self.recovery = recovery
        stopped = .closed("\(path) is open for reading only")
    }

    /// Takes the log's lock, waiting out a holder that cannot be named for up to two seconds.
    ///
    /// Such a holder is almost always a child process that another thread of this process is spawning: between
    /// its fork and its exec the child shares every open file description of ours, the just-closed log's
    /// included, and with it the description's lock, until the exec closes it (milliseconds at most). Refusing
    /// at once would make reopening a log fail at random while anything else in the process starts programs. A
    /// real owner is named by its PID at once and never waited for.
    private static func lockExclusively(_ file: EventLogFile) throws(EventLogError) {
        let giveUp = MonotonicInstant.after(.seconds(2))
        while true {
            do {
                return try file.lockExclusively()
            } catch {
                guard case .locked(_, nil) = error, MonotonicInstant.now() < giveUp else { throw error }
                pauseOneMillisecond()
            }
        }
    }

    // MARK: - EventLog

    public func append(_ batch: [EventLogEntry]) throws(EventLogError) -> [EventLogPosition] {
        guard !batch.isEmpty else { return [] }
        let payload = EventLogCodec.encode(batch)
        guard payload.count <= Self.maxRecordBytes else {
            throw EventLogError.batchTooLarge(bytes: payload.count, limit: Self.maxRecordBytes)
        }
        let record = Self.frame(payload)
        return try writeLock.withLock { () throws(EventLogError) -> [EventLogPosition] in
            let (file, end, first) = try state.withLock { () throws(EventLogError) -> (EventLogFile, Int, UInt64) in
                if let stopped { throw stopped }
                // `file` is nil only after `close`, which sets `stopped` first.
                return (self.file!, index.endOffset, index.nextSequence)
            }
            do throws(EventLogError) {
                try file.write(record, at: end)
            } catch {
                // Leave no partial record behind: the next append would follow it and be cut at the next open.
                do { try file.truncate(to: end) } catch {
                    stop(because: "a failed write could not be cut off (\(error))")
                }
                throw error
            }
            do throws(EventLogError) {
                try file.synchronizeData()
            } catch {
                stop(because: "fdatasync failed (\(error)); reopen the log to check what the file holds")
                throw error
            }
            state.withLock {
                index.add(offset: end, length: record.count, entries: batch.count)
                state.broadcast()
            }
            return (0..<UInt64(batch.count)).map { .sequence(first + $0) }
        }
    }

    public func endPosition() throws(EventLogError) -> EventLogPosition? {
        try state.withLock { () throws(EventLogError) -> EventLogPosition? in
            guard file != nil else { throw stopped ?? EventLogError.closed("the log is closed") }
            return index.lastSequence.map { .sequence($0) }
        }
    }

    public func read(after position: EventLogPosition?, maxCount: Int, timeout: Duration) throws(EventLogError)
        -> [EventLogRecord]
    {
        precondition(maxCount > 0, "maxCount must be positive")
        let after: UInt64
        switch position {
        case nil: after = 0
        case .sequence(let number)?: after = number
        case let other?: throw EventLogError.invalidPosition("\(other) is not a file log position")
        }
        let deadline = MonotonicInstant.after(timeout)
        let plan = try state.withLock { () throws(EventLogError) -> ReadPlan? in
            var timedOut = false
            while true {
                guard let file else { throw stopped ?? EventLogError.closed("the log is closed") }
                if index.hasEntries(after: after) { return index.plan(after: after, maxCount: maxCount, file: file) }
                if timedOut { return nil }
                timedOut = !state.wait(until: deadline)
            }
        }
        guard let plan else { return [] }
        let bytes = try plan.file.read(count: plan.endOffset - plan.startOffset, at: plan.startOffset)
        guard bytes.count == plan.endOffset - plan.startOffset else {
            throw EventLogError.system(
                call: "pread", path: path, errno: 0, message: "the file is shorter than its index (changed underneath?)"
            )
        }
        var records: [EventLogRecord] = []
        var offset = 0
        for (firstSequence, entryCount) in plan.records {
            let length = Int(Self.readUInt32(bytes, at: offset))
            let payload = bytes[(offset + Self.frameHeaderSize)..<(offset + Self.frameHeaderSize + length)]
            offset += Self.frameHeaderSize + length
            let entries: [EventLogEntry]
            do {
                entries = try EventLogCodec.decode(payload)
            } catch {
                throw EventLogError.malformedEntry(
                    at: "\(firstSequence)", reason: error.description,
                    resumeAfter: .sequence(firstSequence + UInt64(entryCount) - 1))
            }
            for (number, entry) in entries.enumerated() {
                let sequence = firstSequence + UInt64(number)
                guard sequence > after else { continue }
                records.append(EventLogRecord(position: .sequence(sequence), entry: entry))
                if records.count == maxCount { return records }
            }
        }
        return records
    }

    public func trim(before position: EventLogPosition) throws(EventLogError) {
        guard case .sequence(let keepFrom) = position else {
            throw EventLogError.invalidPosition("\(position) is not a file log position")
        }
        try writeLock.withLock { () throws(EventLogError) in
            let (file, current) = try state.withLock { () throws(EventLogError) -> (EventLogFile, RecordIndex) in
                if let stopped { throw stopped }
                // `file` is nil only after `close`, which sets `stopped` first.
                return (self.file!, index)
            }
            let keepIndex = current.firstKeptRecord(keepingFrom: keepFrom)
            guard keepIndex > 0 else { return }
            let newBase = keepIndex < current.recordCount ? current.firstSequences[keepIndex] : current.nextSequence
            let keptStart = keepIndex < current.recordCount ? current.offsets[keepIndex] : current.endOffset

            let temporaryPath = path + ".trim"
            let copy = try EventLogFile.openOrCreate(temporaryPath, truncate: true)
            do throws(EventLogError) {
                try copy.lockExclusively()
                try copy.write(Self.header(firstSequence: newBase), at: 0)
                var from = keptStart
                var to = Self.headerSize
                while from < current.endOffset {
                    let chunk = try file.read(count: min(4 << 20, current.endOffset - from), at: from)
                    guard !chunk.isEmpty else {
                        throw EventLogError.system(
                            call: "pread", path: path, errno: 0, message: "unexpected end of file")
                    }
                    try copy.write(chunk, at: to)
                    from += chunk.count
                    to += chunk.count
                }
                try copy.synchronizeData()
                try renameFile(from: temporaryPath, to: path)
            } catch {
                removeFileIfPresent(temporaryPath)
                throw error
            }
            state.withLock {
                self.file = copy
                index = current.dropping(records: keepIndex, newBase: newBase, shift: keptStart - Self.headerSize)
            }
            try synchronizeDirectory(containing: path)
        }
    }

    public func close() {
        writeLock.withLock {
            state.withLock {
                if stopped == nil { stopped = .closed("the log is closed") }
                file = nil
                state.broadcast()
            }
        }
    }

    /// The position of the last entry, nil when the log holds none.
    public var lastPosition: EventLogPosition? {
        state.withLock { index.lastSequence.map { .sequence($0) } }
    }

    // MARK: - Format

    private func stop(because reason: String) {
        state.withLock {
            if stopped == nil { stopped = .closed(reason) }
            state.broadcast()
        }
    }

    /// A record: length, CRC32C of the length's bytes and the payload, payload.
    static func frame(_ payload: [UInt8]) -> [UInt8] {
        var record: [UInt8] = []
        record.reserveCapacity(frameHeaderSize + payload.count)
        appendUInt32(UInt32(payload.count), to: &record)
        var crc = CRC32C()
        crc.update(record[0..<4])
        crc.update(payload)
        appendUInt32(crc.value, to: &record)
        record.append(contentsOf: payload)
        return record
    }

    static func header(firstSequence: UInt64) -> [UInt8] {
        var header = magic
        appendUInt32(formatVersion, to: &header)
        appendUInt32(UInt32(truncatingIfNeeded: firstSequence), to: &header)
        appendUInt32(UInt32(truncatingIfNeeded: firstSequence >> 32), to: &header)
        appendUInt32(CRC32C.checksum(header), to: &header)
        header.append(contentsOf: repeatElement(0, count: headerSize - header.count))
        return header
    }

    private static func appendUInt32(_ value: UInt32, to bytes: inout [UInt8]) {
        for shift in stride(from: 0, to: 32, by: 8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt32(shift))) }
    }

    private static func readUInt32(_ bytes: ArraySlice<UInt8>, at offset: Int) -> UInt32 {
        let start = bytes.startIndex + offset
        return (0..<4).reduce(0) { $0 | UInt32(bytes[start + $1]) << UInt32(8 * $1) }
    }

    private static func readUInt32(_ bytes: [UInt8], at offset: Int) -> UInt32 { readUInt32(bytes[...], at: offset) }

    /// Checks the header (writing it when the file is new), indexes the whole records, and cuts a torn tail.
    private static func recover(_ file: EventLogFile, readOnly: Bool = false) throws(EventLogError) -> (
        RecordIndex, FileEventLogRecovery
    ) {
        var size = try file.size()
        var created = false
        if size < headerSize && readOnly {
            throw EventLogError.notAnEventLog(path: file.path, reason: "\(size) bytes, shorter than a header")
        }
        if size < headerSize {
            // A new file, or one whose creation stopped inside the header: what is there must be the start of a
            // new log's header, or the file is someone else's and stays untouched.
            let fresh = header(firstSequence: 1)
            let existing = try file.read(count: size, at: 0)
            guard existing[...] == fresh[..<size] else {
                throw EventLogError.notAnEventLog(path: file.path, reason: "\(size) bytes, shorter than a header")
            }
            try file.write(fresh, at: 0)
            try file.synchronizeData()
            try synchronizeDirectory(containing: file.path)
            size = headerSize
            created = true
        }
        let head = try file.read(count: headerSize, at: 0)
        guard head.count == headerSize, Array(head[0..<8]) == magic else {
            throw EventLogError.notAnEventLog(path: file.path, reason: "no OFFEVLOG magic")
        }
        guard CRC32C.checksum(head[0..<20]) == readUInt32(head, at: 20) else {
            throw EventLogError.notAnEventLog(path: file.path, reason: "header checksum mismatch")
        }
        let version = readUInt32(head, at: 8)
        guard version == formatVersion else {
            throw EventLogError.notAnEventLog(path: file.path, reason: "format version \(version), this build reads 1")
        }
        let base = UInt64(readUInt32(head, at: 12)) | UInt64(readUInt32(head, at: 16)) << 32
        guard base > 0 else { throw EventLogError.notAnEventLog(path: file.path, reason: "first sequence 0") }
        var index = RecordIndex(baseSequence: base, endOffset: headerSize)
        var reader = SequentialReader(file: file, size: size)
        var cutReason: String?
        var offset = headerSize
        while offset < size {
            guard let frameHeader = try reader.bytes(at: offset, count: frameHeaderSize) else {
                cutReason = "a record header cut short"
                break
            }
            let length = Int(readUInt32(frameHeader, at: 0))
            guard length <= maxRecordBytes else {
                cutReason = "a record length of \(length) bytes"
                break
            }
            guard let payload = try reader.bytes(at: offset + frameHeaderSize, count: length) else {
                cutReason = "a record of \(length) bytes cut short"
                break
            }
            var crc = CRC32C()
            crc.update(frameHeader[frameHeader.startIndex..<(frameHeader.startIndex + 4)])
            crc.update(payload)
            guard crc.value == readUInt32(frameHeader, at: 4) else {
                cutReason = "a record checksum mismatch"
                break
            }
            let entries: Int
            do {
                entries = try EventLogCodec.entryCount(payload)
            } catch {
                // The checksum holds, so this is no torn write: the record was written by something else.
                throw EventLogError.notAnEventLog(path: file.path, reason: "record at byte \(offset): \(error)")
            }
            guard entries > 0 else {
                throw EventLogError.notAnEventLog(path: file.path, reason: "record at byte \(offset) holds no entry")
            }
            index.add(offset: offset, length: frameHeaderSize + length, entries: entries)
            offset += frameHeaderSize + length
        }
        var recovery = FileEventLogRecovery(
            createdFile: created, recordCount: index.recordCount,
            entryCount: Int(index.nextSequence - index.baseSequence), cutBytes: 0)
        if let cutReason, readOnly {
            // Possibly a record its owner is writing right now: not read, never cut from here.
            recovery.cutOffset = offset
            recovery.cutReason = cutReason
        } else if let cutReason {
            try file.truncate(to: offset)
            try file.synchronizeData()
            recovery.cutBytes = size - offset
            recovery.cutOffset = offset
            recovery.cutReason = cutReason
        }
        return (index, recovery)
    }
}

/// The in-memory index of a file log's records.
private struct RecordIndex {
    /// The sequence number of the first entry the file holds (or will hold).
    var baseSequence: UInt64
    /// Per record: its offset in the file and its first entry's sequence number.
    var offsets: [Int] = []
    var firstSequences: [UInt64] = []
    /// Where the next record goes.
    var endOffset: Int
    /// The sequence number the next entry gets.
    var nextSequence: UInt64

    init(baseSequence: UInt64, endOffset: Int) {
        self.baseSequence = baseSequence
        self.endOffset = endOffset
        nextSequence = baseSequence
    }

    var recordCount: Int { offsets.count }

    /// The sequence number of the last entry the file holds; nil when it holds none.
    var lastSequence: UInt64? { nextSequence > baseSequence ? nextSequence - 1 : nil }

    /// Whether an entry with a sequence number above `after` exists.
    func hasEntries(after: UInt64) -> Bool {
        nextSequence > baseSequence && after < nextSequence - 1
    }

    mutating func add(offset: Int, length: Int, entries: Int) {
        offsets.append(offset)
        firstSequences.append(nextSequence)
        endOffset = offset + length
        nextSequence += UInt64(entries)
    }

    /// The index of the record that holds sequence `number` (the first record when it is before them all).
    func record(holding number: UInt64) -> Int {
        // The last record whose first sequence is at most `number`.
        var low = 0
        var high = firstSequences.count
        while low < high {
            let middle = (low + high) / 2
            if firstSequences[middle] <= number { low = middle + 1 } else { high = middle }
        }
        return max(0, low - 1)
    }

    /// The first record a trim keeping `keepFrom` onwards must keep (`recordCount` when none).
    func firstKeptRecord(keepingFrom keepFrom: UInt64) -> Int {
        if keepFrom >= nextSequence { return recordCount }
        if keepFrom <= baseSequence { return 0 }
        return record(holding: keepFrom)
    }

    /// The most bytes one read copies out of the file (unless its first record alone is larger): a reader asking
    /// for a huge `maxCount` gets the log in slices instead of all of it in memory at once.
    static let maxReadBytes = 16 << 20

    /// The records to read for entries after `after`, up to about `maxCount` entries.
    func plan(after: UInt64, maxCount: Int, file: EventLogFile) -> ReadPlan {
        let first = record(holding: after + 1)
        var records: [(UInt64, Int)] = []
        var entries = 0
        var last = first
        while last < recordCount && entries < maxCount
            && (records.isEmpty || offsets[last] - offsets[first] < Self.maxReadBytes)
        {
            let count = Int((last + 1 < recordCount ? firstSequences[last + 1] : nextSequence) - firstSequences[last])
            records.append((firstSequences[last], count))
            entries += count - Int(max(0, Int64(after) + 1 - Int64(firstSequences[last])))
            last += 1
        }
        let end = last < recordCount ? offsets[last] : endOffset
        return ReadPlan(file: file, startOffset: offsets[first], endOffset: end, records: records)
    }

    /// The index after a trim dropped the first `count` records and moved the rest `shift` bytes down.
    func dropping(records count: Int, newBase: UInt64, shift: Int) -> RecordIndex {
        var trimmed = RecordIndex(baseSequence: newBase, endOffset: endOffset - shift)
        trimmed.offsets = offsets.dropFirst(count).map { $0 - shift }
        trimmed.firstSequences = Array(firstSequences.dropFirst(count))
        trimmed.nextSequence = nextSequence
        return trimmed
    }
}

/// What a read copies out under the lock, to do its I/O without it.
private struct ReadPlan {
    var file: EventLogFile
    var startOffset: Int
    var endOffset: Int
    /// Per record: its first sequence number and entry count.
    var records: [(UInt64, Int)]
}

/// Reads a file front to back through a 1 MiB buffer, for the scan at open.
private struct SequentialReader {
    let file: EventLogFile
    let size: Int
    var buffer: [UInt8] = []
    var bufferOffset = 0

    init(file: EventLogFile, size: Int) {
        self.file = file
        self.size = size
    }

    /// `count` bytes at `offset`, or nil when the file ends first.
    mutating func bytes(at offset: Int, count: Int) throws(EventLogError) -> ArraySlice<UInt8>? {
        guard offset + count <= size else { return nil }
        if offset < bufferOffset || offset + count > bufferOffset + buffer.count {
            buffer = try file.read(count: max(count, min(1 << 20, size - offset)), at: offset)
            bufferOffset = offset
            guard buffer.count >= count else { return nil }
        }
        let start = offset - bufferOffset
        return buffer[start..<(start + count)]
    }
}
