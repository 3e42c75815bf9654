import Testing

@testable import OfferdTransport

/// nghttp2's free-list allocator: blocks keep their bytes, come back from their class, and large ones bypass it.
/// Every transport test also runs it under a real session.
@Suite("nghttp2 allocator")
struct NGHTTP2AllocatorTests {
    private static func fill(_ pointer: UnsafeMutableRawPointer, _ count: Int, seed: UInt8) {
        for index in 0..<count {
            pointer.storeBytes(of: seed &+ UInt8(truncatingIfNeeded: index), toByteOffset: index, as: UInt8.self)
        }
    }

    private static func holds(_ pointer: UnsafeMutableRawPointer, _ count: Int, seed: UInt8) -> Bool {
        (0..<count).allSatisfy {
            pointer.load(fromByteOffset: $0, as: UInt8.self) == seed &+ UInt8(truncatingIfNeeded: $0)
        }
    }

    @Test("a freed small block is reused by the next request of its class, a large one is not cached")
    func reuse() throws {
        let allocator = NGHTTP2Allocator()
        let small = try #require(allocator.allocate(100))
        allocator.release(small)
        #expect(allocator.allocate(120) == small) // same class (65...128 bytes)
        let other = try #require(allocator.allocate(60))
        #expect(other != small)
        let large = try #require(allocator.allocate(NGHTTP2Allocator.largestClassBytes + 1))
        Self.fill(large, NGHTTP2Allocator.largestClassBytes + 1, seed: 7)
        #expect(Self.holds(large, NGHTTP2Allocator.largestClassBytes + 1, seed: 7))
        allocator.release(large)
        allocator.release(other)
        allocator.release(nil)
    }

    @Test("every size keeps its bytes, and realloc moves them across classes and to and from large blocks")
    func reallocKeepsBytes() throws {
        let allocator = NGHTTP2Allocator()
        for size in [0, 1, 31, 32, 33, 64, 1000, NGHTTP2Allocator.largestClassBytes, 5000] {
            var pointer = try #require(allocator.allocate(size))
            Self.fill(pointer, size, seed: UInt8(truncatingIfNeeded: size))
            for grown in [size + 1, size * 2 + 40, 20_000] {
                pointer = try #require(allocator.reallocate(pointer, grown))
                #expect(Self.holds(pointer, size, seed: UInt8(truncatingIfNeeded: size)), "size \(size) -> \(grown)")
            }
            pointer = try #require(allocator.reallocate(pointer, max(size, 1)))
            #expect(Self.holds(pointer, size, seed: UInt8(truncatingIfNeeded: size)))
            allocator.release(pointer)
        }
        let fresh = try #require(allocator.reallocate(nil, 48))
        allocator.release(fresh)
    }

    @Test("at most cachedBlocksPerClass blocks are kept per class")
    func bounded() throws {
        let allocator = NGHTTP2Allocator()
        let count = NGHTTP2Allocator.cachedBlocksPerClass + 10
        let blocks = try (0..<count).map { _ in try #require(allocator.allocate(200)) }
        for block in blocks {
            allocator.release(block)
        }
        // The cached ones come back (latest freed first); past the bound, fresh blocks.
        let again = try (0..<count).map { _ in try #require(allocator.allocate(200)) }
        let reused = Set(again).intersection(Set(blocks.prefix(NGHTTP2Allocator.cachedBlocksPerClass)))
        #expect(reused.count == NGHTTP2Allocator.cachedBlocksPerClass)
        for block in again {
            allocator.release(block)
        }
    }
}
