// The snapshot's bytes, read once into one buffer, and their bounds-checked
// readers. This file and UnsafeIO.swift hold all the pointer code of the
// module: every read goes through a method here that checks the offset against
// the buffer's size first, so a hostile snapshot can yield wrong values but
// never a read outside the buffer.
#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// A whole snapshot file read into one immutable buffer, freed when the last reference goes.
///
/// Why not `mmap`: the server must survive a snapshot rewritten in place
/// (SPEC 5.3). A mapping of a file that another process truncates faults with
/// SIGBUS on the next read of a vanished page, and one it rewrites changes
/// under a verified snapshot. A private copy costs the same resident memory
/// (the file size) and loads at `read` speed, and what was verified stays what
/// is served.
final class SnapshotBuffer: @unchecked Sendable {
    let bytes: UnsafeRawBufferPointer
    private let allocatedCount: Int

    /// Reads up to `count` bytes of `file` from its start; fewer when the file shrank meanwhile.
    init(file: PosixFile, count: Int) throws(SystemCallError) {
        precondition(count > 0, "a snapshot buffer is never empty")
        // Anonymous memory populated in one go: faulting the pages in one by one
        // during the read cost more than the read itself.
        #if os(Linux)
            let flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE
        #else
            let flags = MAP_PRIVATE | MAP_ANON
        #endif
        guard let address = mmap(nil, count, PROT_READ | PROT_WRITE, flags, -1, 0), address != MAP_FAILED else {
            throw SystemCallError.last("mmap")
        }
        var done = 0
        while done < count {
            let got = pread(file.descriptor, address + done, count - done, off_t(done))
            if got < 0 {
                if errno == EINTR { continue }
                let error = SystemCallError.last("read")
                munmap(address, count)
                throw error
            }
            if got == 0 { break }
            done += got
        }
        allocatedCount = count
        bytes = UnsafeRawBufferPointer(start: address, count: done)
    }

    deinit {
        munmap(UnsafeMutableRawPointer(mutating: bytes.baseAddress), allocatedCount)
    }

    var count: Int { bytes.count }

    @inline(__always)
    func contains(_ offset: Int, _ length: Int) -> Bool {
        offset >= 0 && length >= 0 && offset <= bytes.count &- length
    }

    @inline(__always)
    func u8(_ offset: Int) -> UInt8? {
        guard contains(offset, 1) else { return nil }
        return bytes[offset]
    }

    @inline(__always)
    func u32(_ offset: Int) -> UInt32? {
        guard contains(offset, 4) else { return nil }
        return UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    @inline(__always)
    func u64(_ offset: Int) -> UInt64? {
        guard contains(offset, 8) else { return nil }
        return UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    /// A u32 field as an Int (never negative).
    @inline(__always)
    func int32(_ offset: Int) -> Int? {
        u32(offset).map { Int($0) }
    }

    /// A u64 field as an Int, nil when it does not fit (so offsets never overflow later arithmetic).
    @inline(__always)
    func int64(_ offset: Int) -> Int? {
        guard let value = u64(offset), value <= UInt64(Int.max / 2) else { return nil }
        return Int(value)
    }

    /// A copy of `length` bytes at `offset`.
    func copyBytes(_ offset: Int, _ length: Int) -> [UInt8]? {
        guard contains(offset, length) else { return nil }
        return Array(bytes[offset..<(offset + length)])
    }

    /// The UTF-8 text at `offset` (invalid sequences are repaired, never trusted).
    func string(_ offset: Int, _ length: Int) -> String? {
        guard contains(offset, length) else { return nil }
        return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + length)]), as: UTF8.self)
    }

    /// Whether the bytes at `offset` are exactly `text`'s UTF-8.
    @inline(__always)
    func equals(_ offset: Int, _ length: Int, _ text: String) -> Bool {
        guard contains(offset, length) else { return false }
        let utf8 = text.utf8
        if let result = utf8.withContiguousStorageIfAvailable({ stored -> Bool in
            guard stored.count == length else { return false }
            return memcmp(bytes.baseAddress! + offset, stored.baseAddress!, length) == 0
        }) {
            return result
        }
        // Bridged or non-contiguous strings: compare byte by byte.
        guard utf8.count == length else { return false }
        var position = offset
        for byte in utf8 {
            if bytes[position] != byte { return false }
            position += 1
        }
        return true
    }

    /// Whether the bytes at `offset` equal `text` with ASCII letters folded on both sides.
    @inline(__always)
    func equalsFoldingASCII(_ offset: Int, _ length: Int, _ text: String) -> Bool {
        guard contains(offset, length), text.utf8.count == length else { return false }
        var position = offset
        for byte in text.utf8 {
            if foldASCII(bytes[position]) != foldASCII(byte) { return false }
            position += 1
        }
        return true
    }

    /// XXH3-64 of `length` bytes at `offset` (caller checked the range).
    func checksum(_ offset: Int, _ length: Int) -> UInt64 {
        precondition(contains(offset, length))
        return xxh3(UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + length)]))
    }
}

/// ASCII letter lower-casing of one byte (the namespace fold of SPEC 6).
@inline(__always)
func foldASCII(_ byte: UInt8) -> UInt8 {
    byte &- 0x41 < 26 ? byte | 0x20 : byte
}
