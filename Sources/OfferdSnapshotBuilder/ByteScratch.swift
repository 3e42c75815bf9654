/// A growable byte buffer for the builder's hot loops: one capacity check per value, unaligned little-endian
/// stores, no uniqueness check.
///
/// `[UInt8].append` checks capacity and uniqueness for every byte, and the builder appends about a billion
/// bytes per million profiles in 1-, 4- and 8-byte pieces (perf showed the appends near the top). A class, so
/// the encoders that own one keep it across lines without copy-on-write; it is never shared between threads.
final class ByteScratch {
    private(set) var base: UnsafeMutablePointer<UInt8>
    private(set) var count = 0
    private var capacity: Int

    init(capacity: Int = 4096) {
        self.capacity = max(64, capacity)
        base = .allocate(capacity: self.capacity)
    }

    deinit {
        base.deallocate()
    }

    /// The bytes written so far; valid until the next append.
    var bytes: UnsafeBufferPointer<UInt8> { UnsafeBufferPointer(start: base, count: count) }

    var isEmpty: Bool { count == 0 }

    @inline(__always)
    func removeAll() {
        count = 0
    }

    /// Marks the first `newCount` bytes as written (after filling reserved space directly).
    @inline(__always)
    func setCount(_ newCount: Int) {
        precondition(newCount >= 0 && newCount <= capacity, "count past the capacity")
        count = newCount
    }

    /// Forgets everything from `newCount` on.
    @inline(__always)
    func truncate(to newCount: Int) {
        precondition(newCount >= 0 && newCount <= count, "truncate past the end")
        count = newCount
    }

    /// Makes room for `extra` more bytes.
    @inline(__always)
    func reserve(_ extra: Int) {
        if extra > capacity - count { grow(toAtLeast: count + extra) }
    }

    private func grow(toAtLeast needed: Int) {
        var newCapacity = capacity * 2
        while newCapacity < needed { newCapacity *= 2 }
        let newBase = UnsafeMutablePointer<UInt8>.allocate(capacity: newCapacity)
        newBase.update(from: base, count: count)
        base.deallocate()
        base = newBase
        capacity = newCapacity
    }

    @inline(__always)
    func append(_ byte: UInt8) {
        reserve(1)
        base[count] = byte
        count += 1
    }

    @inline(__always)
    func appendLE(_ value: UInt32) {
        reserve(4)
        UnsafeMutableRawPointer(base + count).storeBytes(of: value.littleEndian, as: UInt32.self)
        count += 4
    }

    @inline(__always)
    func appendLE(_ value: UInt64) {
        reserve(8)
        UnsafeMutableRawPointer(base + count).storeBytes(of: value.littleEndian, as: UInt64.self)
        count += 8
    }

    /// Appends a u64 and a u32 (an attribute directory entry) with one capacity check.
    @inline(__always)
    func appendLE(_ first: UInt64, _ second: UInt32) {
        reserve(12)
        let raw = UnsafeMutableRawPointer(base + count)
        raw.storeBytes(of: first.littleEndian, as: UInt64.self)
        raw.storeBytes(of: second.littleEndian, toByteOffset: 8, as: UInt32.self)
        count += 12
    }

    /// Appends two u32 (an attribute node's parent and key) with one capacity check.
    @inline(__always)
    func appendLE(_ first: UInt32, _ second: UInt32) {
        reserve(8)
        let raw = UnsafeMutableRawPointer(base + count)
        raw.storeBytes(of: first.littleEndian, as: UInt32.self)
        raw.storeBytes(of: second.littleEndian, toByteOffset: 4, as: UInt32.self)
        count += 8
    }

    /// Appends two u32 and a byte (an attribute node's parent, key and kind) with one capacity check.
    @inline(__always)
    func appendLE(_ first: UInt32, _ second: UInt32, _ third: UInt8) {
        reserve(9)
        let raw = UnsafeMutableRawPointer(base + count)
        raw.storeBytes(of: first.littleEndian, as: UInt32.self)
        raw.storeBytes(of: second.littleEndian, toByteOffset: 4, as: UInt32.self)
        raw.storeBytes(of: third, toByteOffset: 8, as: UInt8.self)
        count += 9
    }

    /// Appends a byte and a u32 length, then `bytes` (a string value's kind, length and text) with one capacity
    /// check.
    @inline(__always)
    func append(_ kind: UInt8, lengthPrefixed bytes: UnsafeBufferPointer<UInt8>) {
        reserve(5 + bytes.count)
        let raw = UnsafeMutableRawPointer(base + count)
        raw.storeBytes(of: kind, as: UInt8.self)
        raw.storeBytes(of: UInt32(truncatingIfNeeded: bytes.count).littleEndian, toByteOffset: 1, as: UInt32.self)
        if let source = bytes.baseAddress, bytes.count > 0 {
            (base + count + 5).update(from: source, count: bytes.count)
        }
        count += 5 + bytes.count
    }

    /// Appends a byte and a u64 (a number value's kind and bits) with one capacity check.
    @inline(__always)
    func append(_ kind: UInt8, _ value: UInt64) {
        reserve(9)
        let raw = UnsafeMutableRawPointer(base + count)
        raw.storeBytes(of: kind, as: UInt8.self)
        raw.storeBytes(of: value.littleEndian, toByteOffset: 1, as: UInt64.self)
        count += 9
    }

    @inline(__always)
    func append(_ bytes: UnsafeBufferPointer<UInt8>) {
        guard let source = bytes.baseAddress, bytes.count > 0 else { return }
        reserve(bytes.count)
        (base + count).update(from: source, count: bytes.count)
        count += bytes.count
    }

    /// Appends `length` zero bytes and returns where they start.
    @inline(__always)
    func appendZeros(_ length: Int) -> Int {
        reserve(length)
        let start = count
        (base + start).initialize(repeating: 0, count: length)
        count += length
        return start
    }

    @inline(__always)
    func storeLE(_ value: UInt32, at offset: Int) {
        precondition(offset >= 0 && offset + 4 <= count, "store past the end")
        UnsafeMutableRawPointer(base + offset).storeBytes(of: value.littleEndian, as: UInt32.self)
    }

    @inline(__always)
    func loadLE32(at offset: Int) -> UInt32 {
        precondition(offset >= 0 && offset + 4 <= count, "load past the end")
        return UInt32(littleEndian: UnsafeRawPointer(base + offset).loadUnaligned(as: UInt32.self))
    }

    @inline(__always)
    func loadLE64(at offset: Int) -> UInt64 {
        precondition(offset >= 0 && offset + 8 <= count, "load past the end")
        return UInt64(littleEndian: UnsafeRawPointer(base + offset).loadUnaligned(as: UInt64.self))
    }
}
