// The builder's input and output paths that avoid copies: the source read through a private read-only mapping
// (no read() copy into a buffer), and the snapshot's body digest taken from raw memory.
#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif
import Dispatch
import Foundation

/// A regular source file mapped read-only (`MAP_PRIVATE`), so the builder parses its lines in place.
///
/// `read()` copied every byte of the source from the page cache into a buffer (9 % of a build's samples). The
/// mapping is paged: only the part being parsed needs to be resident, and ``release(_:)`` drops what the builder is
/// done with, so the process's resident memory does not grow with the file (the page cache keeps the pages).
///
/// - Important: the file must not shrink while mapped (a truncation would make later reads fault with SIGBUS, as
///   for any mapped input). The build reads a profile source that nothing else writes; a FIFO, a pipe, a
///   character device or an empty file is never mapped (``map(_:)`` returns nil and the builder reads instead).
final class MappedSource: @unchecked Sendable {
    // `@unchecked Sendable`: the mapping is immutable while it exists; workers only read it.
    let bytes: UnsafeBufferPointer<UInt8>
    private let pageSize: Int

    private init(bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
        pageSize = max(4096, Int(sysconf(Int32(_SC_PAGESIZE))))
    }

    deinit {
        if let base = bytes.baseAddress { _ = munmap(UnsafeMutableRawPointer(mutating: base), bytes.count) }
    }

    /// The whole of `file` mapped, or nil when it is not a non-empty regular file or cannot be mapped (the caller
    /// then reads it with `read()`).
    static func map(_ file: PosixFile) -> MappedSource? {
        guard let status = try? FileStatus.of(file), status.isRegularFile, status.size > 0,
            status.size <= Int64(Int.max)
        else { return nil }
        let length = Int(status.size)
        guard let mapping = mmap(nil, length, PROT_READ, MAP_PRIVATE, file.descriptor, 0), mapping != MAP_FAILED
        else { return nil }
        // Read-ahead well before the parser gets there, and pages behind it dropped first under pressure.
        _ = madvise(mapping, length, MADV_SEQUENTIAL)
        return MappedSource(
            bytes: UnsafeBufferPointer(start: mapping.assumingMemoryBound(to: UInt8.self), count: length))
    }

    /// Unmaps the whole pages inside `range` from this process (`MADV_DONTNEED`; a page shared with the bytes
    /// after `range` stays): the builder is done with them. Reading them again would fault them back in from the
    /// page cache unchanged, so an early release is never wrong, only slower.
    func release(_ range: Range<Int>) {
        guard let base = bytes.baseAddress else { return }
        let start = range.lowerBound / pageSize * pageSize
        let end = range.upperBound == bytes.count ? bytes.count : range.upperBound / pageSize * pageSize
        guard end > start else { return }
        _ = madvise(UnsafeMutableRawPointer(mutating: base + start), end - start, MADV_DONTNEED)
    }
}

/// The body digest of format 2 (``SnapshotChecksum``), fed from raw memory in pieces of any size: each complete
/// 1 MiB chunk in one piece is hashed in one call, without the streaming state.
final class RawChunkedDigest {
    private let stream = XXH3Stream()
    private var pendingInChunk = 0
    private var digests: [UInt64] = []

    func update(_ bytes: UnsafeRawBufferPointer) {
        let chunkLength = SnapshotFormat.checksumChunkLength
        var position = 0
        while position < bytes.count {
            if pendingInChunk == 0, bytes.count - position >= chunkLength {
                digests.append(xxh3(UnsafeRawBufferPointer(rebasing: bytes[position..<(position + chunkLength)])))
                position += chunkLength
                continue
            }
            let take = min(bytes.count - position, chunkLength - pendingInChunk)
            stream.update(UnsafeRawBufferPointer(rebasing: bytes[position..<(position + take)]))
            pendingInChunk += take
            position += take
            if pendingInChunk == chunkLength {
                digests.append(stream.digest())
                stream.reset()
                pendingInChunk = 0
            }
        }
    }

    func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// The body digest of everything fed in (call once, at the end).
    func digest() -> UInt64 {
        if pendingInChunk > 0 {
            digests.append(stream.digest())
            stream.reset()
            pendingInChunk = 0
        }
        return SnapshotChecksum.combine(digests)
    }
}

/// Drops the page cache of the snapshot that a build will replace, on a background thread while the build runs.
///
/// When the final rename replaces the last name of the old file, the kernel evicts its cached pages inside
/// `rename` (about 0.6 s for a 900 MB snapshot, a third of the build's serial end). Evicting them at the start
/// instead (`POSIX_FADV_DONTNEED`: a hint, the file is unchanged) overlaps that with parsing and frees memory the
/// new file's pages can use. Pages mapped by a running server are not dropped (the kernel skips mapped pages), and
/// a failed build leaves the old snapshot intact, only no longer cached.
final class ReplacedFileEviction: @unchecked Sendable {
    // `@unchecked Sendable`: the file is used by the eviction thread only, until `finished` is signalled.
    private let file: PosixFile
    private let finished = DispatchSemaphore(value: 0)
    private var isFinished = false

    private init(file: PosixFile) {
        self.file = file
    }

    /// Starts dropping the cache of the regular file at `path`; nil when there is none (nothing to wait for).
    static func start(replacing path: String) -> ReplacedFileEviction? {
        guard let status = FileStatus.of(path, followSymlinks: true), status.isRegularFile, status.size > 0,
            let file = try? PosixFile.openForReading(path)
        else { return nil }
        let eviction = ReplacedFileEviction(file: file)
        let thread = Thread { [eviction] in
            _ = posix_fadvise(eviction.file.descriptor, 0, 0, POSIX_FADV_DONTNEED)
            try? eviction.file.close()
            eviction.finished.signal()
        }
        thread.name = "snapshot-evict"
        thread.start()
        return eviction
    }

    /// Waits for the eviction to end (once; later calls return at once). Call it before the rename: while this
    /// process holds the old file open, the rename does not evict it, and the close would.
    func wait() {
        guard !isFinished else { return }
        isFinished = true
        finished.wait()
    }
}
