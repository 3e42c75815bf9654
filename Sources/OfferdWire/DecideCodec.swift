internal import COfferdProto
import OfferdCore

/// Converts `offerd.v1.DecideRequest` / `DecideResponse` protobuf messages (gRPC payloads without the 5-byte
/// prefix) to and from OfferdCore values, with protobuf-c doing the protobuf work.
///
/// Every C object graph lives in a ``ProtoArena`` lent for one call (the hot paths reuse a per-thread one), so
/// no C pointer escapes and nothing needs `free_unpacked`.
public enum DecideCodec {
    /// Decodes one DecideRequest message (the gRPC payload, without the 5-byte prefix).
    ///
    /// Every string is checked for UTF-8 validity and for NUL characters on the wire bytes first (protobuf-c
    /// does neither and cuts strings at NUL); the error names the field (`scopes[1].placement_id`). Semantic
    /// limits (scope counts, empty ids, non-finite numbers) are left to `DecisionRequest.validationError()`.
    /// A context value with no kind becomes `.null`; a context key sent twice keeps its last value, as
    /// protobuf maps do. Unknown fields are ignored.
    public static func decodeRequest(_ bytes: UnsafeRawBufferPointer) throws(WireDecodeError) -> DecisionRequest {
        // The direct reader answers the requests it reads exactly as the path below does; anything else, and every
        // malformed request, goes that path, which gives the value or the error.
        if let request = DecideRequestReader.read(bytes) {
            return request
        }
        return try decodeRequestThroughProtobufC(bytes)
    }

    /// The decoder before ``DecideRequestReader``: the strings checked on the wire, then protobuf-c's unpack into
    /// an arena, copied into Swift values. The reference the direct reader is compared with, and the path of every
    /// request it leaves (malformed ones among them).
    static func decodeRequestThroughProtobufC(_ bytes: UnsafeRawBufferPointer) throws(WireDecodeError)
        -> DecisionRequest
    {
        try WireStringCheck.check(bytes, schema: .decideRequest)
        // This thread's arena: reused, so a decode allocates only the Swift values it returns.
        return try WireThreadState.withScratchArena { (arena) throws(WireDecodeError) -> DecisionRequest in
            var allocator = arena.allocator
            let unpacked = withNonNullBase(bytes) { base, count in
                offerd__v1__decide_request__unpack(&allocator, count, base)
            }
            guard let message = unpacked?.pointee else {
                throw WireDecodeError(message: "undecodable protobuf: not a valid offerd.v1.DecideRequest")
            }
            return decisionRequest(from: message)
        }
    }

    /// Decodes one DecideRequest message; see ``decodeRequest(_:)-(UnsafeRawBufferPointer)``.
    public static func decodeRequest(_ bytes: [UInt8]) throws(WireDecodeError) -> DecisionRequest {
        // Array.withUnsafeBytes only rethrows untyped errors; a Result carries the typed one through.
        try bytes.withUnsafeBytes { buffer in Result { () throws(WireDecodeError) in try decodeRequest(buffer) } }.get()
    }

    /// Encodes the response: request id, one proposition per result proposition with a fresh UUID v4
    /// proposition_id, items with content fields only when `includeContent`, name/priority/characteristics
    /// only when `includeMetadata`, score when present, trace entries, profile_found, catalog_version and
    /// snapshot_version.
    ///
    /// Strings are sent up to their first U+0000, if any: protobuf-c measures them with `strlen`.
    public static func encodeResponse(
        _ result: DecisionResult, requestID: String, snapshotVersion: String, includeContent: Bool,
        includeMetadata: Bool
    ) -> [UInt8] {
        encodeResponse(
            result, requestID: requestID, snapshotVersion: snapshotVersion, includeContent: includeContent,
            includeMetadata: includeMetadata, output: packed)
    }

    /// Encodes the response like ``encodeResponse(_:requestID:snapshotVersion:includeContent:includeMetadata:)``
    /// into memory the caller provides, so a server can pack straight into its send buffer: `output` is
    /// given the exact packed size and a function that packs into `size` writable bytes and returns `size`.
    /// A `nil` request id is a fresh UUID v4, written in place (no string is made for it).
    public static func encodeResponse<Output>(
        _ result: DecisionResult, requestID: String?, snapshotVersion: String, includeContent: Bool,
        includeMetadata: Bool, output: (_ size: Int, _ pack: (UnsafeMutablePointer<UInt8>) -> Int) -> Output
    ) -> Output {
        let state = WireThreadState.current
        return encodeResponse(
            result, requestID: requestID, snapshotVersion: snapshotVersion, includeContent: includeContent,
            includeMetadata: includeMetadata, propositionIDs: &state.random, output: output)
    }

    /// The encoder itself, written straight from `result` by ``DecideResponseWriter``, with proposition ids drawn
    /// from `propositionIDs` (a seeded generator in tests); a `nil` request id is drawn from it first.
    static func encodeResponse<Output, Generator: RandomNumberGenerator>(
        _ result: DecisionResult, requestID: String?, snapshotVersion: String, includeContent: Bool,
        includeMetadata: Bool, propositionIDs generator: inout Generator,
        output: (_ size: Int, _ pack: (UnsafeMutablePointer<UInt8>) -> Int) -> Output
    ) -> Output {
        let writer = DecideResponseWriter(
            result: result, requestID: requestID, snapshotVersion: snapshotVersion, includeContent: includeContent,
            includeMetadata: includeMetadata)
        // This thread's arena holds the sub-message sizes: reused, so an encode allocates nothing but what
        // `output` does.
        return WireThreadState.withScratchArena { arena in
            var sizes = SubmessageSizes(capacity: writer.submessageCount, in: arena)
            let size = writer.measure(into: &sizes)
            return output(size) { start in
                var wire = WireWriter(start: start, count: size)
                writer.write(into: &wire, sizes: &sizes, generator: &generator)
                precondition(wire.position == wire.end, "response smaller than measured")
                return size
            }
        }
    }

    /// The encoder before ``DecideResponseWriter``: protobuf-c structs built in an arena, then packed by
    /// protobuf-c. Kept as the reference the direct writer is compared with, byte for byte.
    static func encodeResponseThroughProtobufC<Generator: RandomNumberGenerator>(
        _ result: DecisionResult, requestID: String, snapshotVersion: String, includeContent: Bool,
        includeMetadata: Bool, propositionIDs generator: inout Generator
    ) -> [UInt8] {
        let arena = ProtoArena()
        return withExtendedLifetime(arena) {
            var response = Offerd__V1__DecideResponse()
            offerd__v1__decide_response__init(&response)
            response.request_id = arena.cString(requestID)
            response.profile_found = result.profileFound ? 1 : 0
            response.catalog_version = arena.cString(result.catalogVersion)
            response.snapshot_version = arena.cString(snapshotVersion)
            response.n_propositions = result.propositions.count
            response.propositions = arena.pointerArray(result.propositions) { proposition in
                let message = arena.allocate(Offerd__V1__Proposition.self, count: 1)
                offerd__v1__proposition__init(message)
                message.pointee.proposition_id = UUIDv4.randomCString(in: arena, using: &generator)
                message.pointee.decision_id = arena.cString(proposition.decisionID)
                message.pointee.placement_id = arena.cString(proposition.placementID)
                message.pointee.outcome = Offerd__V1__Outcome(rawValue: numericCast(proposition.outcome.rawValue))
                message.pointee.reason = Offerd__V1__Reason(rawValue: numericCast(proposition.reason.rawValue))
                message.pointee.n_items = proposition.items.count
                message.pointee.items = arena.pointerArray(proposition.items) { item in
                    itemMessage(item, in: arena, includeContent: includeContent, includeMetadata: includeMetadata)
                }
                message.pointee.n_trace = proposition.trace.count
                message.pointee.trace = arena.pointerArray(proposition.trace) { entry in
                    let traceMessage = arena.allocate(Offerd__V1__TraceEntry.self, count: 1)
                    offerd__v1__trace_entry__init(traceMessage)
                    traceMessage.pointee.offer_id = arena.cString(entry.offerID)
                    traceMessage.pointee.criterion = arena.cString(entry.criterion)
                    traceMessage.pointee.verdict = arena.cString(entry.verdict.rawValue)
                    traceMessage.pointee.collection_id = arena.cString(entry.collectionID)
                    if let score = entry.score {
                        traceMessage.pointee._score_case = OFFERD__V1__TRACE_ENTRY___SCORE_SCORE
                        traceMessage.pointee.score = score
                    }
                    traceMessage.pointee.detail = arena.cString(entry.detail)
                    return traceMessage
                }
                return message
            }
            return withUnsafePointer(to: &response) { pointer in
                let size = offerd__v1__decide_response__get_packed_size(pointer)
                return packed(size: size) { offerd__v1__decide_response__pack(pointer, $0) }
            }
        }
    }

    /// Encodes a request as a client would, through protobuf-c; for tests, benchmarks and tools.
    /// Context entries are written in the dictionary's iteration order.
    public static func encodeRequest(_ request: DecisionRequest) -> [UInt8] {
        let arena = ProtoArena(initialCapacity: 2048)
        return withExtendedLifetime(arena) {
            var message = Offerd__V1__DecideRequest()
            offerd__v1__decide_request__init(&message)
            message.request_id = arena.cString(request.requestID)
            let identity = arena.allocate(Offerd__V1__Identity.self, count: 1)
            offerd__v1__identity__init(identity)
            identity.pointee.namespace_ = arena.cString(request.identity.namespace)
            identity.pointee.id = arena.cString(request.identity.id)
            message.identity = identity
            message.n_scopes = request.scopes.count
            message.scopes = arena.pointerArray(request.scopes) { scope in
                let scopeMessage = arena.allocate(Offerd__V1__Scope.self, count: 1)
                offerd__v1__scope__init(scopeMessage)
                scopeMessage.pointee.decision_id = arena.cString(scope.decisionID)
                scopeMessage.pointee.placement_id = arena.cString(scope.placementID)
                scopeMessage.pointee.item_count = scope.itemCount
                return scopeMessage
            }
            let context = Array(request.context)
            message.n_context = context.count
            message.context = arena.pointerArray(context) { key, value in
                let entry = arena.allocate(Offerd__V1__DecideRequest__ContextEntry.self, count: 1)
                offerd__v1__decide_request__context_entry__init(entry)
                entry.pointee.key = arena.cString(key)
                let valueMessage = arena.allocate(Offerd__V1__ContextValue.self, count: 1)
                offerd__v1__context_value__init(valueMessage)
                switch value {
                case .null:
                    break
                case .string(let text):
                    valueMessage.pointee.kind_case = OFFERD__V1__CONTEXT_VALUE__KIND_STRING_VALUE
                    valueMessage.pointee.string_value = arena.cString(text)
                case .number(let number):
                    valueMessage.pointee.kind_case = OFFERD__V1__CONTEXT_VALUE__KIND_NUMBER_VALUE
                    valueMessage.pointee.number_value = number
                case .bool(let flag):
                    valueMessage.pointee.kind_case = OFFERD__V1__CONTEXT_VALUE__KIND_BOOL_VALUE
                    valueMessage.pointee.bool_value = flag ? 1 : 0
                }
                entry.pointee.value = valueMessage
                return entry
            }
            message.allow_duplicates = request.allowDuplicates ? 1 : 0
            message.include_content = request.includeContent ? 1 : 0
            message.include_metadata = request.includeMetadata ? 1 : 0
            message.dry_run = request.dryRun ? 1 : 0
            message.explain = request.explain ? 1 : 0
            return withUnsafePointer(to: &message) { pointer in
                let size = offerd__v1__decide_request__get_packed_size(pointer)
                return packed(size: size) { offerd__v1__decide_request__pack(pointer, $0) }
            }
        }
    }

    /// Decodes a DecideResponse message through protobuf-c, as a client would; for tests and tools.
    /// Strings are taken as protobuf-c gives them (invalid UTF-8 is repaired, not refused).
    public static func decodeResponse(_ bytes: [UInt8]) throws(WireDecodeError) -> DecideResponseMessage {
        let arena = ProtoArena(initialCapacity: 1024 + 2 * bytes.count)
        return try withExtendedLifetime(arena) { () throws(WireDecodeError) -> DecideResponseMessage in
            var allocator = arena.allocator
            let unpacked = bytes.withUnsafeBytes { buffer in
                withNonNullBase(buffer) { base, count in
                    offerd__v1__decide_response__unpack(&allocator, count, base)
                }
            }
            guard let message = unpacked?.pointee else {
                throw WireDecodeError(message: "undecodable protobuf: not a valid offerd.v1.DecideResponse")
            }
            return DecideResponseMessage(
                requestID: swiftString(message.request_id),
                propositions: array(message.propositions, count: message.n_propositions) { proposition in
                    PropositionMessage(
                        propositionID: swiftString(proposition.proposition_id),
                        decisionID: swiftString(proposition.decision_id),
                        placementID: swiftString(proposition.placement_id),
                        outcomeNumber: Int(proposition.outcome.rawValue),
                        reasonNumber: Int(proposition.reason.rawValue),
                        items: array(proposition.items, count: proposition.n_items, itemMessage(from:)),
                        trace: array(proposition.trace, count: proposition.n_trace) { entry in
                            TraceEntryMessage(
                                offerID: swiftString(entry.offer_id), criterion: swiftString(entry.criterion),
                                verdict: swiftString(entry.verdict), collectionID: swiftString(entry.collection_id),
                                score: entry._score_case == OFFERD__V1__TRACE_ENTRY___SCORE_SCORE ? entry.score : nil,
                                detail: swiftString(entry.detail))
                        })
                },
                profileFound: message.profile_found != 0,
                catalogVersion: swiftString(message.catalog_version),
                snapshotVersion: swiftString(message.snapshot_version))
        }
    }

    // MARK: - C graph <-> Swift values

    private static func decisionRequest(from message: Offerd__V1__DecideRequest) -> DecisionRequest {
        let identity =
            message.identity.map {
                Identity(namespace: swiftString($0.pointee.namespace_), id: swiftString($0.pointee.id))
            } ?? Identity(namespace: "", id: "")
        let scopes = array(message.scopes, count: message.n_scopes) { scope in
            ScopeRequest(
                decisionID: swiftString(scope.decision_id), placementID: swiftString(scope.placement_id),
                itemCount: scope.item_count)
        }
        var context: [String: ContextValue] = [:]
        if message.n_context > 0, let entries = message.context {
            for index in 0..<message.n_context {
                guard let entry = entries[index]?.pointee else { continue }
                context[swiftString(entry.key)] = contextValue(entry.value?.pointee)
            }
        }
        return DecisionRequest(
            requestID: swiftString(message.request_id),
            identity: identity,
            scopes: scopes,
            context: context,
            allowDuplicates: message.allow_duplicates != 0,
            includeContent: message.include_content != 0,
            includeMetadata: message.include_metadata != 0,
            dryRun: message.dry_run != 0,
            explain: message.explain != 0)
    }

    private static func contextValue(_ message: Offerd__V1__ContextValue?) -> ContextValue {
        guard let message else { return .null }
        switch message.kind_case {
        case OFFERD__V1__CONTEXT_VALUE__KIND_STRING_VALUE: return .string(swiftString(message.string_value))
        case OFFERD__V1__CONTEXT_VALUE__KIND_NUMBER_VALUE: return .number(message.number_value)
        case OFFERD__V1__CONTEXT_VALUE__KIND_BOOL_VALUE: return .bool(message.bool_value != 0)
        default: return .null
        }
    }

    private static func itemMessage(
        _ item: DecidedItem, in arena: ProtoArena, includeContent: Bool, includeMetadata: Bool
    ) -> UnsafeMutablePointer<Offerd__V1__Item> {
        let message = arena.allocate(Offerd__V1__Item.self, count: 1)
        offerd__v1__item__init(message)
        message.pointee.id = arena.cString(item.id)
        if includeContent {
            let representation = item.representation
            message.pointee.format = arena.cString(representation.format ?? "")
            message.pointee.content = arena.cString(representation.content ?? "")
            message.pointee.delivery_url = arena.cString(representation.deliveryURL ?? "")
            message.pointee.link_url = arena.cString(representation.linkURL ?? "")
            message.pointee.n_language = representation.language.count
            message.pointee.language = arena.pointerArray(representation.language) { arena.cString($0) }
        }
        if includeMetadata {
            message.pointee.name = arena.cString(item.name ?? "")
            message.pointee.priority = Int32(clamping: item.priority)
            message.pointee.n_characteristics = item.characteristics.count
            message.pointee.characteristics = arena.pointerArray(item.characteristics) { characteristic in
                let entry = arena.allocate(Offerd__V1__Item__CharacteristicsEntry.self, count: 1)
                offerd__v1__item__characteristics_entry__init(entry)
                entry.pointee.key = arena.cString(characteristic.key)
                entry.pointee.value = arena.cString(characteristic.value)
                return entry
            }
        }
        if let score = item.score {
            message.pointee._score_case = OFFERD__V1__ITEM___SCORE_SCORE
            message.pointee.score = score
        }
        return message
    }

    private static func itemMessage(from message: Offerd__V1__Item) -> ItemMessage {
        ItemMessage(
            id: swiftString(message.id),
            format: swiftString(message.format),
            content: swiftString(message.content),
            deliveryURL: swiftString(message.delivery_url),
            linkURL: swiftString(message.link_url),
            language: array(message.language, count: message.n_language) { swiftString($0) },
            name: swiftString(message.name),
            priority: Int(message.priority),
            characteristics: array(message.characteristics, count: message.n_characteristics) { entry in
                Characteristic(key: swiftString(entry.key), value: swiftString(entry.value))
            },
            score: message._score_case == OFFERD__V1__ITEM___SCORE_SCORE ? message.score : nil)
    }
}

// MARK: - Shared C helpers

/// A Swift string from a protobuf-c string; protobuf-c never leaves proto3 strings NULL, but be lenient.
func swiftString(_ pointer: UnsafeMutablePointer<CChar>?) -> String {
    guard let pointer else { return "" }
    return String(cString: pointer)
}

/// The elements of a protobuf-c repeated message field (`n_x` pointers at `x`), NULL entries skipped.
func array<Message, Element>(
    _ pointers: UnsafeMutablePointer<UnsafeMutablePointer<Message>?>?, count: Int,
    _ transform: (Message) -> Element
) -> [Element] {
    guard count > 0, let pointers else { return [] }
    var elements: [Element] = []
    elements.reserveCapacity(count)
    for index in 0..<count {
        if let element = pointers[index] {
            elements.append(transform(element.pointee))
        }
    }
    return elements
}

/// The elements of a protobuf-c repeated string field.
func array<Element>(
    _ pointers: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, count: Int,
    _ transform: (UnsafeMutablePointer<CChar>?) -> Element
) -> [Element] {
    guard count > 0, let pointers else { return [] }
    return (0..<count).map { transform(pointers[$0]) }
}

/// Calls `body` with a non-null base address even for an empty buffer: protobuf-c's unpack functions take a
/// non-null data pointer, and an empty protobuf message is valid.
func withNonNullBase<Result>(
    _ bytes: UnsafeRawBufferPointer, _ body: (UnsafePointer<UInt8>, Int) -> Result
) -> Result {
    if let base = bytes.baseAddress {
        return body(base.assumingMemoryBound(to: UInt8.self), bytes.count)
    }
    var placeholder: UInt8 = 0
    return withUnsafePointer(to: &placeholder) { body($0, 0) }
}

/// A byte array of `size` bytes filled by a protobuf-c `pack` function, which returns how much it wrote.
func packed(size: Int, _ pack: (UnsafeMutablePointer<UInt8>) -> Int) -> [UInt8] {
    guard size > 0 else { return [] }
    return [UInt8](unsafeUninitializedCapacity: size) { buffer, initializedCount in
        // Safe: a buffer of capacity > 0 has a base address.
        let written = pack(buffer.baseAddress.unsafelyUnwrapped)
        precondition(written == size, "protobuf-c packed \(written) bytes, announced \(size)")
        initializedCount = written
    }
}

extension ProtoArena {
    /// A C array of pointers built from `elements` (NULL when empty), as protobuf-c repeated fields want.
    func pointerArray<Element, Pointee>(
        _ elements: some Collection<Element>, _ makePointer: (Element) -> UnsafeMutablePointer<Pointee>
    ) -> UnsafeMutablePointer<UnsafeMutablePointer<Pointee>?>? {
        guard !elements.isEmpty else { return nil }
        let pointers = allocate(UnsafeMutablePointer<Pointee>?.self, count: elements.count)
        for (index, element) in elements.enumerated() {
            (pointers + index).initialize(to: makePointer(element))
        }
        return pointers
    }
}
