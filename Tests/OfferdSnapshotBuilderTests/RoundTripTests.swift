import OfferdCore
import OfferdSnapshotTestSupport
import Testing

@testable import OfferdSnapshot
@testable import OfferdSnapshotBuilder

@Suite("Source -> build -> load round trip")
struct RoundTripTests {
    /// Builds `source`, loads it, and checks every profile against its source line.
    private func checkRoundTrip(source: String, in directory: TemporaryDirectory) throws -> ProfileSnapshot {
        let output = directory.file("profiles.snap")
        let summary = try SnapshotBuilder.build(input: source, output: output, version: nil, progress: nil)
        let snapshot = try ProfileSnapshot.load(path: output)
        let expected = try sourceLines(source).map { try ProfileSourceParser.parse(line: $0) }

        #expect(snapshot.profileCount == expected.count)
        #expect(summary.profileCount == expected.count)
        #expect(snapshot.identityCount == expected.reduce(0) { $0 + $1.identities.count })
        #expect(snapshot.version == summary.version)
        #expect(snapshot.fileSize == summary.fileSize)
        #expect(snapshot.allProfiles().count == expected.count)

        for profile in expected {
            for identity in profile.identities {
                let found = try #require(snapshot.profile(for: identity), "\(identity) not found")
                #expect(found.toInMemoryProfile() == profile)
                #expect(found.primaryIdentity == profile.primaryIdentity)
                // The bytes the tie-break hash reads in place must be the identity's, namespace case included.
                let lent = found.withPrimaryIdentityUTF8 { namespace, id in
                    (namespace.indices.map { namespace[$0] }, id.indices.map { id[$0] })
                }
                #expect(lent.0 == Array(profile.primaryIdentity.namespace.utf8))
                #expect(lent.1 == Array(profile.primaryIdentity.id.utf8))
                #expect(found.consents == profile.consents)
                for path in probePaths(of: profile.attributes) {
                    #expect(found.attribute(at: path) == profile.attribute(at: path), "\(path) of \(identity)")
                }
                for audience in profile.audiences + ["not-an-audience", ""] {
                    let name = InternedName(audience)
                    #expect(found.isMember(of: name) == profile.isMember(of: name))
                }
                for offer in profile.capping.map(\.offerID) + ["offer-unknown"] {
                    let name = InternedName(offer)
                    for event in CappingEvent.allCases {
                        #expect(
                            found.cappingCount(for: name, event: event) == profile.cappingCount(for: name, event: event)
                        )
                    }
                }
                // The summary the decision loop filters with may not miss a counter, in either kind of profile.
                #expect(found.cappingSummary == profile.cappingSummary)
                for offer in profile.capping.map(\.offerID) {
                    #expect(found.cappingSummary & cappingSummaryBit(InternedName(offer).hash) != 0, "\(offer)")
                }
                if profile.capping.isEmpty { #expect(found.cappingSummary == 0) }
            }
        }
        return snapshot
    }

    /// The object form of capping counts (which the fast encoder leaves to the general path) beside the integer
    /// form, through the snapshot and back.
    @Test func cappingCountsOfEveryEventTypeRoundTrip() throws {
        let directory = try TemporaryDirectory()
        let source = try directory.write(
            "capping.jsonl",
            #"{"identities":[{"namespace":"ECID","id":"1"}],"capping":{"a":{"display":3,"interact":1},"b":7}}"#
                + "\n" + #"{"identities":[{"namespace":"ECID","id":"2"}],"capping":{"a":2,"b":{"decision":5}}}"#
                + "\n" + #"{"identities":[{"namespace":"ECID","id":"3"}],"capping":{"a":{}}}"# + "\n")
        let snapshot = try checkRoundTrip(source: source, in: directory)
        let first = try #require(snapshot.profile(for: Identity(namespace: "ECID", id: "1")))
        #expect(first.cappingCount(for: InternedName("a"), event: .display) == 3)
        #expect(first.cappingCount(for: InternedName("a"), event: .interact) == 1)
        #expect(first.cappingCount(for: InternedName("a"), event: .decision) == 0)
        #expect(first.cappingCount(for: InternedName("b"), event: .decision) == 7)
        #expect(first.cappingCount(for: InternedName("b"), event: .display) == 0)
    }

    @Test func examplesRoundTrip() throws {
        let directory = try TemporaryDirectory()
        let snapshot = try checkRoundTrip(source: examplesPath(), in: directory)
        #expect(snapshot.profileCount == 12)
        let ana = try #require(snapshot.profile(for: Identity(namespace: "ECID", id: "4711")))
        #expect(ana.consents.marketingEmail == .n)
        #expect(ana.attribute(at: AttributePath(["loyalty", "tier"])) == .string("gold"))
        #expect(ana.cappingCount(for: InternedName("offer-gold-10")) == 2)
        #expect(ana.isMember(of: InternedName("vip")))
    }

    @Test(arguments: [0 as UInt64, 1, 42])
    func syntheticProfilesRoundTrip(seed: UInt64) throws {
        let directory = try TemporaryDirectory()
        let source = directory.file("synthetic.jsonl")
        try SyntheticProfiles.write(count: 400, seed: seed, to: source)
        _ = try checkRoundTrip(source: source, in: directory)
    }

    @Test func syntheticProfilesAreDeterministic() throws {
        let directory = try TemporaryDirectory()
        try SyntheticProfiles.write(count: 50, seed: 7, to: directory.file("a.jsonl"))
        try SyntheticProfiles.write(count: 50, seed: 7, to: directory.file("b.jsonl"))
        try SyntheticProfiles.write(count: 50, seed: 8, to: directory.file("c.jsonl"))
        let first = try readBytes(directory.file("a.jsonl"))
        #expect(first == (try readBytes(directory.file("b.jsonl"))))
        #expect(first != (try readBytes(directory.file("c.jsonl"))))
        let text = String(decoding: first, as: UTF8.self)
        for needle in ["\"ECID\"", "ecid-0", "\"Email\"", "loyalty", "homeAddress", "offer-", "\"val\":\"n\""] {
            #expect(text.contains(needle), "synthetic profiles lack \(needle)")
        }
    }

    @Test func everyAttributeTypeAndOddKeysRoundTrip() throws {
        let directory = try TemporaryDirectory()
        let line =
            #"{"identities":[{"namespace":"Ns","id":"é-1"}],"attributes":{"":{"":"empty keys"},"a.b":1,"#
            + #""s":"tab\tquote\"nl\n","t":true,"f":false,"z":null,"neg":-2.5,"big":1e300,"tiny":5e-324,"#
            + #""list":[1,"two",false,null,-0.5],"empty":[],"obj":{},"deep":{"x":{"y":{"z":[true]}}}},"#
            + #""capping":{"o":9007199254740992}}"#
        let source = try directory.write("odd.jsonl", line + "\n")
        let snapshot = try checkRoundTrip(source: source, in: directory)
        let profile = try #require(snapshot.profile(for: Identity(namespace: "NS", id: "é-1")))
        #expect(profile.attribute(at: AttributePath(["", ""])) == .string("empty keys"))
        #expect(profile.attribute(at: AttributePath(["a.b"])) == .number(1))
        #expect(profile.attribute(at: AttributePath(["a", "b"])) == .null)
        #expect(profile.attribute(at: AttributePath(["obj"])) == .object)
        #expect(profile.attribute(at: AttributePath(["deep", "x", "y", "z"])) == .list([.bool(true)]))
        #expect(profile.attribute(at: AttributePath(["z"])) == .null)
        #expect(profile.attribute(at: AttributePath(["s", "x"])) == .null)
        #expect(profile.cappingCount(for: InternedName("o")) == 9_007_199_254_740_992)
    }

    @Test func lookupFoldsNamespaceCaseButNotIDCase() throws {
        let directory = try TemporaryDirectory()
        let snapshot = try checkRoundTrip(source: examplesPath(), in: directory)
        #expect(snapshot.profile(for: Identity(namespace: "ecid", id: "4711")) != nil)
        #expect(snapshot.profile(for: Identity(namespace: "eCiD", id: "4711")) != nil)
        #expect(
            snapshot.profile(for: Identity(namespace: "EMAIL", id: "ana@example.com"))?.primaryIdentity
                == Identity(namespace: "ECID", id: "4711"))
        #expect(snapshot.profile(for: Identity(namespace: "Email", id: "ANA@example.com")) == nil)
        #expect(snapshot.profile(for: Identity(namespace: "ECID", id: "9999")) == nil)
        #expect(snapshot.profile(for: Identity(namespace: "ECID ", id: "4711")) == nil)
        #expect(snapshot.profile(for: Identity(namespace: "", id: "")) == nil)
    }

    @Test func emptyAndBlankSourcesGiveEmptySnapshots() throws {
        let directory = try TemporaryDirectory()
        for (name, text) in [("empty.jsonl", ""), ("blank.jsonl", "\n  \n\t\r\n\n")] {
            let source = try directory.write(name, text)
            let output = directory.file(name + ".snap")
            let summary = try SnapshotBuilder.build(input: source, output: output, version: "v-empty", progress: nil)
            #expect(summary.profileCount == 0)
            let snapshot = try ProfileSnapshot.load(path: output)
            #expect(snapshot.profileCount == 0)
            #expect(snapshot.identityCount == 0)
            #expect(snapshot.version == "v-empty")
            #expect(snapshot.profile(for: Identity(namespace: "ECID", id: "4711")) == nil)
        }
    }

    @Test func blankLinesAndCRLFAreSkippedAndLineWithoutFinalNewlineIsRead() throws {
        let directory = try TemporaryDirectory()
        let source = try directory.write(
            "crlf.jsonl",
            "\r\n" + #"{"identities":[{"namespace":"A","id":"1"}]}"# + "\r\n\n"
                + #"{"identities":[{"namespace":"A","id":"2"}]}"#)
        let snapshot = try checkRoundTrip(source: source, in: directory)
        #expect(snapshot.profileCount == 2)
    }

    @Test func defaultVersionIsAContentHashAndExplicitVersionIsKept() throws {
        let directory = try TemporaryDirectory()
        let first = try SnapshotBuilder.build(
            input: examplesPath(), output: directory.file("a.snap"), version: nil, progress: nil)
        let second = try SnapshotBuilder.build(
            input: examplesPath(), output: directory.file("b.snap"), version: nil, progress: nil)
        #expect(first.version == second.version)
        #expect(first.version.count == 16)
        let named = try SnapshotBuilder.build(
            input: examplesPath(), output: directory.file("c.snap"), version: "2026-11-29.1", progress: nil)
        #expect(try ProfileSnapshot.load(path: directory.file("c.snap")).version == "2026-11-29.1")
        #expect(named.version == "2026-11-29.1")
        let other = try directory.write("other.jsonl", #"{"identities":[{"namespace":"A","id":"1"}]}"#)
        let different = try SnapshotBuilder.build(
            input: other, output: directory.file("d.snap"), version: nil, progress: nil)
        #expect(different.version != first.version)
    }

    @Test func longLinesSpanningChunksAreRead() throws {
        let directory = try TemporaryDirectory()
        let longValue = String(repeating: "x", count: 3 * SnapshotBuilder.chunkLength)
        let text =
            #"{"identities":[{"namespace":"A","id":"1"}]}"# + "\n"
            + #"{"identities":[{"namespace":"A","id":"2"}],"attributes":{"long":""# + longValue + "\"}}\n"
            + #"{"identities":[{"namespace":"A","id":"3"}]}"# + "\n"
        let source = try directory.write("long.jsonl", text)
        let snapshot = try checkRoundTrip(source: source, in: directory)
        let profile = try #require(snapshot.profile(for: Identity(namespace: "A", id: "2")))
        #expect(profile.attribute(at: AttributePath(["long"])) == .string(longValue))
    }

    @Test func progressIsReported() throws {
        let directory = try TemporaryDirectory()
        var reported: [Int] = []
        _ = try SnapshotBuilder.build(
            input: examplesPath(), output: directory.file("p.snap"), version: nil, progress: { reported.append($0) })
        #expect(reported.last == 12)
    }

    @Test func snapshotProfileKeepsItsSnapshotAlive() throws {
        let directory = try TemporaryDirectory()
        let output = directory.file("alive.snap")
        _ = try SnapshotBuilder.build(input: examplesPath(), output: output, version: nil, progress: nil)
        weak var weakSnapshot: ProfileSnapshot?
        var profile: SnapshotProfile?
        do {
            let snapshot = try ProfileSnapshot.load(path: output)
            weakSnapshot = snapshot
            profile = snapshot.profile(for: Identity(namespace: "ECID", id: "4712"))
        }
        #expect(weakSnapshot != nil)
        #expect(profile?.attribute(at: AttributePath(["loyalty", "tier"])) == .string("platinum"))
        profile = nil
        #expect(weakSnapshot == nil)
    }
}

@Suite("Format hashes match OfferdCore")
struct SnapshotHashTests {
    @Test(arguments: ["", "vip", "offer-gold-10", "é✓😀", String(repeating: "long key ", count: 20)])
    func snapshotHashEqualsStableHash(_ text: String) {
        #expect(SnapshotHash.of(text) == stableHash(text.utf8))
        #expect(SnapshotHash.of(Array(text.utf8)) == stableHash(text.utf8))
        #expect(InternedName(text).hash == SnapshotHash.of(text))
        let path = AttributePath([text, "x"])
        #expect(SnapshotHash.of(path.canonicalBytes) == path.hash)
    }

    @Test func identityHashFoldsTheNamespaceOnly() {
        let expected = stableHash(Array("ecid".utf8) + [0x1F] + Array("Ab-1".utf8))
        #expect(SnapshotFormat.identityHash(namespace: "ECID", id: "Ab-1") == expected)
        #expect(SnapshotFormat.identityHash(namespace: "eCid", id: "Ab-1") == expected)
        #expect(SnapshotFormat.identityHash(namespace: "ECID", id: "ab-1") != expected)
    }
}
