import Foundation
import NIOCore
import OfferdCore
import OfferdSnapshot
import OfferdSnapshotBuilder
import OfferdTransport
import OfferdWire
import Testing

@testable import OfferdServer

/// The in-process request path: request bytes in, response bytes out, no sockets.
@Suite struct DecisioningServiceTests {
    static let catalogJSON = """
        {
          "version": "svc-1",
          "placements": [
            {"id": "web", "channel": "web", "contentType": "html"},
            {"id": "mail", "channel": "email", "contentType": "html"}
          ],
          "offers": [
            {"id": "offer-gold", "status": "approved", "priority": 20,
             "eligibility": {"condition": "profile.loyalty.tier = \\"gold\\""},
             "representations": [{"placement": "web", "content": "gold"}, {"placement": "mail", "content": "gold"}]},
            {"id": "offer-any", "status": "approved", "priority": 10,
             "representations": [{"placement": "web", "content": "any"}, {"placement": "mail", "content": "any"}]}
          ],
          "fallbackOffers": [
            {"id": "fallback", "representations": [{"placement": "web", "content": "hi"}, {"placement": "mail", "content": "hi"}]}
          ],
          "collections": [{"id": "all", "offers": ["offer-gold", "offer-any"]}],
          "decisions": [
            {"id": "dec", "status": "live", "fallback": "fallback",
             "scopes": [{"placement": "web", "criteria": [{"collection": "all"}]},
                        {"placement": "mail", "criteria": [{"collection": "all"}]}]}
          ]
        }
        """

    static let profileLines = [
        #"{"identities":[{"namespace":"ECID","id":"gold"}],"consents":{},"audiences":[],"attributes":{"loyalty":{"tier":"gold"}}}"#,
        #"{"identities":[{"namespace":"ECID","id":"optout"}],"consents":{"personalize":{"content":{"val":"n"}}},"attributes":{"loyalty":{"tier":"gold"}}}"#,
        #"{"identities":[{"namespace":"ECID","id":"unsub"}],"consents":{"marketing":{"email":{"val":"n"}}},"attributes":{"loyalty":{"tier":"gold"}}}"#,
    ]

    struct Fixture {
        let service: DecisioningService
        let directory: URL
    }

    static func makeService(allowExplain: Bool = false, loaded: Bool = true) throws -> Fixture {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("offerd-svc-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let source = directory.appendingPathComponent("profiles.jsonl")
        try (profileLines.joined(separator: "\n") + "\n").write(to: source, atomically: true, encoding: .utf8)
        let snapshotPath = directory.appendingPathComponent("profiles.snap").path
        _ = try SnapshotBuilder.build(input: source.path, output: snapshotPath, version: "snap-1", progress: nil)
        let catalog = try Catalog.load(bytes: Array(catalogJSON.utf8), fileName: "catalog.json")
        let engine = DecisionEngine(catalog: catalog, options: EngineOptions())
        let metrics = ServerMetrics()
        let service = DecisioningService(
            catalogs: AtomicReferenceStore(
                loaded ? LoadedCatalog(engine: engine, path: "catalog.json", metrics: metrics) : nil),
            snapshots: AtomicReferenceStore(loaded ? try ProfileSnapshot.load(path: snapshotPath) : nil),
            allowExplain: allowExplain, metrics: metrics)
        return Fixture(service: service, directory: directory)
    }

    static func call(
        _ service: DecisioningService, _ request: DecisionRequest, path: String = DecisioningService.decidePath,
        deadline: NIODeadline? = nil
    ) -> GRPCUnaryReply {
        var buffer = ByteBufferAllocator().buffer(capacity: 256)
        buffer.writeBytes(DecideCodec.encodeRequest(request))
        return service.handle(
            GRPCUnaryCall(path: path, message: buffer, deadline: deadline), allocator: ByteBufferAllocator())
    }

    static func response(_ reply: GRPCUnaryReply) throws -> DecideResponseMessage {
        guard case .message(let buffer) = reply else {
            throw ServiceTestError.notAMessage("\(reply)")
        }
        return try DecideCodec.decodeResponse(Array(buffer.readableBytesView))
    }

    static func status(_ reply: GRPCUnaryReply) -> GRPCStatus.Code? {
        if case .failure(let status) = reply { return status.code }
        return nil
    }

    enum ServiceTestError: Error { case notAMessage(String) }

    static func request(_ id: String, _ scopes: [(String, String)] = [("dec", "web")], explain: Bool = false)
        -> DecisionRequest
    {
        DecisionRequest(
            requestID: "r1", identity: Identity(namespace: "ECID", id: id),
            scopes: scopes.map { ScopeRequest(decisionID: $0.0, placementID: $0.1, itemCount: 2) }, explain: explain)
    }

    /// Asked for every call, with a length check before the bytes: exactly the two reflection paths are streams.
    @Test func onlyTheReflectionPathsAreMessageStreams() throws {
        let fixture = try Self.makeService()
        let service = fixture.service
        #expect(service.isMessageStream(path: ServerReflection.v1Path))
        #expect(service.isMessageStream(path: ServerReflection.v1AlphaPath))
        for path in [
            DecisioningService.decidePath, DecisioningService.healthCheckPath, "", "/",
            // As long as the v1 and v1alpha paths, with other bytes; and one byte short of each.
            String(ServerReflection.v1Path.reversed()), String(ServerReflection.v1AlphaPath.reversed()),
            String(ServerReflection.v1Path.dropLast()), String(ServerReflection.v1AlphaPath.dropLast()),
        ] {
            #expect(!service.isMessageStream(path: path), "\(path)")
        }
    }

    @Test func decidesWithVersionsAndProfileFound() throws {
        let fixture = try Self.makeService()
        let answer = try Self.response(Self.call(fixture.service, Self.request("gold")))
        #expect(answer.requestID == "r1")
        #expect(answer.profileFound)
        #expect(answer.catalogVersion == "svc-1")
        #expect(answer.snapshotVersion == "snap-1")
        #expect(answer.propositions.map { $0.items.map(\.id) } == [["offer-gold", "offer-any"]])
    }

    @Test func personalizationOptOutGetsOnlyTheFallback() throws {
        let fixture = try Self.makeService()
        let answer = try Self.response(
            Self.call(fixture.service, Self.request("optout", [("dec", "web"), ("dec", "mail")])))
        // Both scopes answered, or the loop below would check nothing.
        #expect(answer.propositions.count == 2)
        for proposition in answer.propositions {
            #expect(proposition.outcome == .fallback)
            #expect(proposition.reason == .personalizationDenied)
            #expect(proposition.items.map(\.id) == ["fallback"])
        }
    }

    @Test func unsubscribedChannelGetsNothing() throws {
        let fixture = try Self.makeService()
        let answer = try Self.response(
            Self.call(fixture.service, Self.request("unsub", [("dec", "mail"), ("dec", "web")])))
        #expect(answer.propositions[0].outcome == .suppressed)
        #expect(answer.propositions[0].reason == .marketingDenied)
        #expect(answer.propositions[0].items.isEmpty)
        #expect(answer.propositions[1].outcome == .offers)
    }

    @Test func unknownProfileIsDecidedWithoutData() throws {
        let fixture = try Self.makeService()
        let answer = try Self.response(Self.call(fixture.service, Self.request("nobody")))
        #expect(!answer.profileFound)
        #expect(answer.propositions[0].items.map(\.id) == ["offer-any"])
    }

    @Test func invalidArgumentBeforePermissionDenied() throws {
        let fixture = try Self.makeService()
        #expect(Self.status(Self.call(fixture.service, Self.request("gold", [], explain: true))) == .invalidArgument)
        #expect(Self.status(Self.call(fixture.service, Self.request("gold", explain: true))) == .permissionDenied)
        let allowed = try Self.makeService(allowExplain: true)
        let answer = try Self.response(Self.call(allowed.service, Self.request("gold", explain: true)))
        #expect(!answer.propositions[0].trace.isEmpty)
    }

    @Test func garbageBytesAreInvalidArgument() throws {
        let fixture = try Self.makeService()
        var buffer = ByteBufferAllocator().buffer(capacity: 4)
        buffer.writeBytes([0xFF, 0xFF, 0xFF])
        let reply = fixture.service.handle(
            GRPCUnaryCall(path: DecisioningService.decidePath, message: buffer, deadline: nil),
            allocator: ByteBufferAllocator())
        #expect(Self.status(reply) == .invalidArgument)
    }

    @Test func unavailableUntilLoadedAndAfterShutdown() throws {
        let empty = try Self.makeService(loaded: false)
        #expect(Self.status(Self.call(empty.service, Self.request("gold"))) == .unavailable)
        #expect(!empty.service.isReady)
        let fixture = try Self.makeService()
        #expect(fixture.service.isReady)
        fixture.service.beginShutdown()
        #expect(!fixture.service.isReady)
        #expect(Self.status(Self.call(fixture.service, Self.request("gold"))) == .unavailable)
    }

    @Test func expiredDeadlineIsDeadlineExceeded() throws {
        let fixture = try Self.makeService()
        let reply = Self.call(fixture.service, Self.request("gold"), deadline: .now() - .seconds(1))
        #expect(Self.status(reply) == .deadlineExceeded)
    }

    @Test func unknownMethodIsUnimplemented() throws {
        let fixture = try Self.makeService()
        #expect(Self.status(Self.call(fixture.service, Self.request("gold"), path: "/x.Y/Z")) == .unimplemented)
    }

    @Test func healthFollowsReadiness() throws {
        let fixture = try Self.makeService()
        func check(_ service: String) -> GRPCUnaryReply {
            var buffer = ByteBufferAllocator().buffer(capacity: 16)
            // HealthCheckRequest { string service = 1; }
            buffer.writeBytes([0x0A, UInt8(service.utf8.count)] + Array(service.utf8))
            return fixture.service.handle(
                GRPCUnaryCall(path: DecisioningService.healthCheckPath, message: buffer, deadline: nil),
                allocator: ByteBufferAllocator())
        }
        guard case .message(let serving) = check("offerd.v1.Decisioning") else {
            Issue.record("health check failed")
            return
        }
        #expect(Array(serving.readableBytesView) == HealthCodec.encodeCheckResponse(.serving))
        #expect(Self.status(check("other")) == .notFound)
        fixture.service.beginShutdown()
        guard case .message(let notServing) = check("") else {
            Issue.record("health check failed")
            return
        }
        #expect(Array(notServing.readableBytesView) == HealthCodec.encodeCheckResponse(.notServing))
    }

    @Test func metricsCountCallsAndDecisions() throws {
        let fixture = try Self.makeService()
        _ = Self.call(fixture.service, Self.request("optout"))
        let text = String(
            decoding: OfferdServer.metricsText(metrics: fixture.service.metrics, service: fixture.service),
            as: UTF8.self)
        #expect(text.contains(#"offerd_grpc_calls_total{method="offerd.v1.Decisioning/Decide",status="OK"} 1"#))
        #expect(text.contains(#"offerd_decisions_total{outcome="fallback",reason="personalization_denied"} 1"#))
        #expect(text.contains(#"offerd_catalog_info{version="svc-1"} 1"#))
        #expect(text.contains("offerd_snapshot_profiles 3"))
        // Per decision of the catalog, by outcome.
        #expect(text.contains(#"offerd_decision_outcomes_total{decision="dec",outcome="fallback"} 1"#))
        #expect(text.contains(#"offerd_decision_outcomes_total{decision="dec",outcome="offers"} 0"#))
    }

    @Test func metricsHaveHelpAndOnlyPossibleSeries() throws {
        let fixture = try Self.makeService()
        _ = Self.call(fixture.service, Self.request("gold"))
        _ = Self.call(fixture.service, Self.request("gold"), path: "/offerd.v1.Decisioning/Nope")
        var bad = ByteBufferAllocator().buffer(capacity: 4)
        bad.writeBytes([0xFF, 0xFF])
        _ = fixture.service.handle(
            GRPCUnaryCall(path: DecisioningService.decidePath, message: bad, deadline: nil),
            allocator: ByteBufferAllocator())
        let text = String(
            decoding: OfferdServer.metricsText(metrics: fixture.service.metrics, service: fixture.service),
            as: UTF8.self)
        let lines = text.split(separator: "\n").map(String.init)
        // Every metric has one HELP line, right before its TYPE line.
        for (index, line) in lines.enumerated() where line.hasPrefix("# TYPE ") {
            let name = line.split(separator: " ")[2]
            #expect(index > 0 && lines[index - 1].hasPrefix("# HELP \(name) "), "no HELP for \(name)")
        }
        #expect(lines.filter { $0.hasPrefix("# HELP ") }.count == lines.filter { $0.hasPrefix("# TYPE ") }.count)
        // gRPC statuses by name, as they happened.
        #expect(text.contains(#"offerd_grpc_calls_total{method="offerd.v1.Decisioning/Decide",status="OK"} 1"#))
        #expect(
            text.contains(
                #"offerd_grpc_calls_total{method="offerd.v1.Decisioning/Decide",status="INVALID_ARGUMENT"} 1"#))
        #expect(text.contains(#"offerd_grpc_calls_total{method="unknown",status="UNIMPLEMENTED"} 1"#))
        #expect(!text.contains(#"status="0""#) && !text.contains(#"status="DATA_LOSS""#))
        // Outcomes only with the reasons they can have: 11 series.
        let decisionSeries = lines.filter { $0.hasPrefix("offerd_decisions_total{") }
        #expect(decisionSeries.count == 11, "\(decisionSeries)")
        #expect(!text.contains(#"outcome="unspecified""#))
        #expect(!text.contains(#"offerd_decisions_total{outcome="offers",reason="decision_not_found"}"#))
        #expect(text.contains(#"offerd_decisions_total{outcome="offers",reason="unspecified"} 1"#))
    }
}
