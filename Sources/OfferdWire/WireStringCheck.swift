/// The string-bearing fields of one protobuf message: what ``WireStringCheck`` must look into.
///
/// Only string fields and the sub-messages that (transitively) hold strings are listed; everything else is
/// skipped by wire type, exactly like an unknown field.
struct WireStringSchema: Sendable {
    /// One field of the message.
    struct Field: Sendable {
        enum Kind: Sendable {
            case string
            case message(WireStringSchema)

            var isString: Bool {
                if case .string = self { return true }
                return false
            }
        }

        let number: UInt64
        /// The proto field name, used in error messages.
        let name: String
        let isRepeated: Bool
        let kind: Kind
        /// `kind` is `.string`; a plain flag, so that the walk tests it without copying the kind.
        let isString: Bool

        init(number: UInt64, name: String, isRepeated: Bool, kind: Kind) {
            self.number = number
            self.name = name
            self.isRepeated = isRepeated
            self.kind = kind
            isString = kind.isString
        }

        /// The sub-message schema of a `.message` field.
        var nested: WireStringSchema? {
            if case .message(let schema) = kind { return schema }
            return nil
        }
    }

    let fields: [Field]
}

extension WireStringSchema {
    static let contextValue = WireStringSchema(fields: [
        Field(number: 1, name: "string_value", isRepeated: false, kind: .string)
    ])

    /// A `map<string, ContextValue>` entry: key = 1, value = 2, per the protobuf map encoding.
    static let contextEntry = WireStringSchema(fields: [
        Field(number: 1, name: "key", isRepeated: false, kind: .string),
        Field(number: 2, name: "value", isRepeated: false, kind: .message(contextValue)),
    ])

    static let identity = WireStringSchema(fields: [
        Field(number: 1, name: "namespace", isRepeated: false, kind: .string),
        Field(number: 2, name: "id", isRepeated: false, kind: .string),
    ])

    static let scope = WireStringSchema(fields: [
        Field(number: 1, name: "decision_id", isRepeated: false, kind: .string),
        Field(number: 2, name: "placement_id", isRepeated: false, kind: .string),
    ])

    /// `offerd.v1.DecideRequest`; field numbers as in proto/offerd/v1/decisioning.proto.
    static let decideRequest = WireStringSchema(fields: [
        Field(number: 1, name: "request_id", isRepeated: false, kind: .string),
        Field(number: 2, name: "identity", isRepeated: false, kind: .message(identity)),
        Field(number: 3, name: "scopes", isRepeated: true, kind: .message(scope)),
        Field(number: 4, name: "context", isRepeated: true, kind: .message(contextEntry)),
    ])

    /// `grpc.health.v1.HealthCheckRequest`.
    static let healthCheckRequest = WireStringSchema(fields: [
        Field(number: 1, name: "service", isRepeated: false, kind: .string)
    ])
}

/// Walks protobuf wire bytes and checks every string field named by a ``WireStringSchema`` for UTF-8 validity
/// and for NUL characters, before protobuf-c unpacks the message.
///
/// protobuf-c checks neither: it copies a string's bytes as they are and NUL-terminates them, so a string
/// holding U+0000 would silently reach Swift cut short. Walking the wire bytes sees each string's true length.
/// The walk also refuses structurally broken input (truncated varints and lengths, groups, field number 0),
/// which protobuf-c refuses as well; it allocates nothing unless it fails.
enum WireStringCheck {
    /// Checks `bytes` as a message of `schema`.
    static func check(_ bytes: UnsafeRawBufferPointer, schema: WireStringSchema) throws(WireDecodeError) {
        do {
            try walk(bytes, schema: schema)
        } catch {
            throw WireDecodeError(message: error.message)
        }
    }

    /// Why a walk failed; `path` collects field names on the way out, innermost last.
    struct Failure: Error {
        var path: [String]
        var problem: String

        var message: String {
            path.isEmpty ? problem : "\(path.reversed().joined(separator: ".")) \(problem)"
        }
    }

    private static func walk(_ bytes: UnsafeRawBufferPointer, schema: WireStringSchema) throws(Failure) {
        var reader = WireReader(bytes: bytes)
        // Counts occurrences of each repeated field so errors can name the element (`scopes[3]`).
        // Inline storage: the walk allocates nothing unless it fails.
        var repeatedIndices = InlineArray<4, Int>(repeating: 0)
        precondition(schema.fields.count <= repeatedIndices.count, "WireStringSchema with more than 4 fields")
        while !reader.isAtEnd {
            let tag = try reader.readVarint()
            let fieldNumber = tag >> 3
            let wireType = tag & 7
            guard fieldNumber != 0, fieldNumber <= 0x1FFF_FFFF else {
                throw Failure(path: [], problem: "undecodable protobuf: invalid field number \(fieldNumber)")
            }
            switch wireType {
            case 0:
                _ = try reader.readVarint()
            case 1:
                try reader.skip(8)
            case 5:
                try reader.skip(4)
            case 2:
                let payload = try reader.readLengthDelimited()
                // Fields are read in place by index: copying one out of the array retains its name and schema.
                var fieldIndex = 0
                while fieldIndex < schema.fields.count && schema.fields[fieldIndex].number != fieldNumber {
                    fieldIndex += 1
                }
                guard fieldIndex < schema.fields.count else { continue }
                let occurrence = repeatedIndices[fieldIndex]
                repeatedIndices[fieldIndex] += 1
                // Built only on failure: `scopes[3]` for a repeated field, `identity` otherwise.
                var component: String {
                    let field = schema.fields[fieldIndex]
                    return field.isRepeated ? "\(field.name)[\(occurrence)]" : field.name
                }
                if schema.fields[fieldIndex].isString {
                    if let problem = stringProblem(payload) {
                        throw Failure(path: [component], problem: problem)
                    }
                } else if let nested = schema.fields[fieldIndex].nested {
                    do {
                        try walk(payload, schema: nested)
                    } catch {
                        var failure = error
                        failure.path.append(component)
                        throw failure
                    }
                }
            default:
                // 3 and 4 are the deprecated groups (protobuf-c refuses them too); 6 and 7 do not exist.
                throw Failure(path: [], problem: "undecodable protobuf: unsupported wire type \(wireType)")
            }
        }
    }

    /// `nil` when `bytes` is valid UTF-8 without U+0000, else what is wrong with it.
    static func stringProblem(_ bytes: UnsafeRawBufferPointer) -> String? {
        switch UTF8Check.check(bytes) {
        case .valid: return nil
        case .containsNUL: return "contains a NUL character"
        case .invalidUTF8: return "is not valid UTF-8"
        }
    }
}

/// Strict UTF-8 validation (Unicode Table 3-7: no overlong forms, no surrogates, nothing above U+10FFFF),
/// reporting U+0000 separately.
enum UTF8Check {
    enum Verdict: Equatable {
        case valid
        case invalidUTF8
        case containsNUL
    }

    static func check(_ bytes: UnsafeRawBufferPointer) -> Verdict {
        var index = 0
        let count = bytes.count
        while index < count {
            let lead = bytes[index]
            if lead < 0x80 {
                if lead == 0 { return .containsNUL }
                index += 1
                continue
            }
            let length: Int
            var secondLow: UInt8 = 0x80
            var secondHigh: UInt8 = 0xBF
            switch lead {
            case 0xC2...0xDF: length = 2
            case 0xE0:
                length = 3
                secondLow = 0xA0
            case 0xE1...0xEC, 0xEE...0xEF: length = 3
            case 0xED:
                length = 3
                secondHigh = 0x9F
            case 0xF0:
                length = 4
                secondLow = 0x90
            case 0xF1...0xF3: length = 4
            case 0xF4:
                length = 4
                secondHigh = 0x8F
            default: return .invalidUTF8
            }
            guard count - index >= length else { return .invalidUTF8 }
            let second = bytes[index + 1]
            guard second >= secondLow && second <= secondHigh else { return .invalidUTF8 }
            var continuation = index + 2
            while continuation < index + length {
                guard bytes[continuation] & 0xC0 == 0x80 else { return .invalidUTF8 }
                continuation += 1
            }
            index += length
        }
        return .valid
    }
}

/// A bounds-checked cursor over protobuf wire bytes.
struct WireReader {
    let bytes: UnsafeRawBufferPointer
    private(set) var offset = 0

    init(bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    var isAtEnd: Bool { offset >= bytes.count }

    /// A base-128 varint of at most 10 bytes.
    mutating func readVarint() throws(WireStringCheck.Failure) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while shift < 70 {
            guard offset < bytes.count else {
                throw WireStringCheck.Failure(path: [], problem: "undecodable protobuf: truncated varint")
            }
            let byte = bytes[offset]
            offset += 1
            result |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 {
                return result
            }
            shift += 7
        }
        throw WireStringCheck.Failure(path: [], problem: "undecodable protobuf: varint longer than 10 bytes")
    }

    mutating func skip(_ count: Int) throws(WireStringCheck.Failure) {
        guard bytes.count - offset >= count else {
            throw WireStringCheck.Failure(path: [], problem: "undecodable protobuf: truncated fixed-size field")
        }
        offset += count
    }

    /// The payload of a length-delimited field; the length is checked against what is left before use.
    mutating func readLengthDelimited() throws(WireStringCheck.Failure) -> UnsafeRawBufferPointer {
        let length = try readVarint()
        guard length <= UInt64(bytes.count - offset) else {
            throw WireStringCheck.Failure(
                path: [],
                problem: "undecodable protobuf: length \(length) exceeds the \(bytes.count - offset) bytes left")
        }
        let start = offset
        offset += Int(length)
        return UnsafeRawBufferPointer(rebasing: bytes[start..<offset])
    }
}
