import OfferdCore
import OfferdEventLog
import OfferdSnapshot

/// The JSON Lines form of log entries (SPEC 9.6, `offerd events export`): one entry a line, with the keys
/// `position`, `key` (`{"namespace","id"}`), `type`, `timeMs`, `eventId`, `offerIds`, `propositionId`,
/// `consents`, and the writer's `serverId` and `batch`, which a fold needs to recognise a batch written twice
/// (see ``LiveOverlay``) exactly as the servers do.
public enum EventLogExport {
    /// One entry as a JSON line, without the newline.
    public static func line(_ record: EventLogRecord) -> [UInt8] {
        let entry = record.entry
        var bytes: [UInt8] = []
        bytes.reserveCapacity(256)
        func key(_ name: String, first: Bool = false) {
            bytes.append(contentsOf: (first ? "{\"" : ",\"").utf8)
            bytes.append(contentsOf: name.utf8)
            bytes.append(contentsOf: "\":".utf8)
        }
        key("position", first: true)
        JSONWriter.appendString(record.position.description, to: &bytes)
        key("key")
        bytes.append(contentsOf: "{\"namespace\":".utf8)
        JSONWriter.appendString(entry.key.namespace, to: &bytes)
        bytes.append(contentsOf: ",\"id\":".utf8)
        JSONWriter.appendString(entry.key.id, to: &bytes)
        bytes.append(UInt8(ascii: "}"))
        key("type")
        JSONWriter.appendString(entry.type.description, to: &bytes)
        key("timeMs")
        bytes.append(contentsOf: "\(entry.timeMs)".utf8)
        key("eventId")
        JSONWriter.appendString(entry.eventID, to: &bytes)
        key("offerIds")
        bytes.append(UInt8(ascii: "["))
        for (index, offer) in entry.offerIDs.enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            JSONWriter.appendString(offer, to: &bytes)
        }
        bytes.append(UInt8(ascii: "]"))
        key("propositionId")
        JSONWriter.appendString(entry.propositionID, to: &bytes)
        key("consents")
        bytes.append(UInt8(ascii: "{"))
        for (index, consentKey) in entry.consents.keys.sorted().enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            JSONWriter.appendString(consentKey, to: &bytes)
            bytes.append(UInt8(ascii: ":"))
            JSONWriter.appendString(entry.consents[consentKey]!, to: &bytes)
        }
        bytes.append(UInt8(ascii: "}"))
        key("serverId")
        JSONWriter.appendString(entry.serverID, to: &bytes)
        key("batch")
        bytes.append(contentsOf: "\(entry.batchNumber)}".utf8)
        return bytes
    }

    static let knownKeys: Set<String> = [
        "position", "key", "type", "timeMs", "eventId", "offerIds", "propositionId", "consents", "serverId", "batch",
    ]

    /// Reads one line of an export; the error names the key that is wrong.
    public static func record(fromLine bytes: [UInt8]) throws(EventLogExportError) -> EventLogRecord {
        let value: JSONValue
        do {
            value = try JSONParser.parse(bytes)
        } catch {
            throw EventLogExportError("invalid JSON: \(error.message)")
        }
        guard case .object(let members) = value else { throw EventLogExportError("not a JSON object") }
        for member in members where !knownKeys.contains(member.key) {
            throw EventLogExportError("unknown key \"\(member.key)\"")
        }
        func string(_ name: String, required: Bool = false) throws(EventLogExportError) -> String {
            switch value[name] {
            case .string(let text)?: return text
            case nil where !required: return ""
            case nil: throw EventLogExportError("\(name) is missing")
            case let other?: throw EventLogExportError("\(name) must be a string, not \(other.typeDescription)")
            }
        }
        func integer(_ name: String, required: Bool) throws(EventLogExportError) -> Int64 {
            switch value[name] {
            case .number(let number)?:
                guard number == number.rounded(.towardZero), abs(number) <= 9_007_199_254_740_992 else {
                    throw EventLogExportError("\(name) must be an integer")
                }
                return Int64(number)
            case nil where !required: return 0
            case nil: throw EventLogExportError("\(name) is missing")
            case let other?: throw EventLogExportError("\(name) must be a number, not \(other.typeDescription)")
            }
        }
        let positionText = try string("position", required: true)
        guard let position = EventLogPosition(positionText) else {
            throw EventLogExportError("position \"\(positionText)\" is not a log position")
        }
        guard case .object? = value["key"], case .string(let namespace)? = value["key"]?["namespace"],
            case .string(let id)? = value["key"]?["id"]
        else { throw EventLogExportError("key must be {\"namespace\": string, \"id\": string}") }
        let typeName = try string("type", required: true)
        guard let type = EventLogEventType.allCases.first(where: { $0.description == typeName }) else {
            throw EventLogExportError(
                "type \"\(typeName)\" is not one of decision, display, interact, dismiss, consent")
        }
        var offerIDs: [String] = []
        switch value["offerIds"] {
        case nil: break
        case .array(let items)?:
            for item in items {
                guard case .string(let offer) = item else { throw EventLogExportError("offerIds must hold strings") }
                offerIDs.append(offer)
            }
        case let other?: throw EventLogExportError("offerIds must be an array, not \(other.typeDescription)")
        }
        var consents: [String: String] = [:]
        switch value["consents"] {
        case nil: break
        case .object(let pairs)?:
            for pair in pairs {
                guard case .string(let choice) = pair.value else {
                    throw EventLogExportError("consents.\(pair.key) must be a string")
                }
                consents[pair.key] = choice
            }
        case let other?: throw EventLogExportError("consents must be an object, not \(other.typeDescription)")
        }
        let batch = try integer("batch", required: false)
        guard batch >= 0 else { throw EventLogExportError("batch must be >= 0") }
        let entry = EventLogEntry(
            key: EventLogProfileKey(namespace: namespace, id: id), type: type,
            timeMs: try integer("timeMs", required: true), eventID: try string("eventId"), offerIDs: offerIDs,
            propositionID: try string("propositionId"), consents: consents, serverID: try string("serverId"),
            batchNumber: UInt64(batch))
        return EventLogRecord(position: position, entry: entry)
    }
}

/// A line of an export that cannot be read.
public struct EventLogExportError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Folds log entries into a snapshot's folded state (SPEC 9.6, `offerd snapshot build --events`).
///
/// It starts from a previous snapshot's folded state (`--base`) and adds the entries after that state's
/// watermark: lifetime counts per profile key, offer and event type, total lifetime counts per offer and event
/// type, and consent values, the last in log order winning key by key. Entries at or before the base watermark
/// are read too, to learn event ids and batches: an entry is folded exactly when a server's overlay applies it
/// (``LiveOverlay/apply(_:)`` decides both), so a server serving the result counts nothing twice and loses
/// nothing. That holds when the fold reads the log from where the servers read it (its start): give it the
/// whole export.
public struct LogFolder {
    private var verdicts = LiveOverlay()
    public private(set) var state: FoldedState
    private let baseWatermark: EventLogPosition?
    private var previous: EventLogPosition?
    /// Entries folded (after the base watermark and not duplicates).
    public private(set) var foldedCount = 0

    /// Starts from `base` (empty without `--base`); throws when its watermark is not a log position.
    public init(base: FoldedState = FoldedState()) throws(EventLogExportError) {
        state = base
        if let text = base.watermark {
            guard let position = EventLogPosition(text) else {
                throw EventLogExportError("the base snapshot's watermark \"\(text)\" is not a log position")
            }
            baseWatermark = position
        } else {
            baseWatermark = nil
        }
    }

    /// Adds the next entry; entries must come in position order, from one log.
    public mutating func add(_ record: EventLogRecord) throws(EventLogExportError) {
        if let previous, record.position <= previous {
            throw EventLogExportError("position \(record.position) is not after the previous entry's (\(previous))")
        }
        if let anchor = previous ?? baseWatermark, Self.isStream(anchor) != Self.isStream(record.position) {
            throw EventLogExportError(
                "position \(record.position) is of another kind of log than \(anchor) (a file log and a Redis stream)")
        }
        previous = record.position
        let outcome = verdicts.apply(record)
        if let baseWatermark, record.position <= baseWatermark { return }
        state.watermark = record.position.description
        guard outcome == .applied else { return }
        let entry = record.entry
        let key = FoldedKey(namespace: entry.key.namespace, id: entry.key.id)
        switch entry.type {
        case .dismiss:
            return
        case .consent:
            var valid = ConsentOverride()
            var profile = state.profiles[key] ?? FoldedProfile()
            // Only what the overlay would apply: a known key with a choice value.
            for (consentKey, value) in entry.consents where valid.set(consentKey, xdmValue: value) {
                profile.consents[consentKey] = value
            }
            state.profiles[key] = profile
        case .decision, .display, .interact:
            var profile = state.profiles[key] ?? FoldedProfile()
            var seen: Set<String> = []
            for offer in entry.offerIDs where seen.insert(offer).inserted {
                Self.increment(&profile.counts[offer, default: FoldedCounts()], entry.type)
                Self.increment(&state.totals[offer, default: FoldedCounts()], entry.type)
            }
            state.profiles[key] = profile
        }
        foldedCount += 1
    }

    private static func increment(_ counts: inout FoldedCounts, _ type: EventLogEventType) {
        switch type {
        case .decision: counts.decision += 1
        case .display: counts.display += 1
        case .interact: counts.interact += 1
        default: break
        }
    }

    private static func isStream(_ position: EventLogPosition) -> Bool {
        if case .stream = position { return true }
        return false
    }
}

/// Where `offerd events trim` cuts a log (SPEC 9.1), and where a server cuts its own file log after a snapshot
/// swap: before the earlier of the given position and the log's first entry of the previous calendar month
/// (UTC), so that the log keeps the current and the previous month and everything after the position.
public enum EventLogTrimming {
    /// The position to pass to ``EventLog/trim(before:)``; nil when nothing comes before it.
    ///
    /// - For a Redis stream, the previous month starts at the stream entry id `MS-0` of its first millisecond
    ///   (entry ids are the writing server's clock: `XTRIM MINID`).
    /// - For a file log, at its first entry whose time is in the previous month or later, found by reading the
    ///   log from its start up to `keepAfter` at most.
    ///
    /// Throws ``EventLogError/invalidPosition(_:)`` for a position of another kind of log, or one after the
    /// log's last entry (a trim there would remove entries no snapshot folded).
    public static func cut(log: any EventLog, keepAfter: EventLogPosition, nowMs: Int64) throws(EventLogError)
        -> EventLogPosition?
    {
        let monthStart = CalendarBuckets.startOfPreviousMonth(timeMs: nowMs)
        switch keepAfter {
        case .stream:
            let previousMonth = EventLogPosition.stream(milliseconds: UInt64(max(0, monthStart)), sequence: 0, index: 0)
            return min(keepAfter, previousMonth)
        case .sequence:
            var position: EventLogPosition?
            var first = true
            while true {
                let records = try log.read(after: position, maxCount: 4096, timeout: .zero)
                guard !records.isEmpty else { break }
                for record in records {
                    guard case .sequence = record.position else {
                        throw EventLogError.invalidPosition("\(keepAfter) is not a position of this log")
                    }
                    if record.position >= keepAfter || record.entry.timeMs >= monthStart {
                        return first ? nil : min(record.position, keepAfter)
                    }
                    first = false
                }
                position = records.last?.position
            }
            throw EventLogError.invalidPosition("\(keepAfter) is after the log's last entry")
        }
    }
}
