import Foundation
import OfferdCore
import OfferdSnapshotTestSupport
import Testing

@testable import OfferdSnapshot
@testable import OfferdSnapshotBuilder

/// The multi-threaded build against the single-threaded one: same bytes for the same source, and the same first
/// error (line numbers included) for a bad one, however the source is cut into batches.
@Suite("Parallel snapshot build agrees with the single-threaded build")
struct ParallelBuildTests {
    /// (workers, batch length in bytes): tiny batches put a batch boundary after nearly every line.
    static let layouts: [(workers: Int, batchLength: Int)] = [
        (1, 1), (2, 1), (2, 97), (3, 700), (2, 4096), (1, 1 << 20),
    ]

    private static let createdAt: Int64 = 1_700_000_000

    /// The built file's bytes, or the error.
    private func build(
        _ source: String, in directory: TemporaryDirectory, workers: Int, batchLength: Int = 1 << 20,
        useFastPath: Bool = true, progress: ((Int) -> Void)? = nil
    ) throws -> Result<[UInt8], SnapshotBuildError> {
        let output = directory.file("out-\(workers)-\(batchLength).snap")
        defer { removeFileIfPresent(output) }
        let options = SnapshotBuilder.BuildOptions(
            useFastPath: useFastPath, workerCount: workers, batchLength: batchLength, createdAt: Self.createdAt)
        do {
            _ = try SnapshotBuilder.build(
                input: source, output: output, version: nil, progress: progress, options: options)
        } catch {
            return .failure(error)
        }
        return .success(try readBytes(output))
    }

    /// Valid lines the fast path hands to the general path (escapes, exponents, non-ASCII keys), blank lines,
    /// and a non-ASCII audience, mixed into generated profiles so both paths share the string table.
    private static let unusualLines = [
        #"{"identities":[{"namespace":"ECID","id":"esc\"aped"}],"audiences":["vip","new-\u00e9"]}"#,
        "",
        "   ",
        #"{"identities":[{"namespace":"ECID","id":"exp"}],"attributes":{"e":1e3,"fresh-key":"x"}}"#,
        #"{"identities":[{"namespace":"ECID","id":"non-ascii-key"}],"attributes":{"clé":1},"capping":{"o-new":2}}"#,
        #"{"identities":[{"namespace":"ECID","id":"audience"}],"audiences":["Zürich","vip","late-new"]}"#,
    ]

    private func mixedSource(in directory: TemporaryDirectory, count: Int, seed: UInt64) throws -> String {
        let generated = directory.file("generated.jsonl")
        try SyntheticProfiles.write(count: count, seed: seed, to: generated)
        var lines = try readBytes(generated).split(separator: 0x0A, omittingEmptySubsequences: false).map(Array.init)
        for (position, line) in Self.unusualLines.enumerated() {
            lines.insert(Array(line.utf8), at: min(lines.count, 7 + position * (count / 7)))
        }
        let source = directory.file("mixed.jsonl")
        try writeBytes(Array(lines.joined(separator: [0x0A])), to: source)
        return source
    }

    @Test(arguments: layouts.indices)
    func parallelBuildWritesTheSameBytes(_ layout: Int) throws {
        let (workers, batchLength) = Self.layouts[layout]
        let directory = try TemporaryDirectory()
        let source = try mixedSource(in: directory, count: batchLength == 1 ? 300 : 1_200, seed: 11)
        let sequential = try build(source, in: directory, workers: 0).get()
        let parallel = try build(source, in: directory, workers: workers, batchLength: batchLength).get()
        #expect(parallel.count == sequential.count)
        #expect(parallel == sequential, "workers \(workers), batch \(batchLength)")
        // And the file is a valid snapshot holding every profile.
        let snapshotPath = directory.file("check.snap")
        try writeBytes(parallel, to: snapshotPath)
        #expect(try ProfileSnapshot.load(path: snapshotPath).profileCount == (batchLength == 1 ? 300 : 1_200) + 4)
    }

    /// Batches that start from the global string table (the usual case), from an empty one (a table too large to
    /// copy), and a table that crosses the limit during the build: the same bytes.
    @Test(arguments: [0, 40, 1 << 16])
    func stringTableSeedingDoesNotChangeTheBytes(_ seedLimit: Int) throws {
        let directory = try TemporaryDirectory()
        let source = try mixedSource(in: directory, count: 600, seed: 21)
        let sequential = try build(source, in: directory, workers: 0).get()
        let output = directory.file("seeded.snap")
        _ = try SnapshotBuilder.build(
            input: source, output: output, version: nil, progress: nil,
            options: SnapshotBuilder.BuildOptions(
                workerCount: 2, batchLength: 2_000, stringSeedLimit: seedLimit, createdAt: Self.createdAt))
        #expect(try readBytes(output) == sequential)
    }

    @Test func parallelBuildWithoutTheFastPathWritesTheSameBytes() throws {
        let directory = try TemporaryDirectory()
        let source = try mixedSource(in: directory, count: 400, seed: 3)
        let sequential = try build(source, in: directory, workers: 0, useFastPath: false).get()
        let parallel = try build(source, in: directory, workers: 2, batchLength: 300, useFastPath: false).get()
        #expect(parallel == sequential)
    }

    @Test func emptyAndBlankSourcesAndAMissingFinalNewline() throws {
        let directory = try TemporaryDirectory()
        let good = #"{"identities":[{"namespace":"ECID","id":"1"}]}"#
        for text in ["", "\n\n  \n", good, "\n" + good, good + "\n\n", good + "\r\n" + "\n"] {
            let source = try directory.write("s.jsonl", text)
            for (workers, batchLength) in Self.layouts {
                let sequential = try build(source, in: directory, workers: 0)
                let parallel = try build(source, in: directory, workers: workers, batchLength: batchLength)
                #expect(parallel == sequential, "\(text.debugDescription) workers \(workers) batch \(batchLength)")
            }
        }
    }

    static func line(_ id: String, namespace: String = "ECID", extra: String = "") -> String {
        #"{"identities":[{"namespace":"\#(namespace)","id":"\#(id)"}]\#(extra)}"#
    }

    /// Sources whose first error is at a known line, with a competing error later (which must not win) and
    /// blank lines shifting the numbering.
    static let badSources: [(name: String, lines: [String], expected: String)] = {
        let filler = (0..<30).map { line("f\($0)", extra: #","audiences":["a\#($0 % 4)"]"#) }
        return [
            (
                "duplicate across batches",
                [line("x")] + filler + [line("y"), "", line("x", namespace: "ecid")] + filler.map { $0 + " " },
                "line 34: duplicate identity ecid:x (first on line 1)"
            ),
            (
                "invalid before a later duplicate",
                [line("x")] + filler + ["{oops"] + [line("x")], "line 32: invalid JSON"
            ),
            (
                "duplicate before a later invalid line",
                [line("x")] + filler + [line("x", namespace: "Ecid"), "{oops"],
                "line 32: duplicate identity Ecid:x (first on line 1)"
            ),
            (
                "duplicate inside one general-path line",
                filler + [#"{"identities":[{"namespace":"E","id":"a\u0062"},{"namespace":"e","id":"ab"}]}"#],
                "line 31: duplicate identity e:ab (first on line 31)"
            ),
            (
                "general-path line duplicating a fast-path one",
                filler + [#"{"identities":[{"namespace":"ECID","id":"f\u0033"}]}"#], "(first on line 4)"
            ),
            ("invalid last line without newline", filler + ["", #"{"identities":[]}"#], "line 32:"),
            ("invalid first line", ["[]"] + filler, "line 1:"),
        ]
    }()

    @Test(arguments: badSources.indices)
    func firstErrorIsTheSameAsTheSingleThreadedBuild(_ index: Int) throws {
        let bad = Self.badSources[index]
        let directory = try TemporaryDirectory()
        let source = try directory.write("bad.jsonl", bad.lines.joined(separator: "\n"))
        guard case .failure(let expected) = try build(source, in: directory, workers: 0) else {
            Issue.record("\(bad.name): the single-threaded build succeeded")
            return
        }
        #expect(expected.description.contains(bad.expected), "\(bad.name): \(expected)")
        for (workers, batchLength) in Self.layouts {
            let result = try build(source, in: directory, workers: workers, batchLength: batchLength)
            guard case .failure(let error) = result else {
                Issue.record("\(bad.name): built with workers \(workers), batch \(batchLength)")
                continue
            }
            #expect(error == expected, "\(bad.name): workers \(workers), batch \(batchLength)")
        }
        #expect(try directory.entries() == ["bad.jsonl"], "\(bad.name): output or temporary file left")
    }

    @Test func progressIsReportedAsByTheSingleThreadedBuild() throws {
        let directory = try TemporaryDirectory()
        let source = directory.file("p.jsonl")
        try SyntheticProfiles.write(count: 2_500, seed: 2, to: source)
        var sequentialReports: [Int] = []
        var parallelReports: [Int] = []
        _ = try build(source, in: directory, workers: 0, progress: { sequentialReports.append($0) }).get()
        _ = try build(source, in: directory, workers: 2, batchLength: 512, progress: { parallelReports.append($0) })
            .get()
        #expect(!sequentialReports.isEmpty)
        #expect(parallelReports == sequentialReports)
    }

    @Test func batchReaderCutsOnlyBetweenLines() throws {
        let directory = try TemporaryDirectory()
        let text = (0..<200).map { String(repeating: "x", count: $0 % 37) }.joined(separator: "\n")
        let path = try directory.write("lines.txt", text)
        for batchLength in [1, 5, 64, 1000, 1 << 16] {
            let file = try PosixFile.openForReading(path)
            defer { try? file.close() }
            var reader = BatchReader(file: file, path: path, batchLength: batchLength)
            var pieces: [[UInt8]] = []
            let batch = BuildBatch(batchLength: batchLength)
            while try reader.fill(batch) == .batch {
                pieces.append(Array(batch.input.bytes))
                batch.reset()
            }
            #expect(pieces.joined().elementsEqual(text.utf8), "batch \(batchLength)")
            // Every piece but the last ends a line.
            for piece in pieces.dropLast() { #expect(piece.last == 0x0A, "batch \(batchLength)") }
        }
    }
}
