/// The profile an event belongs to (SPEC 9.2): the namespace ASCII-lower-cased, the id as given.
public struct EventLogProfileKey: Hashable, Sendable, CustomStringConvertible {
    /// The identity namespace, ASCII-lower-cased (other characters as given).
    public let namespace: String
    /// The identity's id, byte for byte as given.
    public let id: String

    /// Lower-cases the namespace's ASCII letters; the id is kept as given.
    public init(namespace: String, id: String) {
        self.namespace = Self.asciiLowercased(namespace)
        self.id = id
    }

    public var description: String { "\(namespace):\(id)" }

    private static func asciiLowercased(_ text: String) -> String {
        // Only ASCII letters fold (the snapshot's identity rule): `String.lowercased()` would also fold
        // non-ASCII letters and make two distinct keys equal.
        // Over the contiguous bytes, not `text.utf8`'s iterator (about 80 instructions a byte for a small string,
        // measured), and written in place: a Decide for a key with live state resolves it, usually with an
        // upper-case namespace (`ECID`), and a short result needs no allocation at all.
        var text = text
        return text.withUTF8 { source in
            guard source.contains(where: { $0 >= 0x41 && $0 <= 0x5A }) else { return nil }
            return String(unsafeUninitializedCapacity: source.count) { buffer in
                for index in source.indices {
                    let byte = source[index]
                    buffer[index] = byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte
                }
                return source.count
            }
        } ?? text
    }
}

/// What an event records (SPEC 9.2): a decision, one of the feedback events of `RecordEvents`, or a consent update.
public enum EventLogEventType: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case decision = 1
    case display = 2
    case interact = 3
    case dismiss = 4
    case consent = 5

    /// The name used in exports (SPEC 9.6) and in messages.
    public var description: String {
        switch self {
        case .decision: "decision"
        case .display: "display"
        case .interact: "interact"
        case .dismiss: "dismiss"
        case .consent: "consent"
        }
    }
}

/// One event as the log stores it.
///
/// It carries what SPEC 9.2, 9.4 and 9.5 record, already resolved by the writing server (the profile key), and
/// the writer's server id and batch number: a server's follower recognises its own batches when it reads them
/// back (the design sketch's pending table), and a batch appended twice after a lost acknowledgement carries the
/// same pair, so a reader can drop the second copy.
///
/// The log checks nothing of the content: the RPC layer validates events before it appends them.
public struct EventLogEntry: Hashable, Sendable {
    public var key: EventLogProfileKey
    public var type: EventLogEventType
    /// Unix time in milliseconds: the server's clock for decision events, the event's timestamp otherwise.
    public var timeMs: Int64
    /// The client's event id (SPEC 9.4); empty for decision events.
    public var eventID: String
    /// The offers the event names; empty for consent updates.
    public var offerIDs: [String]
    /// The proposition the event refers to; may be empty.
    public var propositionID: String
    /// Consent key (`marketing.email`, ...) to XDM choice value (`y`, `n`, ...); only consent updates have any.
    public var consents: [String: String]
    /// The id of the server that wrote the batch.
    public var serverID: String
    /// The writing server's number for the batch (it counts its own batches).
    public var batchNumber: UInt64

    public init(
        key: EventLogProfileKey,
        type: EventLogEventType,
        timeMs: Int64,
        eventID: String = "",
        offerIDs: [String] = [],
        propositionID: String = "",
        consents: [String: String] = [:],
        serverID: String,
        batchNumber: UInt64
    ) {
        self.key = key
        self.type = type
        self.timeMs = timeMs
        self.eventID = eventID
        self.offerIDs = offerIDs
        self.propositionID = propositionID
        self.consents = consents
        self.serverID = serverID
        self.batchNumber = batchNumber
    }
}

/// An entry read back from the log, with its position.
public struct EventLogRecord: Hashable, Sendable {
    public var position: EventLogPosition
    public var entry: EventLogEntry

    public init(position: EventLogPosition, entry: EventLogEntry) {
        self.position = position
        self.entry = entry
    }
}
