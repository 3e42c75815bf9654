// OfferdSnapshotBuilder: the profile snapshot's build path, on top of the read path (OfferdSnapshot). The source
// parser and writer (SPEC 5.1), the two record encoders (the general path, RecordEncoder.swift, and the fast path,
// FastRecordEncoder.swift, both writing through RecordLayout.swift), the single- and multi-threaded builders, and
// synthetic profiles for tests and benchmarks. The command line and tools depend on it; the server does not.
//
// Unsafe code (raw pointers, `withUnsafe*`, memchr, memcmp, madvise and the other C calls that take
// pointers) is in exactly these files, which `-strict-memory-safety` confirms; it is most of the module, because the
// builder's hot loops work on raw bytes (each file says why). ProfileSourceParser.swift, ProfileSourceWriter.swift
// and SyntheticProfiles.swift hold none.
// - SnapshotBuilder.swift (this file): lines as views of the read buffer, records written from raw memory, the
//   index filled in place.
// - ParallelBuild.swift: batches as views of the source, records rewritten in place.
// - FastRecordEncoder.swift: the line parsed in place, records written straight into the output.
// - RecordEncoder.swift: the string table's byte cache; the general path's record written through RecordLayout.
// - RecordLayout.swift: the record header and sections written at a raw address.
// - ByteScratch.swift: the hot loops' byte buffer.
// - BuildSupport.swift: newline search, reads into a ByteScratch, the duplicate check's table.
// - MappedSource.swift: the source mapped under a read lease, pages released behind the parser.
// - UnsafeWriteIO.swift: creating, writing and syncing files; streaming XXH3.

import OfferdCore
import OfferdSnapshot

/// Why `snapshot build` failed. The output path is never created or replaced on failure.
public enum SnapshotBuildError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Line `line` (1-based) of the source is not a valid profile.
    case invalidProfile(line: Int, reason: String)
    /// `identity` appears on line `firstLine` and again on line `line` (namespaces folded).
    case duplicateIdentity(identity: Identity, firstLine: Int, line: Int)
    /// A line longer than ``SnapshotBuilder/maximumLineLength``.
    case lineTooLong(line: Int, limit: Int)
    /// The `--version` string is empty or too long.
    case invalidVersion(String)
    /// Reading the input or writing the output failed.
    case io(path: String, reason: String)

    public var description: String {
        switch self {
        case .invalidProfile(let line, let reason):
            "line \(line): \(reason)"
        case .duplicateIdentity(let identity, let firstLine, let line):
            "line \(line): duplicate identity \(identity) (first on line \(firstLine))"
        case .lineTooLong(let line, let limit):
            "line \(line): longer than \(limit) bytes"
        case .invalidVersion(let reason):
            "invalid version: \(reason)"
        case .io(let path, let reason):
            "\(path): \(reason)"
        }
    }
}

/// What a successful build wrote.
public struct SnapshotBuildSummary: Sendable, Equatable {
    public var path: String
    public var version: String
    public var createdAt: Int64
    public var profileCount: Int
    public var identityCount: Int
    public var fileSize: Int
    public var checksum: UInt64
}

/// Turns a JSON Lines profile source (SPEC 5.1) into a binary snapshot (SPEC 5.2).
///
/// The source is streamed in chunks and never held whole; memory grows with
/// the number of profiles (identity hashes for the index and the duplicate
/// check, the string table of distinct names) but not with the file. The
/// output is written to a temporary file beside `output` and renamed over it
/// only when complete, so a failed build leaves no file and never damages a
/// snapshot already at `output`.
public enum SnapshotBuilder {
    /// The longest profile line accepted; checked before the line is buffered further.
    public static let maximumLineLength = 64 << 20
    /// Bytes read from the source per `read` call.
    static let chunkLength = 1 << 20
    /// Record bytes buffered before they are written out.
    static let writeBufferLength = 4 << 20

    /// Builds the snapshot at `output` from the profile source at `input`.
    ///
    /// - Parameters:
    ///   - version: the snapshot version string; nil means a content hash (16 hex digits).
    ///   - progress: called with the number of profiles read so far, every 100,000 profiles and at the end.
    ///
    /// `mapInput` parses a regular source file through a read-only memory mapping under a read lease where one can be
    /// had (see ``MappedSource``), instead of `read()`: less CPU; false always reads.
    public static func build(
        input: String, output: String, version: String?, progress: ((Int) -> Void)?, mapInput: Bool = true,
        folded: FoldedState = FoldedState()
    ) throws(SnapshotBuildError) -> SnapshotBuildSummary {
        var options = BuildOptions()
        options.mapInput = mapInput
        options.folded = folded
        return try build(input: input, output: output, version: version, progress: progress, options: options)
    }

    /// ``build(input:output:version:progress:)``, with the fast line parser switchable off (tests compare).
    static func build(
        input: String, output: String, version: String?, progress: ((Int) -> Void)?, useFastPath: Bool
    ) throws(SnapshotBuildError) -> SnapshotBuildSummary {
        try build(
            input: input, output: output, version: version, progress: progress,
            options: BuildOptions(useFastPath: useFastPath))
    }

    /// How a build runs; the defaults are what `offerd snapshot build` uses, the rest is for tests and
    /// measurements. Every choice writes the same file for the same input (the tests check it).
    struct BuildOptions {
        /// Whether lines go through ``FastRecordEncoder`` first (off: every line takes the general path).
        var useFastPath = true
        /// Threads that parse batches of lines while the calling thread reads and writes; 0 parses on the calling
        /// thread, line by line.
        var workerCount = defaultWorkerCount
        /// Bytes of source per batch handed to a worker (whole lines; a longer line makes a longer batch).
        var batchLength = 4 << 20
        /// Batches start from a copy of the global string table while it has at most this many strings.
        var stringSeedLimit = ParallelBuild.seedLimit
        /// The header's creation time; nil means now.
        var createdAt: Int64? = nil
        /// Whether a regular source file is mapped and parsed in place, under a read lease so that a writer or a
        /// truncation elsewhere waits for the mapping to move to a private copy (see ``MappedSource``); off, or
        /// where no lease can be had: `read()`, as for a pipe. Only the parallel build maps. Saves the kernel's
        /// copy, about a tenth of the build's CPU.
        var mapInput = true
        /// Whether the page cache of a file at the output path is dropped while the build runs (see
        /// ``ReplacedFileEviction``) rather than inside the final rename.
        var evictReplacedFile = true
        /// The event log folded into the snapshot (SPEC 9.6); written as the folded-state section unless empty.
        var folded = FoldedState()
    }

    /// Workers for this process: one per core it may run on (the calling thread's reading and writing is light
    /// beside them), none when it has a single core (a pipeline there only adds switching).
    static var defaultWorkerCount: Int {
        let cores = usableProcessorCount()
        return cores <= 1 ? 0 : min(8, cores)
    }

    static func build(
        input: String, output: String, version: String?, progress: ((Int) -> Void)?, options: BuildOptions
    ) throws(SnapshotBuildError) -> SnapshotBuildSummary {
        if let version {
            guard !version.isEmpty else { throw .invalidVersion("empty") }
            guard version.utf8.count <= SnapshotFormat.maximumVersionLength else {
                throw .invalidVersion("longer than \(SnapshotFormat.maximumVersionLength) bytes")
            }
        }
        let source: PosixFile
        do {
            source = try PosixFile.openForReading(input)
        } catch {
            throw .io(path: input, reason: error.description)
        }
        defer { try? source.close() }
        if let status = try? FileStatus.of(source), status.isDirectory {
            throw .io(path: input, reason: "is a directory")
        }

        let replacedFileEviction = options.evictReplacedFile ? ReplacedFileEviction.start(replacing: output) : nil
        defer { replacedFileEviction?.finish() }
        let temporaryPath = temporaryName(for: output)
        let destination: PosixFile
        do {
            destination = try PosixFile.createExclusive(temporaryPath)
        } catch {
            throw .io(path: temporaryPath, reason: error.description)
        }
        var succeeded = false
        let backgroundSync = BackgroundSync(file: destination)
        defer {
            if !succeeded {
                try? backgroundSync.stop()
                try? destination.close()
                removeFileIfPresent(temporaryPath)
            }
        }

        var state = BuildState(
            destination: destination, destinationPath: temporaryPath, backgroundSync: backgroundSync,
            replacedFileEviction: replacedFileEviction)
        try state.writeHeaderPlaceholder()
        if options.workerCount > 0 {
            try ParallelBuild.run(
                source: source, path: input, state: &state, options: options, progress: progress)
        } else {
            var reader = LineReader(file: source, path: input)
            var fastEncoder = FastRecordEncoder()
            while let line = try reader.nextLine() {
                if isBlank(line.bytes) { continue }
                if options.useFastPath, try state.addFast(line.bytes, encoder: &fastEncoder, line: line.number) {
                    if let progress, state.profileCount % 100_000 == 0 { progress(state.profileCount) }
                    continue
                }
                try state.addGeneral(line.bytes, line: line.number)
                if let progress, state.profileCount % 100_000 == 0 { progress(state.profileCount) }
            }
        }
        let summary = try state.finish(
            version: version, output: output, createdAt: options.createdAt, folded: options.folded)
        do {
            try backgroundSync.stop()
        } catch {
            throw .io(path: temporaryPath, reason: error.description)
        }
        replacedFileEviction?.finish()
        do {
            try destination.close()
            try renameFile(from: temporaryPath, to: output)
        } catch {
            throw .io(path: output, reason: error.description)
        }
        succeeded = true
        synchronizeDirectory(directoryName(of: output))
        progress?(summary.profileCount)
        return summary
    }

    /// A hidden name in the output's directory, so the final rename stays on one file system.
    static func temporaryName(for output: String) -> String {
        let directory = directoryName(of: output)
        let base = output.split(separator: "/", omittingEmptySubsequences: false).last.map(String.init) ?? output
        let unique = UInt64.random(in: 0...UInt64.max)
        let prefix = directory == "." && !output.hasPrefix("./") ? "" : directory + "/"
        return "\(prefix).\(base).tmp-\(currentProcessID())-\(String(unique, radix: 16))"
    }

    static func directoryName(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        if slash == path.startIndex { return "/" }
        return String(path[..<slash])
    }

    static func isBlank(_ line: UnsafeBufferPointer<UInt8>) -> Bool {
        line.allSatisfy { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }
    }
}

/// Splits a file into lines, reading it in fixed-size chunks.
struct LineReader {
    struct Line {
        var number: Int
        /// The line without its `\n`, inside the reader's buffer: valid until the next ``LineReader/nextLine()``.
        var bytes: UnsafeBufferPointer<UInt8>
    }

    private let file: PosixFile
    private let path: String
    private let buffer = ByteScratch(capacity: SnapshotBuilder.chunkLength)
    private var start = 0
    private var atEndOfFile = false
    private var lineNumber = 0

    init(file: PosixFile, path: String) {
        self.file = file
        self.path = path
    }

    /// The next line without its `\n`, or nil at end of input.
    mutating func nextLine() throws(SnapshotBuildError) -> Line? {
        var searchFrom = start
        while true {
            if let newline = findNewline(in: buffer.base, from: searchFrom, to: buffer.count) {
                lineNumber += 1
                let line = Line(
                    number: lineNumber, bytes: UnsafeBufferPointer(start: buffer.base + start, count: newline - start))
                start = newline + 1
                return line
            }
            if atEndOfFile {
                guard start < buffer.count else { return nil }
                lineNumber += 1
                let line = Line(
                    number: lineNumber,
                    bytes: UnsafeBufferPointer(start: buffer.base + start, count: buffer.count - start))
                start = buffer.count
                return line
            }
            let pending = buffer.count - start
            guard pending <= SnapshotBuilder.maximumLineLength else {
                throw .lineTooLong(line: lineNumber + 1, limit: SnapshotBuilder.maximumLineLength)
            }
            // Move the partial line to the front; the buffer grows only for lines longer than a chunk.
            buffer.removeFront(start)
            start = 0
            searchFrom = pending
            do {
                if try buffer.appendRead(from: file, upTo: SnapshotBuilder.chunkLength) == 0 { atEndOfFile = true }
            } catch {
                throw .io(path: path, reason: error.description)
            }
        }
    }
}

/// The builder's growing state: the output file, the body checksum, the string
/// table and one entry per identity for the index and the duplicate check.
struct BuildState {
    let destination: PosixFile
    let destinationPath: String
    var profileCount = 0
    var strings = StringTableBuilder()
    var encoder = RecordEncoder()
    var pending: [UInt8] = []
    /// Bytes of the records section written so far (flushed or pending).
    var recordsLength = 0
    /// Where ``IdentityHashTable/warm(_:)`` results go, so that its reads are not optimised away. Per build (a
    /// shared global was a data race between concurrent builds).
    var warmSink: UInt64 = 0
    let bodyHash = ChunkedDigestStream()
    /// Records written by a worker and not yet written out, in place in its batch (consecutive records of one
    /// batch): written straight from there by ``flush()``, which the parallel build calls before it reuses the
    /// batch. At most one of `pending` and the run holds bytes, so the file order is kept.
    private var run: UnsafePointer<UInt8>?
    private var runLength = 0

    // One entry per identity, in file order.
    var identityHashes: [UInt64] = []
    var identityRecordOffsets: [UInt64] = []
    var identityLines: [UInt32] = []
    /// The first identity with each hash; further identities with the same hash chain through `sameHashNext`.
    var firstIdentityWithHash = IdentityHashTable()
    var sameHashNext: [Int32] = []

    /// Started on the records as they are written; the final `fsync` in ``finish`` does the rest.
    let backgroundSync: BackgroundSync?
    /// Drops the cache of the file the build replaces as the new one grows.
    let replacedFileEviction: ReplacedFileEviction?

    init(
        destination: PosixFile, destinationPath: String, backgroundSync: BackgroundSync? = nil,
        replacedFileEviction: ReplacedFileEviction? = nil
    ) {
        self.destination = destination
        self.destinationPath = destinationPath
        self.backgroundSync = backgroundSync
        self.replacedFileEviction = replacedFileEviction
        pending.reserveCapacity(SnapshotBuilder.writeBufferLength + 65536)
    }

    /// Makes room for about `count` identities up front (a source of known size), so the identity lists and the
    /// duplicate check's table do not grow and rehash step by step while the build runs.
    mutating func reserveIdentities(_ count: Int) {
        guard count > identityHashes.capacity else { return }
        identityHashes.reserveCapacity(count)
        identityRecordOffsets.reserveCapacity(count)
        identityLines.reserveCapacity(count)
        sameHashNext.reserveCapacity(count)
        if identityHashes.isEmpty { firstIdentityWithHash = IdentityHashTable(capacity: count) }
    }

    func writeHeaderPlaceholder() throws(SnapshotBuildError) {
        do {
            try destination.write([UInt8](repeating: 0, count: SnapshotFormat.headerLength)[...])
        } catch {
            throw .io(path: destinationPath, reason: error.description)
        }
    }

    mutating func add(_ profile: InMemoryProfile, line: Int) throws(SnapshotBuildError) {
        let recordOffset = recordsLength
        for (position, identity) in profile.identities.enumerated() {
            // Same line: an identity repeated inside one profile.
            for earlier in profile.identities[..<position] where earlier.matches(identity) {
                throw .duplicateIdentity(identity: identity, firstLine: line, line: line)
            }
            let hash = SnapshotFormat.identityHash(namespace: identity.namespace, id: identity.id)
            try register(hash: hash, recordOffset: recordOffset, line: line) { identity }
        }

        try flushRun()
        let before = pending.count
        do {
            try encoder.encode(profile, strings: &strings, into: &pending)
        } catch {
            throw .invalidProfile(line: line, reason: error.message)
        }
        recordsLength += pending.count - before
        profileCount += 1
        if pending.count >= SnapshotBuilder.writeBufferLength { try flush() }
    }

    /// Parses `bytes` with the general parser (``ProfileSourceParser``) and adds its record.
    mutating func addGeneral(_ bytes: UnsafeBufferPointer<UInt8>, line: Int) throws(SnapshotBuildError) {
        let profile: InMemoryProfile
        do {
            profile = try ProfileSourceParser.parse(line: Array(bytes))
        } catch {
            throw .invalidProfile(line: line, reason: error.message)
        }
        try add(profile, line: line)
    }

    /// Adds the record of the source line `bytes` through the fast parser; false (nothing added) when the
    /// line needs the general path. Checks identities exactly as ``add(_:line:)`` does.
    mutating func addFast(
        _ bytes: UnsafeBufferPointer<UInt8>, encoder: inout FastRecordEncoder, line: Int
    ) throws(SnapshotBuildError) -> Bool {
        let recordOffset = recordsLength
        try flushRun()
        let before = pending.count
        guard encoder.encode(line: bytes, strings: &strings, into: &pending) else { return false }
        recordsLength += pending.count - before
        profileCount += 1
        try register(encoder.identities, of: bytes, recordOffset: recordOffset, line: line)
        if pending.count >= SnapshotBuilder.writeBufferLength { try flush() }
        return true
    }

    /// Appends a record the fast parser wrote elsewhere (a worker of the parallel build) whose string indices are
    /// already this table's; `identities` are ranges into `lineBytes`. Checks identities as ``addFast`` does.
    ///
    /// The record is not copied: it joins the run of records written out from where they are by the next
    /// ``flush()``, so `record` must stay valid and unchanged until then.
    mutating func addEncoded(
        _ record: UnsafeBufferPointer<UInt8>, identities: ArraySlice<FastIdentity>,
        lineBytes: UnsafeBufferPointer<UInt8>, line: Int
    ) throws(SnapshotBuildError) {
        let recordOffset = recordsLength
        if !pending.isEmpty { try flushPending() }
        if let base = record.baseAddress {
            if let run, run + runLength == base {
                runLength += record.count
            } else {
                try flushRun()
                run = base
                runLength = record.count
            }
        }
        recordsLength += record.count
        profileCount += 1
        try register(identities, of: lineBytes, recordOffset: recordOffset, line: line)
    }

    /// Checks and enters the identities of one fast-path line (ranges into `bytes`).
    private mutating func register(
        _ identities: some RandomAccessCollection<FastIdentity>, of bytes: UnsafeBufferPointer<UInt8>,
        recordOffset: Int, line: Int
    ) throws(SnapshotBuildError) {
        // The fast path accepts ASCII identities only, so comparing bytes (namespaces folded) is `matches`.
        func identity(_ fast: FastIdentity) -> Identity {
            Identity(
                namespace: String(decoding: UnsafeBufferPointer(rebasing: bytes[fast.namespace]), as: UTF8.self),
                id: String(decoding: UnsafeBufferPointer(rebasing: bytes[fast.id]), as: UTF8.self))
        }
        var position = identities.startIndex
        while position < identities.endIndex {
            let current = identities[position]
            for earlier in identities[identities.startIndex..<position] where earlier.hash == current.hash {
                if bytes[earlier.id].elementsEqual(bytes[current.id]),
                    bytes[earlier.namespace].map(foldASCII).elementsEqual(bytes[current.namespace].map(foldASCII))
                {
                    throw .duplicateIdentity(identity: identity(current), firstLine: line, line: line)
                }
            }
            try register(hash: current.hash, recordOffset: recordOffset, line: line) { identity(current) }
            position = identities.index(after: position)
        }
    }

    /// Enters one identity of the record at `recordOffset` in the index; throws when an earlier profile has it.
    private mutating func register(
        hash: UInt64, recordOffset: Int, line: Int, identity: () -> Identity
    ) throws(SnapshotBuildError) {
        if let first = firstIdentityWithHash.first(withHash: hash) {
            let identity = identity()
            var candidate = first
            while candidate >= 0 {
                // Identities of this profile are not entered yet; the caller compared them.
                if identityRecordOffsets[Int(candidate)] != UInt64(recordOffset),
                    try identityAt(Int(candidate), hash: hash).matches(identity)
                {
                    throw .duplicateIdentity(
                        identity: identity, firstLine: Int(identityLines[Int(candidate)]), line: line)
                }
                candidate = sameHashNext[Int(candidate)]
            }
            // A true 64-bit collision between different identities: chain it.
            sameHashNext.append(sameHashNext[Int(first)])
            sameHashNext[Int(first)] = Int32(identityHashes.count)
        } else {
            guard identityHashes.count < Int(Int32.max) else {
                throw .invalidProfile(line: line, reason: "more than \(Int32.max) identities")
            }
            firstIdentityWithHash.insert(hash: hash, first: Int32(identityHashes.count))
            sameHashNext.append(-1)
        }
        identityHashes.append(hash)
        identityRecordOffsets.append(UInt64(recordOffset))
        identityLines.append(UInt32(truncatingIfNeeded: line))
    }

    /// The identity `index` refers to, read back from its record (only on a hash match, so rare).
    private mutating func identityAt(_ index: Int, hash: UInt64) throws(SnapshotBuildError) -> Identity {
        let recordOffset = Int(identityRecordOffsets[index])
        // Which identity of its record: count the earlier identities of the same record.
        var ordinal = 0
        var earlier = index - 1
        while earlier >= 0, identityRecordOffsets[earlier] == identityRecordOffsets[index] {
            ordinal += 1
            earlier -= 1
        }
        try flush()
        let headerLength = SnapshotFormat.headerLength
        let record: [UInt8]
        do throws(SystemCallError) {
            let length = try destination.read(count: 4, at: headerLength + recordOffset)
            guard let recordLength = length.loadLE32(at: 0) else {
                throw SystemCallError(call: "read back", errorNumber: 0)
            }
            record = try destination.read(count: Int(recordLength), at: headerLength + recordOffset)
        } catch {
            throw .io(path: destinationPath, reason: error.description)
        }
        var position = SnapshotFormat.Record.headerLength
        var found: Identity?
        for current in 0...ordinal {
            guard let namespaceLength = record.loadLE32(at: position).map(Int.init),
                position + 4 + namespaceLength <= record.count,
                let idLength = record.loadLE32(at: position + 4 + namespaceLength).map(Int.init),
                position + 8 + namespaceLength + idLength <= record.count
            else { break }
            if current == ordinal {
                let namespace = String(
                    decoding: record[(position + 4)..<(position + 4 + namespaceLength)], as: UTF8.self)
                let idStart = position + 8 + namespaceLength
                let id = String(decoding: record[idStart..<(idStart + idLength)], as: UTF8.self)
                found = Identity(namespace: namespace, id: id)
            }
            position += 8 + namespaceLength + idLength
        }
        guard let found else { throw .io(path: destinationPath, reason: "could not read back identity \(index)") }
        return found
    }

    /// Writes out every record added so far.
    mutating func flush() throws(SnapshotBuildError) {
        try flushPending()
        try flushRun()
    }

    private mutating func flushPending() throws(SnapshotBuildError) {
        guard !pending.isEmpty else { return }
        let written = pending.withUnsafeBytes { bytes in
            Result { () throws(SnapshotBuildError) in try writeBody(bytes) }
        }
        try written.get()
        pending.removeAll(keepingCapacity: true)
    }

    private mutating func flushRun() throws(SnapshotBuildError) {
        guard let run else { return }
        let bytes = UnsafeRawBufferPointer(start: run, count: runLength)
        self.run = nil
        runLength = 0
        try writeBody(bytes)
    }

    /// Appends `bytes` to the body: checksum, file, background sync.
    private func writeBody(_ bytes: UnsafeRawBufferPointer) throws(SnapshotBuildError) {
        replacedFileEviction?.wrote(bytes.count)
        bodyHash.update(bytes)
        do {
            try destination.write(bytes)
        } catch {
            throw .io(path: destinationPath, reason: error.description)
        }
        backgroundSync?.wrote(bytes.count)
    }

    /// Writes the string table, the index and the header; returns the summary.
    mutating func finish(
        version: String?, output: String, createdAt fixedCreatedAt: Int64?, folded: FoldedState = FoldedState()
    ) throws(SnapshotBuildError) -> SnapshotBuildSummary {
        try flush()
        backgroundSync?.syncNow()
        let stringsSection = strings.encode()
        let indexSection = buildIndex()
        let foldedSection = folded.isEmpty ? [] : folded.encoded()
        bodyHash.update(stringsSection)
        bodyHash.update(indexSection)
        if !foldedSection.isEmpty { bodyHash.update(foldedSection) }
        let bodyDigest = bodyHash.digest()

        let headerLength = SnapshotFormat.headerLength
        let recordsOffset = headerLength
        let stringsOffset = recordsOffset + recordsLength
        let indexOffset = stringsOffset + stringsSection.count
        let foldedOffset = indexOffset + indexSection.count
        let fileLength = foldedOffset + foldedSection.count
        let versionString = version ?? hex(bodyDigest)
        let createdAt = fixedCreatedAt ?? SystemClock.wall.read().seconds

        typealias Field = SnapshotFormat.Header
        var header = [UInt8](repeating: 0, count: headerLength)
        header.replaceSubrange(0..<8, with: SnapshotFormat.magic)
        header.storeLE(SnapshotFormat.formatVersion, at: Field.formatVersion)
        header.storeLE(UInt32(headerLength), at: Field.headerLength)
        header.storeLE(UInt64(fileLength), at: Field.fileLength)
        header.storeLE(UInt64(bitPattern: createdAt), at: Field.createdAt)
        header.storeLE(UInt64(profileCount), at: Field.profileCount)
        header.storeLE(UInt64(identityHashes.count), at: Field.identityCount)
        header.storeLE(UInt64(recordsOffset), at: Field.recordsOffset)
        header.storeLE(UInt64(recordsLength), at: Field.recordsLength)
        header.storeLE(UInt64(stringsOffset), at: Field.stringsOffset)
        header.storeLE(UInt64(stringsSection.count), at: Field.stringsLength)
        header.storeLE(UInt64(indexOffset), at: Field.indexOffset)
        header.storeLE(UInt64(indexSection.count), at: Field.indexLength)
        header.storeLE(UInt32(versionString.utf8.count), at: Field.versionLength)
        if !foldedSection.isEmpty {
            header.storeLE(UInt64(foldedOffset), at: Field.foldedOffset)
            header.storeLE(UInt64(foldedSection.count), at: Field.foldedLength)
        }
        header.replaceSubrange(
            SnapshotFormat.versionOffset..<(SnapshotFormat.versionOffset + versionString.utf8.count),
            with: versionString.utf8)
        let checksum = xxh3(header, seed: bodyDigest)
        header.storeLE(checksum, at: Field.checksum)

        do {
            try destination.write(stringsSection[...])
            try destination.write(indexSection[...])
            if !foldedSection.isEmpty { try destination.write(foldedSection[...]) }
            try destination.write(header, at: 0)
            try destination.synchronize()
        } catch {
            throw .io(path: destinationPath, reason: error.description)
        }
        return SnapshotBuildSummary(
            path: output, version: versionString, createdAt: createdAt, profileCount: profileCount,
            identityCount: identityHashes.count, fileSize: fileLength, checksum: checksum)
    }

    /// The open-addressing index: slot count (u64), then (hash u64, record offset u64) slots, linear probing.
    private mutating func buildIndex() -> [UInt8] {
        let slotCount = SnapshotFormat.slotCount(for: identityHashes.count)
        let slotLength = SnapshotFormat.slotLength
        let empty = SnapshotFormat.emptySlot.littleEndian
        let sectionLength = 8 + slotCount * slotLength
        // Filled in place (a [UInt64] of slots then appended value by value was a tenth of the build's serial end).
        var sink: UInt64 = 0
        let section = [UInt8](unsafeUninitializedCapacity: sectionLength) { bytes, initializedCount in
            guard let base = bytes.baseAddress else { return }
            let raw = UnsafeMutableRawPointer(base)
            raw.storeBytes(of: UInt64(slotCount).littleEndian, as: UInt64.self)
            let slots = raw + 8
            for slot in 0..<slotCount {
                (slots + slot * slotLength).storeBytes(of: 0, as: UInt64.self)
                (slots + slot * slotLength + 8).storeBytes(of: empty, as: UInt64.self)
            }
            identityHashes.withUnsafeBufferPointer { hashes in
                identityRecordOffsets.withUnsafeBufferPointer { recordOffsets in
                    var blockStart = 0
                    while blockStart < hashes.count {
                        let blockEnd = min(hashes.count, blockStart + 32)
                        // The home slots of the next identities read together first: the table is far larger than
                        // the caches, and independent reads overlap their misses.
                        for position in blockStart..<blockEnd {
                            let slot = SnapshotFormat.homeSlot(hashes[position], slotCount: slotCount)
                            sink &+= UnsafeRawPointer(slots + slot * slotLength).loadUnaligned(as: UInt64.self)
                        }
                        for position in blockStart..<blockEnd {
                            let hash = hashes[position]
                            var slot = SnapshotFormat.homeSlot(hash, slotCount: slotCount)
                            while UnsafeRawPointer(slots + slot * slotLength + 8).loadUnaligned(as: UInt64.self)
                                != empty
                            {
                                slot += 1
                                if slot == slotCount { slot = 0 }
                            }
                            (slots + slot * slotLength).storeBytes(of: hash.littleEndian, as: UInt64.self)
                            (slots + slot * slotLength + 8).storeBytes(
                                of: recordOffsets[position].littleEndian, as: UInt64.self)
                        }
                        blockStart = blockEnd
                    }
                }
            }
            initializedCount = sectionLength
        }
        warmSink &+= sink
        return section
    }
}

/// 16 lower-case hex digits.
func hex(_ value: UInt64) -> String {
    let digits = String(value, radix: 16)
    return String(repeating: "0", count: 16 - digits.count) + digits
}
