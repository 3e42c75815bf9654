import Foundation
import OfferdCore
import OfferdSnapshotTestSupport
import Testing

@testable import OfferdSnapshot
@testable import OfferdSnapshotBuilder

#if canImport(Glibc)
    import Glibc
#endif

/// The parallel build parsing a mapped source in place against reading it (`read()`, as for a pipe) and against the
/// single-threaded build: the same bytes, the same first error with the same line number, nothing left on failure.
@Suite("Snapshot build from a mapped source")
struct MappedInputBuildTests {
    private static let createdAt: Int64 = 1_700_000_000

    private enum Input: CaseIterable {
        case sequential, parallelRead, parallelMapped
    }

    private func build(
        _ source: String, in directory: TemporaryDirectory, input: Input, batchLength: Int = 1 << 20
    ) -> Result<[UInt8], SnapshotBuildError> {
        let output = directory.file("out.snap")
        defer { removeFileIfPresent(output) }
        var options = SnapshotBuilder.BuildOptions(batchLength: batchLength, createdAt: Self.createdAt)
        options.workerCount = input == .sequential ? 0 : 2
        options.mapInput = input == .parallelMapped
        do {
            _ = try SnapshotBuilder.build(input: source, output: output, version: nil, progress: nil, options: options)
            return .success(try readBytes(output))
        } catch let error as SnapshotBuildError {
            return .failure(error)
        } catch {
            return .failure(.io(path: output, reason: "\(error)"))
        }
    }

    static func line(_ id: String, extra: String = "") -> String {
        #"{"identities":[{"namespace":"ECID","id":"\#(id)"}],"audiences":["a","b"]\#(extra)}"#
    }

    /// Sources with their expected outcome: nil for success, else text of the error.
    static let sources: [(name: String, text: String, error: String?)] = {
        let good = (0..<40).map { line("p\($0)", extra: #","attributes":{"k\#($0 % 5)":\#($0)}"#) }
        return [
            ("empty file", "", nil),
            ("blank lines only", "\n \n\t\n", nil),
            ("no final newline", good.joined(separator: "\n"), nil),
            ("final newline", good.joined(separator: "\n") + "\n", nil),
            ("CRLF and blank lines", good.joined(separator: "\r\n") + "\r\n\n", nil),
            ("invalid last line without newline", good.joined(separator: "\n") + "\n{\"identities\":[", "line 41:"),
            ("invalid last byte", good.joined(separator: "\n") + "\n" + line("z") + "}", "line 41:"),
            (
                "duplicate on the last line without newline",
                good.joined(separator: "\n") + "\n\n" + line("p3"),
                "line 42: duplicate identity ECID:p3 (first on line 4)"
            ),
            ("invalid first line", "[]\n" + good.joined(separator: "\n"), "line 1:"),
        ]
    }()

    @Test(arguments: sources.indices)
    func mappedReadAndSequentialBuildsAgree(_ index: Int) throws {
        let (name, text, expectedError) = Self.sources[index]
        let directory = try TemporaryDirectory()
        let source = try directory.write("source.jsonl", text)
        let sequential = build(source, in: directory, input: .sequential)
        switch (sequential, expectedError) {
        case (.success, nil): break
        case (.failure(let error), let expected?):
            #expect(error.description.contains(expected), "\(name): \(error)")
        default:
            Issue.record("\(name): unexpected sequential outcome \(sequential)")
        }
        // Batch boundaries after nearly every line, inside lines, and one batch for the whole source.
        for batchLength in [1, 37, 300, 1 << 20] {
            for input in [Input.parallelRead, .parallelMapped] {
                let result = build(source, in: directory, input: input, batchLength: batchLength)
                #expect(result == sequential, "\(name): \(input), batch \(batchLength)")
            }
        }
        #expect(try directory.entries() == ["source.jsonl"], "\(name): output or temporary file left")
    }

    @Test func generatedProfilesGiveTheSameBytesMappedAndRead() throws {
        let directory = try TemporaryDirectory()
        let source = directory.file("generated.jsonl")
        try SyntheticProfiles.write(count: 3_000, seed: 5, to: source)
        let read = try build(source, in: directory, input: .parallelRead, batchLength: 64 << 10).get()
        let mapped = try build(source, in: directory, input: .parallelMapped, batchLength: 64 << 10).get()
        #expect(mapped == read)
        #expect(try build(source, in: directory, input: .sequential).get() == mapped)
    }

    @Test func onlyNonEmptyRegularFilesAreMapped() throws {
        let directory = try TemporaryDirectory()
        let empty = try directory.write("empty.jsonl", "")
        let full = try directory.write("full.jsonl", Self.line("x"))
        let emptyFile = try PosixFile.openForReading(empty)
        defer { try? emptyFile.close() }
        #expect(MappedSource.map(emptyFile) == nil)
        let fullFile = try PosixFile.openForReading(full)
        defer { try? fullFile.close() }
        let mapping = try #require(MappedSource.map(fullFile))
        #expect(Array(mapping.bytes) == Array(Self.line("x").utf8))
        // Released pages read back unchanged (from the page cache).
        mapping.release(0..<mapping.bytes.count)
        #expect(Array(mapping.bytes) == Array(Self.line("x").utf8))
    }

    @Test func mappedBatchesCoverTheSourceAndEndOnLines() throws {
        let directory = try TemporaryDirectory()
        let text = (0..<200).map { String(repeating: "x", count: $0 % 37) }.joined(separator: "\n")
        let path = try directory.write("lines.txt", text)
        for batchLength in [1, 5, 64, 1000, 1 << 16] {
            let file = try PosixFile.openForReading(path)
            defer { try? file.close() }
            let mapping = try #require(MappedSource.map(file))
            var reader = BatchReader(file: file, path: path, batchLength: batchLength, mapping: mapping)
            var pieces: [[UInt8]] = []
            var covered = 0
            let batch = BuildBatch(batchLength: batchLength)
            while try reader.fill(batch) == .batch {
                pieces.append(Array(batch.source))
                #expect(batch.sourceRange.lowerBound == covered)
                covered = batch.sourceRange.upperBound
                batch.reset()
            }
            #expect(pieces.joined().elementsEqual(text.utf8), "batch \(batchLength)")
            for piece in pieces.dropLast() { #expect(piece.last == 0x0A, "batch \(batchLength)") }
        }
    }

    /// A truncation by another process waits until the mapping has moved to a private copy; the builder keeps
    /// reading the source as it was, where a plain mapping would fault (SIGBUS) and end the process.
    @Test func aSourceTruncatedElsewhereKeepsItsMappedBytes() throws {
        let directory = try TemporaryDirectory()
        let text = (0..<2_000).map { Self.line("t\($0)") }.joined(separator: "\n") + "\n"
        let path = try directory.write("source.jsonl", text)
        let file = try PosixFile.openForReading(path)
        defer { try? file.close() }
        let mapping = try #require(MappedSource.map(file))
        #expect(mapping.isFileMapped)
        mapping.release(0..<(mapping.bytes.count / 2))

        let truncator = try ShellProcess(#": > "$1""#, [path])
        #expect(truncator.wait(seconds: 20) == 0, "the truncation did not finish")
        #expect(FileStatus.of(path, followSymlinks: true)?.size == 0)
        #expect(!mapping.isFileMapped, "the mapping was not moved to a private copy")
        let unreleased = mapping.bytes.count / 2 / 4096 * 4096
        #expect(mapping.bytes[unreleased...].elementsEqual(text.utf8.dropFirst(unreleased)))
    }

    /// No lease can be had on a file open for writing (here by this process): the source is read, and the build is
    /// the same.
    @Test func aSourceOpenForWritingIsReadNotMapped() throws {
        let directory = try TemporaryDirectory()
        let source = try directory.write("source.jsonl", (0..<300).map { Self.line("w\($0)") }.joined(separator: "\n"))
        let writer = open(source, O_WRONLY)
        #expect(writer >= 0)
        defer { close(writer) }
        let file = try PosixFile.openForReading(source)
        defer { try? file.close() }
        #expect(MappedSource.map(file) == nil)
        let mapped = try build(source, in: directory, input: .parallelMapped, batchLength: 4096).get()
        #expect(try build(source, in: directory, input: .sequential).get() == mapped)
    }

    /// A FIFO is never mapped: the build reads it, as before.
    @Test func aFIFOSourceIsRead() throws {
        let directory = try TemporaryDirectory()
        let fifo = directory.file("source.fifo")
        #expect(mkfifo(fifo, 0o600) == 0)
        let text = (0..<500).map { Self.line("f\($0)") }.joined(separator: "\n") + "\n"
        let regular = try directory.write("source.jsonl", text)
        let expected = try build(regular, in: directory, input: .sequential).get()
        let writer = Thread {
            // Opening blocks until the builder opens the other end.
            guard let handle = FileHandle(forWritingAtPath: fifo) else { return }
            handle.write(Data(text.utf8))
            try? handle.close()
        }
        writer.start()
        let fromFIFO = try build(fifo, in: directory, input: .parallelMapped, batchLength: 4096).get()
        #expect(fromFIFO == expected)
    }
}
