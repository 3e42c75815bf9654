internal import COfferdProto
import OfferdCore

/// A feedback event's type (`offerd.v1.EventType`); raw values are the proto's.
public enum FeedbackEventType: Int, Sendable, CaseIterable {
    case unspecified = 0
    case display = 1
    case interact = 2
    case dismiss = 3
}

/// One `offerd.v1.Event` of a RecordEvents call, as decoded (not yet validated).
public struct FeedbackEvent: Hashable, Sendable {
    public var eventID: String
    /// Nil when the message had no identity.
    public var identity: Identity?
    /// Nil for a value the proto does not define.
    public var type: FeedbackEventType?
    public var offerIDs: [String]
    public var propositionID: String
    public var timestampMs: Int64

    public init(
        eventID: String, identity: Identity?, type: FeedbackEventType?, offerIDs: [String], propositionID: String = "",
        timestampMs: Int64 = 0
    ) {
        self.eventID = eventID
        self.identity = identity
        self.type = type
        self.offerIDs = offerIDs
        self.propositionID = propositionID
        self.timestampMs = timestampMs
    }
}

/// `offerd.v1.RecordEventsRequest`, as decoded.
public struct RecordEventsRequest: Hashable, Sendable {
    public var events: [FeedbackEvent]
    public var dryRun: Bool

    public init(events: [FeedbackEvent], dryRun: Bool = false) {
        self.events = events
        self.dryRun = dryRun
    }

    /// The most events in one call (SPEC 9.4).
    public static let maximumEvents = 100
    /// The most offer ids in one event.
    public static let maximumOfferIDs = 30
    /// The longest event id, in UTF-8 bytes.
    public static let maximumEventIDBytes = 128
    /// How far ahead of the server's clock a timestamp may be.
    public static let maximumFutureMs: Int64 = 5 * 60 * 1000
    /// How old a timestamp may be.
    public static let maximumAgeMs: Int64 = 31 * 86_400_000

    /// The first problem of the request, naming its field (`events[3].offer_ids[0] is empty`), or nil when every
    /// event may be recorded (SPEC 9.4). `nowMs` is the server's clock.
    public func validationError(nowMs: Int64) -> String? {
        guard !events.isEmpty else { return "events: at least one event is required" }
        guard events.count <= Self.maximumEvents else {
            return "events: at most \(Self.maximumEvents) events per call, got \(events.count)"
        }
        for (index, event) in events.enumerated() {
            let path = "events[\(index)]"
            if let problem = eventIDError(event.eventID) { return "\(path).event_id \(problem)" }
            if let problem = identityError(event.identity) { return "\(path).identity\(problem)" }
            guard let type = event.type, type != .unspecified else {
                return "\(path).type must be EVENT_TYPE_DISPLAY, EVENT_TYPE_INTERACT or EVENT_TYPE_DISMISS"
            }
            guard !event.offerIDs.isEmpty else { return "\(path).offer_ids: at least one offer id is required" }
            guard event.offerIDs.count <= Self.maximumOfferIDs else {
                return "\(path).offer_ids: at most \(Self.maximumOfferIDs) offer ids, got \(event.offerIDs.count)"
            }
            for (offerIndex, offerID) in event.offerIDs.enumerated() where offerID.isEmpty {
                return "\(path).offer_ids[\(offerIndex)] is empty"
            }
            if event.timestampMs != 0 {
                if event.timestampMs > nowMs &+ Self.maximumFutureMs {
                    return "\(path).timestamp_ms is more than 5 minutes ahead of the server's clock"
                }
                if event.timestampMs < nowMs &- Self.maximumAgeMs {
                    return "\(path).timestamp_ms is more than 31 days old"
                }
            }
        }
        return nil
    }
}

/// `offerd.v1.UpdateConsentRequest`, as decoded.
public struct UpdateConsentRequest: Hashable, Sendable {
    public var eventID: String
    public var identity: Identity?
    /// The consent entries in message order (a key sent twice keeps its last value, as protobuf maps do).
    public var consents: [(key: String, value: String)]
    public var dryRun: Bool

    public init(eventID: String, identity: Identity?, consents: [(key: String, value: String)], dryRun: Bool = false) {
        self.eventID = eventID
        self.identity = identity
        self.consents = consents
        self.dryRun = dryRun
    }

    public static func == (lhs: UpdateConsentRequest, rhs: UpdateConsentRequest) -> Bool {
        lhs.eventID == rhs.eventID && lhs.identity == rhs.identity && lhs.dryRun == rhs.dryRun
            && lhs.consents.map(\.key) == rhs.consents.map(\.key)
            && lhs.consents.map(\.value) == rhs.consents.map(\.value)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(eventID)
        hasher.combine(consents.map(\.key))
    }

    /// The consent keys offerd accepts (SPEC 9.5).
    public static let keys: Set<String> = [
        "personalize.content", "marketing.any", "marketing.email", "marketing.sms", "marketing.push",
        "marketing.call",
    ]

    /// The consents as a map, the last value of a repeated key winning.
    public var consentMap: [String: String] {
        var map: [String: String] = [:]
        for entry in consents { map[entry.key] = entry.value }
        return map
    }

    /// The first problem of the request, naming its field, or nil (SPEC 9.5).
    public func validationError() -> String? {
        if let problem = eventIDError(eventID) { return "event_id \(problem)" }
        if let problem = identityError(identity) { return "identity\(problem)" }
        let map = consentMap
        guard !map.isEmpty else { return "consents: at least one consent is required" }
        for entry in consents {
            guard Self.keys.contains(entry.key) else {
                return "consents[\"\(entry.key)\"] is not a consent offerd reads "
                    + "(personalize.content, marketing.any, marketing.email, marketing.sms, marketing.push, marketing.call)"
            }
            guard ConsentChoice(xdmValue: entry.value) != nil else {
                return "consents[\"\(entry.key)\"] value \"\(entry.value)\" is not an XDM choice value"
                    + " (y, n, p, u, dy, dn, LI, CT, CP, VI, PI)"
            }
        }
        return nil
    }
}

private func eventIDError(_ eventID: String) -> String? {
    if eventID.isEmpty { return "is required" }
    if eventID.utf8.count > RecordEventsRequest.maximumEventIDBytes {
        return "is longer than \(RecordEventsRequest.maximumEventIDBytes) bytes"
    }
    return nil
}

private func identityError(_ identity: Identity?) -> String? {
    guard let identity else { return " is required" }
    if identity.namespace.isEmpty { return ".namespace is empty" }
    if identity.id.isEmpty { return ".id is empty" }
    return nil
}

/// Converts the RecordEvents and UpdateConsent messages (gRPC payloads without the 5-byte prefix) to and from
/// values, with protobuf-c doing the protobuf work; strings are checked for UTF-8 and NUL first, as for Decide.
public enum EventsCodec {
    public static func decodeRecordEventsRequest(_ bytes: UnsafeRawBufferPointer) throws(WireDecodeError)
        -> RecordEventsRequest
    {
        try WireStringCheck.check(bytes, schema: .recordEventsRequest)
        let arena = ProtoArena(initialCapacity: 1024 + 2 * bytes.count)
        return try withExtendedLifetime(arena) { () throws(WireDecodeError) -> RecordEventsRequest in
            var allocator = arena.allocator
            let unpacked = withNonNullBase(bytes) { base, count in
                offerd__v1__record_events_request__unpack(&allocator, count, base)
            }
            guard let message = unpacked?.pointee else {
                throw WireDecodeError(message: "undecodable protobuf: not a valid offerd.v1.RecordEventsRequest")
            }
            let events = array(message.events, count: message.n_events) { event in
                FeedbackEvent(
                    eventID: swiftString(event.event_id),
                    identity: event.identity.map {
                        Identity(namespace: swiftString($0.pointee.namespace_), id: swiftString($0.pointee.id))
                    },
                    type: FeedbackEventType(rawValue: Int(event.type.rawValue)),
                    offerIDs: array(event.offer_ids, count: event.n_offer_ids, swiftString),
                    propositionID: swiftString(event.proposition_id),
                    timestampMs: event.timestamp_ms)
            }
            return RecordEventsRequest(events: events, dryRun: message.dry_run != 0)
        }
    }

    public static func decodeRecordEventsRequest(_ bytes: [UInt8]) throws(WireDecodeError) -> RecordEventsRequest {
        try bytes.withUnsafeBytes { buffer in
            Result { () throws(WireDecodeError) in try decodeRecordEventsRequest(buffer) }
        }.get()
    }

    public static func decodeUpdateConsentRequest(_ bytes: UnsafeRawBufferPointer) throws(WireDecodeError)
        -> UpdateConsentRequest
    {
        try WireStringCheck.check(bytes, schema: .updateConsentRequest)
        let arena = ProtoArena(initialCapacity: 512 + 2 * bytes.count)
        return try withExtendedLifetime(arena) { () throws(WireDecodeError) -> UpdateConsentRequest in
            var allocator = arena.allocator
            let unpacked = withNonNullBase(bytes) { base, count in
                offerd__v1__update_consent_request__unpack(&allocator, count, base)
            }
            guard let message = unpacked?.pointee else {
                throw WireDecodeError(message: "undecodable protobuf: not a valid offerd.v1.UpdateConsentRequest")
            }
            let consents = array(message.consents, count: message.n_consents) { entry in
                (key: swiftString(entry.key), value: swiftString(entry.value))
            }
            return UpdateConsentRequest(
                eventID: swiftString(message.event_id),
                identity: message.identity.map {
                    Identity(namespace: swiftString($0.pointee.namespace_), id: swiftString($0.pointee.id))
                },
                consents: consents, dryRun: message.dry_run != 0)
        }
    }

    public static func decodeUpdateConsentRequest(_ bytes: [UInt8]) throws(WireDecodeError) -> UpdateConsentRequest {
        try bytes.withUnsafeBytes { buffer in
            Result { () throws(WireDecodeError) in try decodeUpdateConsentRequest(buffer) }
        }.get()
    }

    public static func encodeRecordEventsResponse(recorded: UInt32, duplicates: UInt32, position: String) -> [UInt8] {
        let arena = ProtoArena(initialCapacity: 256 + position.utf8.count)
        return withExtendedLifetime(arena) {
            var message = Offerd__V1__RecordEventsResponse()
            offerd__v1__record_events_response__init(&message)
            message.recorded = recorded
            message.duplicates = duplicates
            message.position = arena.cString(position)
            return withUnsafePointer(to: &message) { pointer in
                let size = offerd__v1__record_events_response__get_packed_size(pointer)
                return packed(size: size) { offerd__v1__record_events_response__pack(pointer, $0) }
            }
        }
    }

    public static func encodeUpdateConsentResponse(position: String, duplicate: Bool) -> [UInt8] {
        let arena = ProtoArena(initialCapacity: 256 + position.utf8.count)
        return withExtendedLifetime(arena) {
            var message = Offerd__V1__UpdateConsentResponse()
            offerd__v1__update_consent_response__init(&message)
            message.position = arena.cString(position)
            message.duplicate = duplicate ? 1 : 0
            return withUnsafePointer(to: &message) { pointer in
                let size = offerd__v1__update_consent_response__get_packed_size(pointer)
                return packed(size: size) { offerd__v1__update_consent_response__pack(pointer, $0) }
            }
        }
    }
}

extension WireStringSchema {
    static let event = WireStringSchema(fields: [
        Field(number: 1, name: "event_id", isRepeated: false, kind: .string),
        Field(number: 2, name: "identity", isRepeated: false, kind: .message(identity)),
        Field(number: 4, name: "offer_ids", isRepeated: true, kind: .string),
        Field(number: 5, name: "proposition_id", isRepeated: false, kind: .string),
    ])

    /// `offerd.v1.RecordEventsRequest`.
    static let recordEventsRequest = WireStringSchema(fields: [
        Field(number: 1, name: "events", isRepeated: true, kind: .message(event))
    ])

    /// A `map<string, string>` entry.
    static let stringEntry = WireStringSchema(fields: [
        Field(number: 1, name: "key", isRepeated: false, kind: .string),
        Field(number: 2, name: "value", isRepeated: false, kind: .string),
    ])

    /// `offerd.v1.UpdateConsentRequest`.
    static let updateConsentRequest = WireStringSchema(fields: [
        Field(number: 1, name: "event_id", isRepeated: false, kind: .string),
        Field(number: 2, name: "identity", isRepeated: false, kind: .message(identity)),
        Field(number: 3, name: "consents", isRepeated: true, kind: .message(stringEntry)),
    ])
}
