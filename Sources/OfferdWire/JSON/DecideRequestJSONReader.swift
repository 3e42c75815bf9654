import OfferdCore

/// Reads a DecideRequest's proto3 JSON straight into a ``DecisionRequest`` in one pass over the bytes, without the
/// `JSONValue` tree the general path builds (that tree and the walk over it were a tenth of a Connect JSON call's
/// server CPU).
///
/// It takes only what it is sure of: strict RFC 8259 syntax, known field names (lowerCamelCase or .proto), each
/// field once, `null` as the default, integers as plain JSON integers, doubles as JSON numbers, strings with
/// simple escapes. Anything else, whether an error or merely unusual (`\u` escapes, numbers as strings, `"NaN"`,
/// `3.0` for an integer), makes it give up, and ``DecideJSONCodec`` reads the request again through the general
/// path, which decides and words the error. So a request it accepts is the one the general path gives for the
/// same bytes (the differential tests check this), and every refusal is worded as before.
struct DecideRequestJSONReader {
    /// The reader gives the bytes to the general path.
    struct Unsupported: Error {}

    private let bytes: UnsafeBufferPointer<UInt8>
    private var index = 0

    /// The request in `bytes`, or nil when the general path must read them.
    static func read(_ bytes: UnsafeRawBufferPointer) -> DecisionRequest? {
        var reader = DecideRequestJSONReader(bytes: bytes.assumingMemoryBound(to: UInt8.self))
        return try? reader.readRequest()
    }

    private init(bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
    }

    // MARK: - Messages

    private static let requestFields: [(StaticString, StaticString)] = [
        ("request_id", "requestId"), ("identity", "identity"), ("scopes", "scopes"), ("context", "context"),
        ("allow_duplicates", "allowDuplicates"), ("include_content", "includeContent"),
        ("include_metadata", "includeMetadata"), ("dry_run", "dryRun"), ("explain", "explain"),
    ]
    private static let identityFields: [(StaticString, StaticString)] = [("namespace", "namespace"), ("id", "id")]
    private static let scopeFields: [(StaticString, StaticString)] = [
        ("decision_id", "decisionId"), ("placement_id", "placementId"), ("item_count", "itemCount"),
    ]
    private static let contextValueFields: [(StaticString, StaticString)] = [
        ("string_value", "stringValue"), ("number_value", "numberValue"), ("bool_value", "boolValue"),
    ]

    private mutating func readRequest() throws(Unsupported) -> DecisionRequest {
        var request = DecisionRequest(identity: Identity(namespace: "", id: ""), scopes: [])
        skipWhitespace()
        var seen: UInt32 = 0
        if try openObject() {
            repeat {
                let field = try fieldKey(Self.requestFields, seen: &seen)
                if try readNull() { continue }
                switch field {
                case 0: request.requestID = try readString()
                case 1: request.identity = try readIdentity()
                case 2: request.scopes = try readScopes()
                case 3: request.context = try readContext()
                case 4: request.allowDuplicates = try readBool()
                case 5: request.includeContent = try readBool()
                case 6: request.includeMetadata = try readBool()
                case 7: request.dryRun = try readBool()
                default: request.explain = try readBool()
                }
            } while try nextMember()
        }
        skipWhitespace()
        guard index == bytes.count else { throw Unsupported() }
        return request
    }

    private mutating func readIdentity() throws(Unsupported) -> Identity {
        var identity = Identity(namespace: "", id: "")
        var seen: UInt32 = 0
        if try openObject() {
            repeat {
                let field = try fieldKey(Self.identityFields, seen: &seen)
                if try readNull() { continue }
                if field == 0 { identity.namespace = try readString() } else { identity.id = try readString() }
            } while try nextMember()
        }
        return identity
    }

    private mutating func readScopes() throws(Unsupported) -> [ScopeRequest] {
        guard index < bytes.count, bytes[index] == UInt8(ascii: "[") else { throw Unsupported() }
        index += 1
        skipWhitespace()
        var scopes: [ScopeRequest] = []
        if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
            index += 1
            return scopes
        }
        while true {
            skipWhitespace()
            scopes.append(try readScope())
            skipWhitespace()
            guard index < bytes.count else { throw Unsupported() }
            if bytes[index] == UInt8(ascii: ",") {
                index += 1
            } else if bytes[index] == UInt8(ascii: "]") {
                index += 1
                return scopes
            } else {
                throw Unsupported()
            }
        }
    }

    private mutating func readScope() throws(Unsupported) -> ScopeRequest {
        var scope = ScopeRequest(decisionID: "", placementID: "", itemCount: 0)
        var seen: UInt32 = 0
        if try openObject() {
            repeat {
                let field = try fieldKey(Self.scopeFields, seen: &seen)
                if try readNull() { continue }
                switch field {
                case 0: scope.decisionID = try readString()
                case 1: scope.placementID = try readString()
                default: scope.itemCount = try readItemCount()
                }
            } while try nextMember()
        }
        return scope
    }

    private mutating func readContext() throws(Unsupported) -> [String: ContextValue] {
        var context: [String: ContextValue] = [:]
        if try openObject() {
            repeat {
                skipWhitespace()
                let key = try readString()
                try colon()
                let value = try readNull() ? ContextValue.null : try readContextValue()
                // A key given twice is a JSON error on the general path (duplicate keys are compared as Strings
                // there too).
                guard context.updateValue(value, forKey: key) == nil else { throw Unsupported() }
            } while try nextMember()
        }
        return context
    }

    private mutating func readContextValue() throws(Unsupported) -> ContextValue {
        var value = ContextValue.null
        var seen: UInt32 = 0
        var kindChosen = false
        if try openObject() {
            repeat {
                let field = try fieldKey(Self.contextValueFields, seen: &seen)
                if try readNull() { continue }
                // A second member of the oneof is an error.
                if kindChosen { throw Unsupported() }
                kindChosen = true
                switch field {
                case 0: value = .string(try readString())
                case 1: value = .number(try readDouble())
                default: value = .bool(try readBool())
                }
            } while try nextMember()
        }
        return value
    }

    // MARK: - Structure

    /// Consumes `{` and returns whether a member follows (false after an empty object's `}`).
    private mutating func openObject() throws(Unsupported) -> Bool {
        guard index < bytes.count, bytes[index] == UInt8(ascii: "{") else { throw Unsupported() }
        index += 1
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
            index += 1
            return false
        }
        return true
    }

    /// After a member's value: consumes `,` (true: another member follows) or `}` (false).
    private mutating func nextMember() throws(Unsupported) -> Bool {
        skipWhitespace()
        guard index < bytes.count else { throw Unsupported() }
        if bytes[index] == UInt8(ascii: ",") {
            index += 1
            return true
        }
        guard bytes[index] == UInt8(ascii: "}") else { throw Unsupported() }
        index += 1
        return false
    }

    /// Reads a member's key and the `:` after it; returns the field's position in `fields`. An unknown name, a key
    /// with escapes, or a field given before (under either name) gives up.
    private mutating func fieldKey(_ fields: [(StaticString, StaticString)], seen: inout UInt32)
        throws(Unsupported) -> Int
    {
        skipWhitespace()
        guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw Unsupported() }
        let start = index + 1
        var end = start
        while end < bytes.count, bytes[end] != UInt8(ascii: "\"") {
            // Field names are plain ASCII letters and `_`: anything else cannot name a field unescaped.
            guard bytes[end] >= 0x20, bytes[end] != UInt8(ascii: "\\") else { throw Unsupported() }
            end += 1
        }
        guard end < bytes.count else { throw Unsupported() }
        let key = UnsafeBufferPointer(rebasing: bytes[start..<end])
        index = end + 1
        for (position, names) in fields.enumerated() where Self.equal(key, names.1) || Self.equal(key, names.0) {
            let bit: UInt32 = 1 << UInt32(position)
            guard seen & bit == 0 else { throw Unsupported() }
            seen |= bit
            try colon()
            return position
        }
        throw Unsupported()
    }

    private static func equal(_ key: UnsafeBufferPointer<UInt8>, _ name: StaticString) -> Bool {
        guard key.count == name.utf8CodeUnitCount else { return false }
        let nameBytes = name.utf8Start
        for offset in 0..<key.count where key[offset] != nameBytes[offset] { return false }
        return true
    }

    private mutating func colon() throws(Unsupported) {
        skipWhitespace()
        guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw Unsupported() }
        index += 1
        skipWhitespace()
    }

    private mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }

    // MARK: - Scalars

    /// Consumes `null` when it is next.
    private mutating func readNull() throws(Unsupported) -> Bool {
        guard index < bytes.count, bytes[index] == UInt8(ascii: "n") else { return false }
        try literal("null")
        return true
    }

    private mutating func readBool() throws(Unsupported) -> Bool {
        guard index < bytes.count else { throw Unsupported() }
        if bytes[index] == UInt8(ascii: "t") {
            try literal("true")
            return true
        }
        guard bytes[index] == UInt8(ascii: "f") else { throw Unsupported() }
        try literal("false")
        return false
    }

    private mutating func literal(_ word: StaticString) throws(Unsupported) {
        let count = word.utf8CodeUnitCount
        guard bytes.count - index >= count,
            Self.equal(UnsafeBufferPointer(rebasing: bytes[index..<index + count]), word)
        else { throw Unsupported() }
        index += count
    }

    /// A string without `\u` escapes, valid UTF-8, no control characters (so no NUL either).
    private mutating func readString() throws(Unsupported) -> String {
        guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw Unsupported() }
        let start = index + 1
        var end = start
        var ascii = true
        while end < bytes.count {
            let byte = bytes[end]
            if byte == UInt8(ascii: "\"") {
                let run = UnsafeBufferPointer(rebasing: bytes[start..<end])
                index = end + 1
                if ascii { return String(decoding: run, as: UTF8.self) }
                guard let text = String(validating: run, as: UTF8.self) else { throw Unsupported() }
                return text
            }
            if byte == UInt8(ascii: "\\") { return try readEscapedString(from: start, plainUpTo: end) }
            guard byte >= 0x20 else { throw Unsupported() }
            if byte >= 0x80 { ascii = false }
            end += 1
        }
        throw Unsupported()
    }

    private mutating func readEscapedString(from start: Int, plainUpTo firstEscape: Int) throws(Unsupported)
        -> String
    {
        var utf8 = Array(bytes[start..<firstEscape])
        index = firstEscape
        while index < bytes.count {
            let byte = bytes[index]
            index += 1
            if byte == UInt8(ascii: "\"") {
                guard let text = String(validating: utf8, as: UTF8.self) else { throw Unsupported() }
                return text
            }
            guard byte >= 0x20 else { throw Unsupported() }
            guard byte == UInt8(ascii: "\\") else {
                utf8.append(byte)
                continue
            }
            guard index < bytes.count else { throw Unsupported() }
            let escape = bytes[index]
            index += 1
            switch escape {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): utf8.append(escape)
            case UInt8(ascii: "b"): utf8.append(0x08)
            case UInt8(ascii: "f"): utf8.append(0x0C)
            case UInt8(ascii: "n"): utf8.append(0x0A)
            case UInt8(ascii: "r"): utf8.append(0x0D)
            case UInt8(ascii: "t"): utf8.append(0x09)
            default: throw Unsupported() // `\u` (surrogates, NUL) and invalid escapes: the general path's
            }
        }
        throw Unsupported()
    }

    /// Consumes a JSON number, checked as strictly as `JSONParser` does, and returns its bytes.
    private mutating func numberBytes() throws(Unsupported) -> UnsafeBufferPointer<UInt8> {
        let start = index
        if index < bytes.count, bytes[index] == UInt8(ascii: "-") { index += 1 }
        guard index < bytes.count, Self.isDigit(bytes[index]) else { throw Unsupported() }
        if bytes[index] == UInt8(ascii: "0") {
            index += 1
            if index < bytes.count, Self.isDigit(bytes[index]) { throw Unsupported() }
        } else {
            while index < bytes.count, Self.isDigit(bytes[index]) { index += 1 }
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            guard index < bytes.count, Self.isDigit(bytes[index]) else { throw Unsupported() }
            while index < bytes.count, Self.isDigit(bytes[index]) { index += 1 }
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            index += 1
            if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
                index += 1
            }
            guard index < bytes.count, Self.isDigit(bytes[index]) else { throw Unsupported() }
            while index < bytes.count, Self.isDigit(bytes[index]) { index += 1 }
        }
        return UnsafeBufferPointer(rebasing: bytes[start..<index])
    }

    /// `item_count`: a plain non-negative JSON integer up to 2^32-1 (other spellings go to the general path).
    private mutating func readItemCount() throws(Unsupported) -> UInt32 {
        let number = try numberBytes()
        guard number.count <= 10, let value = Self.digitsValue(number), value <= Int64(UInt32.max) else {
            throw Unsupported()
        }
        return UInt32(value)
    }

    /// A double as `JSONParser` reads it: integers of up to 15 digits exactly, the rest through `Double(String)`.
    private mutating func readDouble() throws(Unsupported) -> Double {
        let number = try numberBytes()
        let negative = number[0] == UInt8(ascii: "-")
        let digits = UnsafeBufferPointer(rebasing: number[(negative ? 1 : 0)...])
        if digits.count <= 15, let value = Self.digitsValue(digits) {
            if negative && value == 0 { return -0.0 }
            return Double(negative ? -value : value)
        }
        guard let value = Double(String(decoding: number, as: UTF8.self)), value.isFinite else {
            throw Unsupported()
        }
        return value
    }

    /// The value of a run of decimal digits (at most 18, so no overflow); nil when anything else is in it.
    private static func digitsValue(_ digits: UnsafeBufferPointer<UInt8>) -> Int64? {
        guard digits.count <= 18 else { return nil }
        var value: Int64 = 0
        for byte in digits {
            guard isDigit(byte) else { return nil }
            value = value * 10 + Int64(byte - UInt8(ascii: "0"))
        }
        return value
    }

    private static func isDigit(_ byte: UInt8) -> Bool {
        byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
    }
}
