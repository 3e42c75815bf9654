// The POSIX calls of the event log: files, locks, a mutex with a condition variable, and a SIGPIPE guard for
// hiredis's socket writes. With RedisConnection.swift, this is the only file of OfferdEventLog that touches raw
// pointers or C; the rest works on Swift arrays.

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// A failed system call as the event log reports it: the one place `errno` becomes a Swift error.
func systemError(_ call: String, path: String, errorNumber: Int32 = errno) -> EventLogError {
    let message = String(cString: strerror(errorNumber))
    // A full disk or quota is an outage the writer waits out (SPEC 9.1), not a broken log.
    if errorNumber == ENOSPC || errorNumber == EDQUOT {
        return .unavailable("\(call) \(path): \(message)")
    }
    return .system(call: call, path: path, errno: errorNumber, message: message)
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

/// An open file descriptor owned by exactly one Swift object; closed in `deinit` (which also drops its locks).
final class EventLogFile {
    let descriptor: Int32
    let path: String

    private init(descriptor: Int32, path: String) {
        self.descriptor = descriptor
        self.path = path
    }

    /// The file's identity while this object holds its owner lock (see ``lockExclusively()``).
    private var lockedIdentity: FileIdentity?

    deinit {
        if let lockedIdentity { LockedFiles.shared.remove(lockedIdentity) }
        _ = close(descriptor)
    }

    /// The device and inode of the open file.
    private func identity() -> FileIdentity? {
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { return nil }
        return FileIdentity(device: UInt64(status.st_dev), inode: UInt64(status.st_ino))
    }

    /// Opens (creating when missing) a file for reading and writing.
    static func openOrCreate(_ path: String, truncate: Bool = false) throws(EventLogError) -> EventLogFile {
        let flags = O_RDWR | O_CREAT | O_CLOEXEC | (truncate ? O_TRUNC : 0)
        let fd = retryingOnInterrupt { open(path, flags, 0o644) }
        guard fd >= 0 else { throw systemError("open", path: path) }
        return EventLogFile(descriptor: fd, path: path)
    }

    /// Opens an existing file for reading only.
    static func openForReading(_ path: String) throws(EventLogError) -> EventLogFile {
        let fd = retryingOnInterrupt { open(path, O_RDONLY | O_CLOEXEC) }
        guard fd >= 0 else { throw systemError("open", path: path) }
        return EventLogFile(descriptor: fd, path: path)
    }

    /// The file's size in bytes.
    func size() throws(EventLogError) -> Int {
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { throw systemError("fstat", path: path) }
        return Int(status.st_size)
    }

    /// Whether `path` still names this open file (a trim may have renamed another file over it meanwhile).
    func isStillNamedByPath() -> Bool {
        var mine = stat()
        var named = stat()
        guard fstat(descriptor, &mine) == 0, stat(path, &named) == 0 else { return false }
        return mine.st_dev == named.st_dev && mine.st_ino == named.st_ino
    }

    /// Reads up to `count` bytes at `offset` (fewer only at end of file).
    func read(count: Int, at offset: Int) throws(EventLogError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let got = bytes.withUnsafeMutableBytes { raw in
                retryingOnInterrupt { pread(descriptor, raw.baseAddress! + done, count - done, off_t(offset + done)) }
            }
            guard got >= 0 else { throw systemError("pread", path: path) }
            if got == 0 { break }
            done += got
        }
        bytes.removeLast(count - done)
        return bytes
    }

    /// Writes all of `bytes` at `offset`.
    func write(_ bytes: [UInt8], at offset: Int) throws(EventLogError) {
        var done = 0
        while done < bytes.count {
            let written = bytes.withUnsafeBytes { raw in
                retryingOnInterrupt {
                    pwrite(descriptor, raw.baseAddress! + done, raw.count - done, off_t(offset + done))
                }
            }
            guard written >= 0 else { throw systemError("pwrite", path: path) }
            done += written
        }
    }

    /// Flushes the data and the size (not other metadata) to stable storage.
    func synchronizeData() throws(EventLogError) {
        #if canImport(Darwin)
            let result = fsync(descriptor)
        #else
            let result = retryingOnInterrupt { fdatasync(descriptor) }
        #endif
        guard result == 0 else { throw systemError("fdatasync", path: path) }
    }

    func truncate(to size: Int) throws(EventLogError) {
        guard retryingOnInterrupt({ ftruncate(descriptor, off_t(size)) }) == 0 else {
            throw systemError("ftruncate", path: path)
        }
    }

    /// Makes this open file the log's owner, or says who owns it.
    ///
    /// Two locks, because no single POSIX lock does both jobs:
    /// - an open-file-description lock (`F_OFD_SETLK`) on byte 0 gives exclusivity: it conflicts with every
    ///   other open of the file, in this process too, and lives as long as this descriptor;
    /// - a classic record lock (`F_SETLK`) on byte 1 names the owner: `F_GETLK` reports a classic lock's PID,
    ///   while an OFD lock's PID reads as -1. The classic lock is per process and dropped when the process
    ///   closes any descriptor of the file, so it only serves the error message, never the exclusivity.
    ///
    /// Within this process a table of locked files names the holder instead: a classic lock never conflicts with
    /// its own process, so `F_GETLK` cannot tell "this process" from "a holder with no classic lock".
    func lockExclusively() throws(EventLogError) {
        #if os(Linux)
            var ownership = Self.lockRange(start: 0)
            if fcntl(descriptor, Self.setOFDLock, &ownership) != 0 {
                let failure = errno
                guard failure == EAGAIN || failure == EACCES else {
                    throw systemError("fcntl(F_OFD_SETLK)", path: path)
                }
                throw EventLogError.locked(path: path, pid: holderPID())
            }
            var naming = Self.lockRange(start: 1)
            _ = fcntl(descriptor, F_SETLK, &naming)
            if let identity = identity() {
                lockedIdentity = identity
                LockedFiles.shared.insert(identity)
            }
        #else
            // No OFD locks here: `flock` also conflicts between two opens in one process, but names no holder.
            if flock(descriptor, LOCK_EX | LOCK_NB) != 0 {
                guard errno == EWOULDBLOCK else { throw systemError("flock", path: path) }
                throw EventLogError.locked(path: path, pid: nil)
            }
        #endif
    }

    #if os(Linux)
        /// `F_OFD_SETLK` of <fcntl.h>: Swift's Glibc module does not import it (it sits behind `_GNU_SOURCE`).
        private static let setOFDLock: Int32 = 37

        private static func lockRange(start: Int) -> flock {
            var range = flock()
            range.l_type = Int16(F_WRLCK)
            range.l_whence = Int16(SEEK_SET)
            range.l_start = off_t(start)
            range.l_len = 1
            return range
        }

        /// The PID of the lock's holder: this process when one of its logs holds the file, else the process
        /// whose classic lock on byte 1 (or on the whole file) conflicts with ours; nil when neither is known.
        private func holderPID() -> Int32? {
            if let identity = identity(), LockedFiles.shared.contains(identity) { return getpid() }
            var probe = Self.lockRange(start: 1)
            guard fcntl(descriptor, F_GETLK, &probe) == 0, probe.l_type != Int16(F_UNLCK), probe.l_pid > 0 else {
                return nil
            }
            return probe.l_pid
        }
    #endif
}

/// A file's identity: its device and inode.
struct FileIdentity: Hashable {
    var device: UInt64
    var inode: UInt64
}

/// The files that logs of this process hold locked, to name this process as the holder.
final class LockedFiles: @unchecked Sendable {
    // @unchecked: `files` is only touched under `lock`.
    static let shared = LockedFiles()
    private let lock = EventLogConditionLock()
    private var files: Set<FileIdentity> = []

    func insert(_ identity: FileIdentity) { lock.withLock { _ = files.insert(identity) } }
    func remove(_ identity: FileIdentity) { lock.withLock { _ = files.remove(identity) } }
    func contains(_ identity: FileIdentity) -> Bool { lock.withLock { files.contains(identity) } }
}

/// Renames `from` to `to` atomically (same file system), replacing `to`.
func renameFile(from: String, to: String) throws(EventLogError) {
    guard rename(from, to) == 0 else { throw systemError("rename", path: "\(from) -> \(to)") }
}

func removeFileIfPresent(_ path: String) {
    _ = unlink(path)
}

/// Flushes a directory's entries (after a create or a rename in it) so the name survives a crash.
func synchronizeDirectory(containing path: String) throws(EventLogError) {
    let directory: String
    if let slash = path.lastIndex(of: "/") {
        directory = slash == path.startIndex ? "/" : String(path[..<slash])
    } else {
        directory = "."
    }
    let fd = open(directory, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw systemError("open", path: directory) }
    defer { _ = close(fd) }
    guard fsync(fd) == 0 else { throw systemError("fsync", path: directory) }
}

/// A mutex with one condition variable: the file log's state lock, on which readers wait for appends.
final class EventLogConditionLock: @unchecked Sendable {
    // Heap-allocated so that their addresses never move (a pthread mutex must not be copied).
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    init() {
        mutex.initialize(to: pthread_mutex_t())
        condition.initialize(to: pthread_cond_t())
        precondition(pthread_mutex_init(mutex, nil) == 0)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        #if !canImport(Darwin)
            // Deadlines on the monotonic clock: a wall-clock step must not stretch or cut a read's wait.
            pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        #endif
        precondition(pthread_cond_init(condition, &attributes) == 0)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    func withLock<Result, Failure: Error>(_ body: () throws(Failure) -> Result) throws(Failure) -> Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }

    /// Wakes every waiter. Call with the lock held, after changing what they wait for.
    func broadcast() {
        pthread_cond_broadcast(condition)
    }

    /// Waits (with the lock held, which it releases while waiting) until woken or `deadline` passes. Returns
    /// false once the deadline has passed; wake-ups may be spurious, so callers re-check their condition.
    func wait(until deadline: MonotonicInstant) -> Bool {
        #if canImport(Darwin)
            let remaining = deadline.nanoseconds - MonotonicInstant.now().nanoseconds
            guard remaining > 0 else { return false }
            var relative = timespec(tv_sec: Int(remaining / 1_000_000_000), tv_nsec: Int(remaining % 1_000_000_000))
            return pthread_cond_timedwait_relative_np(condition, mutex, &relative) != ETIMEDOUT
        #else
            var absolute = timespec(
                tv_sec: Int(deadline.nanoseconds / 1_000_000_000), tv_nsec: Int(deadline.nanoseconds % 1_000_000_000))
            return pthread_cond_timedwait(condition, mutex, &absolute) != ETIMEDOUT
        #endif
    }
}

/// A point on the monotonic clock, in nanoseconds.
struct MonotonicInstant: Comparable, Sendable {
    var nanoseconds: Int64

    static func now() -> MonotonicInstant {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return MonotonicInstant(nanoseconds: Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec))
    }

    /// `now() + duration`, saturating (a huge timeout means "wait for a very long time", not an overflow).
    static func after(_ duration: Duration) -> MonotonicInstant {
        let (seconds, attoseconds) = duration.components
        let nanoseconds = max(-1, min(seconds, 1 << 32)) * 1_000_000_000 + attoseconds / 1_000_000_000
        return MonotonicInstant(nanoseconds: now().nanoseconds + max(0, nanoseconds))
    }

    static func < (lhs: MonotonicInstant, rhs: MonotonicInstant) -> Bool { lhs.nanoseconds < rhs.nanoseconds }
}

/// Runs `body` with SIGPIPE blocked on this thread, and swallows a SIGPIPE that `body` raised.
///
/// hiredis writes to its socket with `write`, which raises SIGPIPE when Redis has gone away; unhandled, that
/// signal ends the process. Blocking it on the calling thread turns it into an `EPIPE` error that hiredis
/// reports; a signal left pending by our own write is then taken off the thread with `sigtimedwait` before the
/// old mask comes back. This keeps the process's signal dispositions untouched.
func withSIGPIPEBlocked<Result>(_ body: () throws(EventLogError) -> Result) throws(EventLogError) -> Result {
    var pipeOnly = sigset_t()
    sigemptyset(&pipeOnly)
    sigaddset(&pipeOnly, SIGPIPE)
    var previousMask = sigset_t()
    pthread_sigmask(SIG_BLOCK, &pipeOnly, &previousMask)
    var pendingBefore = sigset_t()
    sigpending(&pendingBefore)
    let wasPending = sigismember(&pendingBefore, SIGPIPE) == 1
    defer {
        var pendingAfter = sigset_t()
        sigpending(&pendingAfter)
        if !wasPending && sigismember(&pendingAfter, SIGPIPE) == 1 {
            #if canImport(Darwin)
                var taken: Int32 = 0
                sigwait(&pipeOnly, &taken)
            #else
                var noWait = timespec(tv_sec: 0, tv_nsec: 0)
                _ = sigtimedwait(&pipeOnly, nil, &noWait)
            #endif
        }
        pthread_sigmask(SIG_SETMASK, &previousMask, nil)
    }
    return try body()
}

/// Sleeps for about a millisecond (a retry's pause; POSIX calls stay in this file).
func pauseOneMillisecond() {
    usleep(1_000)
}
