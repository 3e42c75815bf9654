import OfferdCore
import OfferdSnapshot

/// The snapshot's string table while it is being built: each distinct name
/// (audience, offer id, attribute key) stored once and referred to by index.
struct StringTableBuilder {
    /// Tells tables apart, so a memo of (string, index) pairs kept outside (``FastRecordEncoder``) is only used
    /// with the table it came from. Tables only grow, so such a pair stays true.
    private(set) var token = UInt64.random(in: 1...UInt64.max)
    private var indexByString: [String: UInt32] = [:]
    private(set) var strings: [String] = []

    /// The byte-keyed cache in front of `indexByString` for ASCII text, so that the builder's fast path interns
    /// without making a String: open addressing over (FNV-1a hash, string index), a power-of-two slot count.
    private var cacheSlots: [(hash: UInt64, index: UInt32)] = Array(repeating: (0, UInt32.max), count: 1024)
    private var cacheCount = 0
    /// The UTF-8 of each interned string, back to back, and where each starts (one more entry than strings).
    private var storage: [UInt8] = []
    private var storageStarts: [Int] = [0]

    /// The index of `text`, adding it when new.
    mutating func intern(_ text: String) -> UInt32 {
        if let index = indexByString[text] { return index }
        let index = UInt32(strings.count)
        indexByString[text] = index
        strings.append(text)
        storage.append(contentsOf: text.utf8)
        storageStarts.append(storage.count)
        return index
    }

    /// The index of the string with the UTF-8 `bytes`, adding it when new; the same index as ``intern(_:)``
    /// of that string gives.
    ///
    /// Only ASCII is answered from the byte cache: `indexByString` compares Strings under Unicode canonical
    /// equivalence, and a cache miss goes through it, so the cache never disagrees with it.
    mutating func intern(_ bytes: UnsafeBufferPointer<UInt8>, isASCII: Bool) -> UInt32 {
        guard isASCII else { return intern(String(decoding: bytes, as: UTF8.self)) }
        var hash = SnapshotHash.basis
        for byte in bytes { hash = SnapshotHash.step(hash, byte) }
        return intern(asciiBytes: bytes, hash: hash)
    }

    /// ``intern(_:isASCII:)`` of ASCII `bytes` whose unfinished FNV-1a state (before `fmix64`) is `hash`.
    mutating func intern(asciiBytes bytes: UnsafeBufferPointer<UInt8>, hash: UInt64) -> UInt32 {
        let mask = cacheSlots.count - 1
        var slot = Int(truncatingIfNeeded: fmix64(hash)) & mask
        let found: UInt32? = cacheSlots.withUnsafeBufferPointer { slots in
            while true {
                let entry = slots[slot]
                if entry.index == UInt32.max { return nil }
                if entry.hash == hash, storedBytesEqual(Int(entry.index), bytes) { return entry.index }
                slot = (slot + 1) & mask
            }
        }
        if let found { return found }
        let index = intern(String(decoding: bytes, as: UTF8.self))
        cacheSlots[slot] = (hash, index)
        cacheCount += 1
        if cacheCount * 2 > cacheSlots.count { growCache() }
        return index
    }

    /// Gives this copy its own token: a copy that grows apart from the original is another table.
    mutating func renewToken() {
        token = UInt64.random(in: 1...UInt64.max)
    }

    /// Gives this copy storage of its own, copied on the calling thread, for a table handed to another thread.
    /// Shared, the storage would be copied on the first write by whichever copy writes first; the other thread could
    /// then write in place into storage this thread had been reading, ordered only by the reference count's
    /// atomics, which the thread sanitizer cannot see (the Swift runtime is not instrumented).
    mutating func detach() {
        // `reserveCapacity` gives an array or dictionary a buffer of its own when it shares one.
        indexByString.reserveCapacity(indexByString.count)
        strings.reserveCapacity(strings.count)
        cacheSlots.reserveCapacity(cacheSlots.count)
        storage.reserveCapacity(storage.count)
        storageStarts.reserveCapacity(storageStarts.count)
    }

    /// The number of strings interned so far.
    var count: Int { strings.count }

    /// Calls `body` with the UTF-8 of the string at `index` (the bytes it was first interned with).
    func withBytes<Result>(of index: Int, _ body: (UnsafeBufferPointer<UInt8>) -> Result) -> Result {
        storage.withUnsafeBufferPointer { all in
            body(UnsafeBufferPointer(rebasing: all[storageStarts[index]..<storageStarts[index + 1]]))
        }
    }

    /// Interns the string at `index` of `other` here and returns its index here: how a batch-local table's
    /// strings join the global one, in the same order (so with the same indices) as interning them directly.
    mutating func intern(_ index: Int, of other: StringTableBuilder) -> UInt32 {
        other.withBytes(of: index) { bytes in
            var hash = SnapshotHash.basis
            var high: UInt8 = 0
            for byte in bytes {
                hash = SnapshotHash.step(hash, byte)
                high |= byte
            }
            return high < 0x80 ? intern(asciiBytes: bytes, hash: hash) : intern(bytes, isASCII: false)
        }
    }

    private func storedBytesEqual(_ index: Int, _ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        let start = storageStarts[index]
        guard storageStarts[index + 1] - start == bytes.count else { return false }
        return storage.withUnsafeBufferPointer { stored in
            guard let storedBase = stored.baseAddress, let base = bytes.baseAddress else { return bytes.isEmpty }
            return bytesEqual(storedBase + start, base, count: bytes.count)
        }
    }

    private mutating func growCache() {
        let old = cacheSlots
        cacheSlots = Array(repeating: (0, UInt32.max), count: old.count * 2)
        let mask = cacheSlots.count - 1
        for entry in old where entry.index != UInt32.max {
            var slot = Int(truncatingIfNeeded: fmix64(entry.hash)) & mask
            while cacheSlots[slot].index != UInt32.max { slot = (slot + 1) & mask }
            cacheSlots[slot] = entry
        }
    }

    /// The section bytes: count (u64), one u64 offset per entry (relative to
    /// the section start), then each entry as u32 length and UTF-8 bytes.
    func encode() -> [UInt8] {
        var section: [UInt8] = []
        let tableLength = 8 + 8 * strings.count
        section.reserveCapacity(tableLength + strings.reduce(0) { $0 + 4 + $1.utf8.count })
        section.appendLE(UInt64(strings.count))
        var offset = tableLength
        for text in strings {
            section.appendLE(UInt64(offset))
            offset += 4 + text.utf8.count
        }
        for text in strings {
            section.appendLE(UInt32(text.utf8.count))
            section.append(contentsOf: text.utf8)
        }
        return section
    }
}

/// Why a profile cannot be encoded (it exceeds a limit of the format).
struct RecordEncodingError: Error {
    var message: String
}

/// Encodes one profile into the record layout of docs/snapshot-format.md, through ``RecordLayout`` (as the fast
/// path does).
struct RecordEncoder {
    private var nodes: [UInt8] = []
    private var directory: [(hash: UInt64, offset: UInt32)] = []
    private var pathBytes: [UInt8] = []
    // The other sections, reused from profile to profile.
    private var audienceEntries: [UInt8] = []
    private var cappingEntries: [UInt8] = []
    private var directoryEntries: [UInt8] = []

    /// Appends the record of `profile` to `output`.
    mutating func encode(
        _ profile: InMemoryProfile, strings: inout StringTableBuilder, into output: inout [UInt8]
    ) throws(RecordEncodingError) {
        nodes.removeAll(keepingCapacity: true)
        directory.removeAll(keepingCapacity: true)
        pathBytes.removeAll(keepingCapacity: true)
        audienceEntries.removeAll(keepingCapacity: true)
        cappingEntries.removeAll(keepingCapacity: true)
        directoryEntries.removeAll(keepingCapacity: true)

        // Strings are interned in this order (attribute keys, audiences, offer ids): the string table's indices,
        // and so the file, depend on it.
        if case .object(let members) = profile.attributes {
            try encodeMembers(members, parent: SnapshotFormat.noParent, strings: &strings)
        }
        directory.sort { ($0.hash, $0.offset) < ($1.hash, $1.offset) }
        for entry in directory {
            directoryEntries.appendLE(entry.hash)
            directoryEntries.appendLE(entry.offset)
        }
        for audience in profile.audiences {
            audienceEntries.appendLE(SnapshotHash.of(audience))
            audienceEntries.appendLE(strings.intern(audience))
        }
        for entry in profile.capping {
            cappingEntries.appendLE(SnapshotHash.of(entry.offerID))
            cappingEntries.appendLE(strings.intern(entry.offerID))
            cappingEntries.appendLE(UInt64(entry.count))
        }
        var identitiesLength = 0
        for identity in profile.identities {
            identitiesLength += RecordLayout.identityLength(
                namespace: identity.namespace.utf8.count, id: identity.id.utf8.count)
        }
        let layout = RecordLayout(
            identityCount: profile.identities.count, identitiesLength: identitiesLength,
            audienceCount: profile.audiences.count, cappingCount: profile.capping.count,
            attributeCount: directory.count, nodesLength: nodes.count)
        guard layout.length <= Int(UInt32.max) else {
            throw RecordEncodingError(message: "the profile's record exceeds 4 GiB")
        }
        let choices = profile.consents
        var consents: UInt64 = 0
        for (slot, choice) in [
            choices.personalizeContent, choices.marketingAny, choices.marketingEmail, choices.marketingSMS,
            choices.marketingPush, choices.marketingCall,
        ].enumerated() {
            consents |= UInt64(choice.rawValue) << UInt64(slot * 8)
        }

        let start = output.count
        output.append(contentsOf: repeatElement(0, count: layout.length))
        output.withUnsafeMutableBytes { buffer in
            // Just grown by the record's length (at least its header) from `start`: the base address exists.
            let record = buffer.baseAddress.unsafelyUnwrapped + start
            audienceEntries.withUnsafeBytes { audiences in
                cappingEntries.withUnsafeBytes { capping in
                    directoryEntries.withUnsafeBytes { directory in
                        nodes.withUnsafeBytes { nodes in
                            layout.write(
                                to: record, consents: consents,
                                identities: { raw in
                                    var position = SnapshotFormat.Record.headerLength
                                    for identity in profile.identities {
                                        var namespace = identity.namespace
                                        var id = identity.id
                                        position = namespace.withUTF8 { namespaceBytes in
                                            id.withUTF8 { idBytes in
                                                RecordLayout.writeIdentity(
                                                    namespace: UnsafeRawBufferPointer(namespaceBytes),
                                                    id: UnsafeRawBufferPointer(idBytes), to: raw, at: position)
                                            }
                                        }
                                    }
                                    return position
                                },
                                audiences: audiences, capping: capping, directory: directory, nodes: nodes)
                        }
                    }
                }
            }
        }
    }

    /// Writes the nodes of an object's members in document order (pre-order), each
    /// with its parent's offset and a directory entry keyed by its full path's hash.
    private mutating func encodeMembers(
        _ members: [JSONMember], parent: UInt32, strings: inout StringTableBuilder
    ) throws(RecordEncodingError) {
        for member in members {
            guard nodes.count <= Int(UInt32.max) - 1 else {
                throw RecordEncodingError(message: "the profile's attributes exceed 4 GiB")
            }
            let offset = UInt32(nodes.count)
            let pathLength = pathBytes.count
            let keyLength = UInt32(member.key.utf8.count)
            pathBytes.appendLE(keyLength)
            pathBytes.append(contentsOf: member.key.utf8)
            directory.append((hash: SnapshotHash.of(pathBytes), offset: offset))

            nodes.appendLE(parent)
            nodes.appendLE(strings.intern(member.key))
            switch member.value {
            case .object(let children):
                nodes.append(SnapshotFormat.Kind.object.rawValue)
                try encodeMembers(children, parent: offset, strings: &strings)
            case .array(let items):
                nodes.append(SnapshotFormat.Kind.array.rawValue)
                nodes.appendLE(UInt32(items.count))
                for item in items { appendScalar(item) }
            default:
                appendScalar(member.value)
            }
            pathBytes.removeSubrange(pathLength...)
        }
    }

    /// A kind byte and payload; arrays and objects inside arrays were refused by the parser,
    /// and are stored as null should one reach here.
    private mutating func appendScalar(_ value: JSONValue) {
        switch value {
        case .bool(let flag):
            nodes.append(flag ? SnapshotFormat.Kind.true.rawValue : SnapshotFormat.Kind.false.rawValue)
        case .number(let number):
            nodes.append(SnapshotFormat.Kind.number.rawValue)
            nodes.appendLE(number.bitPattern)
        case .string(let text):
            nodes.append(SnapshotFormat.Kind.string.rawValue)
            nodes.appendLE(UInt32(text.utf8.count))
            nodes.append(contentsOf: text.utf8)
        case .null, .array, .object:
            nodes.append(SnapshotFormat.Kind.null.rawValue)
        }
    }
}
