internal import CNGHTTP2

#if canImport(Glibc)
    import Glibc
#endif

/// The memory functions of one nghttp2 session (`nghttp2_mem`): small blocks come back from per-size free lists
/// instead of `malloc` and `free`.
///
/// nghttp2 allocates and frees the same few sizes for every stream (the stream, its outbound frames, the copies
/// of submitted header lists); a unary call costs several `malloc`/`free` pairs. Here a freed block of up to
/// ``largestClassBytes`` goes on the free list of its size class (powers of two from 32 bytes) and the next
/// request of that class takes it back, a few instructions each way. Larger blocks go to `malloc` directly.
///
/// Memory bound: at most ``cachedBlocksPerClass`` blocks per class are kept (128 KiB per connection when every
/// list is full, which takes a burst of that many streams); everything is freed with the session.
///
/// Single-threaded like the session it serves: nghttp2 calls it only from inside the session's functions, on
/// the connection's event loop.
final class NGHTTP2Allocator {
    /// Every block starts with this many bytes that hold its size class (or ``largeBlock``), so that `free` and
    /// `realloc` know where a block goes; 16 keeps the payload 16-byte aligned like `malloc`'s.
    private static let headerBytes = 16
    private static let smallestClassShift = 5
    private static let classCount = 6
    /// The payload size of the largest class: 32 << 5.
    static let largestClassBytes = 32 << (classCount - 1)
    static let cachedBlocksPerClass = 64
    private static let largeBlock = -1

    /// The state nghttp2's callbacks reach through `mem_user_data`: for each class, the first free block (a free
    /// block's payload holds the next one), then for each class the number of free blocks. Raw memory rather
    /// than the object itself, so that an allocation costs no reference counting.
    private let lists: UnsafeMutableRawPointer

    init() {
        lists = .allocate(byteCount: 2 * Self.classCount * MemoryLayout<Int>.stride, alignment: 16)
        lists.initializeMemory(as: Int.self, repeating: 0, count: 2 * Self.classCount)
    }

    /// Call only once the session that used it is deleted: every cached block is freed.
    deinit {
        for sizeClass in 0..<Self.classCount {
            var block = Self.head(lists, sizeClass)
            while let current = block {
                block = (current + Self.headerBytes).load(as: UnsafeMutableRawPointer?.self)
                Glibc.free(current)
            }
        }
        lists.deallocate()
    }

    /// The memory functions to pass to `nghttp2_session_server_new3`; `self` must outlive the session.
    var functions: nghttp2_mem {
        nghttp2_mem(
            mem_user_data: lists,
            malloc: { size, lists in
                NGHTTP2Allocator.allocate(size, lists.unsafelyUnwrapped)
            },
            free: { pointer, lists in
                NGHTTP2Allocator.release(pointer, lists.unsafelyUnwrapped)
            },
            calloc: { count, size, lists in
                let (total, overflow) = count.multipliedReportingOverflow(by: size)
                guard !overflow, let pointer = NGHTTP2Allocator.allocate(total, lists.unsafelyUnwrapped) else {
                    return nil
                }
                pointer.initializeMemory(as: UInt8.self, repeating: 0, count: total)
                return pointer
            },
            realloc: { pointer, size, lists in
                NGHTTP2Allocator.reallocate(pointer, size, lists.unsafelyUnwrapped)
            }
        )
    }

    /// `malloc`.
    func allocate(_ size: Int) -> UnsafeMutableRawPointer? {
        Self.allocate(size, lists)
    }

    /// `free`.
    func release(_ pointer: UnsafeMutableRawPointer?) {
        Self.release(pointer, lists)
    }

    /// `realloc`.
    func reallocate(_ pointer: UnsafeMutableRawPointer?, _ size: Int) -> UnsafeMutableRawPointer? {
        Self.reallocate(pointer, size, lists)
    }

    // MARK: - On the raw state

    @inline(__always)
    private static func head(_ lists: UnsafeMutableRawPointer, _ sizeClass: Int) -> UnsafeMutableRawPointer? {
        lists.load(fromByteOffset: sizeClass * MemoryLayout<Int>.stride, as: UnsafeMutableRawPointer?.self)
    }

    @inline(__always)
    private static func setHead(
        _ lists: UnsafeMutableRawPointer,
        _ sizeClass: Int,
        _ block: UnsafeMutableRawPointer?
    ) {
        lists.storeBytes(
            of: block, toByteOffset: sizeClass * MemoryLayout<Int>.stride, as: UnsafeMutableRawPointer?.self)
    }

    @inline(__always)
    private static func countOffset(_ sizeClass: Int) -> Int {
        (Self.classCount + sizeClass) * MemoryLayout<Int>.stride
    }

    /// The class whose payload holds `size` bytes, or nil when it is larger than the largest.
    @inline(__always)
    private static func sizeClass(_ size: Int) -> Int? {
        guard size <= Self.largestClassBytes else {
            return nil
        }
        let needed = max(size, 1 << Self.smallestClassShift) - 1
        return (Int.bitWidth - needed.leadingZeroBitCount) - Self.smallestClassShift
    }

    private static func allocate(_ size: Int, _ lists: UnsafeMutableRawPointer) -> UnsafeMutableRawPointer? {
        guard let sizeClass = Self.sizeClass(size) else {
            guard let block = Glibc.malloc(Self.headerBytes + size) else {
                return nil
            }
            block.storeBytes(of: Self.largeBlock, as: Int.self)
            block.storeBytes(of: size, toByteOffset: MemoryLayout<Int>.size, as: Int.self)
            return block + Self.headerBytes
        }
        if let block = Self.head(lists, sizeClass) {
            Self.setHead(lists, sizeClass, (block + Self.headerBytes).load(as: UnsafeMutableRawPointer?.self))
            let count = lists.load(fromByteOffset: Self.countOffset(sizeClass), as: Int.self)
            lists.storeBytes(of: count - 1, toByteOffset: Self.countOffset(sizeClass), as: Int.self)
            return block + Self.headerBytes
        }
        guard let block = Glibc.malloc(Self.headerBytes + (1 << (sizeClass + Self.smallestClassShift))) else {
            return nil
        }
        block.storeBytes(of: sizeClass, as: Int.self)
        return block + Self.headerBytes
    }

    private static func release(_ pointer: UnsafeMutableRawPointer?, _ lists: UnsafeMutableRawPointer) {
        guard let pointer else {
            return
        }
        let block = pointer - Self.headerBytes
        let sizeClass = block.load(as: Int.self)
        guard sizeClass != Self.largeBlock else {
            Glibc.free(block)
            return
        }
        let count = lists.load(fromByteOffset: Self.countOffset(sizeClass), as: Int.self)
        guard count < Self.cachedBlocksPerClass else {
            Glibc.free(block)
            return
        }
        pointer.storeBytes(of: Self.head(lists, sizeClass), as: UnsafeMutableRawPointer?.self)
        Self.setHead(lists, sizeClass, block)
        lists.storeBytes(of: count + 1, toByteOffset: Self.countOffset(sizeClass), as: Int.self)
    }

    private static func reallocate(
        _ pointer: UnsafeMutableRawPointer?,
        _ size: Int,
        _ lists: UnsafeMutableRawPointer
    ) -> UnsafeMutableRawPointer? {
        guard let pointer else {
            return Self.allocate(size, lists)
        }
        let block = pointer - Self.headerBytes
        let sizeClass = block.load(as: Int.self)
        let capacity =
            sizeClass == Self.largeBlock
            ? block.load(fromByteOffset: MemoryLayout<Int>.size, as: Int.self)
            : 1 << (sizeClass + Self.smallestClassShift)
        if size <= capacity && sizeClass != Self.largeBlock {
            return pointer
        }
        guard let moved = Self.allocate(size, lists) else {
            return nil
        }
        moved.copyMemory(from: pointer, byteCount: min(capacity, size))
        Self.release(pointer, lists)
        return moved
    }
}

@available(*, unavailable)
extension NGHTTP2Allocator: Sendable {}
