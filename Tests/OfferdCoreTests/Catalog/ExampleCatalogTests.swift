import Foundation
import Testing

@testable import OfferdCore

/// The shipped example catalog must load and decide the way docs/catalog.md describes.
@Suite struct ExampleCatalogTests {
    static func loadExample() throws -> Catalog {
        // Tests/OfferdCoreTests/Catalog/this file -> the package root.
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        let data = try Data(contentsOf: root.appendingPathComponent("examples/catalog.json"))
        return try Catalog.load(bytes: [UInt8](data), fileName: "examples/catalog.json")
    }

    /// The profile of SPEC 5.1.
    static let ana = InMemoryProfile(
        identities: [Identity(namespace: "ECID", id: "4711"), Identity(namespace: "Email", id: "ana@example.com")],
        consents: ConsentRecord(
            personalizeContent: .y,
            marketingAny: .y,
            marketingEmail: .n,
            marketingSMS: .y,
            marketingPush: .y
        ),
        audiences: ["vip", "cart-abandoner"],
        attributes: (try? JSONParser.parse(
            #"{"loyalty": {"tier": "gold", "points": 1200}, "homeAddress": {"city": "Paris"}}"#
        ))
            ?? .object([]),
        capping: [("offer-gold-10", 2)]
    )

    @Test func loads() throws {
        let catalog = try Self.loadExample()
        #expect(catalog.version == "2026-11-29.1")
        #expect(
            catalog.summary
                == CatalogSummary(
                    placements: 4,
                    offers: 12,
                    fallbackOffers: 2,
                    collections: 5,
                    rules: 4,
                    decisions: 5
                )
        )
    }

    @Test func decidesForAna() throws {
        let engine = DecisionEngine(catalog: try Self.loadExample())
        let result = engine.decide(
            request(
                [
                    scope("web-banner", decision: "dec-homepage", items: 3),
                    scope("email-hero", decision: "dec-newsletter"),
                    scope("sms-text", decision: "dec-sms-retention"),
                    scope("web-banner", decision: "dec-winter-campaign"),
                    scope("web-banner", decision: "dec-summer-2026"),
                    scope("app-card", decision: "dec-homepage", items: 2),
                ],
                identity: Identity(namespace: "email", id: "ana@example.com"),
                context: ["device": .string("mobile")]
            ),
            profile: Self.ana,
            now: testNow
        )
        let propositions = result.propositions
        #expect(propositions[0].items.map(\.id) == ["offer-vip-lounge", "offer-gold-10", "offer-points-boost"])
        #expect(propositions[1].outcome == .suppressed && propositions[1].reason == .marketingDenied)
        #expect(propositions[2].items.map(\.id) == ["offer-cart-reminder"])
        #expect(propositions[3].outcome == .error && propositions[3].reason == .decisionInactive)
        #expect(propositions[4].outcome == .error && propositions[4].reason == .decisionInactive)
        // Formula: margin * 10 + priority / 10; the loyalty offers are already proposed above.
        #expect(propositions[5].items.map(\.id) == ["offer-mobile-flash", "offer-free-shipping"])
        #expect(propositions[5].items.first?.score == 1.8 * 10 + 6.5)
        #expect(propositions[5].items.last?.score == nil)
    }

    @Test func decidesForAnUnknownVisitor() throws {
        let engine = DecisionEngine(catalog: try Self.loadExample())
        let result = engine.decide(
            request(
                [scope("web-banner", decision: "dec-homepage", items: 2)],
                identity: Identity(namespace: "ECID", id: "new")
            ),
            now: testNow
        )
        #expect(!result.profileFound)
        #expect(result.propositions[0].items.map(\.id) == ["offer-app-download", "offer-free-shipping"])
        let fallback = DecisionEngine(
            catalog: try Self.loadExample(),
            options: EngineOptions(unknownProfile: .fallback)
        )
        .decide(request([scope("web-banner", decision: "dec-homepage")]), now: testNow)
        #expect(fallback.propositions[0].items.map(\.id) == ["fallback-brand"])
        #expect(fallback.propositions[0].reason == .unknownProfile)
    }
}
