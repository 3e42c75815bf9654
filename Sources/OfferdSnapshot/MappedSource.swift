// The builder's input without copies: the source read through a private read-only mapping (no read() copy into a
// buffer), and the replaced snapshot's page cache dropped ahead of the new file's writes.
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

/// Drops the page cache of the snapshot that a build will replace, a little ahead of the new file's writes.
///
/// When the final rename replaces the last name of the old file, the kernel evicts its cached pages inside
/// `rename`. Evicting them while the build writes (`POSIX_FADV_DONTNEED`: a hint, the file is unchanged) takes that
/// out of the build's serial end, and the new file's page cache then reuses the pages just freed: on a virtual
/// machine whose freed memory goes back to the host (free page reporting), writing into memory the guest has not
/// touched for a while cost twice as much (the page-cache copy was 20 % of a build's samples, 9 % with this).
/// Pages mapped by a running server are not dropped (the kernel skips mapped pages), and a failed build leaves the
/// old snapshot intact, only partly uncached.
final class ReplacedFileEviction {
    /// How far ahead of the bytes written the old file's cache is dropped, and in what steps.
    static let lead = 64 << 20
    static let step = 16 << 20

    private let file: PosixFile
    /// The old file's cache is dropped below this offset.
    private var evicted = 0
    /// Bytes of the new file written so far.
    private var written = 0
    private var isFinished = false

    private init(file: PosixFile) {
        self.file = file
    }

    /// Opens the regular file at `path` to drop its cache as the build goes; nil when there is none.
    static func start(replacing path: String) -> ReplacedFileEviction? {
        guard let status = FileStatus.of(path, followSymlinks: true), status.isRegularFile, status.size > 0,
            let file = try? PosixFile.openForReading(path)
        else { return nil }
        return ReplacedFileEviction(file: file)
    }

    /// Notes `count` more bytes of the new file written; drops the old file's cache up to ``lead`` bytes past them.
    func wrote(_ count: Int) {
        written += count
        guard !isFinished else { return }
        while evicted < written + Self.lead {
            _ = posix_fadvise(file.descriptor, off_t(evicted), off_t(Self.step), POSIX_FADV_DONTNEED)
            evicted += Self.step
        }
    }

    /// Drops the rest of the old file's cache and closes it (once; later calls do nothing). Call it before the
    /// rename: while this process holds the old file open, the rename does not evict it, and the close would.
    func finish() {
        guard !isFinished else { return }
        isFinished = true
        _ = posix_fadvise(file.descriptor, off_t(evicted), 0, POSIX_FADV_DONTNEED)
        try? file.close()
    }
}
