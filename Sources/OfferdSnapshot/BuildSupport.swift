// Raw-memory helpers of the builder: reading the source into a ByteScratch, finding newlines, and the
// identity hash table of the duplicate check.
#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif
import Foundation

/// The position of the first `\n` in `base[from..<to]`, or nil (`memchr`: the generic `firstIndex(of:)` was
/// most of the line splitting's time).
@inline(__always)
func findNewline(in base: UnsafeMutablePointer<UInt8>, from: Int, to: Int) -> Int? {
    guard to > from, let found = memchr(base + from, 0x0A, to - from) else { return nil }
    return UnsafeMutableRawPointer(base).distance(to: found)
}

/// The position of the last `\n` in `base[from..<to]`, or nil (a line is short: the scan is too).
func findLastNewline(in base: UnsafeMutablePointer<UInt8>, from: Int, to: Int) -> Int? {
    var position = to
    while position > from {
        position -= 1
        if base[position] == 0x0A { return position }
    }
    return nil
}

extension ByteScratch {
    /// Drops the first `length` bytes, moving the rest to the front.
    func removeFront(_ length: Int) {
        precondition(length >= 0 && length <= count, "remove past the end")
        guard length > 0 else { return }
        let rest = count - length
        if rest > 0 { base.update(from: base + length, count: rest) }
        truncate(to: rest)
    }

    /// Reads up to `length` bytes of `file` at its current position onto the end; returns how many (0 at the end
    /// of the file).
    func appendRead(from file: PosixFile, upTo length: Int) throws(SystemCallError) -> Int {
        reserve(length)
        while true {
            let got = read(file.descriptor, base + count, length)
            if got < 0 {
                if errno == EINTR { continue }
                throw SystemCallError.last("read")
            }
            setCount(count + got)
            return got
        }
    }
}

/// An open-addressing map from identity hash to the first identity (its position in the builder's identity
/// list) with that hash: the builder's duplicate check.
///
/// Replaces a `[UInt64: Int32]`, whose SipHash, lookups and resizes were about 8 % of the build. The keys are
/// already `fmix64` outputs, so their low bits pick the slot directly.
struct IdentityHashTable {
    private var hashes: [UInt64]
    private var firsts: [Int32]
    private var mask: Int
    private var count = 0

    init(capacity: Int = 1 << 16) {
        var slots = 16
        while slots < capacity * 2 { slots *= 2 }
        hashes = Array(repeating: 0, count: slots)
        firsts = Array(repeating: -1, count: slots)
        mask = slots - 1
    }

    /// The first identity with `hash`, or nil.
    @inline(__always)
    func first(withHash hash: UInt64) -> Int32? {
        var slot = Int(truncatingIfNeeded: hash) & mask
        return firsts.withUnsafeBufferPointer { firsts in
            hashes.withUnsafeBufferPointer { hashes in
                while true {
                    let first = firsts[slot]
                    if first < 0 { return nil }
                    if hashes[slot] == hash { return first }
                    slot = (slot + 1) & mask
                }
            }
        }
    }

    /// Enters `hash` (not present yet) for the identity at `first`.
    mutating func insert(hash: UInt64, first: Int32) {
        if (count + 1) * 2 > firsts.count { grow() }
        place(hash: hash, first: first)
        count += 1
    }

    private mutating func place(hash: UInt64, first: Int32) {
        var slot = Int(truncatingIfNeeded: hash) & mask
        while firsts[slot] >= 0 { slot = (slot + 1) & mask }
        hashes[slot] = hash
        firsts[slot] = first
    }

    private mutating func grow() {
        let oldHashes = hashes
        let oldFirsts = firsts
        hashes = Array(repeating: 0, count: oldFirsts.count * 2)
        firsts = Array(repeating: -1, count: oldFirsts.count * 2)
        mask = firsts.count - 1
        for slot in oldFirsts.indices where oldFirsts[slot] >= 0 {
            place(hash: oldHashes[slot], first: oldFirsts[slot])
        }
    }
}

/// The number of processors this process may run on, at least 1 (Foundation reads the affinity mask on Linux,
/// so `taskset` counts).
func usableProcessorCount() -> Int {
    max(1, ProcessInfo.processInfo.activeProcessorCount)
}
