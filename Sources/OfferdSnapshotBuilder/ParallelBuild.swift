import Atomics
import Dispatch
import Foundation
import OfferdCore
import OfferdSnapshot

/// The builder on several cores: the calling thread reads the source in batches of whole lines and writes the
/// snapshot; worker threads parse batches into record bytes meanwhile.
///
/// Everything that depends on order stays on the calling thread and runs in file order: the string table, the
/// identity index and duplicate check, the output and its checksum, the error. So the file is byte for byte the
/// one the single-threaded path writes, and a build stops at the same first bad line with the same message:
/// a worker stops at its batch's first bad line, and the writer reaches that line only after every earlier line
/// (of this batch and all earlier ones) was written and checked, a duplicate among them winning.
///
/// Workers intern names into a batch-local string table (indices in first-use order within the batch); the
/// writer joins each line's new local strings to the global table just before the line (as the single-threaded
/// path would have interned them while parsing it) and rewrites the record's string indices. Lines the fast path
/// does not take are parsed by the general parser in the worker and encoded by the writer.
enum ParallelBuild {
    /// Batches read ahead per worker: enough that a worker never waits for the reader, few enough to bound memory
    /// (each batch holds its source bytes and about as many record bytes).
    static let batchesInFlightPerWorker = 2

    /// Batches start from a copy of the global string table while it has at most this many strings. The writer
    /// copies it for every batch (see ``StringTableBuilder/detach()``): a few hundred kilobytes at most, where a
    /// table of millions of distinct names would cost more to copy than the remapping it saves.
    static let seedLimit = 1 << 12

    /// Lines whose identity slots are read ahead together.
    static let warmAhead = 32

    static func run(
        source: PosixFile, path: String, state: inout BuildState, options: SnapshotBuilder.BuildOptions,
        progress: ((Int) -> Void)?
    ) throws(SnapshotBuildError) {
        let workerCount = max(1, options.workerCount)
        let mapping = options.mapInput ? MappedSource.map(source) : nil
        let queue = BatchQueue()
        let cancelled = ManagedAtomic(false)
        let stopped = DispatchSemaphore(value: 0)
        let useFastPath = options.useFastPath
        for _ in 0..<workerCount {
            let worker = Thread {
                var encoder = FastRecordEncoder()
                while let batch = queue.pop() {
                    parse(batch, encoder: &encoder, useFastPath: useFastPath, cancelled: cancelled)
                    batch.parsed.signal()
                }
                stopped.signal()
            }
            worker.name = "snapshot-build"
            worker.start()
        }
        // On success and on every error: stop the workers and wait for them, so none outlives the build.
        defer {
            cancelled.store(true, ordering: .relaxed)
            for _ in 0..<workerCount { queue.push(nil) }
            for _ in 0..<workerCount { stopped.wait() }
            // Workers may have been parsing mapped lines until just now (after an error, say).
            withExtendedLifetime(mapping) {}
        }

        if let mapping {
            // Generated profiles take about 600 source bytes per identity; a smaller guess only means growing later.
            state.reserveIdentities(mapping.bytes.count / 512)
        }
        var reader = BatchReader(file: source, path: path, batchLength: options.batchLength, mapping: mapping)
        var inFlight: [BuildBatch] = []
        var spare: [BuildBatch] = []
        let maximumInFlight = workerCount * batchesInFlightPerWorker + 1
        var reachedEnd = false
        var lineTooLong = false
        var linesBefore = 0
        var localToGlobal: [UInt32] = []
        while true {
            while !reachedEnd && inFlight.count < maximumInFlight {
                let batch = spare.popLast() ?? BuildBatch(batchLength: options.batchLength)
                batch.reset()
                if state.strings.count <= options.stringSeedLimit {
                    // The worker starts from the strings known now, whose indices are final: usually a batch
                    // brings no new string, and its records need no rewriting.
                    batch.strings = state.strings
                    batch.strings.renewToken()
                    batch.strings.detach()
                    batch.seededStrings = batch.strings.count
                }
                switch try reader.fill(batch) {
                case .batch:
                    inFlight.append(batch)
                    queue.push(batch)
                case .end:
                    reachedEnd = true
                    spare.append(batch)
                case .lineTooLong:
                    reachedEnd = true
                    lineTooLong = true
                }
            }
            guard !inFlight.isEmpty else { break }
            let batch = inFlight.removeFirst()
            batch.parsed.wait()
            try write(batch, linesBefore: linesBefore, state: &state, localToGlobal: &localToGlobal, progress: progress)
            // The records were written straight from the batch: done with it (and its part of the mapping).
            try state.flush()
            mapping?.release(batch.sourceRange)
            linesBefore += batch.lineCount
            spare.append(batch)
        }
        // Only now: every line before the overlong one was written and checked first.
        if lineTooLong { throw .lineTooLong(line: linesBefore + 1, limit: SnapshotBuilder.maximumLineLength) }
    }

    /// Parses the lines of `batch` (on a worker): fast-path records into `batch.records`, other lines through the
    /// general parser, stopping at the first invalid line.
    static func parse(
        _ batch: BuildBatch, encoder: inout FastRecordEncoder, useFastPath: Bool, cancelled: ManagedAtomic<Bool>
    ) {
        let input = batch.source
        let end = input.count
        var position = 0
        var lineIndex = 0
        while position < end, !cancelled.load(ordering: .relaxed) {
            let newline = findNewline(in: input, from: position) ?? end
            let line = UnsafeBufferPointer(rebasing: input[position..<newline])
            defer {
                lineIndex += 1
                position = newline + 1
            }
            if SnapshotBuilder.isBlank(line) { continue }
            let recordStart = batch.records.count
            if useFastPath, encoder.encode(line: line, strings: &batch.strings, into: batch.records) {
                let identitiesStart = batch.identities.count
                batch.identities.append(contentsOf: encoder.identities)
                batch.lines.append(
                    BatchLine(
                        kind: .fast, lineIndex: lineIndex, lineStart: position, lineLength: line.count,
                        recordStart: recordStart, recordLength: batch.records.count - recordStart,
                        identitiesStart: identitiesStart, identitiesEnd: batch.identities.count,
                        stringsEnd: batch.strings.count, profileIndex: 0))
                continue
            }
            do {
                batch.profiles.append(try ProfileSourceParser.parse(line: Array(line)))
                batch.lines.append(
                    BatchLine(
                        kind: .general, lineIndex: lineIndex, lineStart: position, lineLength: line.count,
                        recordStart: 0, recordLength: 0, identitiesStart: batch.identities.count,
                        identitiesEnd: batch.identities.count,
                        stringsEnd: batch.strings.count, profileIndex: batch.profiles.count - 1))
            } catch {
                batch.failure = error.message
                batch.lines.append(
                    BatchLine(
                        kind: .invalid, lineIndex: lineIndex, lineStart: position, lineLength: line.count,
                        recordStart: 0, recordLength: 0, identitiesStart: batch.identities.count,
                        identitiesEnd: batch.identities.count,
                        stringsEnd: batch.strings.count, profileIndex: 0))
                // The writer stops here: later lines of this batch (and later batches) do not matter.
                break
            }
        }
        batch.lineCount = lineIndex
    }

    /// Writes the lines of a parsed batch (on the calling thread, in file order); `linesBefore` is the number of
    /// source lines in all earlier batches.
    static func write(
        _ batch: BuildBatch, linesBefore: Int, state: inout BuildState, localToGlobal: inout [UInt32],
        progress: ((Int) -> Void)?
    ) throws(SnapshotBuildError) {
        // Local indices below `seeded` are global already; the others map through `localToGlobal` (from
        // `seeded` on). Records are rewritten only once some local string got another global index.
        let seeded = batch.seededStrings
        localToGlobal.removeAll(keepingCapacity: true)
        var indicesAreGlobal = true
        var warmedLines = 0
        for (position, entry) in batch.lines.enumerated() {
            if position == warmedLines {
                // The identity slots of the next lines, read together (a few at a time, so they stay cached).
                warmedLines = min(batch.lines.count, position + warmAhead)
                let last = batch.lines[warmedLines - 1]
                let identities = batch.identities[
                    entry.identitiesStart..<max(entry.identitiesStart, last.identitiesEnd)]
                state.warmSink &+= state.firstIdentityWithHash.warm(identities.lazy.map(\.hash))
            }
            let line = linesBefore + entry.lineIndex + 1
            // The strings this line introduced, in the order it did: the same global indices as the
            // single-threaded path gives.
            while seeded + localToGlobal.count < entry.stringsEnd {
                let local = seeded + localToGlobal.count
                let global = state.strings.intern(local, of: batch.strings)
                if global != UInt32(local) { indicesAreGlobal = false }
                localToGlobal.append(global)
            }
            switch entry.kind {
            case .fast:
                let record = batch.records.base + entry.recordStart
                if !indicesAreGlobal { remapStrings(in: record, seeded: seeded, localToGlobal: localToGlobal) }
                try state.addEncoded(
                    UnsafeBufferPointer(start: record, count: entry.recordLength),
                    identities: batch.identities[entry.identitiesStart..<entry.identitiesEnd],
                    lineBytes: UnsafeBufferPointer(
                        rebasing: batch.source[entry.lineStart..<(entry.lineStart + entry.lineLength)]),
                    line: line)
            case .general:
                try state.add(batch.profiles[entry.profileIndex], line: line)
            case .invalid:
                throw .invalidProfile(line: line, reason: batch.failure)
            }
            if let progress, state.profileCount % 100_000 == 0 { progress(state.profileCount) }
        }
    }

    /// Rewrites the batch-local string indices of a fast-path record (audience and capping entries, attribute
    /// keys) to global ones: those below `seeded` are kept, the others are `localToGlobal[index - seeded]`.
    static func remapStrings(in record: UnsafeMutablePointer<UInt8>, seeded: Int, localToGlobal: [UInt32]) {
        typealias Field = SnapshotFormat.Record
        let raw = UnsafeMutableRawPointer(record)
        func load(_ offset: Int) -> Int {
            Int(UInt32(littleEndian: UnsafeRawPointer(raw + offset).loadUnaligned(as: UInt32.self)))
        }
        func remap(at offset: Int) {
            let local = load(offset)
            guard local >= seeded else { return }
            // Indexing checks the local index: the worker wrote it, so it is in range.
            let global = localToGlobal[local - seeded]
            (raw + offset).storeBytes(of: global.littleEndian, as: UInt32.self)
        }
        let audiencesOffset = load(Field.audiencesOffset)
        for entry in 0..<load(Field.audienceCount) {
            remap(at: audiencesOffset + entry * Field.audienceEntryLength + 8)
        }
        let cappingOffset = load(Field.cappingOffset)
        for entry in 0..<load(Field.cappingCount) {
            remap(at: cappingOffset + entry * Field.cappingEntryLength + 8)
        }
        // Every attribute node has one directory entry, and its key index follows its parent offset.
        let directoryOffset = load(Field.directoryOffset)
        let nodesOffset = load(Field.nodesOffset)
        for entry in 0..<load(Field.attributeCount) {
            let node = load(directoryOffset + entry * Field.directoryEntryLength + 8)
            remap(at: nodesOffset + node + 4)
        }
    }
}

/// One line of a parsed batch, as the writer needs it.
struct BatchLine {
    enum Kind {
        /// Encoded by the fast path: a record in the batch's `records`, identities in its `identities`.
        case fast
        /// Parsed by the general parser: `profiles[profileIndex]`, encoded by the writer.
        case general
        /// Refused: the batch's `failure` says why; nothing after it was parsed.
        case invalid
    }

    var kind: Kind
    /// 0-based, counting blank lines.
    var lineIndex: Int
    var lineStart: Int
    var lineLength: Int
    var recordStart: Int
    var recordLength: Int
    /// The line's identities in the batch's `identities` (an empty range, in order, for other kinds).
    var identitiesStart: Int
    var identitiesEnd: Int
    /// The batch-local strings interned up to and including this line.
    var stringsEnd: Int
    var profileIndex: Int
}

/// A piece of the source and what a worker made of it.
///
/// `@unchecked Sendable`: a batch is used by one thread at a time, handed over through ``BatchQueue`` (reader
/// to worker) and `parsed` (worker to writer), whose locks and semaphores order the memory accesses.
final class BuildBatch: @unchecked Sendable {
    /// The batch's whole lines (the last one unterminated only at the end of the file): ``input``'s bytes, or a
    /// part of the mapped source.
    var source = UnsafeBufferPointer<UInt8>(start: nil, count: 0)
    /// Where ``source`` lies in the source file (mapped input only; empty otherwise).
    var sourceRange = 0..<0
    /// The lines read from the source (when it is not mapped).
    let input: ByteScratch
    let records: ByteScratch
    var strings = StringTableBuilder()
    /// How many of `strings` were copied from the global table (their indices are global).
    var seededStrings = 0
    var lines: [BatchLine] = []
    var identities: [FastIdentity] = []
    var profiles: [InMemoryProfile] = []
    var failure = ""
    /// Source lines in the batch (blank ones included); set by the worker.
    var lineCount = 0
    let parsed = DispatchSemaphore(value: 0)

    init(batchLength: Int) {
        input = ByteScratch(capacity: batchLength + 4096)
        // Records are about 1.3x their source line (generated profiles).
        records = ByteScratch(capacity: batchLength + batchLength / 2)
    }

    /// Empties the batch for the next piece, keeping its buffers.
    func reset() {
        input.removeAll()
        source = UnsafeBufferPointer(start: nil, count: 0)
        sourceRange = 0..<0
        records.removeAll()
        strings = StringTableBuilder()
        seededStrings = 0
        lines.removeAll(keepingCapacity: true)
        identities.removeAll(keepingCapacity: true)
        profiles.removeAll(keepingCapacity: true)
        failure = ""
        lineCount = 0
    }
}

/// Batches waiting for a worker; nil tells a worker to stop.
final class BatchQueue: @unchecked Sendable {
    // `@unchecked Sendable`: `waiting` is only touched under `lock`.
    private let lock = NSLock()
    private var waiting: [BuildBatch?] = []
    private var head = 0
    private let available = DispatchSemaphore(value: 0)

    func push(_ batch: BuildBatch?) {
        lock.lock()
        waiting.append(batch)
        lock.unlock()
        available.signal()
    }

    /// The oldest waiting batch, blocking until there is one; nil means stop.
    func pop() -> BuildBatch? {
        available.wait()
        lock.lock()
        defer { lock.unlock() }
        let batch = waiting[head]
        waiting[head] = nil
        head += 1
        if head == waiting.count {
            waiting.removeAll(keepingCapacity: true)
            head = 0
        }
        return batch
    }
}

/// Cuts the source into batches of whole lines: views of the mapped source, or read into the batch's buffer.
struct BatchReader {
    enum Fill {
        /// The batch holds one or more lines.
        case batch
        /// No more input; the batch is empty.
        case end
        /// The next line is longer than ``SnapshotBuilder/maximumLineLength``.
        case lineTooLong
    }

    let file: PosixFile
    let path: String
    let batchLength: Int
    /// The source mapped, or nil: read it.
    let mapping: MappedSource?
    /// How far the mapped source was cut into batches.
    private var mappedPosition = 0
    /// The unfinished line at the end of the last read, which starts the next batch.
    private let carry = ByteScratch(capacity: 1 << 16)
    private var atEndOfFile = false

    init(file: PosixFile, path: String, batchLength: Int, mapping: MappedSource? = nil) {
        self.file = file
        self.path = path
        self.batchLength = max(1, batchLength)
        self.mapping = mapping
    }

    /// Points `batch.source` (empty) at the next whole lines, about ``batchLength`` bytes.
    mutating func fill(_ batch: BuildBatch) throws(SnapshotBuildError) -> Fill {
        if let mapping { return fill(batch, from: mapping.bytes) }
        let fill = try read(batch)
        batch.source = batch.input.bytes
        return fill
    }

    /// ``fill(_:)`` from the mapped source: a view, no copy. The same batches as reading would give, except that a
    /// line is too long exactly when it is longer than ``SnapshotBuilder/maximumLineLength``.
    private mutating func fill(_ batch: BuildBatch, from source: UnsafeBufferPointer<UInt8>) -> Fill {
        let start = mappedPosition
        let count = source.count
        guard start < count else { return .end }
        let end: Int
        if count - start <= batchLength {
            end = count
        } else if let newline = findLastNewline(in: source, from: start, to: start + batchLength) {
            end = newline + 1
        } else {
            // One line longer than a batch: it ends at its newline, or at the end of the source.
            let limit = min(count, start + SnapshotBuilder.maximumLineLength + 1)
            let searchFrom = start + batchLength
            if let newline = findNewline(in: UnsafeBufferPointer(rebasing: source[..<limit]), from: searchFrom) {
                end = newline + 1
            } else if limit == count, count - start <= SnapshotBuilder.maximumLineLength {
                end = count
            } else {
                return .lineTooLong
            }
        }
        mappedPosition = end
        batch.source = UnsafeBufferPointer(rebasing: source[start..<end])
        batch.sourceRange = start..<end
        return .batch
    }

    /// ``fill(_:)`` by reading into `batch.input`.
    private mutating func read(_ batch: BuildBatch) throws(SnapshotBuildError) -> Fill {
        let input = batch.input
        input.append(carry.bytes)
        carry.removeAll()
        var searched = 0
        while true {
            while !atEndOfFile && input.count - searched < batchLength {
                let got: Int
                do {
                    got = try input.appendRead(from: file, upTo: batchLength - (input.count - searched))
                } catch {
                    throw .io(path: path, reason: error.description)
                }
                if got == 0 { atEndOfFile = true }
            }
            if atEndOfFile { return input.isEmpty ? .end : .batch }
            if let newline = findLastNewline(in: input.base, from: searched, to: input.count) {
                carry.append(UnsafeBufferPointer(start: input.base + newline + 1, count: input.count - newline - 1))
                input.truncate(to: newline + 1)
                return .batch
            }
            // One line longer than a batch so far: read on, up to the line length limit.
            guard input.count <= SnapshotBuilder.maximumLineLength else { return .lineTooLong }
            searched = input.count
        }
    }
}
