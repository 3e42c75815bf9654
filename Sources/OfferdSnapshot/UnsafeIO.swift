// The read path's POSIX calls: files opened for reading, their status, the read lease, the system clocks, and the
// XXH3 checksum. One of the files of OfferdSnapshot that hold unsafe code (the list is in ProfileSnapshot.swift).
// The builder's writing side (creating, writing, renaming files; streaming XXH3) is OfferdSnapshotBuilder's
// UnsafeWriteIO.swift, on top of the `package` declarations here.
internal import CXXHash

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// A failed system call: the call's name and `strerror(errno)`.
package struct SystemCallError: Error, CustomStringConvertible {
    package var call: String
    package var errorNumber: Int32

    package init(call: String, errorNumber: Int32) {
        self.call = call
        self.errorNumber = errorNumber
    }

    /// Captures `errno` right after the failed call: the one place C error codes become Swift errors.
    package static func last(_ call: String) -> SystemCallError {
        SystemCallError(call: call, errorNumber: errno)
    }

    package var description: String { "\(call): \(reason)" }

    /// What the system says went wrong (`strerror`), without the call's name: for messages that name the file.
    package var reason: String { String(cString: strerror(errorNumber)) }

    package var isNotFound: Bool { errorNumber == ENOENT }
}

/// Runs a system call, retrying on EINTR.
@inlinable
package func retryingOnInterrupt<Result: BinaryInteger>(_ body: () -> Result) -> Result {
    while true {
        let result = body()
        if result == -1 && errno == EINTR { continue }
        return result
    }
}

/// An open file descriptor owned by exactly one Swift object.
///
/// The read side is here (the loader and the server read through it); the builder adds creating and writing in
/// OfferdSnapshotBuilder.
///
/// - Important: call ``close()``; the descriptor is also closed in `deinit`
///   as a safety net, but a builder that renames a file should close first.
package final class PosixFile {
    package private(set) var descriptor: Int32

    /// Takes ownership of `descriptor`, an open descriptor that nothing else closes.
    package init(descriptor: Int32) {
        self.descriptor = descriptor
    }

    deinit {
        if descriptor >= 0 { _ = systemClose(descriptor) }
    }

    /// Opens an existing file for reading.
    package static func openForReading(_ path: String) throws(SystemCallError) -> PosixFile {
        let fd = retryingOnInterrupt { open(path, O_RDONLY | O_CLOEXEC) }
        guard fd >= 0 else { throw SystemCallError.last("open") }
        return PosixFile(descriptor: fd)
    }

    /// A second descriptor of the same open file (`dup`), closed on its own.
    package func duplicate() throws(SystemCallError) -> PosixFile {
        let copy = dup(descriptor)
        guard copy >= 0 else { throw SystemCallError.last("dup") }
        return PosixFile(descriptor: copy)
    }

    package func close() throws(SystemCallError) {
        guard descriptor >= 0 else { return }
        let fd = descriptor
        descriptor = -1
        guard systemClose(fd) == 0 else { throw SystemCallError.last("close") }
    }

    /// Reads up to `buffer.count - start` bytes into `buffer[start...]`; 0 at end of file.
    package func read(into buffer: inout [UInt8], from start: Int) throws(SystemCallError) -> Int {
        precondition(start >= 0 && start <= buffer.count)
        let capacity = buffer.count - start
        let count = buffer.withUnsafeMutableBytes { raw in
            retryingOnInterrupt { systemRead(descriptor, raw.baseAddress! + start, capacity) }
        }
        guard count >= 0 else { throw SystemCallError.last("read") }
        return count
    }

    /// Reads exactly `count` bytes at `offset`, or fewer at end of file.
    package func read(count: Int, at offset: Int) throws(SystemCallError) -> [UInt8] {
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

    #if os(Linux)
        /// Takes a read lease (`F_SETLEASE`, `F_RDLCK`): until it is released, another open of the file for
        /// writing and any truncation first notify this process (SIGIO) and then wait for the release (at most
        /// `/proc/sys/fs/lease-break-time` seconds). Throws when no lease can be had: EAGAIN (someone has the
        /// file open for writing), EACCES (not the file's owner), EINVAL or ENOLCK (no leases on that file
        /// system, or leases disabled).
        package func takeReadLease() throws(SystemCallError) {
            guard fcntl(descriptor, LinuxFileLease.setLease, Int32(F_RDLCK)) == 0 else {
                throw SystemCallError.last("fcntl(F_SETLEASE)")
            }
        }

        /// Gives the lease up: a writer waiting for it proceeds.
        package func releaseLease() {
            _ = fcntl(descriptor, LinuxFileLease.setLease, Int32(F_UNLCK))
        }

        /// Whether the lease is no longer a plain read lease: a writer is waiting for it (the kernel then reports
        /// the type the lease is being broken to), or it was already broken or released.
        package var leaseIsBreakingOrGone: Bool {
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

        private typealias MremapFunction =
            @convention(c) (
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
        static func movePages(
            from source: UnsafeMutableRawPointer, length: Int, to destination: UnsafeMutableRawPointer
        )
            throws(SystemCallError)
        {
            guard let mremapFunction else { throw SystemCallError(call: "mremap", errorNumber: ENOSYS) }
            let moved = mremapFunction(source, length, length, remapFixed, destination)
            guard let moved, moved != MAP_FAILED, moved == destination else { throw SystemCallError.last("mremap") }
        }
    }
#endif

// Name the libc functions explicitly: inside PosixFile, `read` and `close`
// would otherwise resolve to the methods.
@inline(__always) private func systemClose(_ fd: Int32) -> Int32 { close(fd) }
@inline(__always) private func systemRead(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int) -> Int {
    read(fd, buffer, count)
}

// MARK: - System clocks

/// A reading of a system clock: whole seconds and the nanoseconds past them.
package struct ClockReading: Sendable, Equatable {
    package var seconds: Int64
    package var nanoseconds: Int64

    /// The reading in seconds, with a fraction.
    package var totalSeconds: Double { Double(seconds) + Double(nanoseconds) / 1e9 }
}

/// The one reader of the system clocks in offerd: every other clock helper is a view of it.
///
/// It lives in OfferdSnapshot's read path because that is the lowest module that does I/O, and every module
/// that reads a clock imports it: OfferdCore has no I/O and takes the time as a parameter (`now`), and
/// OfferdSnapshotBuilder and OfferdServer sit on top of this module. `package`: a tool for offerd's own modules,
/// not API.
package enum SystemClock {
    /// The wall clock (`CLOCK_REALTIME`), in time since the Unix epoch; it jumps when the system time is set.
    case wall
    /// A clock that only moves forward (`CLOCK_MONOTONIC`), for durations.
    case monotonic

    /// The clock's current reading.
    package func read() -> ClockReading {
        var now = timespec()
        clock_gettime(self == .wall ? CLOCK_REALTIME : CLOCK_MONOTONIC, &now)
        return ClockReading(seconds: Int64(now.tv_sec), nanoseconds: Int64(now.tv_nsec))
    }
}

/// The wall-clock time in epoch seconds, with a fraction (``SystemClock/wall``).
package func wallClockSeconds() -> Double { SystemClock.wall.read().totalSeconds }

/// A monotonic clock reading in seconds, for durations (``SystemClock/monotonic``).
package func monotonicSeconds() -> Double { SystemClock.monotonic.read().totalSeconds }

// MARK: - File identity for change detection

/// What `stat` says about a path: enough to tell a replaced, retargeted or rewritten file.
package struct FileStatus: Equatable, Sendable {
    package var device: UInt64
    package var inode: UInt64
    package var size: Int64
    package var modificationSeconds: Int64
    package var modificationNanoseconds: Int64
    package var changeSeconds: Int64
    package var changeNanoseconds: Int64
    package var isDirectory: Bool
    package var isRegularFile: Bool

    /// `stat` (following symlinks) or `lstat` (the link itself); nil when the path does not exist.
    package static func of(_ path: String, followSymlinks: Bool) -> FileStatus? {
        var info = stat()
        let result = followSymlinks ? stat(path, &info) : lstat(path, &info)
        guard result == 0 else { return nil }
        return FileStatus(info)
    }

    /// `fstat` of an open descriptor.
    package static func of(_ file: PosixFile) throws(SystemCallError) -> FileStatus {
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

/// XXH3-64 of `bytes` with `seed`.
package func xxh3(_ bytes: [UInt8], seed: UInt64) -> UInt64 {
    bytes.withUnsafeBytes { raw in UInt64(XXH3_64bits_withSeed(raw.baseAddress, raw.count, XXH64_hash_t(seed))) }
}

/// XXH3-64 of raw memory (the loaded snapshot body).
package func xxh3(_ raw: UnsafeRawBufferPointer) -> UInt64 {
    UInt64(XXH3_64bits(raw.baseAddress, raw.count))
}
