import Foundation
import OfferdCore
import OfferdSnapshotTestSupport
import Testing

@testable import OfferdSnapshot
@testable import OfferdSnapshotBuilder

/// The format-2 checksum (a digest of 1 MiB chunk digests) and the parallel, chunked load that computes it.
@Suite("Chunked checksum and parallel load")
struct ChunkedChecksumTests {
    /// Deterministic bytes that differ from chunk to chunk.
    private func pseudoRandomBytes(_ count: Int, seed: UInt64) -> [UInt8] {
        var random = SplitMix64(seed: seed)
        var bytes = [UInt8](repeating: 0, count: count)
        var position = 0
        while position < count {
            var word = random.next()
            for _ in 0..<8 where position < count {
                bytes[position] = UInt8(truncatingIfNeeded: word)
                word >>= 8
                position += 1
            }
        }
        return bytes
    }

    @Test(arguments: [0, 1, 1 << 20, (1 << 20) + 1, (5 << 19) + 77])
    func streamedDigestEqualsOneShotDigest(length: Int) {
        let bytes = pseudoRandomBytes(length, seed: UInt64(length))
        let stream = ChunkedDigestStream()
        // Pieces of awkward sizes, so chunk boundaries fall inside pieces.
        var random = SplitMix64(seed: 9)
        var position = 0
        while position < bytes.count {
            let take = min(bytes.count - position, 1 + random.next(below: 700_000))
            stream.update(bytes[position..<(position + take)])
            position += take
        }
        let oneShot = bytes.withUnsafeBytes { SnapshotChecksum.bodyDigest($0) }
        #expect(stream.digest() == oneShot)
        // All at once: whole chunks inside one piece take the one-call path.
        let whole = ChunkedDigestStream()
        whole.update(bytes)
        #expect(whole.digest() == oneShot)
    }

    @Test func digestDependsOnChunkOrder() {
        let bytes = pseudoRandomBytes(2 << 20, seed: 3)
        let swapped = Array(bytes[(1 << 20)...] + bytes[..<(1 << 20)])
        let original = bytes.withUnsafeBytes { SnapshotChecksum.bodyDigest($0) }
        let reordered = swapped.withUnsafeBytes { SnapshotChecksum.bodyDigest($0) }
        #expect(original != reordered)
    }

    /// A good snapshot of the examples with `padding` bytes appended to its string table (allowed: the string
    /// offsets are relative), resealed, so that it is large enough for the two-thread load.
    private func paddedSnapshot(padding: Int) throws -> (TemporaryDirectory, [UInt8]) {
        let directory = try TemporaryDirectory()
        let output = directory.file("good.snap")
        _ = try SnapshotBuilder.build(input: examplesPath(), output: output, version: "v1", progress: nil)
        var bytes = try readBytes(output)
        typealias Field = SnapshotFormat.Header
        let indexOffset = Int(try #require(bytes.loadLE32(at: Field.indexOffset)))
        let stringsLength = Int(try #require(bytes.loadLE32(at: Field.stringsLength)))
        bytes.insert(contentsOf: pseudoRandomBytes(padding, seed: 11), at: indexOffset)
        bytes.storeLE(UInt64(indexOffset + padding), at: Field.indexOffset)
        bytes.storeLE(UInt64(stringsLength + padding), at: Field.stringsLength)
        bytes.storeLE(UInt64(bytes.count), at: Field.fileLength)
        resealChecksum(&bytes)
        let path = directory.file("padded.snap")
        try writeBytes(bytes, to: path)
        return (directory, bytes)
    }

    @Test func largeSnapshotLoadsOnTwoThreadsAndAnswersLookups() throws {
        let padding = SnapshotBuffer.parallelThreshold + (3 << 20) + 12_345
        let (directory, bytes) = try paddedSnapshot(padding: padding)
        let snapshot = try ProfileSnapshot.load(path: directory.file("padded.snap"))
        #expect(snapshot.fileSize == bytes.count)
        #expect(snapshot.profileCount == 12)
        let small = try ProfileSnapshot.load(path: directory.file("good.snap"))
        for profile in small.allProfiles() {
            let found = try #require(snapshot.profile(for: profile.primaryIdentity))
            #expect(found.toInMemoryProfile().identities == profile.toInMemoryProfile().identities)
        }
    }

    /// One flipped byte in each half of a large file (each half is read by its own thread) is caught.
    @Test(arguments: [0.1, 0.75, 0.9999])
    func damageInEitherHalfOfALargeFileIsCaught(where fraction: Double) throws {
        let padding = SnapshotBuffer.parallelThreshold + (3 << 20)
        let (directory, bytes) = try paddedSnapshot(padding: padding)
        var damaged = bytes
        let position = SnapshotFormat.headerLength + Int(Double(bytes.count - SnapshotFormat.headerLength) * fraction)
        damaged[position] ^= 0x40
        let path = directory.file("damaged.snap")
        try writeBytes(damaged, to: path)
        do {
            _ = try ProfileSnapshot.load(path: path)
            Issue.record("a damaged large snapshot loaded")
        } catch {
            #expect(error.kind == .checksumMismatch || error.kind == .malformed)
        }
    }
}
