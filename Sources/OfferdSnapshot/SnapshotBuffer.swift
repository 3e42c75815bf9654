import Dispatch

// The snapshot's bytes, mapped under a lease or read once into one buffer, and
// their bounds-checked readers. One of the files of OfferdSnapshot that hold
// unsafe code (the list is in ProfileSnapshot.swift): every read of a record
// goes through a method here that checks the offset against the buffer's size
// first, so a hostile snapshot can yield wrong values but never a read outside
// the buffer.
#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// A whole snapshot file in one immutable buffer, freed (or unmapped) when the last reference goes.
///
/// Two ways to get there. **Mapped** (``LeasedFileMapping``): the file is mapped in place under a read lease, so
/// loading costs only the checksum pass over pages already in the page cache; a writer that later opens or
/// truncates the file first makes the mapping move to a private copy at the same addresses. **Copied**, when no
/// lease can be had (the file is open for writing, another owner, a file system without leases): the file is
/// read into private memory, because a plain mapping of a file that another process truncates faults with
/// SIGBUS on the next read of a vanished page, and one it rewrites changes under a verified snapshot (SPEC 5.3).
/// Both cost the same resident memory (the file size), and what was verified stays what is served.
///
/// Why the copy is fast: the buffer is anonymous memory on 2 MiB boundaries with
/// transparent huge pages requested, so random lookups over a gigabyte miss
/// the TLB far less, and faulting it in costs one fault per 2 MiB. The file is
/// read in 1 MiB chunks, each hashed (XXH3) right after its read while it is
/// still in cache, by two threads for large files: the chunk digests are what
/// the format-2 checksum is built from (docs/snapshot-format.md).
final class SnapshotBuffer: @unchecked Sendable {
    let bytes: UnsafeRawBufferPointer
    /// XXH3-64 of each ``SnapshotFormat/checksumChunkLength`` chunk of `bytes[chunkedFrom...]`, in order.
    let chunkDigests: [UInt64]
    /// Where the chunked digests start (the header length the loader expected).
    let chunkedFrom: Int
    private let storage: Storage
    /// How the bytes were obtained, for the snapshot's description.
    let loadMethod: SnapshotLoadMethod

    private enum Storage {
        /// Anonymous memory of this length, unmapped at the end.
        case copy(UnsafeMutableRawPointer, Int)
        case leased(LeasedFileMapping)
    }

    /// Huge page size on x86-64 and arm64 Linux; also the alignment of the buffer.
    static let hugePageLength = 2 << 20
    /// Below this size one thread reads (thread start-up would cost more than it saves).
    static let parallelThreshold = 32 << 20

    /// Reads up to `count` bytes of `file` from its start (fewer when the file shrank meanwhile), and
    /// digests the chunks from `chunkedFrom` on.
    init(file: PosixFile, count: Int, chunkedFrom: Int, whyNotMapped: String) throws(SystemCallError) {
        precondition(count > 0, "a snapshot buffer is never empty")
        let hugePage = Self.hugePageLength
        let large = count >= Self.parallelThreshold
        // Room to move the start to a 2 MiB boundary, and a whole number of huge pages after it.
        let rounded = (count + hugePage - 1) / hugePage * hugePage
        let mappingLength = large ? rounded + hugePage : count
        #if os(Linux)
            // Small buffers: populated in one go (faulting 4 KiB pages one by one cost more than the read).
            // Large ones are faulted by the reads, 2 MiB at a time once huge pages are granted.
            let flags = large ? MAP_PRIVATE | MAP_ANONYMOUS : MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE
        #else
            let flags = MAP_PRIVATE | MAP_ANON
        #endif
        guard let mapping = mmap(nil, mappingLength, PROT_READ | PROT_WRITE, flags, -1, 0), mapping != MAP_FAILED
        else { throw SystemCallError.last("mmap") }
        var start = mapping
        if large {
            let misalignment = Int(bitPattern: mapping) % hugePage
            if misalignment != 0 { start = mapping + (hugePage - misalignment) }
            #if os(Linux)
                // Advice only: without transparent huge pages the buffer still works, with 4 KiB pages.
                _ = madvise(start, rounded, MADV_HUGEPAGE)
            #endif
        }
        let chunkedFrom = min(max(0, chunkedFrom), count)
        let chunkLength = SnapshotFormat.checksumChunkLength
        let chunkCount = (count - chunkedFrom + chunkLength - 1) / chunkLength
        var digests = [UInt64](repeating: 0, count: chunkCount)
        let outcome = digests.withUnsafeMutableBufferPointer { digestStorage in
            ChunkedReader(
                descriptor: file.descriptor, destination: start, count: count, chunkedFrom: chunkedFrom,
                digests: digestStorage, readsFile: true
            ).run(threads: large ? 2 : 1)
        }
        switch outcome {
        case .failure(let error):
            munmap(mapping, mappingLength)
            throw error
        case .success(let readCount):
            storage = .copy(mapping, mappingLength)
            loadMethod = .copied(reason: whyNotMapped)
            bytes = UnsafeRawBufferPointer(start: start, count: readCount)
            self.chunkedFrom = chunkedFrom
            // A short read (the file shrank) leaves digests of bytes never read: drop them, the
            // loader then refuses the truncated file or recomputes from what was read.
            chunkDigests = readCount == count ? digests : []
        }
    }

    /// Digests the chunks of a leased mapping from `chunkedFrom` on, in place (two threads for large files):
    /// the first touch of each page maps it from the page cache, so this pass is the whole load.
    init(mapping: LeasedFileMapping, chunkedFrom: Int) {
        let count = mapping.count
        let chunkedFrom = min(max(0, chunkedFrom), count)
        let chunkLength = SnapshotFormat.checksumChunkLength
        var digests = [UInt64](repeating: 0, count: (count - chunkedFrom + chunkLength - 1) / chunkLength)
        digests.withUnsafeMutableBufferPointer { digestStorage in
            // Nothing is read from the descriptor, so the outcome is always the full length.
            _ = ChunkedReader(
                descriptor: -1, destination: mapping.start, count: count, chunkedFrom: chunkedFrom,
                digests: digestStorage, readsFile: false
            ).run(threads: count >= Self.parallelThreshold ? 2 : 1)
        }
        storage = .leased(mapping)
        loadMethod = .mapped
        bytes = UnsafeRawBufferPointer(start: mapping.start, count: count)
        self.chunkedFrom = chunkedFrom
        chunkDigests = digests
    }

    deinit {
        if case .copy(let mapping, let mappingLength) = storage { munmap(mapping, mappingLength) }
        // A leased mapping unmaps itself and releases its lease when it goes, right after this.
    }

    /// Whether reads are served by the file's own pages (mapped, and not yet handed over to a private copy).
    var isFileMapped: Bool {
        if case .leased(let mapping) = storage { mapping.isFileMapped } else { false }
    }

    var count: Int { bytes.count }

    @inline(__always)
    func contains(_ offset: Int, _ length: Int) -> Bool {
        offset >= 0 && length >= 0 && offset <= bytes.count &- length
    }

    @inline(__always)
    func u8(_ offset: Int) -> UInt8? {
        guard contains(offset, 1) else { return nil }
        return bytes[offset]
    }

    @inline(__always)
    func u32(_ offset: Int) -> UInt32? {
        guard contains(offset, 4) else { return nil }
        return UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    @inline(__always)
    func u64(_ offset: Int) -> UInt64? {
        guard contains(offset, 8) else { return nil }
        return UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    /// A u32 field as an Int (never negative).
    @inline(__always)
    func int32(_ offset: Int) -> Int? {
        u32(offset).map { Int($0) }
    }

    /// A u64 field as an Int, nil when it does not fit (so offsets never overflow later arithmetic).
    @inline(__always)
    func int64(_ offset: Int) -> Int? {
        guard let value = u64(offset), value <= UInt64(Int.max / 2) else { return nil }
        return Int(value)
    }

    /// A copy of `length` bytes at `offset`.
    func copyBytes(_ offset: Int, _ length: Int) -> [UInt8]? {
        guard contains(offset, length) else { return nil }
        return Array(bytes[offset..<(offset + length)])
    }

    /// The UTF-8 text at `offset` (invalid sequences are repaired, never trusted).
    func string(_ offset: Int, _ length: Int) -> String? {
        guard contains(offset, length) else { return nil }
        return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + length)]), as: UTF8.self)
    }

    /// Whether the bytes at `offset` are exactly `text`'s UTF-8.
    @inline(__always)
    func equals(_ offset: Int, _ length: Int, _ text: String) -> Bool {
        guard contains(offset, length) else { return false }
        let utf8 = text.utf8
        if let result = utf8.withContiguousStorageIfAvailable({ stored -> Bool in
            guard stored.count == length else { return false }
            return memcmp(bytes.baseAddress! + offset, stored.baseAddress!, length) == 0
        }) {
            return result
        }
        // Bridged or non-contiguous strings: compare byte by byte.
        guard utf8.count == length else { return false }
        var position = offset
        for byte in utf8 {
            if bytes[position] != byte { return false }
            position += 1
        }
        return true
    }

    /// Whether the `length` bytes at `offset` are `other`.
    @inline(__always)
    func equals(_ offset: Int, _ length: Int, _ other: UnsafeRawBufferPointer) -> Bool {
        guard contains(offset, length), other.count == length else { return false }
        return length == 0 || memcmp(bytes.baseAddress! + offset, other.baseAddress!, length) == 0
    }

    /// Whether the `length` bytes at `offset` are `other` with ASCII letters folded on both sides.
    @inline(__always)
    func equalsFoldingASCII(_ offset: Int, _ length: Int, _ other: UnsafeRawBufferPointer) -> Bool {
        // Most callers spell a namespace as it is stored: a plain compare first.
        guard contains(offset, length), other.count == length else { return false }
        if length == 0 || memcmp(bytes.baseAddress! + offset, other.baseAddress!, length) == 0 { return true }
        for (position, byte) in other.enumerated() where foldASCII(bytes[offset + position]) != foldASCII(byte) {
            return false
        }
        return true
    }

    /// The format-2 body digest of `bytes[from...]`: the digests read along with the bytes when they were
    /// taken from the same start, else computed now (a header that changed between the two reads).
    func bodyDigest(from start: Int) -> UInt64 {
        precondition(contains(start, 0))
        if start == chunkedFrom, !chunkDigests.isEmpty || start == bytes.count {
            return SnapshotChecksum.combine(chunkDigests)
        }
        return SnapshotChecksum.bodyDigest(UnsafeRawBufferPointer(rebasing: bytes[start...]))
    }
}

/// Reads a file into memory in checksum chunks, hashing each chunk after its read, on one or more threads.
private struct ChunkedReader: @unchecked Sendable {
    let descriptor: Int32
    let destination: UnsafeMutableRawPointer
    let count: Int
    let chunkedFrom: Int
    let digests: UnsafeMutableBufferPointer<UInt64>
    /// False when `destination` already holds the file (a mapping): chunks are only digested.
    let readsFile: Bool

    /// The number of bytes read (less than `count` if the file shrank), or the first read error.
    func run(threads: Int) -> Result<Int, SystemCallError> {
        let chunkCount = digests.count
        // The bytes before the first chunk (the header) go with the first thread's share.
        if threads <= 1 || chunkCount < 2 {
            return read(chunks: 0..<chunkCount, includingHead: true)
        }
        let half = chunkCount / 2
        let results = LockedState<[Result<Int, SystemCallError>]>([.success(0), .success(0)])
        DispatchQueue.concurrentPerform(iterations: 2) { part in
            let chunks = part == 0 ? 0..<half : half..<chunkCount
            let result = read(chunks: chunks, includingHead: part == 0)
            results.withLock { $0[part] = result }
        }
        let (first, second) = results.withLock { ($0[0], $0[1]) }
        switch (first, second) {
        case (.failure(let error), _), (_, .failure(let error)):
            return .failure(error)
        case (.success(let firstEnd), .success(let secondEnd)):
            // The first part ended early: the file shrank, nothing after its end counts.
            let firstExpected = chunkedFrom + half * SnapshotFormat.checksumChunkLength
            return .success(firstEnd < firstExpected ? firstEnd : secondEnd)
        }
    }

    /// Reads and digests `chunks`; returns the offset where reading stopped.
    private func read(chunks: Range<Int>, includingHead: Bool) -> Result<Int, SystemCallError> {
        let chunkLength = SnapshotFormat.checksumChunkLength
        if includingHead {
            switch readFully(from: 0, to: chunkedFrom) {
            case .failure(let error): return .failure(error)
            case .success(let end) where end < chunkedFrom: return .success(end)
            case .success: break
            }
        }
        var end = chunkedFrom + chunks.lowerBound * chunkLength
        for chunk in chunks {
            let chunkStart = chunkedFrom + chunk * chunkLength
            let chunkEnd = min(count, chunkStart + chunkLength)
            switch readFully(from: chunkStart, to: chunkEnd) {
            case .failure(let error): return .failure(error)
            case .success(let got):
                end = got
                guard got == chunkEnd else { return .success(end) }
            }
            digests[chunk] = xxh3(UnsafeRawBufferPointer(start: destination + chunkStart, count: chunkEnd - chunkStart))
        }
        return .success(end)
    }

    /// Reads `[from, to)`; returns where it stopped (before `to` only at end of file).
    private func readFully(from: Int, to: Int) -> Result<Int, SystemCallError> {
        guard readsFile else { return .success(to) }
        var done = from
        while done < to {
            let got = pread(descriptor, destination + done, to - done, off_t(done))
            if got < 0 {
                if errno == EINTR { continue }
                return .failure(SystemCallError.last("read"))
            }
            if got == 0 { break }
            done += got
        }
        return .success(done)
    }
}

/// ASCII letter lower-casing of one byte (the namespace fold of SPEC 6).
@inlinable
package func foldASCII(_ byte: UInt8) -> UInt8 {
    byte &- 0x41 < 26 ? byte | 0x20 : byte
}
