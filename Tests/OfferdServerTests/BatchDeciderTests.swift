import Foundation
import OfferdCore
import OfferdSnapshot
import OfferdSnapshotBuilder
import OfferdWire
import Testing

@testable import OfferdServer

/// `offerd decide batch`'s runner in process: the server's answers line for line, order and bytes whatever the
/// threads and chunk sizes, error lines, consent, audiences, and the files it cannot read or write.
@Suite("batch decisions")
struct BatchDeciderTests {
    /// The example catalog and 400 synthetic profiles: a world with formulas, rules over attributes, audiences and
    /// context, consents of every kind, caps and marketing channels.
    final class World: @unchecked Sendable {
        let directory: URL
        let catalog: LoadedCatalog
        let snapshot: ProfileSnapshot
        let identities: [Identity]
        /// A fixed request time, so the server and the batch decide at the same instant.
        static let now: Double = 1_780_000_000

        init(profiles: Int = 400, consentDefault: ConsentDefault = .granted) throws {
            directory = FileManager.default.temporaryDirectory.appendingPathComponent(
                "offerd-batch-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            let source = directory.appendingPathComponent("profiles.jsonl").path
            try SyntheticProfiles.write(count: profiles, seed: 11, to: source)
            let snapshotPath = directory.appendingPathComponent("profiles.snap").path
            _ = try SnapshotBuilder.build(input: source, output: snapshotPath, version: "snap-b", progress: nil)
            snapshot = try ProfileSnapshot.load(path: snapshotPath)
            catalog = try loadCatalog(
                path: Self.repositoryRoot + "/examples/catalog.json",
                options: EngineOptions(consentDefault: consentDefault))
            identities = snapshot.allProfiles().flatMap(\.identities)
        }

        deinit { try? FileManager.default.removeItem(at: directory) }

        static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().path

        func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

        func decider(threads: Int, chunkBytes: Int = 256 << 10, chunkProfiles: Int = 2048) -> BatchDecider {
            var configuration = BatchDecider.Configuration(threads: threads)
            configuration.chunkBytes = chunkBytes
            configuration.chunkProfiles = chunkProfiles
            return BatchDecider(catalog: catalog, snapshot: snapshot, configuration: configuration, now: { Self.now })
        }

        /// Runs a batch and returns its output lines and counts.
        func run(_ decider: BatchDecider, input: BatchDecider.Input) throws -> (lines: [String], stats: BatchStats) {
            let outputPath = path("out-\(UUID().uuidString).jsonl")
            let output = try BatchOutput(path: outputPath)
            let stats = try decider.run(input: input, output: output)
            try output.close()
            let text = try String(contentsOfFile: outputPath, encoding: .utf8)
            return (text.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init), stats)
        }

        /// The server for this world, with explain allowed (a batch honours explain).
        func service() -> DecisioningService {
            DecisioningService(
                catalogs: AtomicReferenceStore(catalog), snapshots: AtomicReferenceStore(snapshot), allowExplain: true,
                metrics: ServerMetrics(), now: { Self.now })
        }
    }

    /// Random requests over the world: known and unknown identities (namespaces in any case), real and wrong
    /// decisions and placements, context the rules read, every flag.
    static func randomRequests(_ world: World, count: Int, seed: UInt64) -> [DecisionRequest] {
        var random = SplitMix64(seed: seed)
        let decisions = [
            "dec-homepage", "dec-newsletter", "dec-sms-retention", "dec-winter-campaign", "dec-summer-2026",
            "dec-nope",
        ]
        let placements = ["web-banner", "app-card", "email-hero", "sms-text", "nowhere"]
        return (0..<count).map { index in
            var identity = world.identities[Int(random.next() % UInt64(world.identities.count))]
            switch random.next() % 6 {
            case 0: identity = Identity(namespace: "ECID", id: "unknown-\(random.next() % 50)")
            case 1: identity.namespace = identity.namespace.uppercased()
            default: break
            }
            var context: [String: ContextValue] = [:]
            if random.next() % 2 == 0 { context["device"] = .string(random.next() % 2 == 0 ? "mobile" : "desktop") }
            if random.next() % 3 == 0 { context["page.type"] = .string("app") }
            if random.next() % 4 == 0 { context["cartValue"] = .number(Double(random.next() % 500) / 4) }
            return DecisionRequest(
                requestID: random.next() % 5 == 0 ? "" : "req-\(index)",
                identity: identity,
                scopes: (0..<(1 + random.next() % 3)).map { _ in
                    ScopeRequest(
                        decisionID: decisions[Int(random.next() % UInt64(decisions.count))],
                        placementID: placements[Int(random.next() % UInt64(placements.count))],
                        itemCount: UInt32(random.next() % 5))
                },
                context: context,
                allowDuplicates: random.next() % 3 == 0, includeContent: random.next() % 2 == 0,
                includeMetadata: random.next() % 2 == 0, dryRun: random.next() % 4 == 0,
                explain: random.next() % 4 == 0)
        }
    }

    static func jsonLines(_ requests: [DecisionRequest]) -> String {
        requests.map { String(decoding: DecideJSONCodec.encodeRequest($0), as: UTF8.self) + "\n" }.joined()
    }

    /// A response with its random parts blanked: proposition ids, and a request id the server generated.
    static func comparable(_ response: DecideResponseMessage, generatedRequestID: Bool) -> DecideResponseMessage {
        var response = response
        if generatedRequestID {
            #expect(response.requestID.utf8.count == 36)
            response.requestID = ""
        }
        for index in response.propositions.indices {
            #expect(response.propositions[index].propositionID.utf8.count == 36)
            response.propositions[index].propositionID = ""
        }
        return response
    }

    /// A line with every UUID blanked out (proposition ids and generated request ids are random).
    static func masked(_ line: String) -> String {
        line.replacingOccurrences(
            of: "\"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\"", with: "\"UUID\"",
            options: .regularExpression)
    }

    @Test("every line equals the server's answer to the same request", arguments: [1, 2])
    func equalsServer(seed: UInt64) throws {
        let world = try World()
        let requests = Self.randomRequests(world, count: 600, seed: seed)
        let inputPath = world.path("in.jsonl")
        try Self.jsonLines(requests).write(toFile: inputPath, atomically: true, encoding: .utf8)
        let (lines, stats) = try world.run(world.decider(threads: 3, chunkBytes: 4096), input: .lines(path: inputPath))
        try #require(lines.count == requests.count)
        #expect(stats.requests == requests.count && stats.errors == 0)
        let service = world.service()
        var outcomes = Set<Int>()
        for (request, line) in zip(requests, lines) {
            let server = try DecisioningServiceTests.response(DecisioningServiceTests.call(service, request))
            let batch = try DecideJSONCodec.decodeResponse(Array(line.utf8))
            let generated = request.requestID.isEmpty
            #expect(
                Self.comparable(batch, generatedRequestID: generated)
                    == Self.comparable(server, generatedRequestID: generated), "\(line)")
            for proposition in batch.propositions {
                outcomes.insert(proposition.outcomeNumber * 8 + proposition.reasonNumber)
            }
        }
        // The world reaches offers, fallbacks, suppressions and errors, so the comparison saw each.
        #expect(outcomes.count >= 6, "\(outcomes.sorted())")
    }

    @Test("output is the same bytes (UUIDs aside) and in input order whatever the threads and chunk sizes")
    func orderAndThreads() throws {
        let world = try World()
        let requests = Self.randomRequests(world, count: 1500, seed: 3)
        let inputPath = world.path("in.jsonl")
        try Self.jsonLines(requests).write(toFile: inputPath, atomically: true, encoding: .utf8)
        var outputs: [[String]] = []
        for (threads, chunkBytes) in [(1, 256 << 10), (1, 700), (2, 333), (4, 1000), (8, 200)] {
            let (lines, _) = try world.run(
                world.decider(threads: threads, chunkBytes: chunkBytes), input: .lines(path: inputPath))
            outputs.append(lines.map(Self.masked))
        }
        for output in outputs.dropFirst() { #expect(output == outputs[0]) }
        // In input order: the request ids read back in sequence.
        let ids = outputs[0].compactMap { line -> String? in
            guard let response = try? DecideJSONCodec.decodeResponse(Array(line.utf8)) else { return nil }
            return response.requestID
        }
        #expect(ids == requests.map { $0.requestID.isEmpty ? "UUID" : $0.requestID })

        var audienceOutputs: [[String]] = []
        for (threads, chunkProfiles) in [(1, 2048), (3, 7), (8, 1)] {
            let (lines, _) = try world.run(
                world.decider(threads: threads, chunkProfiles: chunkProfiles),
                input: .audience(nil, scopes: [ScopeRequest(decisionID: "dec-homepage", placementID: "web-banner")]))
            audienceOutputs.append(lines.map(Self.masked))
        }
        for output in audienceOutputs.dropFirst() { #expect(output == audienceOutputs[0]) }
    }

    @Test("a bad line gets an error line in its place and the run goes on")
    func errorLines() throws {
        let world = try World()
        let good = Self.jsonLines([
            DecisionRequest(
                requestID: "ok", identity: world.identities[0],
                scopes: [ScopeRequest(decisionID: "dec-homepage", placementID: "web-banner")])
        ])
        let input =
            good + "\n   \r\nnot json\n"
            + #"{"requestId":"x","identity":{"namespace":"n","id":"i"},"scopes":[{"decisionId":"d","placementId":"p","itemCount":31}]}"#
            + "\n" + #"{"requestId":"y","color":"red"}"# + "\r\n" + #"{"request_id":"z","scopes":[]}"# + "\n"
            + String(repeating: "x", count: 900) + "\n" + good.dropLast() // a last line without newline
        let inputPath = world.path("bad.jsonl")
        try input.write(toFile: inputPath, atomically: true, encoding: .utf8)
        var configuration = BatchDecider.Configuration(threads: 2)
        configuration.maximumLineBytes = 500
        configuration.chunkBytes = 64
        let decider = BatchDecider(
            catalog: world.catalog, snapshot: world.snapshot, configuration: configuration, now: { World.now })
        let (lines, stats) = try world.run(decider, input: .lines(path: inputPath))
        try #require(lines.count == 7, "\(lines)")
        #expect(lines[0].hasPrefix(#"{"requestId":"ok","propositions":"#))
        #expect(
            lines[1]
                == #"{"requestId":"","line":4,"error":{"code":"invalid_argument","message":"invalid JSON: line 1, column 1: invalid literal"}}"#
        )
        #expect(
            lines[2]
                == #"{"requestId":"x","line":5,"error":{"code":"invalid_argument","message":"scopes[0].item_count 31 exceeds 30"}}"#
        )
        #expect(
            lines[3]
                == #"{"requestId":"y","line":6,"error":{"code":"invalid_argument","message":"unknown field \"color\""}}"#
        )
        #expect(
            lines[4]
                == #"{"requestId":"z","line":7,"error":{"code":"invalid_argument","message":"identity.namespace is empty"}}"#
        )
        #expect(
            lines[5]
                == #"{"requestId":"","line":8,"error":{"code":"invalid_argument","message":"line 8 is longer than 500 bytes"}}"#
        )
        #expect(lines[6].hasPrefix(#"{"requestId":"ok","propositions":"#))
        #expect(stats.requests == 2 && stats.errors == 5)
    }

    @Test("empty input, an audience with no members, and every profile")
    func emptyAndAudiences() throws {
        let world = try World()
        let emptyPath = world.path("empty.jsonl")
        try "".write(toFile: emptyPath, atomically: true, encoding: .utf8)
        let empty = try world.run(world.decider(threads: 2), input: .lines(path: emptyPath))
        #expect(empty.lines.isEmpty && empty.stats.requests == 0 && empty.stats.errors == 0)

        let scopes = [ScopeRequest(decisionID: "dec-homepage", placementID: "web-banner", itemCount: 2)]
        let nobody = try world.run(world.decider(threads: 2), input: .audience("no-such-audience", scopes: scopes))
        #expect(nobody.lines.isEmpty && nobody.stats.requests == 0)

        let everyone = try world.run(
            world.decider(threads: 2, chunkProfiles: 50), input: .audience(nil, scopes: scopes))
        let profiles = world.snapshot.allProfiles()
        try #require(everyone.lines.count == profiles.count)
        #expect(nobody.stats.profilesWalked == profiles.count && everyone.stats.profilesWalked == profiles.count)
        let service = world.service()
        for (profile, line) in zip(profiles, everyone.lines) {
            let primary = profile.primaryIdentity
            let batch = try DecideJSONCodec.decodeResponse(Array(line.utf8))
            #expect(batch.requestID == primary.namespace + ":" + primary.id)
            // The server's answer for the profile's primary identity with the same scopes.
            let server = try DecisioningServiceTests.response(
                DecisioningServiceTests.call(
                    service, DecisionRequest(requestID: batch.requestID, identity: primary, scopes: scopes)))
            #expect(
                Self.comparable(batch, generatedRequestID: false) == Self.comparable(server, generatedRequestID: false))
        }

        // A named audience: exactly its members, in file order.
        let vip = try world.run(world.decider(threads: 2, chunkProfiles: 9), input: .audience("vip", scopes: scopes))
        let members = profiles.filter { $0.isMember(of: InternedName("vip")) }
        #expect(!members.isEmpty && members.count < profiles.count)
        #expect(
            try vip.lines.map { try DecideJSONCodec.decodeResponse(Array($0.utf8)).requestID }
                == members.map { $0.primaryIdentity.namespace + ":" + $0.primaryIdentity.id })
    }

    @Test("a profile that opted out of personalization gets only the fallback, whatever the input mode")
    func personalizationConsent() throws {
        let world = try World(profiles: 0)
        let directory = world.directory
        let source = directory.appendingPathComponent("consent.jsonl").path
        try
            ([
                #"{"identities":[{"namespace":"ECID","id":"out"}],"consents":{"personalize":{"content":{"val":"n"}}},"audiences":["vip"],"attributes":{"loyalty":{"tier":"gold","points":5000}}}"#,
                #"{"identities":[{"namespace":"ECID","id":"pending"}],"consents":{"personalize":{"content":{"val":"p"}}},"audiences":["vip"],"attributes":{"loyalty":{"tier":"platinum","points":9000}}}"#,
                #"{"identities":[{"namespace":"ECID","id":"in"}],"consents":{"personalize":{"content":{"val":"y"}}},"audiences":["vip"],"attributes":{"loyalty":{"tier":"gold","points":5000}}}"#,
            ].joined(separator: "\n") + "\n").write(toFile: source, atomically: true, encoding: .utf8)
        let snapshotPath = directory.appendingPathComponent("consent.snap").path
        _ = try SnapshotBuilder.build(input: source, output: snapshotPath, version: "c", progress: nil)
        let snapshot = try ProfileSnapshot.load(path: snapshotPath)
        let decider = BatchDecider(
            catalog: world.catalog, snapshot: snapshot, configuration: .init(threads: 2), now: { World.now })
        let scopes = [
            ScopeRequest(decisionID: "dec-homepage", placementID: "web-banner", itemCount: 3),
            ScopeRequest(decisionID: "dec-homepage", placementID: "app-card", itemCount: 3),
        ]
        let audience = try world.run(decider, input: .audience("vip", scopes: scopes)).lines
        let inputPath = world.path("consent-in.jsonl")
        try Self.jsonLines(
            ["out", "pending", "in"].map {
                DecisionRequest(
                    requestID: $0, identity: Identity(namespace: "ecid", id: $0), scopes: scopes, includeContent: true,
                    includeMetadata: true, explain: true)
            }
        ).write(toFile: inputPath, atomically: true, encoding: .utf8)
        let lines = try world.run(decider, input: .lines(path: inputPath)).lines
        for output in [audience, lines] {
            try #require(output.count == 3)
            for line in output.prefix(2) {
                let response = try DecideJSONCodec.decodeResponse(Array(line.utf8))
                for proposition in response.propositions {
                    #expect(proposition.outcome == .fallback && proposition.reason == .personalizationDenied, "\(line)")
                    #expect(proposition.items.map(\.id) == ["fallback-brand"], "\(line)")
                    // The input lines ask for explain, which names no offer: one entry that says consent decided.
                    let explained = output == lines
                    #expect(
                        proposition.trace.map(\.verdict) == (explained ? ["personalization-denied"] : []), "\(line)")
                    #expect(proposition.trace.allSatisfy { $0.offerID.isEmpty }, "\(line)")
                }
            }
            let granted = try DecideJSONCodec.decodeResponse(Array(output[2].utf8))
            #expect(granted.propositions.allSatisfy { $0.outcome == .offers }, "\(output[2])")
        }
    }

    @Test("an unreadable input and an unwritable output stop the run with a message naming the file")
    func unreadableAndUnwritable() throws {
        let world = try World(profiles: 3)
        let missing = world.path("missing.jsonl")
        let output = try BatchOutput(path: world.path("out.jsonl"))
        #expect(throws: BatchDecider.Failure.self) {
            try world.decider(threads: 2).run(input: .lines(path: missing), output: output)
        }
        do {
            _ = try world.decider(threads: 2).run(input: .lines(path: missing), output: output)
        } catch {
            #expect(error.message == "cannot read \(missing): No such file or directory")
        }
        // A directory opens but cannot be read.
        do {
            _ = try world.decider(threads: 1).run(input: .lines(path: world.directory.path), output: output)
            Issue.record("a directory was read as input")
        } catch {
            #expect(error.message == "cannot read \(world.directory.path): Is a directory")
        }
        let unwritable = world.path("no-such-dir/out.jsonl")
        #expect(throws: BatchDecider.Failure(message: "cannot write \(unwritable): No such file or directory")) {
            try BatchOutput(path: unwritable)
        }
        // A full device: every write fails after the open.
        if FileManager.default.fileExists(atPath: "/dev/full") {
            let full = try BatchOutput(path: "/dev/full")
            do {
                _ = try world.decider(threads: 2).run(
                    input: .audience(
                        nil, scopes: [ScopeRequest(decisionID: "dec-homepage", placementID: "web-banner")]),
                    output: full)
                Issue.record("writing to /dev/full succeeded")
            } catch {
                #expect(error.message == "cannot write /dev/full: No space left on device")
            }
        }
    }
}

extension BatchDecider.Failure: Equatable {
    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.message == rhs.message }
}
