internal import COfferdProto

/// A bump allocator for the C object graphs protobuf-c reads and writes: every allocation of one decode or
/// encode comes from a few large chunks, and everything is released at once when the arena goes away.
///
/// protobuf-c's default allocator calls `malloc` once per string, sub-message and repeated-field array and
/// needs `free_unpacked` to walk the graph again; with an arena a request costs a couple of allocations and
/// no walk. `free` is a no-op, so `free_unpacked` is never needed for graphs built here (calling it with
/// ``allocator`` would be harmless).
///
/// - Important: pointers handed out live exactly as long as the arena; keep it alive (for example with
///   `withExtendedLifetime`) until the C graph is no longer used.
final class ProtoArena {
    // `@exclusivity(unchecked)`: protobuf-c calls the allocator for every field of every message, and a run-time
    // exclusivity check costs a `swift_beginAccess` call per access (this replaces the release-only
    // `-enforce-exclusivity=unchecked` the module was built with). An arena has one owner on one thread, and
    // each method reads and writes these fields in turn, never while an inout access to one of them is open;
    // the attribute drops the check in debug builds too, so keep it that way.
    /// Every chunk, oldest first; the last one is the one being filled.
    @exclusivity(unchecked) private var chunks: [UnsafeMutableRawBufferPointer] = []
    /// The free part of the last chunk: its start and length (nil and 0 before the first chunk).
    @exclusivity(unchecked) private var cursor: UnsafeMutableRawPointer?
    @exclusivity(unchecked) private var remaining = 0
    @exclusivity(unchecked) private var nextChunkSize: Int

    /// Matches `max_align_t` on the platforms we build for, as `malloc` would.
    private static let alignment = 16
    private static let maximumChunkSize = 1 << 20

    /// - Parameter initialCapacity: bytes of the first chunk; later chunks double, up to 1 MiB.
    init(initialCapacity: Int = 4096) {
        nextChunkSize = max(initialCapacity, 256)
    }

    deinit {
        for chunk in chunks {
            chunk.deallocate()
        }
    }

    /// Forgets every allocation and keeps only the newest (largest) chunk for the next use, so that a reused
    /// arena settles at zero `malloc` calls per message. Every pointer handed out before becomes invalid.
    func reset() {
        if chunks.count > 1 {
            for chunk in chunks.dropLast() { chunk.deallocate() }
            chunks.removeFirst(chunks.count - 1)
        }
        cursor = chunks.last?.baseAddress
        remaining = chunks.last?.count ?? 0
    }

    /// Uninitialized, 16-byte aligned memory for `byteCount` bytes (at least one byte is reserved).
    @inline(__always)
    func allocate(byteCount: Int) -> UnsafeMutableRawPointer {
        let size = (max(byteCount, 1) + Self.alignment - 1) & ~(Self.alignment - 1)
        // The common case, a bump inside the current chunk, is a compare and two stores.
        if size <= remaining, let pointer = cursor {
            cursor = pointer + size
            remaining -= size
            return pointer
        }
        return allocateSlowly(size: size)
    }

    /// ``allocate(byteCount:)`` when the current chunk is full: a new chunk, or a dedicated one for a large block.
    @inline(never)
    private func allocateSlowly(size: Int) -> UnsafeMutableRawPointer {
        if size >= nextChunkSize && !chunks.isEmpty {
            // A large block gets a chunk of its own, so the current chunk's free space is not wasted.
            let dedicated = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: Self.alignment)
            chunks.insert(dedicated, at: chunks.count - 1)
            return dedicated.baseAddress.unsafelyUnwrapped
        }
        let chunk = UnsafeMutableRawBufferPointer.allocate(
            byteCount: max(size, nextChunkSize), alignment: Self.alignment)
        nextChunkSize = min(nextChunkSize * 2, Self.maximumChunkSize)
        chunks.append(chunk)
        let base = chunk.baseAddress.unsafelyUnwrapped
        cursor = base + size
        remaining = chunk.count - size
        return base
    }

    /// Uninitialized memory for `count` values of `type`.
    func allocate<Element>(_ type: Element.Type, count: Int) -> UnsafeMutablePointer<Element> {
        precondition(MemoryLayout<Element>.alignment <= Self.alignment, "over-aligned type in ProtoArena")
        return allocate(byteCount: MemoryLayout<Element>.stride * count).bindMemory(to: Element.self, capacity: count)
    }

    /// A NUL-terminated copy of `text` in the arena.
    ///
    /// A string holding U+0000 is cut at it by protobuf-c, which measures strings with `strlen`; offerd's
    /// request path refuses such strings on input, and catalog strings are expected not to hold them.
    func cString(_ text: String) -> UnsafeMutablePointer<CChar> {
        // Native strings lend their UTF-8 in place; only a bridged one is copied (and made native) first, since
        // `withUTF8` on a copy costs a retain and a release even when nothing needs converting.
        if let copied = text.utf8.withContiguousStorageIfAvailable({ cString(utf8: UnsafeRawBufferPointer($0)) }) {
            return copied
        }
        var native = text
        return native.withUTF8 { cString(utf8: UnsafeRawBufferPointer($0)) }
    }

    private func cString(utf8: UnsafeRawBufferPointer) -> UnsafeMutablePointer<CChar> {
        let raw = allocate(byteCount: utf8.count + 1)
        if let source = utf8.baseAddress {
            raw.copyMemory(from: source, byteCount: utf8.count)
        }
        raw.storeBytes(of: 0, toByteOffset: utf8.count, as: UInt8.self)
        return raw.bindMemory(to: CChar.self, capacity: utf8.count + 1)
    }

    /// A protobuf-c allocator drawing from this arena; valid while the arena lives.
    var allocator: ProtobufCAllocator {
        ProtobufCAllocator(
            alloc: { allocatorData, size in
                // allocatorData is always the arena set below; protobuf-c passes it through untouched.
                // Borrowed, not retained: the arena outlives every protobuf-c call given this allocator, and a
                // retain/release pair per C allocation was a measurable share of a decode.
                return Unmanaged<ProtoArena>.fromOpaque(allocatorData.unsafelyUnwrapped)
                    ._withUnsafeGuaranteedRef { $0.allocate(byteCount: size) }
            },
            free: { _, _ in },
            allocator_data: Unmanaged.passUnretained(self).toOpaque()
        )
    }
}

@available(*, unavailable)
extension ProtoArena: Sendable {}
