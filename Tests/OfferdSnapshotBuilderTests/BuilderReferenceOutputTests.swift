import Foundation
import OfferdCore
import OfferdSnapshotTestSupport
import Testing

@testable import OfferdSnapshot
@testable import OfferdSnapshotBuilder

/// The builder's output against the builder of main before the copy-free input and output and the attribute key
/// memo: the file format must not change, so the same source must give byte for byte the same body. The default
/// version string is the body digest (docs/snapshot-format.md), which covers every byte after the header; the
/// expected value was printed by main's `offerd snapshot build` (commit 0eb057e) for the same source.
@Suite("Snapshot build output equals main's builder")
struct BuilderReferenceOutputTests {
    /// 3,000 generated profiles (`offerd profiles generate --count 3000 --seed 42`), then these lines: attribute
    /// keys of 1, 8, 9, 16 and 17 bytes, the same keys under different parents, keys that are also audience names
    /// or offer ids, a key too near the end of its line for the memo's 16-byte read, and lines the fast path hands
    /// to the general path.
    static let extraLines = [
        #"{"identities":[{"namespace":"ECID","id":"memo-1"}],"audiences":["k","attr1","#
            + #""a-key-of-17-bytes"],"attributes":{"k":1,"kk":{"k":2,"kk":{"k":3}},"abcdefgh":1,"abcdefghi":2,"#
            + #""abcdefghijklmnop":3,"abcdefghijklmnopq":4,"abcdefghijklmnopr":5,"#
            + #""a-key-of-17-bytes":{"abcdefgh":true}},"capping":{"k":1,"abcdefghijklmnop":2}}"#,
        #"{"identities":[{"namespace":"ECID","id":"memo-2"}],"attributes":{"kk":{"kk":{"k":"x"},"k":[1,"#
            + #"2]},"k":null,"abcdefghijklmnopq":{"abcdefghijklmnopq":0}}}"#,
        #"{"identities":[{"namespace":"ECID","id":"memo-3"}],"attributes":{"k":{"z":1}}}"#,
        #"{"identities":[{"namespace":"ECID","id":"esc\"aped"}],"audiences":["vip","new-\u00e9"],"#
            + #""attributes":{"clé":{"k":1},"e":1e3}}"#,
    ]

    /// Format 3 widened each capping entry by two counts (16 bytes; this source has 4,391 entries): re-pinned when
    /// it did, from the reference encoder's output, which every build path must still equal. Format 2 (main at
    /// 0eb057e) gave "a12df11dd03ee9f0" and 2,627,582 bytes.
    static let expectedVersion = "298325c2fbf6afe2"
    static let expectedFileSize = 2_697_838

    private func source(in directory: TemporaryDirectory) throws -> String {
        let path = directory.file("source.jsonl")
        try SyntheticProfiles.write(count: 3_000, seed: 42, to: path)
        var bytes = try readBytes(path)
        for line in Self.extraLines { bytes += Array(line.utf8) + [0x0A] }
        try writeBytes(bytes, to: path)
        return path
    }

    /// Sequential, parallel on mapped input, parallel reading: each gives main's bytes.
    @Test(arguments: [(0, true), (2, true), (2, false), (1, true)])
    func everyBuildPathWritesMainsBytes(_ workers: Int, _ mapInput: Bool) throws {
        let directory = try TemporaryDirectory()
        let input = try source(in: directory)
        var options = SnapshotBuilder.BuildOptions(workerCount: workers, batchLength: 256 << 10)
        options.mapInput = mapInput
        let summary = try SnapshotBuilder.build(
            input: input, output: directory.file("out.snap"), version: nil, progress: nil, options: options)
        #expect(summary.version == Self.expectedVersion, "workers \(workers), mapped \(mapInput)")
        #expect(summary.fileSize == Self.expectedFileSize)
        #expect(summary.profileCount == 3_004)
    }

    /// Building over an existing snapshot drops its cache in the background and replaces it; a failed build over
    /// it leaves it byte for byte as it was.
    @Test func buildingOverASnapshotReplacesItOnlyOnSuccess() throws {
        let directory = try TemporaryDirectory()
        let input = try source(in: directory)
        let output = directory.file("out.snap")
        _ = try SnapshotBuilder.build(input: input, output: output, version: "first", progress: nil)
        let first = try readBytes(output)
        let bad = try directory.write("bad.jsonl", #"{"identities":[{"namespace":"ECID","id":"1"}]}"# + "\n{oops\n")
        #expect(throws: SnapshotBuildError.self) {
            _ = try SnapshotBuilder.build(input: bad, output: output, version: nil, progress: nil)
        }
        #expect(try readBytes(output) == first)
        let summary = try SnapshotBuilder.build(input: input, output: output, version: nil, progress: nil)
        #expect(summary.version == Self.expectedVersion)
        #expect(try ProfileSnapshot.load(path: output).profileCount == 3_004)
        #expect(try directory.entries() == ["bad.jsonl", "out.snap", "source.jsonl"])
    }

    @Test func evictionStartsOnlyForAnExistingRegularFileAndLeavesItUnchanged() throws {
        let directory = try TemporaryDirectory()
        #expect(ReplacedFileEviction.start(replacing: directory.file("missing")) == nil)
        #expect(ReplacedFileEviction.start(replacing: directory.path) == nil)
        let contents = [UInt8]((0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        let path = directory.file("old.snap")
        try writeBytes(contents, to: path)
        let eviction = try #require(ReplacedFileEviction.start(replacing: path))
        eviction.wrote(100)
        eviction.wrote(200 << 20)
        eviction.finish()
        eviction.finish()
        eviction.wrote(300 << 20)
        #expect(try readBytes(path) == contents)
    }
}
