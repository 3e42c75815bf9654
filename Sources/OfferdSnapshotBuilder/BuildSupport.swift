import Atomics
import Dispatch
import Foundation
import OfferdSnapshot

// Raw-memory helpers of the builder: reading the source into a ByteScratch, finding newlines, and the
// identity hash table of the duplicate check.
#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// The position of the first `\n` in `base[from..<to]`, or nil (`memchr`: the generic `firstIndex(of:)` was
/// most of the line splitting's time).
@inline(__always)
func findNewline(in base: UnsafeMutablePointer<UInt8>, from: Int, to: Int) -> Int? {
    guard to > from, let found = memchr(base + from, 0x0A, to - from) else { return nil }
    return UnsafeMutableRawPointer(base).distance(to: found)
}

/// The position of the first `\n` in `bytes[from...]`, or nil.
@inline(__always)
func findNewline(in bytes: UnsafeBufferPointer<UInt8>, from: Int) -> Int? {
    guard let base = bytes.baseAddress, bytes.count > from, let found = memchr(base + from, 0x0A, bytes.count - from)
    else { return nil }
    return UnsafeRawPointer(base).distance(to: found)
}

/// The position of the last `\n` in `bytes[from..<to]`, or nil (a line is short: the scan is too).
func findLastNewline(in bytes: UnsafeBufferPointer<UInt8>, from: Int, to: Int) -> Int? {
    var position = min(to, bytes.count)
    while position > from {
        position -= 1
        if bytes[position] == 0x0A { return position }
    }
    return nil
}

/// Whether `count` bytes at `first` and `second` are equal (`memcmp`).
@inline(__always)
func bytesEqual(_ first: UnsafePointer<UInt8>, _ second: UnsafePointer<UInt8>, count: Int) -> Bool {
    memcmp(first, second, count) == 0
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
    /// One slot: a hash and the first identity with it (-1: empty). Together, so a probe is one cache miss.
    private struct Slot {
        var hash: UInt64
        var first: Int32
    }

    private var slots: [Slot]
    private var mask: Int
    private var count = 0

    init(capacity: Int = 1 << 16) {
        var slotCount = 16
        while slotCount < capacity * 2 { slotCount *= 2 }
        slots = Array(repeating: Slot(hash: 0, first: -1), count: slotCount)
        mask = slotCount - 1
    }

    /// The first identity with `hash`, or nil.
    @inline(__always)
    func first(withHash hash: UInt64) -> Int32? {
        var slot = Int(truncatingIfNeeded: hash) & mask
        return slots.withUnsafeBufferPointer { slots in
            while true {
                let entry = slots[slot]
                if entry.first < 0 { return nil }
                if entry.hash == hash { return entry.first }
                slot = (slot + 1) & mask
            }
        }
    }

    /// Reads the home slots of `hashes` (a batch's identities) in one tight loop, before they are looked up one
    /// by one: the table is far larger than the caches, and independent reads overlap their misses where the
    /// lookups, each behind a record's worth of work, would wait for one miss after another.
    func warm(_ hashes: some Sequence<UInt64>) -> UInt64 {
        slots.withUnsafeBufferPointer { slots in
            var sum: UInt64 = 0
            for hash in hashes { sum &+= slots[Int(truncatingIfNeeded: hash) & mask].hash }
            return sum
        }
    }

    /// Enters `hash` (not present yet) for the identity at `first`.
    mutating func insert(hash: UInt64, first: Int32) {
        if (count + 1) * 2 > slots.count { grow() }
        place(Slot(hash: hash, first: first))
        count += 1
    }

    private mutating func place(_ entry: Slot) {
        let mask = mask
        slots.withUnsafeMutableBufferPointer { slots in
            var slot = Int(truncatingIfNeeded: entry.hash) & mask
            while slots[slot].first >= 0 { slot = (slot + 1) & mask }
            slots[slot] = entry
        }
    }

    private mutating func grow() {
        let old = slots
        slots = Array(repeating: Slot(hash: 0, first: -1), count: old.count * 2)
        mask = slots.count - 1
        for entry in old where entry.first >= 0 { place(entry) }
    }
}

/// The number of processors this process may run on, at least 1: on Linux its affinity mask (so `taskset`
/// counts; Foundation's `activeProcessorCount` does not look at it), elsewhere the active processors.
func usableProcessorCount() -> Int {
    let active = max(1, ProcessInfo.processInfo.activeProcessorCount)
    #if os(Linux)
        // "Cpus_allowed:\t3" or "Cpus_allowed:\tff,ffffffff": the mask in hex, 32-bit groups separated by commas.
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed:") })
        else { return active }
        var allowed = 0
        for character in line.dropFirst("Cpus_allowed:".count) {
            guard let digit = character.hexDigitValue else { continue }
            allowed += digit.nonzeroBitCount
        }
        return allowed > 0 ? min(allowed, active) : active
    #else
        return active
    #endif
}

/// Pushes the snapshot being written to the disk in the background (`fdatasync` on its own thread, every
/// ``interval`` bytes), so the build's final `fsync` has only the tail to wait for: it took 1.4 s of a 4.7 s
/// build of 1M profiles when the whole file waited for it.
///
/// A failed background sync is kept and reported by ``stop()``: Linux reports a write-back error once per open
/// file description, so the final `fsync` on the same descriptor might not see it again.
final class BackgroundSync: @unchecked Sendable {
    // `@unchecked Sendable`: the descriptor is immutable, the rest is atomics and semaphores.
    static let interval = 64 << 20

    private let descriptor: Int32
    private let wake = DispatchSemaphore(value: 0)
    private let stopped = DispatchSemaphore(value: 0)
    private let requested = ManagedAtomic(false)
    private let stopping = ManagedAtomic(false)
    private let failure = ManagedAtomic<Int32>(0)
    /// Bytes written since the last request (the writer's thread only).
    private var unsynced = 0
    private var isStopped = false

    /// Starts the thread; `file` must stay open until ``stop()`` returns.
    init(file: PosixFile) {
        descriptor = file.descriptor
        let thread = Thread { [self] in
            while true {
                wake.wait()
                if stopping.load(ordering: .acquiring) { break }
                requested.store(false, ordering: .releasing)
                if fdatasync(descriptor) != 0 {
                    _ = failure.compareExchange(expected: 0, desired: errno, ordering: .relaxed)
                }
            }
            stopped.signal()
        }
        thread.name = "snapshot-sync"
        thread.start()
    }

    /// Notes `count` more bytes written; starts a background sync every ``interval`` bytes.
    func wrote(_ count: Int) {
        unsynced += count
        guard unsynced >= Self.interval else { return }
        unsynced = 0
        if !requested.exchange(true, ordering: .acquiringAndReleasing) { wake.signal() }
    }

    /// Starts a background sync of everything written so far, whatever the interval says: the records are complete,
    /// and the disk can take them while the string table and the index are built.
    func syncNow() {
        unsynced = 0
        if !requested.exchange(true, ordering: .acquiringAndReleasing) { wake.signal() }
    }

    /// Stops the thread (waiting for a sync in progress); throws the first background sync's error, if any.
    func stop() throws(SystemCallError) {
        guard !isStopped else { return }
        isStopped = true
        stopping.store(true, ordering: .releasing)
        wake.signal()
        stopped.wait()
        let errorNumber = failure.load(ordering: .relaxed)
        if errorNumber != 0 { throw SystemCallError(call: "fdatasync", errorNumber: errorNumber) }
    }
}
