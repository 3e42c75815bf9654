import OfferdCore
import OfferdSnapshotBuilder
import OfferdSnapshotTestSupport
import Testing

@testable import OfferdSnapshot

/// The engine reads a snapshot record in place (attributes, audiences, capping counters, and the primary
/// identity's bytes for the tie-break hash); deciding on it must give exactly what deciding on the same profile
/// as plain values gives.
@Suite("Decisions on snapshot records equal decisions on in-memory profiles")
struct SnapshotDecisionParityTests {
    /// Ten offers of equal priority, so the per-person tie-break hash picks among them, with eligibility on the
    /// synthetic profiles' attributes and audiences, and capping limits their counters reach.
    private static let catalogJSON = """
        {"version": "parity-1",
         "placements": [{"id": "web", "channel": "web", "contentType": "html"},
                        {"id": "mail", "channel": "email", "contentType": "html"}],
         "offers": [
           \((0..<10).map(offer).joined(separator: ",\n"))
         ],
         "fallbackOffers": [{"id": "fb", "representations": [{"placement": "web", "content": "fb"},
                                                             {"placement": "mail", "content": "fb"}]}],
         "collections": [{"id": "all", "anyTags": ["t"]}],
         "decisions": [{"id": "d", "status": "live", "fallback": "fb",
                        "scopes": [{"placement": "web", "criteria": [{"collection": "all"}]},
                                   {"placement": "mail", "criteria": [{"collection": "all"}]}]}]}
        """

    private static func offer(_ index: Int) -> String {
        let conditions = [
            "profile.loyalty.points >= \(index * 400)",
            #"profile.loyalty.tier in ["gold", "platinum"] or inAudience("vip")"#,
            #"not inAudience("churn-risk")"#,
            #"profile.homeAddress.city != null"#,
        ]
        return """
            {"id": "offer-\(index)", "status": "approved", "priority": 5, "tags": ["t"],
             "eligibility": {"condition": \(jsonString(conditions[index % conditions.count]))},
             "capping": [{"limit": \(1 + index % 5)}],
             "representations": [{"placement": "web", "content": "w\(index)"},
                                 {"placement": "mail", "content": "m\(index)"}]}
            """
    }

    private static func jsonString(_ text: String) -> String {
        "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }

    @Test func everyProfileDecidesAlikeInPlaceAndAsPlainValues() throws {
        let engine = DecisionEngine(
            catalog: try Catalog.load(bytes: Array(Self.catalogJSON.utf8), fileName: "parity.json"))
        let directory = try TemporaryDirectory()
        let source = directory.file("profiles.jsonl")
        try SyntheticProfiles.write(count: 600, seed: 11, to: source)
        let output = directory.file("profiles.snap")
        _ = try SnapshotBuilder.build(input: source, output: output, version: "parity", progress: nil)
        let snapshot = try ProfileSnapshot.load(path: output)

        var offersProposed = 0
        var distinctFirstOffers = Set<String>()
        for stored in snapshot.allProfiles() {
            let plain = stored.toInMemoryProfile()
            // Every identity, so secondary ones too: the tie-break hash always uses the primary one.
            for identity in plain.identities {
                let request = DecisionRequest(
                    identity: identity,
                    scopes: [
                        ScopeRequest(decisionID: "d", placementID: "web", itemCount: 3),
                        ScopeRequest(decisionID: "d", placementID: "mail", itemCount: 2),
                    ])
                let found = try #require(snapshot.profile(for: identity))
                let inPlace = engine.decide(request, profile: found, now: 1_700_000_000)
                let asValues = engine.decide(request, profile: plain, now: 1_700_000_000)
                #expect(inPlace == asValues, "\(identity)")
                let items = inPlace.propositions.flatMap(\.items).filter { $0.id != "fb" }
                offersProposed += items.count
                if let first = inPlace.propositions.first?.items.first { distinctFirstOffers.insert(first.id) }
            }
        }
        // The comparison means something only if real offers were chosen, and by more than one tie-break.
        #expect(offersProposed > 500)
        #expect(distinctFirstOffers.count >= 4)
    }
}
