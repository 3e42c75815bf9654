import Foundation
import OfferdCore
import OfferdSnapshotBuilder
import OfferdSnapshotTestSupport
import Testing

@testable import OfferdSnapshot

@Suite("Snapshot loader rejects bad files cleanly")
struct LoaderRobustnessTests {
    /// A directory holding a good snapshot of the examples and its bytes.
    private func goodSnapshot() throws -> (TemporaryDirectory, [UInt8]) {
        let directory = try TemporaryDirectory()
        let output = directory.file("good.snap")
        _ = try SnapshotBuilder.build(input: examplesPath(), output: output, version: "v1", progress: nil)
        return (directory, try readBytes(output))
    }

    private func loadError(_ bytes: [UInt8], in directory: TemporaryDirectory) throws -> SnapshotLoadError? {
        let path = directory.file("candidate.snap")
        try writeBytes(bytes, to: path)
        do {
            _ = try ProfileSnapshot.load(path: path)
            return nil
        } catch {
            return error
        }
    }

    @Test func truncationAtEveryOffsetIsRejected() throws {
        let (directory, bytes) = try goodSnapshot()
        for length in 0..<bytes.count {
            let error = try loadError(Array(bytes[0..<length]), in: directory)
            #expect(error != nil, "truncated to \(length) bytes was accepted")
            if length == 0 { #expect(error?.kind == .notASnapshot) }
            if length >= 16 { #expect(error?.kind == .truncated, "\(length): \(String(describing: error))") }
        }
    }

    @Test func everySingleBitFlipIsCaught() throws {
        let (directory, bytes) = try goodSnapshot()
        var random = SplitMix64(seed: 99)
        var positions = Array(0..<min(bytes.count, 600))
        for _ in 0..<400 { positions.append(random.next(below: bytes.count)) }
        for position in positions {
            var damaged = bytes
            damaged[position] ^= UInt8(1) << UInt8(random.next(below: 8))
            let error = try loadError(damaged, in: directory)
            #expect(error != nil, "bit flip at \(position) was accepted")
        }
    }

    @Test func bodyDamageIsAChecksumMismatch() throws {
        let (directory, bytes) = try goodSnapshot()
        var damaged = bytes
        damaged[SnapshotFormat.headerLength + 50] ^= 0xFF
        let error = try #require(try loadError(damaged, in: directory))
        #expect(error.kind == .checksumMismatch)
        #expect(error.description.contains("checksum"))
        #expect(error.description.contains("candidate.snap"))
    }

    @Test func foreignFileIsRejected() throws {
        let (directory, bytes) = try goodSnapshot()
        var foreign = bytes
        foreign.replaceSubrange(0..<8, with: Array("SQLite f".utf8))
        #expect(try loadError(foreign, in: directory)?.kind == .notASnapshot)
        #expect(try loadError(Array(#"{"identities":[]}"#.utf8), in: directory)?.kind == .notASnapshot)
        #expect(try loadError([0x4F], in: directory)?.kind == .notASnapshot)
    }

    @Test func wrongFormatVersionIsRejected() throws {
        let (directory, bytes) = try goodSnapshot()
        var future = bytes
        future.storeLE(SnapshotFormat.formatVersion + 1, at: SnapshotFormat.Header.formatVersion)
        resealChecksum(&future)
        let error = try #require(try loadError(future, in: directory))
        #expect(error.kind == .unsupportedVersion)
        #expect(error.message.contains("version \(SnapshotFormat.formatVersion + 1)"))
    }

    /// Format 1 (one XXH3 over the whole body) is refused with a message naming both versions.
    @Test func formatVersionOneIsRefusedClearly() throws {
        let (directory, bytes) = try goodSnapshot()
        var old = bytes
        old.storeLE(UInt32(1), at: SnapshotFormat.Header.formatVersion)
        var header = Array(old[0..<SnapshotFormat.headerLength])
        header.storeLE(UInt64(0), at: SnapshotFormat.Header.checksum)
        let bodyDigest = Array(old[SnapshotFormat.headerLength...]).withUnsafeBytes { xxh3($0) }
        old.storeLE(xxh3(header, seed: bodyDigest), at: SnapshotFormat.Header.checksum)
        let error = try #require(try loadError(old, in: directory))
        #expect(error.kind == .unsupportedVersion)
        #expect(error.message.contains("version 1"))
        #expect(error.message.contains("reads \(SnapshotFormat.formatVersion)"))
    }

    @Test func emptyFileDirectoryAndMissingFileAreRejected() throws {
        let (directory, _) = try goodSnapshot()
        let error = try #require(try loadError([], in: directory))
        #expect(error.kind == .notASnapshot)
        #expect(error.message.contains("empty"))
        #expect(throws: SnapshotLoadError.self) { try ProfileSnapshot.load(path: directory.path) }
        do {
            _ = try ProfileSnapshot.load(path: directory.path)
        } catch {
            #expect(error.kind == .unreadable)
            #expect(error.message.contains("directory"))
        }
        do {
            _ = try ProfileSnapshot.load(path: directory.file("missing.snap"))
            Issue.record("a missing file loaded")
        } catch {
            #expect(error.kind == .unreadable)
            #expect(error.description.contains("missing.snap: no such file"))
        }
    }

    /// A snapshot rewritten in place under a loaded one (SPEC 5.3): with a memory map, reading
    /// a page the truncation removed would be a SIGBUS; the loaded snapshot must not notice.
    @Test func loadedSnapshotSurvivesItsFileBeingTruncatedAndRewritten() throws {
        let (directory, bytes) = try goodSnapshot()
        let path = directory.file("good.snap")
        let snapshot = try ProfileSnapshot.load(path: path)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.truncate(atOffset: 0)
        handle.write(Data(repeating: 0xAB, count: 100))
        try handle.close()
        let profiles = snapshot.allProfiles()
        #expect(profiles.count == 12)
        #expect(profiles.last?.attribute(at: AttributePath(["loyalty", "tier"])) == .string("bronze"))
        #expect(snapshot.fileSize == bytes.count)
    }

    @Test func trailingBytesAreRejected() throws {
        let (directory, bytes) = try goodSnapshot()
        #expect(try loadError(bytes + [0], in: directory)?.kind == .malformed)
    }

    /// A hostile writer can produce any bytes with a valid checksum: loading may
    /// fail or succeed, but reading every profile must never crash.
    @Test func hostileContentWithValidChecksumNeverCrashes() throws {
        let (directory, bytes) = try goodSnapshot()
        let source = try sourceLines(examplesPath()).map { try ProfileSourceParser.parse(line: $0) }
        var random = SplitMix64(seed: 2026)
        let paths = source.flatMap { probePaths(of: $0.attributes) }
        var loadedCount = 0
        for round in 0..<300 {
            var damaged = bytes
            // Corrupt a few bytes past the header, or a header field in some rounds.
            for _ in 0..<(1 + random.next(below: 4)) {
                let position =
                    round % 10 == 0
                    ? SnapshotFormat.Header.createdAt + random.next(below: 72)
                    : SnapshotFormat.headerLength + random.next(below: bytes.count - SnapshotFormat.headerLength)
                damaged[position] = UInt8(truncatingIfNeeded: random.next())
            }
            resealChecksum(&damaged)
            let path = directory.file("hostile.snap")
            try writeBytes(damaged, to: path)
            guard let snapshot = try? ProfileSnapshot.load(path: path) else { continue }
            loadedCount += 1
            for profile in snapshot.allProfiles() {
                _ = profile.toInMemoryProfile()
            }
            for expected in source {
                for identity in expected.identities {
                    guard let profile = snapshot.profile(for: identity) else { continue }
                    _ = profile.toInMemoryProfile()
                    _ = profile.primaryIdentity
                    for path in paths { _ = profile.attribute(at: path) }
                    _ = profile.isMember(of: InternedName("vip"))
                    _ = profile.cappingCount(for: InternedName("offer-gold-10"))
                }
            }
        }
        #expect(loadedCount > 0, "no hostile variant loaded: the test exercised nothing")
    }

    /// A record's identity lengths are read before the record is checked whole (the lookup compares identities
    /// first): lengths reaching past the identity or past the file must make the lookup find nothing, never read
    /// out of bounds or match.
    @Test func identityLengthsPastTheirBoundsFindNothing() throws {
        let (directory, bytes) = try goodSnapshot()
        // The first record's first identity: namespace length, namespace, id length, id.
        let first = SnapshotFormat.headerLength + SnapshotFormat.Record.headerLength
        func u32(at offset: Int) -> Int {
            (0..<4).reduce(0) { value, byte in value | Int(bytes[offset + byte]) << (8 * byte) }
        }
        let namespaceLength = u32(at: first)
        let idLengthOffset = first + 4 + namespaceLength
        let idLength = u32(at: idLengthOffset)
        let identity = Identity(
            namespace: String(decoding: bytes[(first + 4)..<idLengthOffset], as: UTF8.self),
            id: String(decoding: bytes[(idLengthOffset + 4)..<(idLengthOffset + 4 + idLength)], as: UTF8.self))
        let path = directory.file("lengths.snap")
        try writeBytes(bytes, to: path)
        #expect(try ProfileSnapshot.load(path: path).profile(for: identity) != nil, "the undamaged file finds it")

        let damages: [(offset: Int, value: UInt32)] = [
            (first, UInt32.max), (first, UInt32(bytes.count)), (idLengthOffset, UInt32.max),
            (idLengthOffset, UInt32(bytes.count - idLengthOffset - 4)), (idLengthOffset, UInt32(idLength + 1)),
            // The identity still matches, but the record says its identity area ends before it: not readable.
            (
                SnapshotFormat.headerLength + SnapshotFormat.Record.audiencesOffset,
                UInt32(SnapshotFormat.Record.headerLength)
            ),
        ]
        for damage in damages {
            var damaged = bytes
            damaged.storeLE(damage.value, at: damage.offset)
            resealChecksum(&damaged)
            try writeBytes(damaged, to: path)
            let snapshot = try ProfileSnapshot.load(path: path)
            #expect(snapshot.profile(for: identity) == nil, "length \(damage.value) at \(damage.offset)")
        }
    }

    /// The consent codes are read straight from the record header on every lookup: a byte that is no code must
    /// make the record unreadable (never some other choice, least of all a grant), and a code must read as itself.
    @Test func consentBytesReadAsTheirCodeOrNotAtAll() throws {
        let (directory, bytes) = try goodSnapshot()
        let path = directory.file("consents.snap")
        try writeBytes(bytes, to: path)
        let record = SnapshotFormat.headerLength
        let primary = try #require(ProfileSnapshot.load(path: path).allProfiles().first).primaryIdentity
        for slot in 0..<6 {
            for (code, expected) in [(UInt8(12), nil), (0xFF, nil), (ConsentChoice.n.rawValue, ConsentChoice.n)] {
                var damaged = bytes
                damaged[record + SnapshotFormat.Record.consents + slot] = code
                resealChecksum(&damaged)
                try writeBytes(damaged, to: path)
                let profile = try ProfileSnapshot.load(path: path).profile(for: primary)
                let consents = profile.map { consents in
                    [
                        consents.consents.personalizeContent, consents.consents.marketingAny,
                        consents.consents.marketingEmail, consents.consents.marketingSMS,
                        consents.consents.marketingPush, consents.consents.marketingCall,
                    ]
                }
                #expect(consents?[slot] == expected, "slot \(slot), byte \(code)")
                if expected == nil { #expect(profile == nil, "slot \(slot), byte \(code)") }
            }
        }
    }
}
