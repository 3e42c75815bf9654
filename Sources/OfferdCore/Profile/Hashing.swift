/// 64-bit FNV-1a over bytes (offset basis 0xcbf29ce484222325, prime 0x100000001b3).
///
/// Used by the tie-break of SPEC section 6 step 6 and for interned keys; the
/// constants are part of the contract, so never change them.
public struct FNV1a64: Sendable {
    public private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325

    public init() {}

    public mutating func combine(_ byte: UInt8) {
        value ^= UInt64(byte)
        value &*= 0x0000_0100_0000_01b3
    }

    public mutating func combine<Bytes: Sequence>(contentsOf bytes: Bytes) where Bytes.Element == UInt8 {
        for byte in bytes { combine(byte) }
    }
}

/// MurmurHash3's 64-bit finalizer.
@inline(__always)
public func fmix64(_ input: UInt64) -> UInt64 {
    var h = input
    h ^= h >> 33
    h &*= 0xff51_afd7_ed55_8ccd
    h ^= h >> 33
    h &*= 0xc4ce_b9fe_1a85_ec53
    h ^= h >> 33
    return h
}

/// `fmix64(fnv1a64(bytes))`: the well-mixed 64-bit hash offerd uses everywhere.
@inline(__always)
public func stableHash<Bytes: Sequence>(_ bytes: Bytes) -> UInt64 where Bytes.Element == UInt8 {
    var hasher = FNV1a64()
    hasher.combine(contentsOf: bytes)
    return fmix64(hasher.value)
}
