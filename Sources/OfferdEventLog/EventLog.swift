// OfferdEventLog: the event log of live state (SPEC 9.1). The module's overview is the documentation of the
// `EventLog` protocol below.

/// An event log: appends batches of events durably and reads them back in position order, from a file or from
/// a Redis/Valkey stream. This is the whole job of the `OfferdEventLog` module; the overlay, the writer and
/// follower threads and the RPCs are built on top of it elsewhere. The module depends on nothing of offerd
/// (its values are its own) and on hiredis through `CHiredis`.
///
/// ## The contract
/// - ``append(_:)`` writes one batch and returns one position per entry, in order. When it returns, the batch
///   is as durable as the backend makes it (below); when it throws, the batch may or may not be in the log
///   (a lost acknowledgement), so a retry may write it twice: the entries' writer pair (server id, batch
///   number) lets a reader drop the second copy.
/// - ``read(after:maxCount:timeout:)`` returns entries after a position, in position order, waiting up to
///   `timeout` for at least one to exist. Positions only grow; a reader that passes the last position it got
///   sees every entry once.
/// - ``endPosition()`` is the position of the last entry the log holds now: a reader that has applied up to it
///   has seen everything that was in the log when it asked, however fast others keep appending.
/// - ``trim(before:)`` removes the batches before the one holding a position (no reader may need them).
/// - Every failure is an ``EventLogError``; ``EventLogError/unavailable(_:)`` means "cannot reach the log now,
///   try again" (Redis down, connection lost, disk full). The next call tries again by itself.
///
/// ## Durability of each backend
/// - ``FileEventLog`` (`file:PATH`): one `write` and one `fdatasync` per batch (group commit), so an appended
///   batch survives a crash of the process or of the machine. A batch is one framed record (length, CRC32C,
///   payload): after a crash it is in the file whole or not at all, and a torn tail is cut at open.
/// - ``RedisStreamEventLog`` (`redis://`): an append returns when Redis acknowledged the `XADD`, so it is
///   exactly as durable as Redis's persistence. For acknowledged writes to survive a crash of Redis (or of its
///   machine) Redis needs `appendonly yes` and `appendfsync always`; with `appendfsync everysec` (Redis's
///   default when the AOF is on) up to about a second of acknowledged batches can be lost, with RDB snapshots
///   alone everything since the last snapshot, with no persistence everything.
///
/// ## Threads
/// Implementations are safe to call from any thread. Calls block the calling thread (file I/O, a socket): call
/// them from dedicated threads (one writer, one follower), never from an event loop.
///
/// ## Where the unsafe code is
/// - `PosixSupport.swift`: POSIX file calls, `fcntl` locks, the mutex and condition variable, signal masks.
/// - `RedisConnection.swift`: the only importer of `CHiredis`; owns each `redisContext`.
/// Everything else (the encoding, CRC32C, positions, URL parsing, the logs' logic) is safe Swift over arrays.
public protocol EventLog: AnyObject, Sendable {
    /// Appends one batch and returns each entry's position, in order; durable (as the backend allows) when it
    /// returns. An empty batch writes nothing and returns no positions.
    func append(_ batch: [EventLogEntry]) throws(EventLogError) -> [EventLogPosition]

    /// Returns up to `maxCount` entries after `position` (from the start when nil), in position order. Waits up
    /// to `timeout` for the first one; returns an empty array when none came. A batch may be split across
    /// calls when `maxCount` cuts it, and a call may return fewer than `maxCount` entries while more exist.
    /// Entries trimmed away are skipped: after a trimmed position comes the first entry that remains.
    func read(after position: EventLogPosition?, maxCount: Int, timeout: Duration) throws(EventLogError)
        -> [EventLogRecord]

    /// The position of the log's last entry now (the last committed entry of a file, the last entry of a
    /// stream's last batch); nil when the log holds no entry. Waits for nothing.
    func endPosition() throws(EventLogError) -> EventLogPosition?

    /// Removes the entries before `position`, a whole batch at a time: the batch that holds `position` stays
    /// whole, so entries of that batch before it stay too. Positions of the entries kept do not change.
    func trim(before position: EventLogPosition) throws(EventLogError)

    /// Releases the log (the file lock, the connections). Calls after it throw ``EventLogError/closed``.
    func close()
}

/// Why an event log call failed: the one error type of the module.
public enum EventLogError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The log cannot be reached now (Redis down, the connection lost, a full disk); a later call tries again.
    case unavailable(String)
    /// The file log belongs to another open log: `pid` holds its lock (nil when the holder cannot be named).
    case locked(path: String, pid: Int32?)
    /// The file exists but is not an event log (or one written by a newer, incompatible version).
    case notAnEventLog(path: String, reason: String)
    /// A file system call failed.
    case system(call: String, path: String, errno: Int32, message: String)
    /// An entry in the log cannot be decoded. `resumeAfter` is a position past it, for a reader that chooses to
    /// skip it.
    case malformedEntry(at: String, reason: String, resumeAfter: EventLogPosition)
    /// The server answered a command with an error (a wrong key type, a refused AUTH, ...).
    case rejected(command: String, message: String)
    /// A position of another kind of log, or one this log cannot serve.
    case invalidPosition(String)
    /// A batch whose encoding is longer than a record may be.
    case batchTooLarge(bytes: Int, limit: Int)
    /// A call after ``EventLog/close()``, or after a failed sync made the file log's content unknown.
    case closed(String)

    public var description: String {
        switch self {
        case .unavailable(let reason): "event log unavailable: \(reason)"
        case .locked(let path, let pid?): "event log \(path) is in use by process \(pid)"
        case .locked(let path, nil): "event log \(path) is in use by another open log"
        case .notAnEventLog(let path, let reason): "\(path) is not an offerd event log: \(reason)"
        case .system(let call, let path, _, let message): "\(call) \(path): \(message)"
        case .malformedEntry(let at, let reason, _): "event log entry \(at) is malformed: \(reason)"
        case .rejected(let command, let message): "event log server refused \(command): \(message)"
        case .invalidPosition(let reason): "invalid event log position: \(reason)"
        case .batchTooLarge(let bytes, let limit): "batch of \(bytes) bytes exceeds the record limit \(limit)"
        case .closed(let reason): "event log closed: \(reason)"
        }
    }
}
