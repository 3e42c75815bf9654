import OfferdCore
import OfferdSnapshot

/// One identity of a line parsed by ``FastRecordEncoder``: its index hash and where its text lies in the line.
struct FastIdentity {
    var hash: UInt64
    var namespace: Range<Int>
    var id: Range<Int>
}

/// Parses one profile source line straight into its record bytes, without a JSON tree or per-value objects.
///
/// The builder's fast path. It handles the common shape of a line completely: any JSON it does not fully
/// understand (string escapes, exponents, more than 15 digits, non-ASCII keys or identities, deep nesting)
/// and every invalid line make it return nil having written nothing, and the builder then takes the general
/// path (``ProfileSourceParser`` and ``RecordEncoder``), which accepts or refuses the line with the exact
/// SPEC 5.1 message. So it never has to produce an error itself: it must only never accept a line the general
/// path refuses, and encode what it accepts to the same profile (the differential tests check both).
///
/// Strings may be interned into `strings` by a line that then falls back; such entries are unused, harmless.
struct FastRecordEncoder {
    /// Nesting the fast path follows (the general parser allows 128; deeper lines fall back).
    static let maximumDepth = 48

    private var bytes: UnsafeBufferPointer<UInt8> = UnsafeBufferPointer(start: nil, count: 0)
    private var index = 0

    private(set) var identities: [FastIdentity] = []
    /// The six ConsentChoice codes in record order, one per byte (personalize.content in the lowest).
    private var consents: UInt64 = 0
    // Scratch for the record's sections, reused from line to line (ByteScratch: no per-byte capacity checks).
    private let audiences = ByteScratch(capacity: 256)
    private var audienceCount = 0
    private let capping = ByteScratch(capacity: 256)
    private var cappingCount = 0
    private let nodes = ByteScratch(capacity: 2048)
    /// Directory entries exactly as in the record: path hash (u64), node offset (u32); sorted by
    /// ``writeRecord(to:layout:)``.
    private let directory = ByteScratch(capacity: 1024)
    private var directoryCount = 0
    /// Key hashes (u64) of the objects being parsed, for the duplicate-key check (one run per open object).
    private let keyHashes = ByteScratch(capacity: 512)
    /// A direct-mapped memo of short ASCII strings' indices in the string table: keys, audiences and offer ids
    /// repeat on nearly every line, and the table's own lookup (hash probe, then `memcmp`) was 8 % of the build.
    private var internMemo = [InternMemoEntry](repeating: InternMemoEntry(), count: Self.internMemoSize)
    private static let internMemoSize = 256
    /// A direct-mapped memo of attribute keys under their parent's path: the key's FNV-1a state, its path's
    /// unfinished hash and its string index. Attribute keys repeat under the same parents on nearly every line, and
    /// the two byte-serial FNV-1a chains over each key (and the string memo behind them) were most of the
    /// attribute parsing.
    private var attributeKeyMemo = [AttributeKeyMemoEntry](
        repeating: AttributeKeyMemoEntry(), count: Self.attributeKeyMemoSize)
    private static let attributeKeyMemoSize = 256

    /// The unfinished FNV-1a state of the key ``asciiKey()`` returned last (shared by the duplicate check and
    /// the string table, so each key is hashed once).
    private var lastKeyHash: UInt64 = 0

    /// Appends the record of `line` to `output` and returns true, or returns false having appended nothing.
    /// On success ``identities`` holds the line's identities (ranges into `line`).
    mutating func encode(_ line: [UInt8], strings: inout StringTableBuilder, into output: inout [UInt8]) -> Bool {
        line.withUnsafeBufferPointer { buffer in
            let record = ByteScratch(capacity: 1024)
            guard encode(line: buffer, strings: &strings, into: record) else { return false }
            output.append(contentsOf: record.bytes)
            return true
        }
    }

    /// Appends the record of `line` to `output` and returns true, or returns false having appended nothing.
    /// On success ``identities`` holds the line's identities (ranges into `line`), valid while `line` is.
    mutating func encode(
        line: UnsafeBufferPointer<UInt8>, strings: inout StringTableBuilder, into output: ByteScratch
    ) -> Bool {
        bytes = line
        defer { bytes = UnsafeBufferPointer(start: nil, count: 0) }
        guard parse(strings: &strings) else { return false }
        let layout = recordLayout
        output.reserve(layout.length)
        let start = output.count
        // writeRecord writes every byte of the record.
        writeRecord(to: output.base + start, layout: layout)
        output.setCount(start + layout.length)
        return true
    }

    /// Appends the record of `line` to `output` (the builder's write buffer); see ``encode(line:strings:into:)``.
    mutating func encode(
        line: UnsafeBufferPointer<UInt8>, strings: inout StringTableBuilder, into output: inout [UInt8]
    ) -> Bool {
        bytes = line
        defer { bytes = UnsafeBufferPointer(start: nil, count: 0) }
        guard parse(strings: &strings) else { return false }
        let layout = recordLayout
        let start = output.count
        output.append(contentsOf: repeatElement(0, count: layout.length))
        output.withUnsafeMutableBufferPointer { buffer in
            // Just grown by `layout.length` bytes from `start`: the base address exists.
            writeRecord(to: buffer.baseAddress.unsafelyUnwrapped + start, layout: layout)
        }
        return true
    }

    /// Parses the line in ``bytes``, leaving the record's parts in the scratch buffers; false for a line the fast
    /// path leaves to the general path.
    private mutating func parse(strings: inout StringTableBuilder) -> Bool {
        index = 0
        return parseProfile(strings: &strings)
    }

    /// ``StringTableBuilder/intern(asciiBytes:hash:)`` of `bytes[range]` (ASCII) through ``internMemo``.
    @inline(__always)
    private mutating func internASCII(
        _ range: Range<Int>, hash: UInt64, strings: inout StringTableBuilder
    ) -> UInt32 {
        let length = range.count
        // The memo holds strings of at most 16 bytes, compared as two masked words read from the line (only
        // where 16 bytes can be read without passing its end).
        guard length <= 16, range.lowerBound + 16 <= bytes.count, let base = bytes.baseAddress else {
            return strings.intern(asciiBytes: UnsafeBufferPointer(rebasing: bytes[range]), hash: hash)
        }
        let raw = UnsafeRawPointer(base + range.lowerBound)
        let lowMask: UInt64 = length >= 8 ? ~0 : (1 << UInt64(length * 8)) &- 1
        let highMask: UInt64 = length >= 16 ? ~0 : length <= 8 ? 0 : (1 << UInt64((length - 8) * 8)) &- 1
        let low = UInt64(littleEndian: raw.loadUnaligned(as: UInt64.self)) & lowMask
        let high = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self)) & highMask
        let slot = Int(truncatingIfNeeded: (hash &* 0x9E37_79B9_7F4A_7C15) >> 56) & (Self.internMemoSize - 1)
        let entry = internMemo[slot]
        if entry.token == strings.token, entry.hash == hash, entry.length == UInt32(length), entry.low == low,
            entry.high == high
        {
            return entry.index
        }
        let index = strings.intern(asciiBytes: UnsafeBufferPointer(rebasing: bytes[range]), hash: hash)
        internMemo[slot] = InternMemoEntry(
            token: strings.token, hash: hash, low: low, high: high, length: UInt32(length), index: index)
        return index
    }

    // MARK: Profile structure (SPEC 5.1)

    private mutating func parseProfile(strings: inout StringTableBuilder) -> Bool {
        identities.removeAll(keepingCapacity: true)
        consents = 0
        audiences.removeAll()
        capping.removeAll()
        nodes.removeAll()
        directory.removeAll()
        directoryCount = 0
        keyHashes.removeAll()
        audienceCount = 0
        cappingCount = 0

        skipWhitespace()
        guard consume(0x7B) else { return false } // {
        var seen: UInt8 = 0
        var first = true
        while true {
            skipWhitespace()
            if consume(0x7D) { break } // }
            if !first {
                guard consume(0x2C) else { return false }
                skipWhitespace()
            }
            first = false
            guard let key = asciiKey() else { return false }
            skipWhitespace()
            guard consume(0x3A) else { return false } // :
            skipWhitespace()
            let bit: UInt8
            switch key.count {
            case 10 where keyEquals(key, "identities"):
                bit = 1
                guard parseIdentities() else { return false }
            case 8 where keyEquals(key, "consents"):
                bit = 2
                guard parseConsents() else { return false }
            case 9 where keyEquals(key, "audiences"):
                bit = 4
                guard parseAudiences(strings: &strings) else { return false }
            case 10 where keyEquals(key, "attributes"):
                bit = 8
                guard peek() == 0x7B else { return false }
                index += 1
                guard
                    parseAttributeMembers(
                        parent: SnapshotFormat.noParent, pathHash: SnapshotHash.basis, depth: 2, strings: &strings)
                else { return false }
            case 7 where keyEquals(key, "capping"):
                bit = 16
                guard parseCapping(strings: &strings) else { return false }
            default:
                return false
            }
            // A repeated top-level key is a duplicate key: the general path words the error.
            guard seen & bit == 0 else { return false }
            seen |= bit
        }
        skipWhitespace()
        return index == bytes.count && !identities.isEmpty
    }

    private mutating func parseIdentities() -> Bool {
        guard consume(0x5B) else { return false } // [
        skipWhitespace()
        guard peek() != 0x5D else { return false } // empty: refused
        while true {
            skipWhitespace()
            guard consume(0x7B) else { return false }
            var namespace: Range<Int>?
            var id: Range<Int>?
            var seen: UInt8 = 0
            var first = true
            while true {
                skipWhitespace()
                if consume(0x7D) { break }
                if !first {
                    guard consume(0x2C) else { return false }
                    skipWhitespace()
                }
                first = false
                guard let key = asciiKey() else { return false }
                skipWhitespace()
                guard consume(0x3A) else { return false }
                skipWhitespace()
                let bit: UInt8
                if keyEquals(key, "namespace") || keyEquals(key, "id") {
                    // Identities are compared with String equality by the general path: ASCII keeps bytes
                    // equality identical to it.
                    guard let text = string(), text.isASCII, !text.range.isEmpty else { return false }
                    if key.count == 2 {
                        id = text.range
                        bit = 1
                    } else {
                        namespace = text.range
                        bit = 2
                    }
                } else if keyEquals(key, "primary") || keyEquals(key, "authenticatedState") {
                    guard skipValue(depth: 3) else { return false }
                    bit = key.count == 7 ? 4 : 8
                } else {
                    return false
                }
                guard seen & bit == 0 else { return false }
                seen |= bit
            }
            guard let namespace, let id else { return false }
            identities.append(
                FastIdentity(hash: identityHash(namespace: namespace, id: id), namespace: namespace, id: id))
            skipWhitespace()
            if consume(0x5D) { return true }
            guard consume(0x2C) else { return false }
        }
    }

    private func identityHash(namespace: Range<Int>, id: Range<Int>) -> UInt64 {
        SnapshotFormat.identityHash(
            namespace: UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: bytes[namespace])),
            id: UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: bytes[id])))
    }

    private mutating func parseConsents() -> Bool {
        guard consume(0x7B) else { return false }
        return forEachMember { parser, key in
            if parser.keyEquals(key, "personalize") {
                return parser.parseConsentGroup(firstSlot: 0)
            } else if parser.keyEquals(key, "marketing") {
                return parser.parseConsentGroup(firstSlot: 1)
            } else {
                // collect, share, metadata...: valid XDM that offerd does not read.
                return parser.skipValue(depth: 3)
            }
        }
    }

    /// Steps over the whitespace and the separator before an object's next member: true at its key, false after
    /// the closing `}`, nil on anything else.
    @inline(__always)
    private mutating func advanceToMember(first: inout Bool) -> Bool? {
        skipWhitespace()
        if consume(0x7D) { return false }
        if !first {
            guard consume(0x2C) else { return nil }
            skipWhitespace()
        }
        first = false
        return true
    }

    /// Steps over a member's `:` and the whitespace around it; false when the separator is missing.
    @inline(__always)
    private mutating func consumeNameSeparator() -> Bool {
        skipWhitespace()
        guard consume(0x3A) else { return false }
        skipWhitespace()
        return true
    }

    /// Walks the members of an object whose `{` is consumed, as strictly as the general parser: separators,
    /// printable-ASCII keys, no duplicate key. `member` gets each key with the parser at its value and returns
    /// false to fall back; the walk returns true after the closing `}`.
    private mutating func forEachMember(_ member: (inout Self, Range<Int>) -> Bool) -> Bool {
        let keysStart = keyHashes.count
        defer { keyHashes.truncate(to: keysStart) }
        // A 64-bit Bloom filter of this object's key hashes: the list is only scanned when its bit is set.
        var seenKeys: UInt64 = 0
        var first = true
        while true {
            guard let atMember = advanceToMember(first: &first) else { return false }
            if !atMember { return true }
            guard let key = asciiKey(), isNewKey(key, since: keysStart, seenKeys: &seenKeys) else { return false }
            guard consumeNameSeparator() else { return false }
            guard member(&self, key) else { return false }
        }
    }

    /// The slot (0-5) of a consent channel key of the group starting at `firstSlot` (0: personalize,
    /// 1: marketing); nil for a member offerd does not read.
    private func consentSlot(_ key: Range<Int>, firstSlot: Int) -> Int? {
        if firstSlot == 0 { return keyEquals(key, "content") ? 0 : nil }
        switch key.count {
        case 3: return keyEquals(key, "any") ? 1 : keyEquals(key, "sms") ? 3 : nil
        case 4: return keyEquals(key, "push") ? 4 : keyEquals(key, "call") ? 5 : nil
        case 5: return keyEquals(key, "email") ? 2 : nil
        default: return nil
        }
    }

    /// An object whose channel members are consent entries (stored at `firstSlot` on); other members ignored.
    private mutating func parseConsentGroup(firstSlot: Int) -> Bool {
        guard consume(0x7B) else { return false }
        return forEachMember { parser, key in
            if let slot = parser.consentSlot(key, firstSlot: firstSlot) {
                guard let choice = parser.parseConsentEntry() else { return false }
                let shift = UInt64(slot * 8)
                parser.consents = parser.consents & ~(0xFF << shift) | UInt64(choice) << shift
                return true
            }
            return parser.skipValue(depth: 4)
        }
    }

    /// A consent entry object; its `val` (absent: empty) as a ConsentChoice code.
    private mutating func parseConsentEntry() -> UInt8? {
        guard consume(0x7B) else { return nil }
        var choice = ConsentChoice.empty
        let parsed = forEachMember { parser, key in
            guard parser.keyEquals(key, "val") else { return parser.skipValue(depth: 5) }
            guard let text = parser.string(), let value = parser.consentChoice(text.range) else { return false }
            choice = value
            return true
        }
        return parsed ? choice.rawValue : nil
    }

    /// `ConsentChoice(xdmValue:)` of the bytes at `range`, without making a String.
    private func consentChoice(_ range: Range<Int>) -> ConsentChoice? {
        let first = range.count >= 1 ? bytes[range.lowerBound] : 0
        let second = range.count == 2 ? bytes[range.lowerBound + 1] : 0
        switch (range.count, first, second) {
        case (1, 0x79, _): return .y // y
        case (1, 0x6E, _): return .n // n
        case (1, 0x70, _): return .p // p
        case (1, 0x75, _): return .u // u
        case (2, 0x64, 0x79): return .dy
        case (2, 0x64, 0x6E): return .dn
        case (2, 0x4C, 0x49): return .LI
        case (2, 0x43, 0x54): return .CT
        case (2, 0x43, 0x50): return .CP
        case (2, 0x56, 0x49): return .VI
        case (2, 0x50, 0x49): return .PI
        default: return nil
        }
    }

    private mutating func parseAudiences(strings: inout StringTableBuilder) -> Bool {
        guard consume(0x5B) else { return false }
        skipWhitespace()
        if consume(0x5D) { return true }
        while true {
            skipWhitespace()
            guard let text = string() else { return false }
            let name = UnsafeBufferPointer(rebasing: bytes[text.range])
            var hash = SnapshotHash.basis
            for byte in name { hash = SnapshotHash.step(hash, byte) }
            audiences.appendLE(fmix64(hash))
            audiences.appendLE(
                text.isASCII
                    ? internASCII(text.range, hash: hash, strings: &strings) : strings.intern(name, isASCII: false))
            audienceCount += 1
            skipWhitespace()
            if consume(0x5D) { return true }
            guard consume(0x2C) else { return false }
        }
    }

    private mutating func parseCapping(strings: inout StringTableBuilder) -> Bool {
        guard consume(0x7B) else { return false }
        return forEachMember { parser, key in
            let keyHash = parser.lastKeyHash
            guard let count = parser.number(), count >= 0, count == count.rounded(.towardZero),
                count <= ProfileSourceParser.maximumCappingCount
            else { return false }
            parser.capping.appendLE(fmix64(keyHash))
            parser.capping.appendLE(parser.internASCII(key, hash: keyHash, strings: &strings))
            // The integer form (SPEC 5.1): decision events; display and interact 0. The object form falls back.
            parser.capping.appendLE(UInt64(Int(count)))
            parser.capping.appendLE(UInt64(0))
            parser.capping.appendLE(UInt64(0))
            parser.cappingCount += 1
            return true
        }
    }

    /// The members of an attributes object (its `{` consumed), as nodes in document order, each with a directory
    /// entry keyed by its path hash. `pathHash` is the unfinished FNV-1a state of the parent's canonical path.
    ///
    /// ``forEachMember(_:)`` with the key's own hash, its path's hash and its string index from
    /// ``attributeKey(_:parentPath:strings:)`` (a memo, or one pass over the key).
    private mutating func parseAttributeMembers(
        parent: UInt32, pathHash: UInt64, depth: Int, strings: inout StringTableBuilder
    ) -> Bool {
        guard depth <= Self.maximumDepth else { return false }
        let keysStart = keyHashes.count
        defer { keyHashes.truncate(to: keysStart) }
        var seenKeys: UInt64 = 0
        var first = true
        while true {
            guard let atMember = advanceToMember(first: &first) else { return false }
            if !atMember { return true }
            guard let key = string(), key.isASCII else { return false }
            let (path, keyIndex) = attributeKey(key.range, parentPath: pathHash, strings: &strings)
            guard isNewKey(key.range, since: keysStart, seenKeys: &seenKeys) else { return false }
            guard consumeNameSeparator() else { return false }
            guard
                appendAttribute(
                    keyIndex: keyIndex, parent: parent, pathHash: path, depth: depth, strings: &strings)
            else { return false }
        }
    }

    /// The unfinished hash of the path of the attribute key `key` (ASCII) under the path `parentPath`, and the
    /// key's string index; sets ``lastKeyHash``. Through ``attributeKeyMemo`` for keys of at most 16 bytes.
    @inline(__always)
    private mutating func attributeKey(
        _ key: Range<Int>, parentPath: UInt64, strings: inout StringTableBuilder
    ) -> (path: UInt64, keyIndex: UInt32) {
        let length = key.count
        guard length <= 16, key.lowerBound + 16 <= bytes.count, let base = bytes.baseAddress else {
            let (keyHash, path) = hashAttributeKey(key, parentPath: parentPath)
            lastKeyHash = keyHash
            return (path, internASCII(key, hash: keyHash, strings: &strings))
        }
        // The key as two masked words read from the line (16 bytes are readable: checked above).
        let raw = UnsafeRawPointer(base + key.lowerBound)
        let lowMask: UInt64 = length >= 8 ? ~0 : (1 << UInt64(length * 8)) &- 1
        let highMask: UInt64 = length >= 16 ? ~0 : length <= 8 ? 0 : (1 << UInt64((length - 8) * 8)) &- 1
        let low = UInt64(littleEndian: raw.loadUnaligned(as: UInt64.self)) & lowMask
        let high = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self)) & highMask
        let mixed = (parentPath ^ low) &* 0x9E37_79B9_7F4A_7C15 ^ (high &+ UInt64(length)) &* 0xC2B2_AE3D_27D4_EB4F
        let slot = Int(truncatingIfNeeded: mixed >> 56) & (Self.attributeKeyMemoSize - 1)
        let entry = attributeKeyMemo[slot]
        if entry.token == strings.token, entry.parentPath == parentPath, entry.low == low, entry.high == high,
            entry.length == UInt32(length)
        {
            lastKeyHash = entry.keyHash
            return (entry.path, entry.index)
        }
        let (keyHash, path) = hashAttributeKey(key, parentPath: parentPath)
        lastKeyHash = keyHash
        let index = internASCII(key, hash: keyHash, strings: &strings)
        attributeKeyMemo[slot] = AttributeKeyMemoEntry(
            token: strings.token, parentPath: parentPath, low: low, high: high, keyHash: keyHash, path: path,
            length: UInt32(length), index: index)
        return (path, index)
    }

    /// The key's own FNV-1a state and its path's (the parent's path, then the key as u32 length and bytes), in one
    /// pass over the key (two independent multiply chains, which the CPU overlaps).
    private func hashAttributeKey(_ key: Range<Int>, parentPath: UInt64) -> (keyHash: UInt64, path: UInt64) {
        var keyHash = SnapshotHash.basis
        var path = parentPath
        let keyLength = UInt32(key.count)
        for shift in stride(from: 0, to: 32, by: 8) {
            path = SnapshotHash.step(path, UInt8(truncatingIfNeeded: keyLength >> UInt32(shift)))
        }
        for position in key {
            let byte = bytes[position]
            keyHash = SnapshotHash.step(keyHash, byte)
            path = SnapshotHash.step(path, byte)
        }
        return (keyHash, path)
    }

    /// One attributes member whose key was just read: its node, its directory entry, and its value (an object's
    /// members recursively, an array of scalars, or a scalar). `pathHash` is the unfinished state of its path.
    private mutating func appendAttribute(
        keyIndex: UInt32, parent: UInt32, pathHash hash: UInt64, depth: Int, strings: inout StringTableBuilder
    ) -> Bool {
        guard nodes.count < Int(UInt32.max) else { return false }
        let offset = UInt32(nodes.count)
        directory.appendLE(fmix64(hash), offset)
        directoryCount += 1

        switch peek() {
        case 0x7B:
            index += 1
            nodes.appendLE(parent, keyIndex, SnapshotFormat.Kind.object.rawValue)
            return parseAttributeMembers(parent: offset, pathHash: hash, depth: depth + 1, strings: &strings)
        case 0x5B:
            index += 1
            nodes.appendLE(parent, keyIndex, SnapshotFormat.Kind.array.rawValue)
            let countAt = nodes.count
            nodes.appendLE(UInt32(0))
            var count: UInt32 = 0
            skipWhitespace()
            if !consume(0x5D) {
                while true {
                    skipWhitespace()
                    // Arrays may only hold scalars: a nested array or object is refused by the general path.
                    guard peek() != 0x5B, peek() != 0x7B, appendScalar() else { return false }
                    count += 1
                    skipWhitespace()
                    if consume(0x5D) { break }
                    guard consume(0x2C) else { return false }
                }
            }
            nodes.storeLE(count, at: countAt)
            return true
        default:
            // The scalar's kind byte follows at once (appendScalar writes it).
            nodes.appendLE(parent, keyIndex)
            return appendScalar()
        }
    }

    /// A scalar value as a node kind byte and payload.
    private mutating func appendScalar() -> Bool {
        switch peek() {
        case 0x22:
            guard let text = string() else { return false }
            nodes.append(
                SnapshotFormat.Kind.string.rawValue, lengthPrefixed: UnsafeBufferPointer(rebasing: bytes[text.range]))
        case 0x74:
            guard literal("true") else { return false }
            nodes.append(SnapshotFormat.Kind.true.rawValue)
        case 0x66:
            guard literal("false") else { return false }
            nodes.append(SnapshotFormat.Kind.false.rawValue)
        case 0x6E:
            guard literal("null") else { return false }
            nodes.append(SnapshotFormat.Kind.null.rawValue)
        default:
            guard let value = number() else { return false }
            nodes.append(SnapshotFormat.Kind.number.rawValue, value.bitPattern)
        }
        return true
    }

    // MARK: Record

    /// The layout of the record of the line just parsed.
    private var recordLayout: RecordLayout {
        var identitiesLength = 0
        for identity in identities {
            identitiesLength += RecordLayout.identityLength(namespace: identity.namespace.count, id: identity.id.count)
        }
        return RecordLayout(
            identityCount: identities.count, identitiesLength: identitiesLength, audienceCount: audienceCount,
            cappingCount: cappingCount, attributeCount: directoryCount, nodesLength: nodes.count)
    }

    /// Writes the record of the line just parsed (all of its `layout.length` bytes) at `record`, through the
    /// layout that ``RecordEncoder`` writes through too.
    private func writeRecord(to record: UnsafeMutablePointer<UInt8>, layout: RecordLayout) {
        sortDirectory()
        layout.write(
            to: UnsafeMutableRawPointer(record), consents: consents,
            identities: { raw in
                var position = SnapshotFormat.Record.headerLength
                for identity in identities {
                    position = RecordLayout.writeIdentity(
                        namespace: UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: bytes[identity.namespace])),
                        id: UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: bytes[identity.id])), to: raw,
                        at: position)
                }
                return position
            },
            audiences: UnsafeRawBufferPointer(audiences.bytes), capping: UnsafeRawBufferPointer(capping.bytes),
            directory: UnsafeRawBufferPointer(directory.bytes), nodes: UnsafeRawBufferPointer(nodes.bytes))
    }

    /// Sorts the directory entries by (path hash, node offset) in place.
    ///
    /// Entries were appended in increasing node offset, so a stable sort by hash alone gives that order: for the
    /// usual tens of attributes a bucket pass and an insertion sort (the generic sort's closure calls were 5 % of
    /// the build), for large directories the standard sort on (hash, offset) pairs.
    private func sortDirectory() {
        let entryLength = SnapshotFormat.Record.directoryEntryLength
        let count = directoryCount
        let raw = UnsafeMutableRawPointer(directory.base)
        func hash(_ entry: Int) -> UInt64 {
            UInt64(littleEndian: UnsafeRawPointer(raw + entry * entryLength).loadUnaligned(as: UInt64.self))
        }
        func offset(_ entry: Int) -> UInt32 {
            UInt32(littleEndian: UnsafeRawPointer(raw + entry * entryLength + 8).loadUnaligned(as: UInt32.self))
        }
        func store(_ entry: Int, _ value: (hash: UInt64, offset: UInt32)) {
            (raw + entry * entryLength).storeBytes(of: value.hash.littleEndian, as: UInt64.self)
            (raw + entry * entryLength + 8).storeBytes(of: value.offset.littleEndian, as: UInt32.self)
        }
        if count <= 64 {
            // Scattered by the top 6 bits of the hash into aligned scratch (a counting sort, stable), which leaves
            // the entries nearly sorted, then an insertion sort finishes with few moves. The hashes are random,
            // so a plain insertion sort mispredicted a branch for nearly every entry (5 % of the build).
            withUnsafeTemporaryAllocation(of: (hash: UInt64, offset: UInt32).self, capacity: count) { entries in
                withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 65) { starts in
                    starts.initialize(repeating: 0)
                    for entry in 0..<count { starts[Int(hash(entry) >> 58) + 1] &+= 1 }
                    for bucket in 1..<65 { starts[bucket] &+= starts[bucket - 1] }
                    for entry in 0..<count {
                        let value = (hash: hash(entry), offset: offset(entry))
                        let bucket = Int(value.hash >> 58)
                        entries[Int(starts[bucket])] = value
                        starts[bucket] &+= 1
                    }
                }
                var sorted = 1
                while sorted < count {
                    let moving = entries[sorted]
                    var hole = sorted
                    while hole > 0, entries[hole - 1].hash > moving.hash {
                        entries[hole] = entries[hole - 1]
                        hole -= 1
                    }
                    entries[hole] = moving
                    sorted += 1
                }
                for entry in 0..<count { store(entry, entries[entry]) }
            }
        } else {
            var entries = (0..<count).map { (hash: hash($0), offset: offset($0)) }
            entries.sort { ($0.hash, $0.offset) < ($1.hash, $1.offset) }
            for (entry, value) in entries.enumerated() { store(entry, value) }
        }
    }

    // MARK: JSON lexing (the subset the fast path accepts)

    @inline(__always)
    private func peek() -> UInt8 {
        index < bytes.count ? bytes[index] : 0
    }

    @inline(__always)
    private mutating func consume(_ byte: UInt8) -> Bool {
        guard index < bytes.count, bytes[index] == byte else { return false }
        index += 1
        return true
    }

    @inline(__always)
    private mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }

    private mutating func literal(_ text: StaticString) -> Bool {
        let length = text.utf8CodeUnitCount
        guard index + length <= bytes.count else { return false }
        let matches = text.withUTF8Buffer { expected in
            (0..<length).allSatisfy { bytes[index + $0] == expected[$0] }
        }
        guard matches else { return false }
        index += length
        return true
    }

    @inline(__always)
    private func keyEquals(_ key: Range<Int>, _ text: StaticString) -> Bool {
        guard key.count == text.utf8CodeUnitCount else { return false }
        return text.withUTF8Buffer { expected in
            var position = 0
            for byte in bytes[key] {
                if byte != expected[position] { return false }
                position += 1
            }
            return true
        }
    }

    /// A string without escapes; nil for anything else (escapes, control characters, invalid UTF-8).
    private mutating func string() -> (range: Range<Int>, isASCII: Bool)? {
        guard consume(0x22), let base = bytes.baseAddress else { return nil }
        let start = index
        let end = bytes.count
        var cursor = start
        var high: UInt8 = 0
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highBits: UInt64 = 0x8080_8080_8080_8080
        while true {
            // Eight bytes at a time up to the first quote, backslash, control or non-ASCII byte. The SWAR tests
            // can flag a byte above a flagged one wrongly, never below: the lowest flag is exact.
            while cursor + 8 <= end {
                let word = UInt64(littleEndian: UnsafeRawPointer(base + cursor).loadUnaligned(as: UInt64.self))
                let quote = word ^ (ones &* 0x22)
                let backslash = word ^ (ones &* 0x5C)
                let special =
                    (((quote &- ones) & ~quote) | ((backslash &- ones) & ~backslash)
                        | ((word &- ones &* 0x20) & ~word) | word) & highBits
                if special != 0 {
                    cursor += special.trailingZeroBitCount >> 3
                    break
                }
                cursor += 8
            }
            guard cursor < end else {
                index = cursor
                return nil
            }
            let byte = base[cursor]
            if byte == 0x22 {
                let range = start..<cursor
                index = cursor + 1
                if high < 0x80 { return (range, true) }
                return isValidUTF8(range) ? (range, false) : nil
            }
            if byte == 0x5C || byte < 0x20 {
                index = cursor
                return nil
            }
            high |= byte
            cursor += 1
        }
    }

    /// An object key: a string of printable ASCII (others fall back, since the general path compares keys as
    /// Swift Strings, under Unicode canonical equivalence).
    private mutating func asciiKey() -> Range<Int>? {
        guard let key = string(), key.isASCII else { return nil }
        var hash = SnapshotHash.basis
        for position in key.range { hash = SnapshotHash.step(hash, bytes[position]) }
        lastKeyHash = hash
        return key.range
    }

    /// Records `key` among the keys of the current object (those from `start` on in ``keyHashes``, summarised
    /// in the Bloom filter `seenKeys`); false when it is already there (a duplicate key).
    @inline(__always)
    private mutating func isNewKey(_ key: Range<Int>, since start: Int, seenKeys: inout UInt64) -> Bool {
        let hash = lastKeyHash &+ UInt64(key.count)
        let bit: UInt64 = 1 << ((hash &* 0x9E37_79B9_7F4A_7C15) >> 58)
        if seenKeys & bit != 0 {
            var position = start
            while position < keyHashes.count {
                // Equal hashes: treat as a duplicate and let the general path decide (a true collision is harmless).
                if keyHashes.loadLE64(at: position) == hash { return false }
                position += 8
            }
        }
        seenKeys |= bit
        keyHashes.appendLE(hash)
        return true
    }

    /// A JSON number of at most 15 significant digits and no exponent, converted exactly as a correctly
    /// rounded parser does (an integer mantissa below 2^53 divided by an exact power of ten).
    private mutating func number() -> Double? {
        let negative = consume(0x2D)
        var mantissa: Int64 = 0
        var digits = 0
        guard index < bytes.count, bytes[index] &- 0x30 < 10 else { return nil }
        if bytes[index] == 0x30 {
            index += 1
        } else {
            while index < bytes.count, bytes[index] &- 0x30 < 10 {
                mantissa = mantissa &* 10 &+ Int64(bytes[index] &- 0x30)
                digits += 1
                index += 1
            }
        }
        var fractionDigits = 0
        if index < bytes.count, bytes[index] == 0x2E {
            index += 1
            guard index < bytes.count, bytes[index] &- 0x30 < 10 else { return nil }
            while index < bytes.count, bytes[index] &- 0x30 < 10 {
                mantissa = mantissa &* 10 &+ Int64(bytes[index] &- 0x30)
                digits += 1
                fractionDigits += 1
                index += 1
            }
        }
        guard digits <= 15, index >= bytes.count || (bytes[index] != 0x65 && bytes[index] != 0x45) else {
            return nil
        }
        var value = Double(mantissa)
        if fractionDigits > 0 { value /= Self.powersOfTen[fractionDigits] }
        if negative { value = -value }
        return value
    }

    private static let powersOfTen: [Double] = (0...15).map { exponent in
        var value = 1.0
        for _ in 0..<exponent { value *= 10 }
        return value
    }

    /// Skips any JSON value the profile ignores, checking it as strictly as the general parser; nil
    /// (fall back) for what the fast lexer does not handle.
    private mutating func skipValue(depth: Int) -> Bool {
        guard depth <= Self.maximumDepth else { return false }
        switch peek() {
        case 0x7B:
            index += 1
            return forEachMember { parser, _ in parser.skipValue(depth: depth + 1) }
        case 0x5B:
            index += 1
            skipWhitespace()
            if consume(0x5D) { return true }
            while true {
                skipWhitespace()
                guard skipValue(depth: depth + 1) else { return false }
                skipWhitespace()
                if consume(0x5D) { return true }
                guard consume(0x2C) else { return false }
            }
        case 0x22: return string() != nil
        case 0x74: return literal("true")
        case 0x66: return literal("false")
        case 0x6E: return literal("null")
        default: return number() != nil
        }
    }

    /// Whether `range` is well-formed UTF-8 (no overlong forms, surrogates or values past U+10FFFF).
    private func isValidUTF8(_ range: Range<Int>) -> Bool {
        var position = range.lowerBound
        let end = range.upperBound
        while position < end {
            let lead = bytes[position]
            if lead < 0x80 {
                position += 1
                continue
            }
            let length: Int
            var lower: UInt8 = 0x80
            var upper: UInt8 = 0xBF
            switch lead {
            case 0xC2...0xDF: length = 2
            case 0xE0:
                length = 3
                lower = 0xA0
            case 0xE1...0xEC, 0xEE...0xEF: length = 3
            case 0xED:
                length = 3
                upper = 0x9F
            case 0xF0:
                length = 4
                lower = 0x90
            case 0xF1...0xF3: length = 4
            case 0xF4:
                length = 4
                upper = 0x8F
            default: return false
            }
            guard position + length <= end else { return false }
            let second = bytes[position + 1]
            guard second >= lower, second <= upper else { return false }
            for offset in 2..<max(2, length) where bytes[position + offset] & 0xC0 != 0x80 { return false }
            position += length
        }
        return true
    }
}

/// One entry of ``FastRecordEncoder``'s string memo: a string of at most 16 ASCII bytes (as two little-endian
/// words, zero-padded) and its index in the table with `token` (0: empty).
struct InternMemoEntry {
    var token: UInt64 = 0
    var hash: UInt64 = 0
    var low: UInt64 = 0
    var high: UInt64 = 0
    var length: UInt32 = 0
    var index: UInt32 = 0
}

/// One entry of ``FastRecordEncoder``'s attribute key memo: a key of at most 16 ASCII bytes (two little-endian
/// words, zero-padded) under the path whose unfinished hash is `parentPath`, with the key's FNV-1a state, its path's
/// unfinished hash and its index in the string table with `token` (0: empty).
struct AttributeKeyMemoEntry {
    var token: UInt64 = 0
    var parentPath: UInt64 = 0
    var low: UInt64 = 0
    var high: UInt64 = 0
    var keyHash: UInt64 = 0
    var path: UInt64 = 0
    var length: UInt32 = 0
    var index: UInt32 = 0
}
