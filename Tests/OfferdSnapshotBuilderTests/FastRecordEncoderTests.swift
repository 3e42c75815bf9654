import Foundation
import OfferdCore
import OfferdSnapshotTestSupport
import Testing

@testable import OfferdSnapshot
@testable import OfferdSnapshotBuilder

/// The builder's fast line parser against the general path (ProfileSourceParser + RecordEncoder): it may hand
/// any line to the general path, but must never accept a line that path refuses, and what it accepts must
/// load as the same profile.
@Suite("Fast record encoder agrees with the general path")
struct FastRecordEncoderTests {
    /// Whether the fast path accepts `line`.
    private func fastAccepts(_ line: [UInt8]) -> Bool {
        var encoder = FastRecordEncoder()
        var strings = StringTableBuilder()
        var output: [UInt8] = []
        let accepted = encoder.encode(line, strings: &strings, into: &output)
        if !accepted { #expect(output.isEmpty, "a refused line wrote bytes") }
        return accepted
    }

    private func generalAccepts(_ line: [UInt8]) -> Bool {
        (try? ProfileSourceParser.parse(line: line)) != nil
    }

    /// Lines the fast path must refuse (the general path refuses them too) or may hand over (valid, unusual).
    static let handWrittenLines: [String] = [
        // Valid, common shapes.
        #"{"identities":[{"namespace":"ECID","id":"1"}]}"#,
        #" { "identities" : [ { "namespace" : "ECID" , "id" : "1" } ] , "audiences" : [ ] } "#,
        #"{"identities":[{"namespace":"ECID","id":"1","primary":true,"authenticatedState":"ambiguous"}]}"#,
        #"{"identities":[{"namespace":"ECID","id":"1"}],"consents":{"collect":{"val":"bogus"},"share":{"val":null}}}"#,
        #"{"identities":[{"namespace":"ECID","id":"1"}],"consents":{"marketing":{"whatsApp":{"val":""},"preferred":"email"}}}"#,
        #"{"identities":[{"namespace":"ECID","id":"1"}],"consents":{"personalize":{"content":{"time":"x"},"other":1}}}"#,
        #"{"identities":[{"namespace":"ECID","id":"1"}],"capping":{"a":2.0,"b":0,"c":9007199254740992}}"#,
        #"{"identities":[{"namespace":"ECID","id":"1"}],"attributes":{"a":[1,"x",true,null],"b":{"c":{"d":null}}}}"#,
        #"{"identities":[{"namespace":"ECID","id":"1"}],"attributes":{"n":-0,"m":-0.0,"p":0.1,"q":123456789012345,"r":-12.25}}"#,
        #"{"identities":[{"namespace":"ECID","id":"1"}],"attributes":{"city":"Zürich","emoji":"😀","a":[]}}"#,
        #"{"attributes":{"x":1},"capping":{"o":1},"audiences":["vip","vip"],"identities":[{"id":"1","namespace":"ECID"}]}"#,
        #"{"identities":[{"namespace":"ECID","id":"1"},{"namespace":"ecid","id":"2"}],"consents":{}}"#,
        // Valid, but handed to the general path (escapes, exponents, long numbers, non-ASCII keys).
        #"{"identities":[{"namespace":"ECID","id":"a\"b"}]}"#,
        #"{"identities":[{"namespace":"ECID","id":"1"}],"attributes":{"e":1e3}}"#,
        #"{"identities":[{"namespace":"ECID","id":"1"}],"attributes":{"long":0.12345678901234567}}"#,
        #"{"identities":[{"namespace":"ECID","id":"1"}],"attributes":{"clé":1}}"#,
        #"{"identities":[{"namespace":"ECID","id":"é"}]}"#,
        // Invalid: every one must be refused by both.
        #"{"identities":[]}"#,
        #"{"identities":[{"namespace":"ECID"}]}"#,
        #"{"identities":[{"id":"1"}]}"#,
        #"{"identities":[{"namespace":"","id":"1"}]}"#,
        #"{"identities":[{"namespace":"ECID","id":""}]}"#,
        #"{"identities":[{"namespace":"ECID","id":1}]}"#,
        #"{"identities":[{"namespace":"ECID","id":"1","other":1}]}"#,
        #"{"identities":[{"namespace":"ECID","id":"1","id":"2"}]}"#,
        #"{"identities":[{"namespace":"ECID","id":"1"}],"identities":[{"namespace":"ECID","id":"2"}]}"#,
        #"{"identities":{"namespace":"ECID","id":"1"}}"#,
        #"{"audiences":["vip"]}"#,
        #"{}"#,
        #"[]"#,
        #""#,
        #"{"identities":[{"namespace":"ECID","id":"1"}],"unknown":1}"#,
        #"{"identities":[{"namespace":"ECID","id":"1"}],"audiences":[1]}"#,
        #"{"identities":[{"namespace":"ECID","id":"1"}],"audiences":"vip"}"#,
        #"{"identities":[{"namespace":"ECID","id":"1"}],"attributes":[]}"#,
        #"{"identities":[{"namespace":"ECID","id":"1"}],"attributes":{"a":[[1]]}}"#,
        #"{"identities":[{"namespace":"ECID","id":"1"}],"attributes":{"a":[{"b":1}]}}"#,
        #"{"identities":[{"namespace":"ECID","id":"1"}],"attributes":{"a":1,"a":2}}"#,
        #"{"identities":[{"namespace":"ECID","id":"1"}],"attributes":{"o":{"a":1,"a":2}}}"#,
        #"{"identities":[{"namespace":"ECID","id":"1"}],"attributes":{"a":01}}"#,
        #"{"identities":[{"namespace":"ECID","id":"1"}],"attributes":{"a":1.}}"#,
        #"{"identities":[{"namespace":"ECID","id":"1"}],"attributes":{"a":.5}}"#,
        #"{"identities":[{"namespace":"ECID","id":"1"}],"attributes":{"a":-}}"#,
        #"{"identities":[{"namespace":"ECID","id":"1"}],"attributes":{"a":+1}}"#,
        #"{"identities":[{"namespace":"ECID","id":"1"}],"attributes":{"a":tru}}"#,
        #"{"identities":[{"namespace":"ECID","id":"1"}],"attributes":{"a":1,}}"#,
        #"{"identities":[{"namespace":"ECID","id":"1"}],"attributes":{"a":"x\#ty"}}"#,
        #"{"identities":[{"namespace":"ECID","id":"1"}],"capping":{"a":-1}}"#,
        #"{"identities":[{"namespace":"ECID","id":"1"}],"capping":{"a":1.5}}"#,
        #"{"identities":[{"namespace":"ECID","id":"1"}],"capping":{"a":"1"}}"#,
        #"{"identities":[{"namespace":"ECID","id":"1"}],"capping":{"a":9007199254740993}}"#,
        #"{"identities":[{"namespace":"ECID","id":"1"}],"consents":{"personalize":{"content":{"val":"maybe"}}}}"#,
        #"{"identities":[{"namespace":"ECID","id":"1"}],"consents":{"personalize":{"content":{"val":1}}}}"#,
        #"{"identities":[{"namespace":"ECID","id":"1"}],"consents":{"personalize":{"content":"y"}}}"#,
        #"{"identities":[{"namespace":"ECID","id":"1"}],"consents":{"marketing":{"any":{"val":"Y"}}}}"#,
        #"{"identities":[{"namespace":"ECID","id":"1"}],"consents":{"marketing":[]}}"#,
        #"{"identities":[{"namespace":"ECID","id":"1"}],"consents":{"collect":{"val":"y","val":"n"}}}"#,
        #"{"identities":[{"namespace":"ECID","id":"1"}],"consents":[]}"#,
        #"{"identities":[{"namespace":"ECID","id":"1"}]} x"#,
        #"{"identities":[{"namespace":"ECID","id":"1"}]"#,
        #"{"identities":[{"namespace":"ECID","id":"1"}],}"#,
    ]

    @Test(arguments: handWrittenLines)
    func fastPathNeverAcceptsWhatTheGeneralPathRefuses(_ line: String) {
        let bytes = Array(line.utf8)
        if fastAccepts(bytes) { #expect(generalAccepts(bytes), "fast path accepted an invalid line: \(line)") }
    }

    @Test func invalidUTF8AndControlBytesAreNeverAccepted() {
        let prefix = Array(#"{"identities":[{"namespace":"ECID","id":"1"}],"attributes":{"a":""#.utf8)
        let suffix = Array(#""}}"#.utf8)
        let bad: [[UInt8]] = [
            [0xFF], [0xC0, 0x80], [0xE0, 0x80, 0x80], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xC3],
            [0xE2, 0x82], [0x80], [0x01], [0x1F],
        ]
        for sequence in bad {
            let line = prefix + sequence + suffix
            #expect(!generalAccepts(line))
            #expect(!fastAccepts(line), "accepted \(sequence)")
        }
        // Valid multi-byte sequences are accepted by both.
        for sequence: [UInt8] in [[0xC3, 0xBC], [0xE2, 0x82, 0xAC], [0xF0, 0x9F, 0x98, 0x80], [0xEF, 0xBF, 0xBF]] {
            let line = prefix + sequence + suffix
            #expect(generalAccepts(line))
            #expect(fastAccepts(line), "refused \(sequence)")
        }
    }

    @Test func generatedLinesAllTakeTheFastPath() throws {
        let directory = try TemporaryDirectory()
        let source = directory.file("generated.jsonl")
        try SyntheticProfiles.write(count: 2_000, seed: 5, to: source)
        for line in try sourceLines(source) {
            #expect(fastAccepts(line))
        }
    }

    /// Every profile of a source built with the fast path reads back exactly as when built without it.
    @Test func snapshotsBuiltWithAndWithoutTheFastPathHoldTheSameProfiles() throws {
        let directory = try TemporaryDirectory()
        let source = directory.file("mixed.jsonl")
        try SyntheticProfiles.write(count: 1_500, seed: 8, to: source)
        var lines = try sourceLines(source)
        // Valid hand-written lines with distinct identities, some of which fall back to the general path.
        for (position, line) in Self.handWrittenLines.enumerated() where generalAccepts(Array(line.utf8)) {
            let renamed = line.replacingOccurrences(of: #""id":"1""#, with: #""id":"hand-\#(position)""#)
                .replacingOccurrences(of: #""id":"2""#, with: #""id":"hand2-\#(position)""#)
                .replacingOccurrences(of: #""id":"é""#, with: #""id":"é-\#(position)""#)
                .replacingOccurrences(of: #""id":"a\"b""#, with: #""id":"a\"b-\#(position)""#)
            lines.append(Array(renamed.utf8))
        }
        try writeBytes(Array(lines.joined(separator: [0x0A])), to: source)

        let fastOutput = directory.file("fast.snap")
        let generalOutput = directory.file("general.snap")
        let fastSummary = try SnapshotBuilder.build(
            input: source, output: fastOutput, version: "v", progress: nil, useFastPath: true)
        let generalSummary = try SnapshotBuilder.build(
            input: source, output: generalOutput, version: "v", progress: nil, useFastPath: false)
        #expect(fastSummary.profileCount == lines.count)
        #expect(generalSummary.profileCount == lines.count)
        let fast = try ProfileSnapshot.load(path: fastOutput)
        let general = try ProfileSnapshot.load(path: generalOutput)
        let fastProfiles = fast.allProfiles()
        let generalProfiles = general.allProfiles()
        #expect(fastProfiles.count == generalProfiles.count)
        for (fastProfile, generalProfile) in zip(fastProfiles, generalProfiles) {
            let expected = generalProfile.toInMemoryProfile()
            #expect(fastProfile.toInMemoryProfile() == expected)
            for path in probePaths(of: expected.attributes) {
                #expect(fastProfile.attribute(at: path) == generalProfile.attribute(at: path))
            }
            for identity in expected.identities {
                #expect(fast.profile(for: identity)?.primaryIdentity == expected.primaryIdentity)
            }
            for audience in expected.audiences {
                #expect(fastProfile.isMember(of: InternedName(audience)))
            }
            for entry in expected.capping {
                for event in CappingEvent.allCases {
                    #expect(
                        fastProfile.cappingCount(for: InternedName(entry.offerID), event: event) == entry.counts[event])
                }
            }
        }
    }

    @Test func duplicateIdentitiesAreFoundOnTheFastPath() throws {
        let directory = try TemporaryDirectory()
        let source = directory.file("duplicates.jsonl")
        try writeBytes(
            Array(
                (#"{"identities":[{"namespace":"ECID","id":"1"}]}"# + "\n"
                    + #"{"identities":[{"namespace":"ecid","id":"1"}]}"# + "\n").utf8), to: source)
        #expect(
            throws: SnapshotBuildError.duplicateIdentity(
                identity: Identity(namespace: "ecid", id: "1"), firstLine: 1, line: 2)
        ) {
            try SnapshotBuilder.build(input: source, output: directory.file("out.snap"), version: nil, progress: nil)
        }
        try writeBytes(
            Array(#"{"identities":[{"namespace":"Email","id":"a"},{"namespace":"EMAIL","id":"a"}]}"#.utf8), to: source)
        #expect(
            throws: SnapshotBuildError.duplicateIdentity(
                identity: Identity(namespace: "EMAIL", id: "a"), firstLine: 1, line: 1)
        ) {
            try SnapshotBuilder.build(input: source, output: directory.file("out.snap"), version: nil, progress: nil)
        }
    }
}
