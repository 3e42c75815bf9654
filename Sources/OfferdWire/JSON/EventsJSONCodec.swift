import OfferdCore

/// `RecordEvents` and `UpdateConsent` in proto3 JSON, for Connect's `application/json` (SPEC 10: every unary
/// method): the same values ``EventsCodec`` reads from protobuf, read and worded as ``DecideJSONCodec`` reads a
/// DecideRequest (field names in lowerCamelCase or as in the .proto, each once, `null` as the default, unknown
/// fields refused with their path); the semantic checks stay in the requests' `validationError`, as for protobuf.
public enum EventsJSONCodec {
    private typealias Fields = DecideJSONCodec

    private static let recordEventsRequestFields = [("events", "events"), ("dry_run", "dryRun")]
    private static let eventFields = [
        ("event_id", "eventId"), ("identity", "identity"), ("type", "type"), ("offer_ids", "offerIds"),
        ("proposition_id", "propositionId"), ("timestamp_ms", "timestampMs"),
    ]
    private static let updateConsentRequestFields = [
        ("event_id", "eventId"), ("identity", "identity"), ("consents", "consents"), ("dry_run", "dryRun"),
    ]
    /// `offerd.v1.EventType`'s names, by number.
    static let eventTypeNames = [
        "EVENT_TYPE_UNSPECIFIED", "EVENT_TYPE_DISPLAY", "EVENT_TYPE_INTERACT", "EVENT_TYPE_DISMISS",
    ]

    // MARK: - Requests

    /// Decodes a RecordEventsRequest; errors name the field (`events[2].offer_ids[0]: expected a string, ...`).
    public static func decodeRecordEventsRequest(_ bytes: [UInt8]) throws(WireDecodeError) -> RecordEventsRequest {
        var request = RecordEventsRequest(events: [])
        let members = try Fields.object(try Fields.document(bytes), path: "", type: "offerd.v1.RecordEventsRequest")
        try Fields.forEachField(members, of: recordEventsRequestFields, path: "") {
            (field, value) throws(WireDecodeError) in
            switch field {
            case "events":
                for (index, element) in try Fields.array(value, path: "events").enumerated() {
                    request.events.append(try event(element, path: "events[\(index)]"))
                }
            default: request.dryRun = try Fields.bool(value, path: "dry_run")
            }
        }
        return request
    }

    /// Decodes an UpdateConsentRequest; `consents` is a JSON object of strings.
    public static func decodeUpdateConsentRequest(_ bytes: [UInt8]) throws(WireDecodeError) -> UpdateConsentRequest {
        var request = UpdateConsentRequest(eventID: "", identity: nil, consents: [])
        let members = try Fields.object(try Fields.document(bytes), path: "", type: "offerd.v1.UpdateConsentRequest")
        try Fields.forEachField(members, of: updateConsentRequestFields, path: "") {
            (field, value) throws(WireDecodeError) in
            switch field {
            case "event_id": request.eventID = try Fields.string(value, path: "event_id")
            case "identity": request.identity = try Fields.identity(value, path: "identity")
            case "consents":
                let entries = try Fields.object(value, path: "consents", type: "map<string, string>")
                for entry in entries {
                    try Fields.checkNoNUL(entry.key, path: "consents.key")
                    let path = "consents[\(Fields.quoted(entry.key))]"
                    // A map value of null is refused by protobuf's JSON parsers too.
                    if case .null = entry.value {
                        throw WireDecodeError(message: "\(path): null is not allowed as a map value")
                    }
                    request.consents.append((entry.key, try Fields.string(entry.value, path: path)))
                }
            default: request.dryRun = try Fields.bool(value, path: "dry_run")
            }
        }
        return request
    }

    private static func event(_ value: JSONValue, path: String) throws(WireDecodeError) -> FeedbackEvent {
        var event = FeedbackEvent(eventID: "", identity: nil, type: .unspecified, offerIDs: [])
        let members = try Fields.object(value, path: path, type: "offerd.v1.Event")
        try Fields.forEachField(members, of: eventFields, path: path) { (field, value) throws(WireDecodeError) in
            switch field {
            case "event_id": event.eventID = try Fields.string(value, path: path + ".event_id")
            case "identity": event.identity = try Fields.identity(value, path: path + ".identity")
            case "type":
                // A number the proto does not define is kept as unknown (nil), as protobuf keeps it; validation
                // then names the field.
                let number = try Fields.enumNumber(value, names: eventTypeNames, path: path + ".type")
                event.type = FeedbackEventType(rawValue: number)
            case "offer_ids":
                for (index, element) in try Fields.array(value, path: path + ".offer_ids").enumerated() {
                    event.offerIDs.append(try Fields.string(element, path: "\(path).offer_ids[\(index)]"))
                }
            case "proposition_id": event.propositionID = try Fields.string(value, path: path + ".proposition_id")
            default:
                // ±2^53: every integer a double holds exactly, and far past any timestamp validation accepts
                // (Int64's own ends round to 2^63 as doubles, which no Int64 holds).
                event.timestampMs = try Fields.integer(
                    value, in: -(1 << 53)...(1 << 53), path: path + ".timestamp_ms")
            }
        }
        return event
    }

    // MARK: - Responses

    /// A RecordEventsResponse; fields at their default are left out, as proto3 JSON does.
    public static func encodeRecordEventsResponse(recorded: UInt32, duplicates: UInt32, position: String) -> [UInt8] {
        var out = JSONOut()
        out.open()
        out.integer("recorded", Int(recorded))
        out.integer("duplicates", Int(duplicates))
        out.string("position", position)
        out.close()
        return out.bytes
    }

    /// An UpdateConsentResponse; fields at their default are left out.
    public static func encodeUpdateConsentResponse(position: String, duplicate: Bool) -> [UInt8] {
        var out = JSONOut()
        out.open()
        out.string("position", position)
        out.bool("duplicate", duplicate)
        out.close()
        return out.bytes
    }
}
