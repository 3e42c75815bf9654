/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of the file log's records.
///
/// Slice-by-8: eight 256-entry tables let one step fold eight input bytes with eight lookups instead of eight
/// dependent table steps. Safe Swift over array slices (bounds-checked); the file log checksums each batch
/// once when it writes it and once when it opens the file, which this is fast enough for (hundreds of MB/s).
public struct CRC32C: Sendable {
    /// The running state (pre- and post-inverted as the standard defines).
    private var state: UInt32 = 0xFFFF_FFFF

    public init() {}

    /// The checksum of `bytes`.
    public static func checksum(_ bytes: ArraySlice<UInt8>) -> UInt32 {
        var crc = CRC32C()
        crc.update(bytes)
        return crc.value
    }

    /// The checksum of `bytes`.
    public static func checksum(_ bytes: [UInt8]) -> UInt32 { checksum(bytes[...]) }

    /// The checksum of everything passed to ``update(_:)`` so far.
    public var value: UInt32 { ~state }

    /// Adds bytes to the checksum.
    public mutating func update(_ bytes: ArraySlice<UInt8>) {
        let table = Self.table
        var crc = state
        var index = bytes.startIndex
        let end = bytes.endIndex
        while end - index >= 8 {
            let low =
                crc
                ^ (UInt32(bytes[index]) | UInt32(bytes[index + 1]) << 8 | UInt32(bytes[index + 2]) << 16
                    | UInt32(bytes[index + 3]) << 24)
            let t7 = table[7 * 256 + Int(low & 0xFF)] ^ table[6 * 256 + Int((low >> 8) & 0xFF)]
            let t5 = table[5 * 256 + Int((low >> 16) & 0xFF)] ^ table[4 * 256 + Int(low >> 24)]
            let t3 = table[3 * 256 + Int(bytes[index + 4])] ^ table[2 * 256 + Int(bytes[index + 5])]
            let t1 = table[1 * 256 + Int(bytes[index + 6])] ^ table[Int(bytes[index + 7])]
            crc = t7 ^ t5 ^ t3 ^ t1
            index += 8
        }
        while index < end {
            crc = table[Int((crc ^ UInt32(bytes[index])) & 0xFF)] ^ (crc >> 8)
            index += 1
        }
        state = crc
    }

    /// Adds bytes to the checksum.
    public mutating func update(_ bytes: [UInt8]) { update(bytes[...]) }

    /// `table[k * 256 + b]` is the CRC of byte `b` followed by `k` zero bytes.
    private static let table: [UInt32] = {
        var table = [UInt32](repeating: 0, count: 8 * 256)
        for byte in 0..<256 {
            var crc = UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
            table[byte] = crc
        }
        for slice in 1..<8 {
            for byte in 0..<256 {
                let previous = table[(slice - 1) * 256 + byte]
                table[slice * 256 + byte] = table[Int(previous & 0xFF)] ^ (previous >> 8)
            }
        }
        return table
    }()
}
