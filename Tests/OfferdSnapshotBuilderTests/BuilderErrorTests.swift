import OfferdCore
import OfferdSnapshotTestSupport
import Testing

@testable import OfferdSnapshot
@testable import OfferdSnapshotBuilder

@Suite("Snapshot builder errors")
struct BuilderErrorTests {
    static let good = #"{"identities":[{"namespace":"ECID","id":"1"}]}"#

    static let cases: [(name: String, text: String, line: Int, reason: String)] = [
        ("invalid JSON", good + "\n{\"identities\":\n", 2, "invalid JSON"),
        (
            "wrong type", good + "\n\n" + #"{"identities":[{"namespace":"ECID","id":"2"}],"audiences":[3]}"#, 3,
            "audiences[0] must be a string"
        ),
        (
            "bad consent",
            #"{"identities":[{"namespace":"ECID","id":"2"}],"consents":{"personalize":{"content":{"val":"yes"}}}}"#,
            1, "not an XDM consent value"
        ),
        (
            "unknown key", good + "\n" + #"{"identities":[{"namespace":"ECID","id":"2"}],"segments":[]}"#, 2,
            "unknown key"
        ),
        (
            "duplicate identity",
            good + "\n" + #"{"identities":[{"namespace":"x","id":"2"}]}"# + "\n"
                + #"{"identities":[{"namespace":"Y","id":"3"},{"namespace":"ecid","id":"1"}]}"#, 3, "first on line 1"
        ),
        (
            "duplicate in one profile", #"{"identities":[{"namespace":"A","id":"1"},{"namespace":"a","id":"1"}]}"#, 1,
            "first on line 1"
        ),
        (
            "bad capping after good lines",
            good + "\n" + #"{"identities":[{"namespace":"E","id":"1"}],"capping":{"o":1.5}}"#
                + "\n" + #"{"identities":[{"namespace":"E","id":"2"}],"capping":{"o":"x"}}"#, 2, "integer >= 0"
        ),
    ]

    @Test(arguments: cases.indices)
    func badLineStopsTheBuildWithItsLineAndWritesNothing(_ index: Int) throws {
        let testCase = Self.cases[index]
        let directory = try TemporaryDirectory()
        let source = try directory.write("source.jsonl", testCase.text)
        let output = directory.file("out.snap")
        do {
            _ = try SnapshotBuilder.build(input: source, output: output, version: nil, progress: nil)
            Issue.record("\(testCase.name): built")
        } catch {
            #expect(error.description.hasPrefix("line \(testCase.line):"), "\(testCase.name): \(error)")
            #expect(error.description.contains(testCase.reason), "\(testCase.name): \(error)")
        }
        #expect(try directory.entries() == ["source.jsonl"], "\(testCase.name): output or temporary file left")
    }

    @Test func duplicateIdentityNamesBothLines() throws {
        let directory = try TemporaryDirectory()
        let source = try directory.write(
            "dup.jsonl",
            Self.good + "\n" + #"{"identities":[{"namespace":"Email","id":"a"},{"namespace":"EcId","id":"1"}]}"#)
        #expect(
            throws: SnapshotBuildError.duplicateIdentity(
                identity: Identity(namespace: "EcId", id: "1"), firstLine: 1, line: 2)
        ) {
            try SnapshotBuilder.build(input: source, output: directory.file("o.snap"), version: nil, progress: nil)
        }
    }

    @Test func failedBuildLeavesAnExistingSnapshotIntact() throws {
        let directory = try TemporaryDirectory()
        let output = directory.file("profiles.snap")
        _ = try SnapshotBuilder.build(input: examplesPath(), output: output, version: "good", progress: nil)
        let before = try readBytes(output)
        let bad = try directory.write("bad.jsonl", Self.good + "\n" + "{oops}\n")
        #expect(throws: SnapshotBuildError.self) {
            try SnapshotBuilder.build(input: bad, output: output, version: "bad", progress: nil)
        }
        #expect(try readBytes(output) == before)
        #expect(try ProfileSnapshot.load(path: output).version == "good")
        #expect(try directory.entries() == ["bad.jsonl", "profiles.snap"])
    }

    @Test func successfulBuildReplacesAnExistingSnapshot() throws {
        let directory = try TemporaryDirectory()
        let output = directory.file("profiles.snap")
        _ = try SnapshotBuilder.build(input: examplesPath(), output: output, version: "one", progress: nil)
        _ = try SnapshotBuilder.build(input: examplesPath(), output: output, version: "two", progress: nil)
        #expect(try ProfileSnapshot.load(path: output).version == "two")
        #expect(try directory.entries() == ["profiles.snap"])
    }

    @Test func missingInputAndBadOutputDirectoryAreIOErrors() throws {
        let directory = try TemporaryDirectory()
        #expect(throws: SnapshotBuildError.self) {
            try SnapshotBuilder.build(
                input: directory.file("nope.jsonl"), output: directory.file("o.snap"), version: nil, progress: nil)
        }
        #expect(throws: SnapshotBuildError.self) {
            try SnapshotBuilder.build(
                input: examplesPath(), output: directory.file("missing-dir/o.snap"), version: nil, progress: nil)
        }
        #expect(throws: SnapshotBuildError.self) {
            try SnapshotBuilder.build(
                input: directory.path, output: directory.file("o.snap"), version: nil, progress: nil)
        }
        #expect(try directory.entries() == [])
    }

    @Test(arguments: ["", String(repeating: "v", count: 257)])
    func invalidVersionStringsAreRefused(_ version: String) throws {
        let directory = try TemporaryDirectory()
        #expect(throws: SnapshotBuildError.self) {
            try SnapshotBuilder.build(
                input: examplesPath(), output: directory.file("o.snap"), version: version, progress: nil)
        }
        #expect(try directory.entries() == [])
    }
}
