import Dispatch
import Foundation
import OfferdSnapshot

// The builder's input without copies: the source read through a read-only mapping under a read lease (no read()
// copy into a buffer), and the replaced snapshot's page cache dropped ahead of the new file's writes.
#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// A regular source file mapped read-only under a read lease (``LeasedFileMapping``), so the builder parses its
/// lines in place.
///
/// `read()` copied every byte of the source from the page cache into a buffer (a tenth of a build's CPU). The
/// mapping is paged: only the part being parsed needs to be resident, and ``release(_:)`` drops what the builder is
/// done with, so the process's resident memory does not grow with the file (the page cache keeps the pages).
///
/// A plain mapping of a file that another process truncates would fault (SIGBUS) on the next read. Under the lease,
/// a writer or a truncation waits until the mapping has moved its bytes into private memory at the same addresses:
/// the build goes on with the source as it was when it was mapped, holding the source's size in memory until it ends. Where no lease can be had (the file is open for
/// writing elsewhere, another owner, a file system without leases) and for FIFOs, pipes, character devices and empty
/// files, ``map(_:)`` returns nil and the builder reads instead.
final class MappedSource: @unchecked Sendable {
    // `@unchecked Sendable`: the bytes never change and stay at their address while the mapping lives; workers only
    // read them.
    let bytes: UnsafeBufferPointer<UInt8>
    private let mapping: LeasedFileMapping
    private let pageSize: Int

    private init(mapping: LeasedFileMapping) {
        self.mapping = mapping
        bytes = UnsafeBufferPointer(start: mapping.start.assumingMemoryBound(to: UInt8.self), count: mapping.count)
        pageSize = max(4096, Int(sysconf(Int32(_SC_PAGESIZE))))
    }

    /// Whether the bytes are still the file's pages (false once a writer made the mapping move to a private copy).
    var isFileMapped: Bool { mapping.isFileMapped }

    /// The whole of `file` mapped under a lease, or nil when it is not a non-empty regular file or cannot be mapped
    /// so (the caller then reads it with `read()`). The mapping holds a descriptor of its own.
    static func map(_ file: PosixFile) -> MappedSource? {
        guard let status = try? FileStatus.of(file), status.isRegularFile, status.size > 0,
            status.size <= Int64(Int.max), let leased = try? file.duplicate()
        else { return nil }
        let mapped = LeasedFileMapping.map(file: leased) { file throws(SystemCallError) in
            // Under the lease, when the size can no longer change.
            let status = try FileStatus.of(file)
            return status.isRegularFile ? Int(status.size) : 0
        }
        guard case .success(let mapping) = mapped else { return nil }
        // Read-ahead well before the parser gets there, and pages behind it dropped first under pressure.
        _ = madvise(mapping.start, mapping.count, MADV_SEQUENTIAL)
        return MappedSource(mapping: mapping)
    }

    /// Unmaps the whole pages inside `range` from this process (`MADV_DONTNEED`; a page shared with the bytes
    /// after `range` stays): the builder is done with them and never reads them again. Mapped from the file, they
    /// would read back unchanged from the page cache; once moved to a private copy, they would read back as zeros.
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
