import OfferdCore

/// Reads an `offerd.v1.DecideRequest` straight from its wire bytes into a ``DecisionRequest``: the fast path of
/// ``DecideCodec/decodeRequest(_:)-(UnsafeRawBufferPointer)``.
///
/// The reference path checks every string on the wire (``WireStringCheck``), then lets protobuf-c unpack the
/// message into an arena and copies it into Swift values: three walks, and protobuf-c's generic unpack scans each
/// message twice and allocates every string and sub-message. This reader does one walk and builds the Swift values
/// as it goes.
///
/// It reads only what it reads exactly as the reference path does, and answers `nil` for anything else, for which
/// the caller takes the reference path, which then gives the value or the error it always gave. `nil` for: any
/// structural fault (truncation, a wire type that does not exist, a group), a known field with another wire type
/// than its own, a singular field sent twice (protobuf-c merges sub-messages and overwrites the rest), more than one
/// member of `ContextValue.kind`, a string that is not valid UTF-8 or holds U+0000, field number 0, a tag longer than
/// four bytes or a length longer than five (protobuf-c refuses tags past five bytes and lengths past five), and a
/// ten-byte varint with bits past the 64th (protobuf-c reads booleans from every byte). So a value from here is the
/// reference path's value; `DecodeRequestTests` checks that on random and mutated messages.
enum DecideRequestReader {
    static func read(_ bytes: UnsafeRawBufferPointer) -> DecisionRequest? {
        var reader = FieldReader(bytes)
        var seen = SeenFields()
        var requestID = ""
        var identity = Identity(namespace: "", id: "")
        var scopes: [ScopeRequest] = []
        var context: [String: ContextValue] = [:]
        var flags: (allowDuplicates: Bool, includeContent: Bool, includeMetadata: Bool, dryRun: Bool, explain: Bool) =
            (false, false, false, false, false)
        while !reader.isAtEnd {
            guard let field = reader.readField() else { return nil }
            switch (field.number, field.wireType) {
            case (1, .lengthDelimited):
                guard seen.first(1), let text = reader.readString() else { return nil }
                requestID = text
            case (2, .lengthDelimited):
                guard seen.first(2), let payload = reader.readLengthDelimited(), let read = readIdentity(payload) else {
                    return nil
                }
                identity = read
            case (3, .lengthDelimited):
                guard let payload = reader.readLengthDelimited(), let scope = readScope(payload) else { return nil }
                scopes.append(scope)
            case (4, .lengthDelimited):
                guard let payload = reader.readLengthDelimited(), let entry = readContextEntry(payload) else {
                    return nil
                }
                // The storage the first insertion would grow to anyway; reserved first, the key is hashed once.
                if context.isEmpty { context = Dictionary(minimumCapacity: 1) }
                context[entry.key] = entry.value
            case (5...9, .varint):
                guard seen.first(field.number), let value = reader.readVarint() else { return nil }
                let flag = value != 0
                switch field.number {
                case 5: flags.allowDuplicates = flag
                case 6: flags.includeContent = flag
                case 7: flags.includeMetadata = flag
                case 8: flags.dryRun = flag
                default: flags.explain = flag
                }
            case (1...9, _):
                return nil
            default:
                guard reader.skip(field.wireType) else { return nil }
            }
        }
        return DecisionRequest(
            requestID: requestID, identity: identity, scopes: scopes, context: context,
            allowDuplicates: flags.allowDuplicates, includeContent: flags.includeContent,
            includeMetadata: flags.includeMetadata, dryRun: flags.dryRun, explain: flags.explain)
    }

    private static func readIdentity(_ bytes: UnsafeRawBufferPointer) -> Identity? {
        var reader = FieldReader(bytes)
        var seen = SeenFields()
        var namespace = ""
        var id = ""
        while !reader.isAtEnd {
            guard let field = reader.readField() else { return nil }
            switch (field.number, field.wireType) {
            case (1, .lengthDelimited):
                guard seen.first(1), let text = reader.readString() else { return nil }
                namespace = text
            case (2, .lengthDelimited):
                guard seen.first(2), let text = reader.readString() else { return nil }
                id = text
            case (1...2, _):
                return nil
            default:
                guard reader.skip(field.wireType) else { return nil }
            }
        }
        return Identity(namespace: namespace, id: id)
    }

    private static func readScope(_ bytes: UnsafeRawBufferPointer) -> ScopeRequest? {
        var reader = FieldReader(bytes)
        var seen = SeenFields()
        var decisionID = ""
        var placementID = ""
        var itemCount: UInt32 = 0
        while !reader.isAtEnd {
            guard let field = reader.readField() else { return nil }
            switch (field.number, field.wireType) {
            case (1, .lengthDelimited):
                guard seen.first(1), let text = reader.readString() else { return nil }
                decisionID = text
            case (2, .lengthDelimited):
                guard seen.first(2), let text = reader.readString() else { return nil }
                placementID = text
            case (3, .varint):
                guard seen.first(3), let value = reader.readVarint() else { return nil }
                // protobuf-c keeps the low 32 bits of a uint32 sent wider.
                itemCount = UInt32(truncatingIfNeeded: value)
            case (1...3, _):
                return nil
            default:
                guard reader.skip(field.wireType) else { return nil }
            }
        }
        return ScopeRequest(decisionID: decisionID, placementID: placementID, itemCount: itemCount)
    }

    /// A `map<string, ContextValue>` entry; a missing value, or a value without a kind, is `.null`.
    private static func readContextEntry(_ bytes: UnsafeRawBufferPointer) -> (key: String, value: ContextValue)? {
        var reader = FieldReader(bytes)
        var seen = SeenFields()
        var key = ""
        var value = ContextValue.null
        while !reader.isAtEnd {
            guard let field = reader.readField() else { return nil }
            switch (field.number, field.wireType) {
            case (1, .lengthDelimited):
                guard seen.first(1), let text = reader.readString() else { return nil }
                key = text
            case (2, .lengthDelimited):
                guard seen.first(2), let payload = reader.readLengthDelimited(), let read = readContextValue(payload)
                else { return nil }
                value = read
            case (1...2, _):
                return nil
            default:
                guard reader.skip(field.wireType) else { return nil }
            }
        }
        return (key, value)
    }

    private static func readContextValue(_ bytes: UnsafeRawBufferPointer) -> ContextValue? {
        var reader = FieldReader(bytes)
        // The three fields are one oneof: a second member, even the same one again, is left to the reference.
        var seenKind = false
        var value = ContextValue.null
        while !reader.isAtEnd {
            guard let field = reader.readField() else { return nil }
            switch (field.number, field.wireType) {
            case (1, .lengthDelimited):
                guard !seenKind, let text = reader.readString() else { return nil }
                value = .string(text)
            case (2, .fixed64):
                guard !seenKind, let bits = reader.readFixed64() else { return nil }
                value = .number(Double(bitPattern: bits))
            case (3, .varint):
                guard !seenKind, let flag = reader.readVarint() else { return nil }
                value = .bool(flag != 0)
            case (1...3, _):
                return nil
            default:
                guard reader.skip(field.wireType) else { return nil }
                continue
            }
            seenKind = true
        }
        return value
    }
}

/// Which singular fields (numbers below 64) a message has had so far.
private struct SeenFields {
    private var bits: UInt64 = 0

    /// Marks `number`; `false` when it was already marked.
    mutating func first(_ number: UInt64) -> Bool {
        let bit: UInt64 = 1 << number
        guard bits & bit == 0 else { return false }
        bits |= bit
        return true
    }
}

/// A cursor over one message's wire bytes for ``DecideRequestReader``: every read answers `nil` for input the
/// reader leaves to the reference path, and none reads past the end.
private struct FieldReader {
    enum WireType: UInt64 {
        case varint = 0
        case fixed64 = 1
        case lengthDelimited = 2
        case fixed32 = 5
    }

    private let bytes: UnsafeRawBufferPointer
    private var offset = 0

    init(_ bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    var isAtEnd: Bool { offset >= bytes.count }

    /// A field's tag: its number (not 0) and an existing, non-group wire type.
    mutating func readField() -> (number: UInt64, wireType: WireType)? {
        guard let tag = readVarint(maximumLength: 4), tag >> 3 != 0, let wireType = WireType(rawValue: tag & 7) else {
            return nil
        }
        return (tag >> 3, wireType)
    }

    /// A varint of at most `maximumLength` bytes; a tenth byte may only carry the 64th bit.
    @inline(__always)
    mutating func readVarint(maximumLength: Int = 10) -> UInt64? {
        // Nearly every tag, length and flag of a request is one byte.
        if offset < bytes.count, bytes[offset] < 0x80 {
            offset += 1
            return UInt64(bytes[offset - 1])
        }
        return readLongVarint(maximumLength: maximumLength)
    }

    @inline(never)
    private mutating func readLongVarint(maximumLength: Int) -> UInt64? {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        var index = offset
        while index < bytes.count && index - offset < maximumLength {
            let byte = bytes[index]
            index += 1
            if shift == 63 && byte > 1 { return nil }
            result |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 {
                offset = index
                return result
            }
            shift += 7
        }
        return nil
    }

    mutating func readFixed64() -> UInt64? {
        guard bytes.count - offset >= 8 else { return nil }
        let value = bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
        offset += 8
        return UInt64(littleEndian: value)
    }

    mutating func readLengthDelimited() -> UnsafeRawBufferPointer? {
        guard let length = readVarint(maximumLength: 5), length <= UInt64(bytes.count - offset) else { return nil }
        let start = offset
        offset += Int(length)
        return UnsafeRawBufferPointer(rebasing: bytes[start..<offset])
    }

    /// A string field's payload as a `String`, when it is valid UTF-8 without U+0000.
    mutating func readString() -> String? {
        guard let payload = readLengthDelimited(), isASCIIWithoutNUL(payload) || UTF8Check.check(payload) == .valid
        else { return nil }
        // Not `String(decoding:as:)`, which validates again through a generic path (about 170 instructions for an
        // id of a few bytes): this initialiser builds a string of up to 15 ASCII bytes in place without it. It
        // still repairs invalid UTF-8, which cannot occur here.
        return String(unsafeUninitializedCapacity: payload.count) { buffer in
            guard let source = payload.baseAddress, let target = buffer.baseAddress else { return 0 }
            UnsafeMutableRawPointer(target).copyMemory(from: source, byteCount: payload.count)
            return payload.count
        }
    }

    /// Whether every byte is in 1...127, eight at a time: most request strings are ids and keys in ASCII, and
    /// ``UTF8Check`` (which this answers like, for them) takes one byte at a time.
    private func isASCIIWithoutNUL(_ bytes: UnsafeRawBufferPointer) -> Bool {
        let highBits: UInt64 = 0x8080_8080_8080_8080
        let ones: UInt64 = 0x0101_0101_0101_0101
        var index = 0
        while bytes.count - index >= 8 {
            let word = bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self)
            // No byte of 128 or more, and no zero byte (exact once every byte is below 128).
            guard word & highBits == 0, (word &- ones) & ~word & highBits == 0 else { return false }
            index += 8
        }
        while index < bytes.count {
            guard bytes[index] &- 1 < 0x7F else { return false }
            index += 1
        }
        return true
    }

    /// Passes over an unknown field's value.
    mutating func skip(_ wireType: WireType) -> Bool {
        switch wireType {
        case .varint: return readVarint() != nil
        case .fixed64: return readFixed64() != nil
        case .lengthDelimited: return readLengthDelimited() != nil
        case .fixed32:
            guard bytes.count - offset >= 4 else { return false }
            offset += 4
            return true
        }
    }
}
