// The POSIX file and checksum calls of the snapshot module. Together with
// SnapshotBuffer.swift, this is the only file of OfferdSnapshot that touches raw
// pointers or C: everything else works on Swift arrays and bounds-checked
// reads.
internal import CXXHash

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// A failed system call: the call's name and `strerror(errno)`.
struct SystemCallError: Error, CustomStringConvertible {
    var call: String
    var errorNumber: Int32

    /// Captures `errno` right after the failed call: the one place C error codes become Swift errors.
    static func last(_ call: String) -> SystemCallError {
        SystemCallError(call: call, errorNumber: errno)
    }

    var description: String { "\(call): \(String(cString: strerror(errorNumber)))" }

    var isNotFound: Bool { errorNumber == ENOENT }
}

/// Runs a system call, retrying on EINTR.
@inline(__always)
private func retryingOnInterrupt<Result: BinaryInteger>(_ body: () -> Result) -> Result {
    while true {
        let result = body()
        if result == -1 && errno == EINTR { continue }
        return result
    }
}

/// An open file descriptor owned by exactly one Swift object.
///
/// - Important: call ``close()``; the descriptor is also closed in `deinit`
///   as a safety net, but a builder that renames a file should close first.
final class PosixFile {
    private(set) var descriptor: Int32

    private init(descriptor: Int32) {
        self.descriptor = descriptor
    }

    deinit {
        if descriptor >= 0 { _ = Glibc_close(descriptor) }
    }

    /// Opens an existing file for reading.
    static func openForReading(_ path: String) throws(SystemCallError) -> PosixFile {
        let fd = retryingOnInterrupt { open(path, O_RDONLY | O_CLOEXEC) }
        guard fd >= 0 else { throw SystemCallError.last("open") }
        return PosixFile(descriptor: fd)
    }

    /// Creates a new file, failing if it exists.
    static func createExclusive(_ path: String, mode: mode_t = 0o644) throws(SystemCallError) -> PosixFile {
        let fd = retryingOnInterrupt { open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode) }
        guard fd >= 0 else { throw SystemCallError.last("open") }
        return PosixFile(descriptor: fd)
    }

    /// A second descriptor of the same open file (`dup`), closed on its own.
    func duplicate() throws(SystemCallError) -> PosixFile {
        let copy = dup(descriptor)
        guard copy >= 0 else { throw SystemCallError.last("dup") }
        return PosixFile(descriptor: copy)
    }

    func close() throws(SystemCallError) {
        guard descriptor >= 0 else { return }
        let fd = descriptor
        descriptor = -1
        guard Glibc_close(fd) == 0 else { throw SystemCallError.last("close") }
    }

    /// Reads up to `buffer.count - start` bytes into `buffer[start...]`; 0 at end of file.
    func read(into buffer: inout [UInt8], from start: Int) throws(SystemCallError) -> Int {
        precondition(start >= 0 && start <= buffer.count)
        let capacity = buffer.count - start
        let count = buffer.withUnsafeMutableBytes { raw in
            retryingOnInterrupt { Glibc_read(descriptor, raw.baseAddress! + start, capacity) }
        }
        guard count >= 0 else { throw SystemCallError.last("read") }
        return count
    }

    /// Reads exactly `count` bytes at `offset`, or fewer at end of file.
    func read(count: Int, at offset: Int) throws(SystemCallError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let got = bytes.withUnsafeMutableBytes { raw in
                retryingOnInterrupt { pread(descriptor, raw.baseAddress! + done, count - done, off_t(offset + done)) }
            }
            guard got >= 0 else { throw SystemCallError.last("pread") }
            if got == 0 { break }
            done += got
        }
        bytes.removeLast(count - done)
        return bytes
    }

    /// Writes all of `bytes` at the current position.
    func write(_ bytes: ArraySlice<UInt8>) throws(SystemCallError) {
        var done = 0
        while done < bytes.count {
            let written = bytes.withUnsafeBytes { raw in
                retryingOnInterrupt { Glibc_write(descriptor, raw.baseAddress! + done, raw.count - done) }
            }
            guard written >= 0 else { throw SystemCallError.last("write") }
            done += written
        }
    }

    /// Writes all of `bytes` (raw memory) at the current position.
    func write(_ bytes: UnsafeRawBufferPointer) throws(SystemCallError) {
        guard let base = bytes.baseAddress else { return }
        var done = 0
        while done < bytes.count {
            let written = retryingOnInterrupt { Glibc_write(descriptor, base + done, bytes.count - done) }
            guard written >= 0 else { throw SystemCallError.last("write") }
            done += written
        }
    }

    /// Writes all of `bytes` at `offset`, leaving the current position alone.
    func write(_ bytes: [UInt8], at offset: Int) throws(SystemCallError) {
        var done = 0
        while done < bytes.count {
            let written = bytes.withUnsafeBytes { raw in
                retryingOnInterrupt {
                    pwrite(descriptor, raw.baseAddress! + done, raw.count - done, off_t(offset + done))
                }
            }
            guard written >= 0 else { throw SystemCallError.last("pwrite") }
            done += written
        }
    }

    func synchronize() throws(SystemCallError) {
        guard fsync(descriptor) == 0 else { throw SystemCallError.last("fsync") }
    }

    #if os(Linux)
        /// Takes a read lease (`F_SETLEASE`, `F_RDLCK`): until it is released, another open of the file for
        /// writing and any truncation first notify this process (SIGIO) and then wait for the release (at most
        /// `/proc/sys/fs/lease-break-time` seconds). Throws when no lease can be had: EAGAIN (someone has the
        /// file open for writing), EACCES (not the file's owner), EINVAL or ENOLCK (no leases on that file
        /// system, or leases disabled).
        func takeReadLease() throws(SystemCallError) {
            guard fcntl(descriptor, LinuxFileLease.setLease, Int32(F_RDLCK)) == 0 else {
                throw SystemCallError.last("fcntl(F_SETLEASE)")
            }
        }

        /// Gives the lease up: a writer waiting for it proceeds.
        func releaseLease() {
            _ = fcntl(descriptor, LinuxFileLease.setLease, Int32(F_UNLCK))
        }

        /// Whether the lease is no longer a plain read lease: a writer is waiting for it (the kernel then reports
        /// the type the lease is being broken to), or it was already broken or released.
        var leaseIsBreakingOrGone: Bool {
            fcntl(descriptor, LinuxFileLease.getLease) != Int32(F_RDLCK)
        }
    #endif
}

#if os(Linux)
    /// Linux constants and calls that Swift's Glibc module does not import (they sit behind `_GNU_SOURCE`).
    enum LinuxFileLease {
        /// `F_SETLEASE` and `F_GETLEASE` of <linux/fcntl.h> (`F_LINUX_SPECIFIC_BASE` + 0 and + 1).
        static let setLease: Int32 = 1024
        static let getLease: Int32 = 1025
        /// `MREMAP_MAYMOVE | MREMAP_FIXED` of <linux/mman.h>.
        static let remapFixed: Int32 = 1 | 2

        private typealias MremapFunction = @convention(c) (
            UnsafeMutableRawPointer?, Int, Int, Int32, UnsafeMutableRawPointer?
        ) -> UnsafeMutableRawPointer?

        /// glibc's `mremap`, looked up once: it is not imported into Swift. Declared variadic in C, it is called
        /// here with its five arguments in registers, which is how the x86-64 and arm64 Linux calling
        /// conventions pass them to a variadic callee too.
        private static let mremapFunction: MremapFunction? = {
            guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mremap") else { return nil }
            return unsafeBitCast(symbol, to: MremapFunction.self)
        }()

        /// Moves the pages of `[source, source + length)` to `destination`, replacing whatever was mapped there in
        /// one step (under the kernel's mmap lock: a concurrent reader of `destination` sees the old pages or the
        /// new ones, never a hole).
        static func movePages(from source: UnsafeMutableRawPointer, length: Int, to destination: UnsafeMutableRawPointer)
            throws(SystemCallError)
        {
            guard let mremapFunction else { throw SystemCallError(call: "mremap", errorNumber: ENOSYS) }
            let moved = mremapFunction(source, length, length, remapFixed, destination)
            guard let moved, moved != MAP_FAILED, moved == destination else { throw SystemCallError.last("mremap") }
        }
    }
#endif

// Name the libc functions explicitly: inside PosixFile, `read`, `write` and
// `close` would otherwise resolve to the methods.
@inline(__always) private func Glibc_close(_ fd: Int32) -> Int32 { close(fd) }
@inline(__always) private func Glibc_read(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int) -> Int {
    read(fd, buffer, count)
}
@inline(__always) private func Glibc_write(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int {
    write(fd, buffer, count)
}

/// Renames `from` to `to` atomically (same file system), replacing `to`.
func renameFile(from: String, to: String) throws(SystemCallError) {
    guard rename(from, to) == 0 else { throw SystemCallError.last("rename") }
}

/// Removes a file, ignoring a missing one.
func removeFileIfPresent(_ path: String) {
    _ = unlink(path)
}

/// Flushes a directory's entries (after a rename into it) so the new name survives a crash.
func synchronizeDirectory(_ path: String) {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return }
    _ = fsync(fd)
    _ = close(fd)
}

/// The current wall-clock time in epoch seconds.
func currentEpochSeconds() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return Int64(now.tv_sec)
}

/// A monotonic clock reading in seconds, for durations.
func monotonicSeconds() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}

/// The process id, to make temporary names unique.
func currentProcessID() -> Int32 { getpid() }

// MARK: - File identity for change detection

/// What `stat` says about a path: enough to tell a replaced, retargeted or rewritten file.
struct FileStatus: Equatable, Sendable {
    var device: UInt64
    var inode: UInt64
    var size: Int64
    var modificationSeconds: Int64
    var modificationNanoseconds: Int64
    var changeSeconds: Int64
    var changeNanoseconds: Int64
    var isDirectory: Bool
    var isRegularFile: Bool

    /// `stat` (following symlinks) or `lstat` (the link itself); nil when the path does not exist.
    static func of(_ path: String, followSymlinks: Bool) -> FileStatus? {
        var info = stat()
        let result = followSymlinks ? stat(path, &info) : lstat(path, &info)
        guard result == 0 else { return nil }
        return FileStatus(info)
    }

    /// `fstat` of an open descriptor.
    static func of(_ file: PosixFile) throws(SystemCallError) -> FileStatus {
        var info = stat()
        guard fstat(file.descriptor, &info) == 0 else { throw SystemCallError.last("fstat") }
        return FileStatus(info)
    }

    private init(_ info: stat) {
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
        size = Int64(info.st_size)
        #if canImport(Darwin)
            modificationSeconds = Int64(info.st_mtimespec.tv_sec)
            modificationNanoseconds = Int64(info.st_mtimespec.tv_nsec)
            changeSeconds = Int64(info.st_ctimespec.tv_sec)
            changeNanoseconds = Int64(info.st_ctimespec.tv_nsec)
        #else
            modificationSeconds = Int64(info.st_mtim.tv_sec)
            modificationNanoseconds = Int64(info.st_mtim.tv_nsec)
            changeSeconds = Int64(info.st_ctim.tv_sec)
            changeNanoseconds = Int64(info.st_ctim.tv_nsec)
        #endif
        isDirectory = (info.st_mode & S_IFMT) == S_IFDIR
        isRegularFile = (info.st_mode & S_IFMT) == S_IFREG
    }
}

// MARK: - XXH3 checksum

/// Streaming XXH3-64 over the bytes a builder writes; owns its C state.
final class XXH3Stream {
    private let state: OpaquePointer

    init() {
        // XXH3_createState only fails when malloc fails, which Swift treats as fatal anyway.
        guard let state = XXH3_createState() else { fatalError("XXH3_createState: out of memory") }
        self.state = state
        XXH3_64bits_reset(state)
    }

    deinit {
        XXH3_freeState(state)
    }

    func update(_ bytes: ArraySlice<UInt8>) {
        bytes.withUnsafeBytes { raw in
            _ = XXH3_64bits_update(state, raw.baseAddress, raw.count)
        }
    }

    func digest() -> UInt64 { UInt64(XXH3_64bits_digest(state)) }

    /// Starts over, as if just created.
    func reset() { XXH3_64bits_reset(state) }

    /// ``update(_:)`` from raw memory (the builder's records, written straight from a parsed batch).
    func update(_ bytes: UnsafeRawBufferPointer) {
        _ = XXH3_64bits_update(state, bytes.baseAddress, bytes.count)
    }
}

/// XXH3-64 of `bytes` with `seed`.
func xxh3(_ bytes: [UInt8], seed: UInt64) -> UInt64 {
    bytes.withUnsafeBytes { raw in UInt64(XXH3_64bits_withSeed(raw.baseAddress, raw.count, XXH64_hash_t(seed))) }
}

/// XXH3-64 of raw memory (the loaded snapshot body).
func xxh3(_ raw: UnsafeRawBufferPointer) -> UInt64 {
    UInt64(XXH3_64bits(raw.baseAddress, raw.count))
}
