/// The shared event log: a Redis (>= 6.2) or Valkey stream that many servers append to and follow
/// (`--events redis://...`).
///
/// ## Format
/// One stream entry per batch, `XADD KEY * batch <bytes>`, where the bytes are ``EventLogCodec``'s encoding of
/// the batch (binary: arguments are passed with their lengths). An entry's position is the stream entry id and
/// its index in the batch, `1733540000000-0.17`. One entry per batch keeps the stream's entry rate (and Redis's
/// per-entry overhead) low at high event rates.
///
/// ## Connections and threads
/// Two connections, each owned by one ``RedisConnection`` and used under its own lock: one for ``append(_:)``
/// and ``trim(before:)`` (the writer thread), one for ``read(after:maxCount:timeout:)`` and ``endPosition()``
/// (the follower thread), so a read blocked in `XREAD BLOCK` never delays an append. They connect on first use. A lost connection
/// makes the call throw ``EventLogError/unavailable(_:)``; the next call reconnects. ``close()`` waits for a
/// blocked read to return (at most its timeout).
///
/// ## Durability
/// ``append(_:)`` returns once Redis acknowledged the `XADD`: the batch is as durable as Redis's persistence
/// makes it (see ``EventLog``). When it throws `unavailable`, the `XADD` may still have been applied (the
/// reply was lost); a retry appends a second copy with the same writer pair.
///
/// ## Reads
/// `XREAD COUNT n [BLOCK ms] STREAMS KEY LASTID` from the entry id of the position. When `maxCount` cut the last
/// batch a read returned, the rest of that batch is served from a one-entry cache (or fetched with `XRANGE`
/// when the cache holds another entry). A position whose index is `UInt32.max` (the `resumeAfter` of a
/// malformed entry) means "after the whole stream entry".
public final class RedisStreamEventLog: EventLog, @unchecked Sendable {
    // @unchecked: `writer` is only used under `writeLock`; `reader` and `lastBatch` only under `readLock`;
    // `isClosed` is only read or written under either lock with both taken to set it.

    /// The largest encoded batch appended (Redis's own limit for a bulk string is 512 MB).
    public static let maxBatchBytes = 64 << 20

    public let configuration: RedisEventLogConfiguration
    private let timeouts: RedisTimeouts
    private let key: [UInt8]

    private let writeLock = EventLogConditionLock()
    private let writer: RedisConnection
    private let readLock = EventLogConditionLock()
    private let reader: RedisConnection
    /// The last batch a read decoded, for a read that continues inside it.
    private var lastBatch: (id: RedisStreamID, entries: [EventLogEntry])?
    private var isClosed = false

    /// A log on the stream `configuration` names. Connects on the first call, not here.
    public init(configuration: RedisEventLogConfiguration, timeouts: RedisTimeouts = RedisTimeouts()) {
        self.configuration = configuration
        self.timeouts = timeouts
        key = Array(configuration.key.utf8)
        writer = RedisConnection(configuration: configuration, timeouts: timeouts)
        reader = RedisConnection(configuration: configuration, timeouts: timeouts)
    }

    // MARK: - EventLog

    public func append(_ batch: [EventLogEntry]) throws(EventLogError) -> [EventLogPosition] {
        guard !batch.isEmpty else { return [] }
        let payload = EventLogCodec.encode(batch)
        guard payload.count <= Self.maxBatchBytes else {
            throw EventLogError.batchTooLarge(bytes: payload.count, limit: Self.maxBatchBytes)
        }
        let reply = try writeLock.withLock { () throws(EventLogError) -> RedisValue in
            guard !isClosed else { throw EventLogError.closed("the log is closed") }
            return try writer.command([Array("XADD".utf8), key, Array("*".utf8), Self.batchField, payload])
        }
        guard let text = try Self.success(reply, command: "XADD").text, let id = RedisStreamID(text) else {
            throw EventLogError.rejected(command: "XADD", message: "unexpected reply \(reply)")
        }
        // A batch's count fits an index: each entry takes at least 9 of at most `maxBatchBytes` bytes.
        return (0..<batch.count).map { id.position(index: UInt32($0)) }
    }

    public func read(after position: EventLogPosition?, maxCount: Int, timeout: Duration) throws(EventLogError)
        -> [EventLogRecord]
    {
        precondition(maxCount > 0, "maxCount must be positive")
        let start: RedisStreamID
        let afterIndex: UInt32?
        switch position {
        case nil:
            (start, afterIndex) = (.zero, nil)
        case .stream(let milliseconds, let sequence, let index)?:
            (start, afterIndex) = (RedisStreamID(milliseconds: milliseconds, sequence: sequence), index)
        case let other?:
            throw EventLogError.invalidPosition("\(other) is not a stream position")
        }
        return try readLock.withLock { () throws(EventLogError) -> [EventLogRecord] in
            guard !isClosed else { throw EventLogError.closed("the log is closed") }
            if let afterIndex, afterIndex != UInt32.max {
                let rest = try restOfBatch(start, after: afterIndex, maxCount: maxCount)
                if !rest.isEmpty { return rest }
            }
            return try readStream(after: start, maxCount: maxCount, timeout: timeout)
        }
    }

    /// `XREVRANGE KEY + - COUNT 1` on the reader's connection: the last stream entry, decoded for its batch's
    /// size (and kept for the read that reaches it). A last entry that cannot be decoded ends at the position a
    /// reader skipping it resumes after.
    public func endPosition() throws(EventLogError) -> EventLogPosition? {
        try readLock.withLock { () throws(EventLogError) -> EventLogPosition? in
            guard !isClosed else { throw EventLogError.closed("the log is closed") }
            let reply = try reader.command([
                Array("XREVRANGE".utf8), key, Array("+".utf8), Array("-".utf8), Array("COUNT".utf8),
                Array("1".utf8),
            ])
            guard case .array(let found) = try Self.success(reply, command: "XREVRANGE") else {
                throw EventLogError.rejected(command: "XREVRANGE", message: "unexpected reply \(reply)")
            }
            guard let last = found.first else { return nil }
            do throws(EventLogError) {
                let (id, entries) = try Self.decodeStreamEntry(last)
                lastBatch = (id, entries)
                return id.position(index: UInt32(entries.count - 1))
            } catch {
                guard case .malformedEntry(_, _, let resumeAfter) = error else { throw error }
                return resumeAfter
            }
        }
    }

    public func trim(before position: EventLogPosition) throws(EventLogError) {
        guard let entryID = position.streamEntryID else {
            throw EventLogError.invalidPosition("\(position) is not a stream position")
        }
        let reply = try writeLock.withLock { () throws(EventLogError) -> RedisValue in
            guard !isClosed else { throw EventLogError.closed("the log is closed") }
            return try writer.command([Array("XTRIM".utf8), key, Array("MINID".utf8), Array(entryID.utf8)])
        }
        _ = try Self.success(reply, command: "XTRIM")
    }

    public func close() {
        readLock.withLock {
            writeLock.withLock {
                isClosed = true
                writer.disconnect()
            }
            reader.disconnect()
            lastBatch = nil
        }
    }

    /// Checks that the server answers (`PING` on the writer's connection); throws `unavailable` when not.
    public func ping() throws(EventLogError) {
        let reply = try writeLock.withLock { () throws(EventLogError) -> RedisValue in
            guard !isClosed else { throw EventLogError.closed("the log is closed") }
            return try writer.command([Array("PING".utf8)])
        }
        _ = try Self.success(reply, command: "PING")
    }

    // MARK: - Reading

    private static let batchField = Array("batch".utf8)

    /// The entries after index `after` of the batch `id`, from the cache or with `XRANGE`; empty when the batch
    /// has no more (or is gone).
    private func restOfBatch(_ id: RedisStreamID, after: UInt32, maxCount: Int) throws(EventLogError)
        -> [EventLogRecord]
    {
        let entries: [EventLogEntry]
        if let lastBatch, lastBatch.id == id {
            entries = lastBatch.entries
        } else {
            let idText = Array(id.description.utf8)
            let reply = try reader.command([
                Array("XRANGE".utf8), key, idText, idText, Array("COUNT".utf8), Array("1".utf8),
            ])
            guard case .array(let found) = try Self.success(reply, command: "XRANGE") else {
                throw EventLogError.rejected(command: "XRANGE", message: "unexpected reply \(reply)")
            }
            guard let first = found.first else { return [] }
            let (foundID, decoded) = try Self.decodeStreamEntry(first)
            guard foundID == id else { return [] }
            lastBatch = (id, decoded)
            entries = decoded
        }
        guard Int(after) + 1 < entries.count else { return [] }
        let end = min(entries.count, Int(after) + 1 + maxCount)
        return (Int(after) + 1..<end).map {
            EventLogRecord(position: id.position(index: UInt32($0)), entry: entries[$0])
        }
    }

    /// `XREAD` from `after`, blocking up to `timeout`.
    private func readStream(after: RedisStreamID, maxCount: Int, timeout: Duration) throws(EventLogError)
        -> [EventLogRecord]
    {
        // COUNT limits stream entries, not events: ask for about as many batches as `maxCount` events fill at
        // the last batch's size, so that a reader of large batches does not fetch (and drop) many times what it
        // returns. At most 512 entries per round trip.
        let batchSize = max(1, lastBatch?.entries.count ?? 1)
        let entryCount = min(512, max(1, (maxCount + batchSize - 1) / batchSize))
        var arguments: [[UInt8]] = [Array("XREAD".utf8), Array("COUNT".utf8), Array("\(entryCount)".utf8)]
        let blockMilliseconds = Self.milliseconds(rounding: timeout)
        // BLOCK 0 would wait forever: a zero timeout is a plain, non-blocking XREAD.
        if blockMilliseconds > 0 {
            arguments += [Array("BLOCK".utf8), Array("\(blockMilliseconds)".utf8)]
        }
        arguments += [Array("STREAMS".utf8), key, Array(after.description.utf8)]
        let reply = try reader.command(arguments, extraWait: .milliseconds(blockMilliseconds))
        let streams: [RedisValue]
        switch try Self.success(reply, command: "XREAD") {
        case .null: return []
        case .array(let array): streams = array
        default: throw EventLogError.rejected(command: "XREAD", message: "unexpected reply \(reply)")
        }
        var records: [EventLogRecord] = []
        for stream in streams {
            guard case .array(let pair) = stream, pair.count == 2, case .array(let streamEntries) = pair[1] else {
                throw EventLogError.rejected(command: "XREAD", message: "unexpected reply \(reply)")
            }
            for streamEntry in streamEntries {
                let (id, entries) = try Self.decodeStreamEntry(streamEntry)
                lastBatch = (id, entries)
                for (index, entry) in entries.enumerated() {
                    records.append(EventLogRecord(position: id.position(index: UInt32(index)), entry: entry))
                    if records.count == maxCount { return records }
                }
            }
        }
        return records
    }

    /// Decodes `[id, [field, value, ...]]`; the batch is the value of the `batch` field.
    private static func decodeStreamEntry(_ value: RedisValue) throws(EventLogError) -> (RedisStreamID, [EventLogEntry])
    {
        guard case .array(let pair) = value, pair.count == 2, let idText = pair[0].text, let id = RedisStreamID(idText)
        else {
            throw EventLogError.rejected(command: "XREAD", message: "a stream entry without an id: \(value)")
        }
        let skip = id.position(index: UInt32.max)
        guard case .array(let fields) = pair[1] else {
            throw EventLogError.malformedEntry(at: idText, reason: "no fields", resumeAfter: skip)
        }
        var payload: [UInt8]?
        var field = 0
        while field + 1 < fields.count {
            if fields[field].bytes == batchField { payload = fields[field + 1].bytes }
            field += 2
        }
        guard let payload else {
            throw EventLogError.malformedEntry(at: idText, reason: "no batch field", resumeAfter: skip)
        }
        do throws(EventLogDecodingError) {
            let entries = try EventLogCodec.decode(payload)
            guard !entries.isEmpty, entries.count <= Int(UInt32.max) else {
                throw EventLogDecodingError(reason: "an empty batch", offset: 0)
            }
            return (id, entries)
        } catch {
            throw EventLogError.malformedEntry(at: idText, reason: error.description, resumeAfter: skip)
        }
    }

    /// The reply itself, or the error it carries (classified by ``RedisConnection``).
    private static func success(_ reply: RedisValue, command: String) throws(EventLogError) -> RedisValue {
        guard case .error(let message) = reply else { return reply }
        throw RedisConnection.replyError(command: command, message: message)
    }

    /// A timeout in whole milliseconds, rounded up (so a short positive timeout still blocks), capped at a day.
    private static func milliseconds(rounding timeout: Duration) -> Int64 {
        let (seconds, attoseconds) = timeout.components
        guard seconds >= 0, seconds > 0 || attoseconds > 0 else { return 0 }
        let capped = min(seconds, 86_400)
        return capped * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
    }
}
