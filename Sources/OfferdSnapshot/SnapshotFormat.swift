import OfferdCore

/// Constants of the binary snapshot format; docs/snapshot-format.md is the
/// normative description, this is its code.
enum SnapshotFormat {
    /// The first 8 bytes of every snapshot.
    static let magic: [UInt8] = Array("OFRDSNAP".utf8)
    /// Bumped on any incompatible layout change; the loader accepts only this one.
    /// Version 2 changed the body checksum to a digest of chunk digests (parallel verification).
    static let formatVersion: UInt32 = 2
    /// The body is checksummed in chunks of this many bytes (the last one shorter), see ``SnapshotChecksum``.
    static let checksumChunkLength = 1 << 20
    /// The header is a fixed-size block, so records can be streamed right after it
    /// before the (content-hash) version string is known.
    static let headerLength = 384
    /// Longest `--version` string, in UTF-8 bytes.
    static let maximumVersionLength = 256
    /// Where the version string starts inside the header.
    static let versionOffset = 112
    /// The identity index is kept at most this full, so a linear probe stays short.
    static let indexLoadFactor = 0.6
    /// A slot's record offset when the slot is empty.
    static let emptySlot = UInt64.max
    /// A node's parent offset when it is a top-level attribute.
    static let noParent = UInt32.max
    /// Bytes of one index slot: hash, record offset.
    static let slotLength = 16

    // Header field offsets.
    enum Header {
        static let magic = 0
        static let formatVersion = 8
        static let headerLength = 12
        static let checksum = 16
        static let fileLength = 24
        static let createdAt = 32
        static let profileCount = 40
        static let identityCount = 48
        static let recordsOffset = 56
        static let recordsLength = 64
        static let stringsOffset = 72
        static let stringsLength = 80
        static let indexOffset = 88
        static let indexLength = 96
        static let versionLength = 104
        static let flags = 108
    }

    // Record header field offsets (relative to the record's start).
    enum Record {
        static let length = 0
        static let identityCount = 4
        static let audienceCount = 8
        static let cappingCount = 12
        static let attributeCount = 16
        static let audiencesOffset = 20
        static let cappingOffset = 24
        static let directoryOffset = 28
        static let nodesOffset = 32
        static let consents = 36
        static let headerLength = 44
        /// Audience entry: name hash (u64), string index (u32).
        static let audienceEntryLength = 12
        /// Capping entry: offer id hash (u64), string index (u32), count (u64).
        static let cappingEntryLength = 20
        /// Attribute directory entry: path hash (u64), node offset (u32).
        static let directoryEntryLength = 12
        /// Attribute node header: parent offset (u32), key string index (u32), kind (u8).
        static let nodeHeaderLength = 9
    }

    /// The kind byte of an attribute node or array item.
    enum Kind: UInt8 {
        case null = 0
        case `false` = 1
        case `true` = 2
        case number = 3
        case string = 4
        case array = 5
        case object = 6
    }

    /// The index key of an identity: folded namespace, 0x1F, id, hashed with ``stableHash(_:)``.
    static func identityHash(namespace: String, id: String) -> UInt64 {
        var namespace = namespace
        var id = id
        return namespace.withUTF8 { namespaceBytes in
            id.withUTF8 { idBytes in
                identityHash(namespace: UnsafeRawBufferPointer(namespaceBytes), id: UnsafeRawBufferPointer(idBytes))
            }
        }
    }

    /// ``identityHash(namespace:id:)`` of UTF-8 bytes.
    @inline(__always)
    static func identityHash(namespace: UnsafeRawBufferPointer, id: UnsafeRawBufferPointer) -> UInt64 {
        var hash = SnapshotHash.basis
        for byte in namespace { hash = SnapshotHash.step(hash, foldASCII(byte)) }
        hash = SnapshotHash.step(hash, 0x1F)
        for byte in id { hash = SnapshotHash.step(hash, byte) }
        return fmix64(hash)
    }

    /// Number of index slots for `identityCount` identities (at least one, so probing always terminates).
    static func slotCount(for identityCount: Int) -> Int {
        max(1, Int((Double(identityCount) / indexLoadFactor).rounded(.up)) + 1)
    }

    /// The slot where probing for `hash` starts: a multiply-shift range reduction (no power of two needed).
    @inline(__always)
    static func homeSlot(_ hash: UInt64, slotCount: Int) -> Int {
        Int(truncatingIfNeeded: hash.multipliedFullWidth(by: UInt64(slotCount)).high)
    }
}

/// The body digest of format 2: XXH3-64 over the little-endian XXH3-64 digests of the body's
/// ``SnapshotFormat/checksumChunkLength`` chunks, so that the chunks can be verified in parallel.
enum SnapshotChecksum {
    /// The body digest from the chunk digests, in order.
    static func combine(_ chunkDigests: [UInt64]) -> UInt64 {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(chunkDigests.count * 8)
        for digest in chunkDigests { bytes.appendLE(digest) }
        return xxh3(bytes, seed: 0)
    }

    /// The body digest of `body`, computed in one go (tests, and a header that changed while loading).
    static func bodyDigest(_ body: UnsafeRawBufferPointer) -> UInt64 {
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

/// The builder's side of ``SnapshotChecksum``: chunk digests of bytes streamed in pieces of any size, read from
/// raw memory; a complete chunk inside one piece is hashed in one call, without the streaming state.
final class ChunkedDigestStream {
    private let stream = XXH3Stream()
    private var pendingInChunk = 0
    private var digests: [UInt64] = []

    func update(_ bytes: UnsafeRawBufferPointer) {
        let chunkLength = SnapshotFormat.checksumChunkLength
        var position = 0
        while position < bytes.count {
            if pendingInChunk == 0, bytes.count - position >= chunkLength {
                digests.append(xxh3(UnsafeRawBufferPointer(rebasing: bytes[position..<(position + chunkLength)])))
                position += chunkLength
                continue
            }
            let take = min(bytes.count - position, chunkLength - pendingInChunk)
            stream.update(UnsafeRawBufferPointer(rebasing: bytes[position..<(position + take)]))
            pendingInChunk += take
            position += take
            if pendingInChunk == chunkLength {
                digests.append(stream.digest())
                stream.reset()
                pendingInChunk = 0
            }
        }
    }

    func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    func update(_ bytes: ArraySlice<UInt8>) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// The body digest of everything streamed (call once, at the end).
    func digest() -> UInt64 {
        if pendingInChunk > 0 {
            digests.append(stream.digest())
            stream.reset()
            pendingInChunk = 0
        }
        return SnapshotChecksum.combine(digests)
    }
}

/// OfferdCore's ``stableHash(_:)`` (`fmix64(fnv1a64(bytes))`), specialised for this module.
///
/// Core's version is generic over `Sequence` and not inlinable, so from another
/// module every byte went through a protocol witness: a third of the builder's
/// time. The results are identical (a test checks it), which the format relies on.
enum SnapshotHash {
    static let basis: UInt64 = 0xcbf2_9ce4_8422_2325
    static let prime: UInt64 = 0x0000_0100_0000_01b3

    @inline(__always)
    static func step(_ hash: UInt64, _ byte: UInt8) -> UInt64 {
        (hash ^ UInt64(byte)) &* prime
    }

    static func of(_ bytes: [UInt8]) -> UInt64 {
        var hash = basis
        for byte in bytes { hash = step(hash, byte) }
        return fmix64(hash)
    }

    static func of(_ text: String) -> UInt64 {
        var hash = basis
        for byte in text.utf8 { hash = step(hash, byte) }
        return fmix64(hash)
    }
}

/// Little-endian appends to a byte array.
extension Array where Element == UInt8 {
    @inline(__always)
    mutating func appendLE(_ value: UInt32) {
        append(UInt8(truncatingIfNeeded: value))
        append(UInt8(truncatingIfNeeded: value >> 8))
        append(UInt8(truncatingIfNeeded: value >> 16))
        append(UInt8(truncatingIfNeeded: value >> 24))
    }

    @inline(__always)
    mutating func appendLE(_ value: UInt64) {
        appendLE(UInt32(truncatingIfNeeded: value))
        appendLE(UInt32(truncatingIfNeeded: value >> 32))
    }

    @inline(__always)
    mutating func storeLE(_ value: UInt32, at offset: Int) {
        self[offset] = UInt8(truncatingIfNeeded: value)
        self[offset + 1] = UInt8(truncatingIfNeeded: value >> 8)
        self[offset + 2] = UInt8(truncatingIfNeeded: value >> 16)
        self[offset + 3] = UInt8(truncatingIfNeeded: value >> 24)
    }

    @inline(__always)
    mutating func storeLE(_ value: UInt64, at offset: Int) {
        storeLE(UInt32(truncatingIfNeeded: value), at: offset)
        storeLE(UInt32(truncatingIfNeeded: value >> 32), at: offset + 4)
    }

    /// Reads a little-endian u32 from an array the builder wrote itself.
    @inline(__always)
    func loadLE32(at offset: Int) -> UInt32? {
        guard offset >= 0, offset + 4 <= count else { return nil }
        return UInt32(self[offset]) | UInt32(self[offset + 1]) << 8 | UInt32(self[offset + 2]) << 16
            | UInt32(self[offset + 3]) << 24
    }
}
