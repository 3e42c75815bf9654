import OfferdCore
import OfferdSnapshot
import OfferdSnapshotBuilder
import OfferdSnapshotTestSupport
import Testing

/// ``ProfileSnapshot/profiles``: the streaming walk `offerd decide batch --audience` takes.
@Suite("profile iteration")
struct ProfileIterationTests {
    @Test("walks every profile in file order, as allProfiles() lists them")
    func matchesAllProfiles() throws {
        let directory = try TemporaryDirectory()
        let source = directory.file("profiles.jsonl")
        try SyntheticProfiles.write(count: 257, seed: 5, to: source)
        let output = directory.file("profiles.snap")
        _ = try SnapshotBuilder.build(input: source, output: output, version: "v1", progress: nil)
        let snapshot = try ProfileSnapshot.load(path: output)
        let walked = Array(snapshot.profiles)
        #expect(walked.count == 257 && walked.count == snapshot.profileCount)
        #expect(walked.map(\.identities) == snapshot.allProfiles().map(\.identities))
        // Every profile walked is the one its identity finds.
        for profile in walked {
            #expect(snapshot.profile(for: profile.primaryIdentity)?.identities == profile.identities)
        }
        // An iterator at its end stays there.
        var iterator = snapshot.profiles.makeIterator()
        while iterator.next() != nil {}
        #expect(iterator.next() == nil)
    }

    @Test("an empty snapshot has no profiles")
    func empty() throws {
        let directory = try TemporaryDirectory()
        let source = try directory.write("empty.jsonl", "")
        let output = directory.file("empty.snap")
        _ = try SnapshotBuilder.build(input: source, output: output, version: "v0", progress: nil)
        #expect(Array(try ProfileSnapshot.load(path: output).profiles).isEmpty)
    }

    @Test("the walk of the example profiles yields their identities in source order")
    func exampleOrder() throws {
        let directory = try TemporaryDirectory()
        let output = directory.file("examples.snap")
        _ = try SnapshotBuilder.build(input: examplesPath(), output: output, version: "v1", progress: nil)
        let snapshot = try ProfileSnapshot.load(path: output)
        let lines = try sourceLines(examplesPath())
        #expect(Array(snapshot.profiles).count == lines.count)
    }
}
