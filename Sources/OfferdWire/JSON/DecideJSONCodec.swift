import OfferdCore

/// Converts `offerd.v1.DecideRequest` / `DecideResponse` in protobuf's canonical JSON mapping (proto3 JSON) to and
/// from the same OfferdCore values ``DecideCodec`` produces from protobuf, so that everything after decoding
/// (``DecisionRequest/validationError()``, the engine) is shared by both encodings.
///
/// Reading follows what protobuf's own parsers accept:
/// - field names in lowerCamelCase (`requestId`) or as written in the .proto (`request_id`); one field given under
///   both names, or twice, is an error;
/// - `null` for a field means the field's default; `null` as a `context` value is a `ContextValue` with no kind;
/// - integers as JSON numbers with an integral value or as strings holding one (`3`, `3.0`, `"3"`);
/// - doubles as numbers or as strings (`"1.5"`, `"NaN"`, `"Infinity"`, `"-Infinity"`);
/// - enums by name or by number;
/// - an unknown field is an error that names it, and so is a second member of a `oneof`.
///
/// Strings must be valid UTF-8 (the JSON parser refuses anything else, `\u` escapes of lone surrogates included)
/// and hold no NUL character: the rule the protobuf path applies (``WireStringCheck``), with the same wording.
///
/// Writing is canonical: fields in .proto order, lowerCamelCase names, fields with their default value left out
/// (as protobuf's printers do by default) except `score`, which is present exactly when set (proto3 explicit
/// presence), enums by name, doubles in the shortest form that parses back to the same value (`"NaN"`,
/// `"Infinity"` and `"-Infinity"` as strings), non-ASCII text as UTF-8.
public enum DecideJSONCodec {
    // MARK: - Requests

    /// Decodes one DecideRequest in proto3 JSON.
    ///
    /// Errors are ``WireDecodeError``s whose messages name the field (`scopes[1].item_count: ...`,
    /// `unknown field "foo" in scopes[0] (offerd.v1.Scope)`); the semantic limits are left to
    /// `DecisionRequest.validationError()`, as for protobuf.
    public static func decodeRequest(_ bytes: [UInt8]) throws(WireDecodeError) -> DecisionRequest {
        if let request = bytes.withUnsafeBytes({ DecideRequestJSONReader.read($0) }) { return request }
        return try decodeRequestThroughTree(bytes)
    }

    /// The general path: the whole document parsed into a `JSONValue` tree, then read field by field. It decides
    /// every request ``DecideRequestJSONReader`` gives up on, and words every error.
    static func decodeRequestThroughTree(_ bytes: [UInt8]) throws(WireDecodeError) -> DecisionRequest {
        try decodeRequest(try document(bytes))
    }

    /// A message's bytes as a JSON document; a syntax error is `invalid JSON: ...`.
    static func document(_ bytes: [UInt8]) throws(WireDecodeError) -> JSONValue {
        do {
            return try JSONParser.parse(bytes)
        } catch {
            throw WireDecodeError(message: "invalid JSON: \(error)")
        }
    }

    /// An `offerd.v1.Identity` at `path` (`identity`, `events[2].identity`).
    static func identity(_ value: JSONValue, path: String) throws(WireDecodeError) -> Identity {
        var identity = Identity(namespace: "", id: "")
        let members = try object(value, path: path, type: "offerd.v1.Identity")
        try forEachField(members, of: FieldTable.identity, path: path) { (field, value) throws(WireDecodeError) in
            switch field {
            case "namespace": identity.namespace = try string(value, path: path + ".namespace")
            default: identity.id = try string(value, path: path + ".id")
            }
        }
        return identity
    }

    /// Decodes one DecideRequest from bytes in place (a request body in a transport's buffer); see
    /// ``decodeRequest(_:)-([UInt8])``.
    public static func decodeRequest(_ bytes: UnsafeRawBufferPointer) throws(WireDecodeError) -> DecisionRequest {
        if let request = DecideRequestJSONReader.read(bytes) { return request }
        return try decodeRequestThroughTree(Array(bytes))
    }

    /// Decodes one DecideRequest from proto3 JSON text; see ``decodeRequest(_:)-([UInt8])``.
    public static func decodeRequest(_ text: String) throws(WireDecodeError) -> DecisionRequest {
        try decodeRequest(Array(text.utf8))
    }

    /// Decodes one DecideRequest from an already parsed JSON document.
    public static func decodeRequest(_ document: JSONValue) throws(WireDecodeError) -> DecisionRequest {
        var request = DecisionRequest(identity: Identity(namespace: "", id: ""), scopes: [])
        let members = try object(document, path: "", type: "offerd.v1.DecideRequest")
        try forEachField(members, of: FieldTable.decideRequest, path: "") { (field, value) throws(WireDecodeError) in
            switch field {
            case "request_id": request.requestID = try string(value, path: "request_id")
            case "identity": request.identity = try identity(value, path: "identity")
            case "scopes":
                let elements = try array(value, path: "scopes")
                request.scopes.reserveCapacity(elements.count)
                for (index, element) in elements.enumerated() {
                    request.scopes.append(try scope(element, path: "scopes[\(index)]"))
                }
            case "context":
                let entries = try object(value, path: "context", type: "map<string, offerd.v1.ContextValue>")
                for entry in entries {
                    try checkNoNUL(entry.key, path: "context.key")
                    request.context[entry.key] = try contextValue(entry.value, path: "context[\(quoted(entry.key))]")
                }
            case "allow_duplicates": request.allowDuplicates = try bool(value, path: "allow_duplicates")
            case "include_content": request.includeContent = try bool(value, path: "include_content")
            case "include_metadata": request.includeMetadata = try bool(value, path: "include_metadata")
            case "dry_run": request.dryRun = try bool(value, path: "dry_run")
            default: request.explain = try bool(value, path: "explain")
            }
        }
        return request
    }

    /// The request as proto3 JSON, as a client would write it; for tests and tools. Context entries are sorted by
    /// key (UTF-8 order), so equal requests give equal text.
    public static func encodeRequest(_ request: DecisionRequest) -> [UInt8] {
        var out = JSONOut()
        out.open()
        out.string("requestId", request.requestID)
        if !request.identity.namespace.isEmpty || !request.identity.id.isEmpty {
            out.key("identity")
            out.open()
            out.string("namespace", request.identity.namespace)
            out.string("id", request.identity.id)
            out.close()
        }
        if !request.scopes.isEmpty {
            out.key("scopes")
            out.openArray()
            for scope in request.scopes {
                out.element()
                out.open()
                out.string("decisionId", scope.decisionID)
                out.string("placementId", scope.placementID)
                if scope.itemCount != 0 { out.integer("itemCount", Int(scope.itemCount)) }
                out.close()
            }
            out.closeArray()
        }
        if !request.context.isEmpty {
            out.key("context")
            out.open()
            for (key, value) in request.context.sorted(by: { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }) {
                out.key(key)
                out.open()
                switch value {
                case .null: break
                case .string(let text): out.string("stringValue", text, always: true)
                case .number(let number): out.double("numberValue", number)
                case .bool(let flag): out.bool("boolValue", flag, always: true)
                }
                out.close()
            }
            out.close()
        }
        out.bool("allowDuplicates", request.allowDuplicates)
        out.bool("includeContent", request.includeContent)
        out.bool("includeMetadata", request.includeMetadata)
        out.bool("dryRun", request.dryRun)
        out.bool("explain", request.explain)
        out.close()
        return out.bytes
    }

    // MARK: - Responses

    /// The DecideResponse for `result` as proto3 JSON: what ``DecideCodec`` packs as protobuf for the same
    /// arguments (a fresh UUID v4 per proposition, content fields only with `includeContent`, name, priority and
    /// characteristics only with `includeMetadata`, `score` when the engine set one).
    public static func encodeResponse(
        _ result: DecisionResult, requestID: String, snapshotVersion: String, includeContent: Bool,
        includeMetadata: Bool
    ) -> [UInt8] {
        var bytes: [UInt8] = []
        appendResponse(
            result, requestID: requestID, snapshotVersion: snapshotVersion, includeContent: includeContent,
            includeMetadata: includeMetadata, to: &bytes)
        return bytes
    }

    /// Appends the JSON of ``encodeResponse(_:requestID:snapshotVersion:includeContent:includeMetadata:)`` to
    /// `bytes` (a batch writes many responses into one buffer).
    public static func appendResponse(
        _ result: DecisionResult, requestID: String, snapshotVersion: String, includeContent: Bool,
        includeMetadata: Bool, to bytes: inout [UInt8]
    ) {
        var out = JSONOut(bytes: consume bytes)
        out.open()
        out.string("requestId", requestID)
        if !result.propositions.isEmpty {
            out.key("propositions")
            out.openArray()
            for proposition in result.propositions {
                out.element()
                out.open()
                out.key("propositionId")
                out.uuid()
                out.string("decisionId", proposition.decisionID)
                out.string("placementId", proposition.placementID)
                if proposition.outcome != .unspecified {
                    out.key("outcome")
                    out.rawString(outcomeNames[proposition.outcome.rawValue])
                }
                if proposition.reason != .unspecified {
                    out.key("reason")
                    out.rawString(reasonNames[proposition.reason.rawValue])
                }
                if !proposition.items.isEmpty {
                    out.key("items")
                    out.openArray()
                    for item in proposition.items {
                        out.element()
                        appendItem(item, includeContent: includeContent, includeMetadata: includeMetadata, to: &out)
                    }
                    out.closeArray()
                }
                if !proposition.trace.isEmpty {
                    out.key("trace")
                    out.openArray()
                    for entry in proposition.trace {
                        out.element()
                        out.open()
                        out.string("offerId", entry.offerID)
                        out.string("criterion", entry.criterion)
                        out.string("verdict", entry.verdict.rawValue)
                        out.string("collectionId", entry.collectionID)
                        if let score = entry.score { out.double("score", score) }
                        out.string("detail", entry.detail)
                        out.close()
                    }
                    out.closeArray()
                }
                out.close()
            }
            out.closeArray()
        }
        out.bool("profileFound", result.profileFound)
        out.string("catalogVersion", result.catalogVersion)
        out.string("snapshotVersion", snapshotVersion)
        out.close()
        bytes = out.bytes
    }

    private static func appendItem(
        _ item: DecidedItem, includeContent: Bool, includeMetadata: Bool, to out: inout JSONOut
    ) {
        out.open()
        out.string("id", item.id)
        if includeContent {
            let representation = item.representation
            out.string("format", representation.format ?? "")
            out.string("content", representation.content ?? "")
            out.string("deliveryUrl", representation.deliveryURL ?? "")
            out.string("linkUrl", representation.linkURL ?? "")
            if !representation.language.isEmpty {
                out.key("language")
                out.openArray()
                for language in representation.language {
                    out.element()
                    out.rawString(language)
                }
                out.closeArray()
            }
        }
        if includeMetadata {
            out.string("name", item.name ?? "")
            // As the protobuf path: int32 on the wire.
            out.integer("priority", Int(Int32(clamping: item.priority)))
            if !item.characteristics.isEmpty {
                out.key("characteristics")
                out.open()
                for characteristic in item.characteristics {
                    out.string(characteristic.key, characteristic.value, always: true)
                }
                out.close()
            }
        }
        if let score = item.score { out.double("score", score) }
        out.close()
    }

    /// Decodes a DecideResponse in proto3 JSON, as a client would; for tests and tools. Enum numbers this build
    /// does not know are kept, as protobuf keeps them in open enums.
    public static func decodeResponse(_ bytes: [UInt8]) throws(WireDecodeError) -> DecideResponseMessage {
        let document: JSONValue
        do {
            document = try JSONParser.parse(bytes)
        } catch {
            throw WireDecodeError(message: "invalid JSON: \(error)")
        }
        var response = DecideResponseMessage(
            requestID: "", propositions: [], profileFound: false, catalogVersion: "", snapshotVersion: "")
        let members = try object(document, path: "", type: "offerd.v1.DecideResponse")
        try forEachField(members, of: FieldTable.decideResponse, path: "") { (field, value) throws(WireDecodeError) in
            switch field {
            case "request_id": response.requestID = try string(value, path: "request_id")
            case "propositions":
                for (index, element) in try array(value, path: "propositions").enumerated() {
                    response.propositions.append(try proposition(element, path: "propositions[\(index)]"))
                }
            case "profile_found": response.profileFound = try bool(value, path: "profile_found")
            case "catalog_version": response.catalogVersion = try string(value, path: "catalog_version")
            default: response.snapshotVersion = try string(value, path: "snapshot_version")
            }
        }
        return response
    }

    /// Appends a batch error line's object: `{"requestId":..,"error":{"code":..,"message":..}}`, plus `"line"`
    /// (1-based input line number) when given.
    public static func appendError(
        requestID: String, code: String, message: String, line: Int? = nil, to bytes: inout [UInt8]
    ) {
        var out = JSONOut(bytes: consume bytes)
        out.open()
        out.string("requestId", requestID, always: true)
        if let line { out.integer("line", line) }
        out.key("error")
        out.open()
        out.string("code", code, always: true)
        out.string("message", message, always: true)
        out.close()
        out.close()
        bytes = out.bytes
    }

    /// The proto3 JSON names of `Outcome`, by number.
    public static let outcomeNames = [
        "OUTCOME_UNSPECIFIED", "OUTCOME_OFFERS", "OUTCOME_FALLBACK", "OUTCOME_SUPPRESSED", "OUTCOME_ERROR",
    ]

    /// The proto3 JSON names of `Reason`, by number.
    public static let reasonNames = [
        "REASON_UNSPECIFIED", "REASON_NO_ELIGIBLE_OFFERS", "REASON_PERSONALIZATION_DENIED", "REASON_MARKETING_DENIED",
        "REASON_UNKNOWN_PROFILE", "REASON_DECISION_NOT_FOUND", "REASON_PLACEMENT_NOT_IN_DECISION",
        "REASON_DECISION_INACTIVE",
    ]

    // MARK: - Reading messages

    private static func scope(_ value: JSONValue, path: @autoclosure () -> String) throws(WireDecodeError)
        -> ScopeRequest
    {
        guard case .object(let members) = value else {
            throw WireDecodeError(
                message: "\(path()): expected an object (offerd.v1.Scope), got \(value.typeDescription)")
        }
        var scope = ScopeRequest(decisionID: "", placementID: "", itemCount: 0)
        try forEachField(members, of: FieldTable.scope, path: path()) { (field, value) throws(WireDecodeError) in
            switch field {
            case "decision_id": scope.decisionID = try string(value, path: path() + ".decision_id")
            case "placement_id": scope.placementID = try string(value, path: path() + ".placement_id")
            default:
                scope.itemCount = UInt32(try integer(value, in: 0...Int64(UInt32.max), path: path() + ".item_count"))
            }
        }
        return scope
    }

    private static func contextValue(_ value: JSONValue, path: @autoclosure () -> String) throws(WireDecodeError)
        -> ContextValue
    {
        if case .null = value { return .null }
        let members = try object(value, path: path(), type: "offerd.v1.ContextValue")
        var result = ContextValue.null
        var kindField: String?
        try forEachField(members, of: FieldTable.contextValue, path: path()) { (field, value) throws(WireDecodeError) in
            // A null member is the field's default: it does not choose the oneof.
            if case .null = value { return }
            if let kindField {
                throw WireDecodeError(
                    message: "\(path()): more than one member of oneof kind (\(kindField) and \(field))")
            }
            kindField = field
            switch field {
            case "string_value": result = .string(try string(value, path: path() + ".string_value"))
            case "number_value": result = .number(try double(value, path: path() + ".number_value"))
            default: result = .bool(try bool(value, path: path() + ".bool_value"))
            }
        }
        return result
    }

    private static func proposition(_ value: JSONValue, path: @autoclosure () -> String) throws(WireDecodeError)
        -> PropositionMessage
    {
        let members = try object(value, path: path(), type: "offerd.v1.Proposition")
        var proposition = PropositionMessage(
            propositionID: "", decisionID: "", placementID: "", outcomeNumber: 0, reasonNumber: 0, items: [],
            trace: [])
        try forEachField(members, of: FieldTable.proposition, path: path()) { (field, value) throws(WireDecodeError) in
            switch field {
            case "proposition_id": proposition.propositionID = try string(value, path: path() + ".proposition_id")
            case "decision_id": proposition.decisionID = try string(value, path: path() + ".decision_id")
            case "placement_id": proposition.placementID = try string(value, path: path() + ".placement_id")
            case "outcome":
                proposition.outcomeNumber = try enumNumber(value, names: outcomeNames, path: path() + ".outcome")
            case "reason":
                proposition.reasonNumber = try enumNumber(value, names: reasonNames, path: path() + ".reason")
            case "items":
                for (index, element) in try array(value, path: path() + ".items").enumerated() {
                    proposition.items.append(try item(element, path: path() + ".items[\(index)]"))
                }
            default:
                for (index, element) in try array(value, path: path() + ".trace").enumerated() {
                    let entryPath = path() + ".trace[\(index)]"
                    let entry = try object(element, path: entryPath, type: "offerd.v1.TraceEntry")
                    var trace = TraceEntryMessage(offerID: "", criterion: "", verdict: "")
                    try forEachField(entry, of: FieldTable.traceEntry, path: entryPath) {
                        (field, value) throws(WireDecodeError) in
                        switch field {
                        case "offer_id": trace.offerID = try string(value, path: entryPath + ".offer_id")
                        case "criterion": trace.criterion = try string(value, path: entryPath + ".criterion")
                        case "verdict": trace.verdict = try string(value, path: entryPath + ".verdict")
                        case "collection_id":
                            trace.collectionID = try string(value, path: entryPath + ".collection_id")
                        case "score": trace.score = try double(value, path: entryPath + ".score")
                        default: trace.detail = try string(value, path: entryPath + ".detail")
                        }
                    }
                    proposition.trace.append(trace)
                }
            }
        }
        return proposition
    }

    private static func item(_ value: JSONValue, path: @autoclosure () -> String) throws(WireDecodeError) -> ItemMessage
    {
        let members = try object(value, path: path(), type: "offerd.v1.Item")
        var item = ItemMessage(id: "")
        try forEachField(members, of: FieldTable.item, path: path()) { (field, value) throws(WireDecodeError) in
            switch field {
            case "id": item.id = try string(value, path: path() + ".id")
            case "format": item.format = try string(value, path: path() + ".format")
            case "content": item.content = try string(value, path: path() + ".content")
            case "delivery_url": item.deliveryURL = try string(value, path: path() + ".delivery_url")
            case "link_url": item.linkURL = try string(value, path: path() + ".link_url")
            case "language":
                for (index, element) in try array(value, path: path() + ".language").enumerated() {
                    item.language.append(try string(element, path: path() + ".language[\(index)]"))
                }
            case "name": item.name = try string(value, path: path() + ".name")
            case "priority":
                item.priority = Int(
                    try integer(value, in: Int64(Int32.min)...Int64(Int32.max), path: path() + ".priority"))
            case "characteristics":
                let entries = try object(value, path: path() + ".characteristics", type: "map<string, string>")
                for entry in entries {
                    try checkNoNUL(entry.key, path: path() + ".characteristics.key")
                    item.characteristics.append(
                        Characteristic(
                            key: entry.key,
                            value: try string(entry.value, path: path() + ".characteristics[\(quoted(entry.key))]")))
                }
            default: item.score = try double(value, path: path() + ".score")
            }
        }
        return item
    }

    // MARK: - Reading fields

    /// One message's fields: (proto name, lowerCamelCase JSON name).
    private enum FieldTable {
        static let decideRequest = [
            ("request_id", "requestId"), ("identity", "identity"), ("scopes", "scopes"), ("context", "context"),
            ("allow_duplicates", "allowDuplicates"), ("include_content", "includeContent"),
            ("include_metadata", "includeMetadata"), ("dry_run", "dryRun"), ("explain", "explain"),
        ]
        static let identity = [("namespace", "namespace"), ("id", "id")]
        static let scope = [
            ("decision_id", "decisionId"), ("placement_id", "placementId"), ("item_count", "itemCount"),
        ]
        static let contextValue = [
            ("string_value", "stringValue"), ("number_value", "numberValue"), ("bool_value", "boolValue"),
        ]
        static let decideResponse = [
            ("request_id", "requestId"), ("propositions", "propositions"), ("profile_found", "profileFound"),
            ("catalog_version", "catalogVersion"), ("snapshot_version", "snapshotVersion"),
        ]
        static let proposition = [
            ("proposition_id", "propositionId"), ("decision_id", "decisionId"), ("placement_id", "placementId"),
            ("outcome", "outcome"), ("reason", "reason"), ("items", "items"), ("trace", "trace"),
        ]
        static let item = [
            ("id", "id"), ("format", "format"), ("content", "content"), ("delivery_url", "deliveryUrl"),
            ("link_url", "linkUrl"), ("language", "language"), ("name", "name"), ("priority", "priority"),
            ("characteristics", "characteristics"), ("score", "score"),
        ]
        static let traceEntry = [
            ("offer_id", "offerId"), ("criterion", "criterion"), ("verdict", "verdict"),
            ("collection_id", "collectionId"), ("score", "score"), ("detail", "detail"),
        ]
    }

    /// Calls `body` with the proto name and value of each member that is not `null` (a `null` field is its
    /// default), after refusing unknown names and a field given twice (under one name or both).
    static func forEachField(
        _ members: [JSONMember], of table: [(String, String)], path: @autoclosure () -> String,
        _ body: (String, JSONValue) throws(WireDecodeError) -> Void
    ) throws(WireDecodeError) {
        var seen: UInt32 = 0
        for member in members {
            guard let index = table.firstIndex(where: { $0.1 == member.key || $0.0 == member.key }) else {
                let place = path().isEmpty ? "" : " in \(path())"
                throw WireDecodeError(message: "unknown field \(quoted(member.key))\(place)")
            }
            let bit: UInt32 = 1 << UInt32(index)
            if seen & bit != 0 {
                throw WireDecodeError(message: "field \(join(path(), table[index].0)) is given twice")
            }
            seen |= bit
            if case .null = member.value { continue }
            try body(table[index].0, member.value)
        }
    }

    static func join(_ path: @autoclosure () -> String, _ field: String) -> String {
        path().isEmpty ? field : path() + "." + field
    }

    static func object(_ value: JSONValue, path: @autoclosure () -> String, type: String)
        throws(WireDecodeError) -> [JSONMember]
    {
        guard case .object(let members) = value else {
            let place = path().isEmpty ? "" : "\(path()): "
            throw WireDecodeError(message: "\(place)expected an object (\(type)), got \(value.typeDescription)")
        }
        return members
    }

    static func array(_ value: JSONValue, path: @autoclosure () -> String) throws(WireDecodeError)
        -> [JSONValue]
    {
        guard case .array(let elements) = value else {
            throw WireDecodeError(message: "\(path()): expected an array, got \(value.typeDescription)")
        }
        for (index, element) in elements.enumerated() {
            if case .null = element {
                throw WireDecodeError(message: "\(path())[\(index)]: null is not allowed in a repeated field")
            }
        }
        return elements
    }

    static func string(_ value: JSONValue, path: @autoclosure () -> String) throws(WireDecodeError) -> String {
        guard case .string(let text) = value else {
            throw WireDecodeError(message: "\(path()): expected a string, got \(value.typeDescription)")
        }
        try checkNoNUL(text, path: path())
        return text
    }

    /// The protobuf path()'s rule (``WireStringCheck``): a NUL would be cut off by protobuf-c, so both refuse it.
    static func checkNoNUL(_ text: String, path: @autoclosure () -> String) throws(WireDecodeError) {
        if text.utf8.contains(0) { throw WireDecodeError(message: "\(path()) contains a NUL character") }
    }

    static func bool(_ value: JSONValue, path: @autoclosure () -> String) throws(WireDecodeError) -> Bool {
        guard case .bool(let flag) = value else {
            throw WireDecodeError(message: "\(path()): expected true or false, got \(value.typeDescription)")
        }
        return flag
    }

    /// An integer field: a JSON number with an integral value, or a string holding a JSON number with one.
    static func integer(
        _ value: JSONValue, in range: ClosedRange<Int64>, path: @autoclosure () -> String
    ) throws(WireDecodeError) -> Int64 {
        let number: Double
        switch value {
        case .number(let parsed): number = parsed
        case .string(let text):
            guard let parsed = numberText(text) else {
                throw WireDecodeError(message: "\(path()): \(quoted(text)) is not an integer")
            }
            number = parsed
        default:
            throw WireDecodeError(message: "\(path()): expected an integer, got \(value.typeDescription)")
        }
        guard number.isFinite, number == number.rounded(.towardZero) else {
            throw WireDecodeError(message: "\(path()): \(number) is not an integer")
        }
        guard number >= Double(range.lowerBound), number <= Double(range.upperBound) else {
            throw WireDecodeError(message: "\(path()): \(formatted(number)) is out of range")
        }
        return Int64(number)
    }

    /// A double field: a JSON number, `"NaN"`, `"Infinity"`, `"-Infinity"`, or a string holding a JSON number.
    private static func double(_ value: JSONValue, path: @autoclosure () -> String) throws(WireDecodeError) -> Double {
        switch value {
        case .number(let number): return number
        case .string("NaN"): return .nan
        case .string("Infinity"): return .infinity
        case .string("-Infinity"): return -.infinity
        case .string(let text):
            guard let number = numberText(text) else {
                throw WireDecodeError(message: "\(path()): \(quoted(text)) is not a number")
            }
            return number
        default:
            throw WireDecodeError(message: "\(path()): expected a number, got \(value.typeDescription)")
        }
    }

    /// The value of `text` when it is a JSON number (no hex, no `inf`, no blanks; what protobuf parsers take from
    /// a quoted number).
    private static func numberText(_ text: String) -> Double? {
        guard !text.isEmpty, text.utf8.count <= 64,
            text.utf8.allSatisfy({ byte in
                (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: "-")
                    || byte == UInt8(ascii: "+") || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "e")
                    || byte == UInt8(ascii: "E")
            }),
            case .number(let number) = try? JSONParser.parse(text)
        else { return nil }
        return number
    }

    static func enumNumber(_ value: JSONValue, names: [String], path: @autoclosure () -> String)
        throws(WireDecodeError) -> Int
    {
        if case .string(let name) = value, let index = names.firstIndex(of: name) { return index }
        if case .string(let name) = value, numberText(name) == nil {
            throw WireDecodeError(message: "\(path()): unknown enum value \(quoted(name))")
        }
        return Int(try integer(value, in: Int64(Int32.min)...Int64(Int32.max), path: path()))
    }

    static func quoted(_ text: String) -> String {
        var bytes: [UInt8] = []
        JSONWriter.appendString(text, to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func formatted(_ number: Double) -> String {
        var bytes: [UInt8] = []
        JSONOut.appendDouble(number, to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// A compact JSON object writer for the codec's fixed shapes: tracks only whether a comma is due.
struct JSONOut {
    var bytes: [UInt8]
    private var needsComma = false

    init(bytes: consuming [UInt8] = []) {
        self.bytes = bytes
    }

    mutating func open() {
        bytes.append(UInt8(ascii: "{"))
        needsComma = false
    }

    mutating func close() {
        bytes.append(UInt8(ascii: "}"))
        needsComma = true
    }

    mutating func openArray() {
        bytes.append(UInt8(ascii: "["))
        needsComma = false
    }

    mutating func closeArray() {
        bytes.append(UInt8(ascii: "]"))
        needsComma = true
    }

    /// Starts an array element (a comma when one is due).
    mutating func element() {
        if needsComma { bytes.append(UInt8(ascii: ",")) }
        needsComma = true
    }

    mutating func key(_ name: String) {
        if needsComma { bytes.append(UInt8(ascii: ",")) }
        Self.appendString(name, to: &bytes)
        bytes.append(UInt8(ascii: ":"))
        needsComma = false
    }

    /// A string value with no key (array elements, enum names).
    mutating func rawString(_ text: String) {
        Self.appendString(text, to: &bytes)
        needsComma = true
    }

    /// `"name":"text"`, left out when `text` is empty unless `always`.
    mutating func string(_ name: String, _ text: String, always: Bool = false) {
        guard always || !text.isEmpty else { return }
        key(name)
        rawString(text)
    }

    /// `"name":true`, left out when false unless `always`.
    mutating func bool(_ name: String, _ flag: Bool, always: Bool = false) {
        guard always || flag else { return }
        key(name)
        bytes.append(contentsOf: (flag ? "true" : "false").utf8)
        needsComma = true
    }

    /// `"name":n`, left out when 0.
    mutating func integer(_ name: String, _ value: Int) {
        guard value != 0 else { return }
        key(name)
        bytes.append(contentsOf: String(value).utf8)
        needsComma = true
    }

    /// `"name":x`, always written (used for explicit-presence and oneof fields).
    mutating func double(_ name: String, _ value: Double) {
        key(name)
        Self.appendDouble(value, to: &bytes)
        needsComma = true
    }

    /// A fresh UUID v4 string value, from this thread's generator (as the protobuf encoder's proposition ids),
    /// written in place: no 36-byte String per proposition.
    mutating func uuid() {
        bytes.append(UInt8(ascii: "\""))
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 36) { buffer in
            let state = WireThreadState.current
            let written = UUIDv4.write(into: buffer, using: &state.random)
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[0..<written]))
        }
        bytes.append(UInt8(ascii: "\""))
        needsComma = true
    }

    /// Appends `text` as a quoted JSON string: the same bytes as `JSONWriter.appendString` (which the tests
    /// check), but runs of bytes that need no escape are copied at once instead of byte by byte (that loop was a
    /// quarter of a batch's CPU).
    static func appendString(_ text: String, to bytes: inout [UInt8]) {
        bytes.append(UInt8(ascii: "\""))
        var text = text
        text.withUTF8 { utf8 in
            var runStart = 0
            for index in 0..<utf8.count {
                let byte = utf8[index]
                guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else { continue }
                bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<index]))
                runStart = index + 1
                switch byte {
                case UInt8(ascii: "\""): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
                case UInt8(ascii: "\\"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
                case 0x0A: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
                case 0x0D: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
                case 0x09: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
                default:
                    let hexDigits: StaticString = "0123456789abcdef"
                    bytes.append(contentsOf: "\\u00".utf8)
                    bytes.append(hexDigits.utf8Start[Int(byte >> 4)])
                    bytes.append(hexDigits.utf8Start[Int(byte & 0x0F)])
                }
            }
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<utf8.count]))
        }
        bytes.append(UInt8(ascii: "\""))
    }

    /// A double as proto3 JSON: the shortest digits that parse back to the same value; integral values within
    /// ±2^53 without a fraction, `-0.0` with its sign, non-finite values as the strings protobuf uses.
    static func appendDouble(_ number: Double, to bytes: inout [UInt8]) {
        if number.isNaN {
            bytes.append(contentsOf: "\"NaN\"".utf8)
        } else if number.isInfinite {
            bytes.append(contentsOf: (number < 0 ? "\"-Infinity\"" : "\"Infinity\"").utf8)
        } else if number == 0 && number.sign == .minus {
            // `-0` would read back as the integer 0 in some parsers (Python's json); `-0.0` keeps the sign.
            bytes.append(contentsOf: "-0.0".utf8)
        } else {
            JSONWriter.appendNumber(number, to: &bytes)
        }
    }
}
