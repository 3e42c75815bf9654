import OfferdCore

/// Constants of the binary snapshot format; docs/snapshot-format.md is the
/// normative description, this is its code: the one definition of the layout that the loader reads and the
/// builder (OfferdSnapshotBuilder, `RecordLayout` for records) writes.
///
/// The builder's hot loops use these across the module boundary, and nothing there is inlined from another
/// module unless it says so: hence `@inlinable` computed constants (a `static let` would be a call to its
/// accessor per use) and `@usableFromInline` on the enums (without it, their members are not inlined either).
@usableFromInline
package enum SnapshotFormat {
    /// The first 8 bytes of every snapshot.
    package static let magic: [UInt8] = Array("OFRDSNAP".utf8)
    /// Bumped on any incompatible layout change; the loader accepts only this one.
    /// Version 2 changed the body checksum to a digest of chunk digests (parallel verification). Version 3
    /// gave each capping entry three counts (decision, display, interact: SPEC 5.1's object form); a version 2
    /// reader would have read the new entries' display count as part of the next entry. Version 4 added the
    /// folded-state section (SPEC 9.6, ``FoldedState``): a version 3 reader would ignore it and lose the folded
    /// counts and consents, so it must refuse the file. Version 3 files are still read, as having none.
    @inlinable package static var formatVersion: UInt32 { 4 }
    /// The oldest format version the loader still reads.
    @inlinable package static var oldestReadableVersion: UInt32 { 3 }
    /// The body is checksummed in chunks of this many bytes (the last one shorter), see ``SnapshotChecksum``.
    @inlinable package static var checksumChunkLength: Int { 1 << 20 }
    /// The header is a fixed-size block, so records can be streamed right after it
    /// before the (content-hash) version string is known.
    @inlinable package static var headerLength: Int { 384 }
    /// Longest `--version` string, in UTF-8 bytes.
    @inlinable package static var maximumVersionLength: Int { 256 }
    /// Where the version string starts inside the header.
    @inlinable package static var versionOffset: Int { 112 }
    /// The identity index is kept at most this full, so a linear probe stays short.
    package static let indexLoadFactor = 0.6
    /// A slot's record offset when the slot is empty.
    @inlinable package static var emptySlot: UInt64 { UInt64.max }
    /// A node's parent offset when it is a top-level attribute.
    @inlinable package static var noParent: UInt32 { UInt32.max }
    /// Bytes of one index slot: hash, record offset.
    @inlinable package static var slotLength: Int { 16 }

    // Header field offsets.
    @usableFromInline
    package enum Header {
        @inlinable package static var magic: Int { 0 }
        @inlinable package static var formatVersion: Int { 8 }
        @inlinable package static var headerLength: Int { 12 }
        @inlinable package static var checksum: Int { 16 }
        @inlinable package static var fileLength: Int { 24 }
        @inlinable package static var createdAt: Int { 32 }
        @inlinable package static var profileCount: Int { 40 }
        @inlinable package static var identityCount: Int { 48 }
        @inlinable package static var recordsOffset: Int { 56 }
        @inlinable package static var recordsLength: Int { 64 }
        @inlinable package static var stringsOffset: Int { 72 }
        @inlinable package static var stringsLength: Int { 80 }
        @inlinable package static var indexOffset: Int { 88 }
        @inlinable package static var indexLength: Int { 96 }
        @inlinable package static var versionLength: Int { 104 }
        @inlinable package static var flags: Int { 108 }
        /// The folded-state section (format 4): offset and length (u64 each), both 0 when there is none.
        @inlinable package static var foldedOffset: Int { 368 }
        @inlinable package static var foldedLength: Int { 376 }
    }

    // Record header field offsets (relative to the record's start).
    @usableFromInline
    package enum Record {
        @inlinable package static var length: Int { 0 }
        @inlinable package static var identityCount: Int { 4 }
        @inlinable package static var audienceCount: Int { 8 }
        @inlinable package static var cappingCount: Int { 12 }
        @inlinable package static var attributeCount: Int { 16 }
        @inlinable package static var audiencesOffset: Int { 20 }
        @inlinable package static var cappingOffset: Int { 24 }
        @inlinable package static var directoryOffset: Int { 28 }
        @inlinable package static var nodesOffset: Int { 32 }
        @inlinable package static var consents: Int { 36 }
        @inlinable package static var headerLength: Int { 44 }
        /// Audience entry: name hash (u64), string index (u32).
        @inlinable package static var audienceEntryLength: Int { 12 }
        /// Capping entry: offer id hash (u64), string index (u32), then the decision, display and interact counts
        /// (u64 each, at ``cappingCountOffset(_:)``).
        @inlinable package static var cappingEntryLength: Int { 36 }
        /// Where an event type's count sits in a capping entry.
        @inlinable package static func cappingCountOffset(_ event: CappingEvent) -> Int {
            switch event {
            case .decision: 12
            case .display: 20
            case .interact: 28
            }
        }
        /// Attribute directory entry: path hash (u64), node offset (u32).
        @inlinable package static var directoryEntryLength: Int { 12 }
        /// Attribute node header: parent offset (u32), key string index (u32), kind (u8).
        @inlinable package static var nodeHeaderLength: Int { 9 }
    }

    /// The kind byte of an attribute node or array item.
    @usableFromInline
    package enum Kind: UInt8 {
        case null = 0
        case `false` = 1
        case `true` = 2
        case number = 3
        case string = 4
        case array = 5
        case object = 6
    }

    /// The index key of an identity: folded namespace, 0x1F, id, hashed with ``stableHash(_:)``.
    package static func identityHash(namespace: String, id: String) -> UInt64 {
        var namespace = namespace
        var id = id
        return namespace.withUTF8 { namespaceBytes in
            id.withUTF8 { idBytes in
                identityHash(namespace: UnsafeRawBufferPointer(namespaceBytes), id: UnsafeRawBufferPointer(idBytes))
            }
        }
    }

    /// ``identityHash(namespace:id:)`` of UTF-8 bytes.
    @inlinable
    package static func identityHash(namespace: UnsafeRawBufferPointer, id: UnsafeRawBufferPointer) -> UInt64 {
        var hash = SnapshotHash.basis
        for byte in namespace { hash = SnapshotHash.step(hash, foldASCII(byte)) }
        hash = SnapshotHash.step(hash, 0x1F)
        for byte in id { hash = SnapshotHash.step(hash, byte) }
        return fmix64(hash)
    }

    /// Number of index slots for `identityCount` identities (at least one, so probing always terminates).
    package static func slotCount(for identityCount: Int) -> Int {
        max(1, Int((Double(identityCount) / indexLoadFactor).rounded(.up)) + 1)
    }

    /// The slot where probing for `hash` starts: a multiply-shift range reduction (no power of two needed).
    @inlinable
    package static func homeSlot(_ hash: UInt64, slotCount: Int) -> Int {
        Int(truncatingIfNeeded: hash.multipliedFullWidth(by: UInt64(slotCount)).high)
    }
}

/// The body digest of format 2: XXH3-64 over the little-endian XXH3-64 digests of the body's
/// ``SnapshotFormat/checksumChunkLength`` chunks, so that the chunks can be verified in parallel.
package enum SnapshotChecksum {
    /// The body digest from the chunk digests, in order.
    package static func combine(_ chunkDigests: [UInt64]) -> UInt64 {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(chunkDigests.count * 8)
        for digest in chunkDigests { bytes.appendLE(digest) }
        return xxh3(bytes, seed: 0)
    }

    /// The body digest of `body`, computed in one go (tests, and a header that changed while loading).
    package static func bodyDigest(_ body: UnsafeRawBufferPointer) -> UInt64 {
        let chunkLength = SnapshotFormat.checksumChunkLength
        var digests: [UInt64] = []
        var start = 0
        while start < body.count {
            let end = min(body.count, start + chunkLength)
            digests.append(xxh3(UnsafeRawBufferPointer(rebasing: body[start..<end])))
            start = end
        }
        return combine(digests)
    }
}

/// OfferdCore's ``stableHash(_:)`` (`fmix64(fnv1a64(bytes))`), specialised for this module.
///
/// Core's version is generic over `Sequence` and not inlinable, so from another
/// module every byte went through a protocol witness: a third of the builder's
/// time. The results are identical (a test checks it), which the format relies on.
@usableFromInline
package enum SnapshotHash {
    @inlinable package static var basis: UInt64 { 0xcbf2_9ce4_8422_2325 }
    @inlinable package static var prime: UInt64 { 0x0000_0100_0000_01b3 }

    @inlinable
    package static func step(_ hash: UInt64, _ byte: UInt8) -> UInt64 {
        (hash ^ UInt64(byte)) &* prime
    }

    package static func of(_ bytes: [UInt8]) -> UInt64 {
        var hash = basis
        for byte in bytes { hash = step(hash, byte) }
        return fmix64(hash)
    }

    package static func of(_ text: String) -> UInt64 {
        var hash = basis
        for byte in text.utf8 { hash = step(hash, byte) }
        return fmix64(hash)
    }
}

/// Little-endian appends to a byte array.
extension Array where Element == UInt8 {
    @inlinable
    package mutating func appendLE(_ value: UInt32) {
        append(UInt8(truncatingIfNeeded: value))
        append(UInt8(truncatingIfNeeded: value >> 8))
        append(UInt8(truncatingIfNeeded: value >> 16))
        append(UInt8(truncatingIfNeeded: value >> 24))
    }

    @inlinable
    package mutating func appendLE(_ value: UInt64) {
        appendLE(UInt32(truncatingIfNeeded: value))
        appendLE(UInt32(truncatingIfNeeded: value >> 32))
    }

    @inlinable
    package mutating func storeLE(_ value: UInt32, at offset: Int) {
        self[offset] = UInt8(truncatingIfNeeded: value)
        self[offset + 1] = UInt8(truncatingIfNeeded: value >> 8)
        self[offset + 2] = UInt8(truncatingIfNeeded: value >> 16)
        self[offset + 3] = UInt8(truncatingIfNeeded: value >> 24)
    }

    @inlinable
    package mutating func storeLE(_ value: UInt64, at offset: Int) {
        storeLE(UInt32(truncatingIfNeeded: value), at: offset)
        storeLE(UInt32(truncatingIfNeeded: value >> 32), at: offset + 4)
    }

    /// Reads a little-endian u32 from an array the builder wrote itself.
    @inlinable
    package func loadLE32(at offset: Int) -> UInt32? {
        guard offset >= 0, offset + 4 <= count else { return nil }
        return UInt32(self[offset]) | UInt32(self[offset + 1]) << 8 | UInt32(self[offset + 2]) << 16
            | UInt32(self[offset + 3]) << 24
    }
}
