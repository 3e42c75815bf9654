import PropertyBased
import Testing

@testable import OfferdCore

/// A random catalog: every channel's placement, 1 to 8 offers with random priority, status, dates, audiences or
/// shared conditions, and capping, and decisions with and without a fallback over several criteria.
func randomCatalog(seed: UInt64) throws -> Catalog {
    var random = SplitMix64(state: seed)
    let offerCount = Int.random(in: 1...8, using: &random)
    var offers: [String] = []
    for index in 0..<offerCount {
        var extra = #""tags": ["\#(["t", "u"].randomElement(using: &random) ?? "t")"]"#
        // Shared profile-only conditions are memoised per request, and the decision loop passes over a candidate
        // whose memoised condition failed without reading the offer: that path must not leak either.
        switch Int.random(in: 0..<4, using: &random) {
        case 0: extra += #", "eligibility": {"anyAudiences": ["vip"]}"#
        case 1: extra += #", "eligibility": {"condition": "inAudience(\"vip\")"}"#
        case 2: extra += #", "eligibility": {"condition": "not inAudience(\"vip\")"}"#
        default: break
        }
        if Bool.random(using: &random) {
            extra += #", "capping": [{"limit": \#(Int.random(in: 1...3, using: &random))}]"#
        }
        if Int.random(in: 0..<5, using: &random) == 0 { extra += #", "endDate": "2020-01-01T00:00:00Z""# }
        let placements = Channel.allCases.map(\.rawValue).filter { _ in Int.random(in: 0..<4, using: &random) > 0 }
        offers.append(
            offerJSON(
                "o\(index)",
                priority: Int.random(in: 0...3, using: &random),
                status: Int.random(in: 0..<6, using: &random) == 0 ? "draft" : "approved",
                placements: placements.isEmpty ? ["web"] : placements,
                extra: extra
            )
        )
    }
    let criteria =
        #"[{"collection": "u"}, {"collection": "t", "eligibility": {"condition": "not inAudience(\"x\")"}}, "#
        + #"{"collection": "all", "ranking": {"method": "formula", "formula": "offer.priority * 2"}}]"#
    return try engineCatalog(
        offers: offers,
        decisions: [decisionJSON("d", criteria: criteria), decisionJSON("nofb", fallback: nil, criteria: criteria)],
        collections:
            #"[{"id": "all", "anyTags": ["t", "u"]}, {"id": "t", "anyTags": ["t"]}, {"id": "u", "allTags": ["u"]}]"#
    )
}

@Suite struct ConsentPropertyTests {
    static let choices = Gen.int(in: 0...(ConsentChoice.allCases.count - 1))
        .map { ConsentChoice(rawValue: UInt8($0)) ?? .empty }

    @Test func consentIsNeverLeaked() async throws {
        await propertyCheck(
            count: 300,
            input: Self.choices.array(of: 6),
            Gen.int(in: 0...1_000_000),
            Gen.int(in: 0...7),
            Gen.bool.array(of: 4)
        ) { codes, seed, countSeed, flags in
            let consents = ConsentRecord(
                personalizeContent: codes[0],
                marketingAny: codes[1],
                marketingEmail: codes[2],
                marketingSMS: codes[3],
                marketingPush: codes[4],
                marketingCall: codes[5]
            )
            let options = EngineOptions(
                consentDefault: flags[0] ? .granted : .denied,
                unknownProfile: flags[1] ? .decide : .fallback
            )
            let known = flags[2]
            let person = profile(
                "p\(seed)",
                consents: consents,
                audiences: ["vip"],
                capping: [("o0", CappingCounts(decision: countSeed % 3))]
            )
            let catalog = try randomCatalog(seed: UInt64(seed))
            let engine = DecisionEngine(catalog: catalog, options: options)
            let scopes = Channel.allCases.flatMap { channel in
                [
                    scope(channel.rawValue, decision: "d", items: UInt32(1 + countSeed % 3)),
                    scope(channel.rawValue, decision: "nofb", items: 2),
                ]
            }
            let result = engine.decide(
                request(scopes, allowDuplicates: flags[3], explain: countSeed % 2 == 0),
                profile: known ? person : nil,
                now: testNow
            )
            let effective = known ? consents : ConsentRecord.empty
            let personalization = ConsentResolver.personalizationGranted(effective, default: options.consentDefault)
            // One proposition per scope, or the checks below would pass over a short or empty answer.
            #expect(result.propositions.count == scopes.count)
            for (scopeRequest, proposition) in zip(scopes, result.propositions) {
                let channel = Channel(rawValue: scopeRequest.placementID) ?? .web
                let marketing = ConsentResolver.marketingGranted(
                    effective,
                    channel: channel,
                    default: options.consentDefault
                )
                if !personalization {
                    // Denied personalization ends in the fallback, or in nothing (no fallback, or marketing denied).
                    #expect(proposition.outcome == .fallback || proposition.outcome == .suppressed)
                    #expect(proposition.items.count == (proposition.outcome == .fallback ? 1 : 0))
                    #expect(proposition.items.allSatisfy { $0.isFallback }, "personalized item with denied consent")
                    // Explain says why in one proposition-level entry, and names no offer.
                    #expect(proposition.trace.count <= 1)
                    #expect(proposition.trace.allSatisfy { $0.offerID.isEmpty && $0.criterion.isEmpty })
                }
                if channel.isMarketing && !marketing {
                    #expect(proposition.outcome == .suppressed)
                    #expect(proposition.reason == .marketingDenied)
                    #expect(proposition.items.isEmpty)
                }
                if proposition.outcome == .offers {
                    #expect(personalization && (marketing || !channel.isMarketing))
                    #expect(!proposition.items.isEmpty && proposition.items.count <= scopeRequest.effectiveItemCount)
                }
            }
            if !flags[3] {
                let chosen = result.propositions.flatMap { $0.items.filter { !$0.isFallback }.map(\.id) }
                #expect(Set(chosen).count == chosen.count, "an offer was proposed twice")
            }
        }
    }
}
