import OfferdCore
import OfferdWire

/// Everything the benchmarks measure against, built once in `setup` and never inside a measurement.
///
/// The catalog mirrors `benchmarks/load/make_catalog.py`: 1,000 approved offers in 10 tag collections, an
/// eligibility rule on every offer (four kinds, a quarter through named rules), a capping limit on every offer,
/// three placements, and one live decision whose scopes rank a first collection by formula and a second one by
/// priority.
public struct Fixtures: Sendable {
    public static let offerCount = 1_000
    public static let collectionCount = 10
    /// 2026-11-29T12:00:00Z, inside every date window of the catalog (it has none).
    public static let now: Double = 1_795_953_600

    public let engine: DecisionEngine
    public let profile: InMemoryProfile
    public let oneScopeRequest: DecisionRequest
    public let threeScopeRequest: DecisionRequest
    public let oneScopeRequestBytes: [UInt8]
    public let threeScopeRequestBytes: [UInt8]
    public let oneScopeResult: DecisionResult
    public let threeScopeResult: DecisionResult
    /// The `real` shape of `make_catalog.py` (issue 15's workload): a formula over the offer and the profile.
    public let realEngine: DecisionEngine
    /// One scope answered by the formula criterion (`page` is not `checkout`).
    public let realFormulaRequest: DecisionRequest
    /// One scope answered by the priority criterion (`page` is `checkout`).
    public let realPriorityRequest: DecisionRequest
    /// 3 and 30 scopes (the limit) answered by the formula criterion, 3 items each.
    public let realThreeScopeRequest: DecisionRequest
    public let realThirtyScopeRequest: DecisionRequest

    /// Built on first use; `setup` touches it so that the cost never lands in a measurement.
    public static let shared: Fixtures = {
        do {
            return try Fixtures()
        } catch {
            // A benchmark without its fixture measures nothing; stopping loudly is the only useful answer.
            fatalError("benchmark fixture: \(error)")
        }
    }()

    private init() throws {
        let catalog = try Catalog.load(bytes: Array(Self.catalogJSON().utf8), fileName: "bench-catalog.json")
        engine = DecisionEngine(catalog: catalog)
        profile = InMemoryProfile(
            identities: [Identity(namespace: "ECID", id: "40781223569043137440718254216473581213")],
            consents: ConsentRecord(personalizeContent: .y, marketingAny: .y, marketingEmail: .y),
            audiences: ["vip", "cart-abandoner", "newsletter"],
            attributes: .object([
                JSONMember(
                    key: "loyalty",
                    value: .object([
                        JSONMember(key: "tier", value: .string("gold")),
                        JSONMember(key: "points", value: .number(2_400)),
                    ])),
                JSONMember(key: "homeAddress", value: .object([JSONMember(key: "city", value: .string("Paris"))])),
            ]),
            // Some offers the profile has seen often enough to be capped (limit 5), some not yet.
            capping: (0..<20).map {
                (offerID: "offer-\($0 * 10)", counts: CappingCounts(decision: $0 % 2 == 0 ? 5 : 2))
            }
        )
        let context: [String: ContextValue] = [
            "page": .string("home"), "device": .string("mobile"), "cartValue": .number(129.5),
        ]
        let identity = Identity(namespace: "ECID", id: "40781223569043137440718254216473581213")
        oneScopeRequest = DecisionRequest(
            requestID: "7c1e2f0a-5b7d-4e44-9a51-3f1d2c8b9e01",
            identity: identity,
            scopes: [ScopeRequest(decisionID: "dec-bench", placementID: "web-banner", itemCount: 3)],
            context: context,
            includeContent: true
        )
        threeScopeRequest = DecisionRequest(
            requestID: "7c1e2f0a-5b7d-4e44-9a51-3f1d2c8b9e02",
            identity: identity,
            scopes: ["web-banner", "email-hero", "app-card"].map {
                ScopeRequest(decisionID: "dec-bench", placementID: $0, itemCount: 3)
            },
            context: context,
            includeContent: true
        )
        oneScopeRequestBytes = DecideCodec.encodeRequest(oneScopeRequest)
        threeScopeRequestBytes = DecideCodec.encodeRequest(threeScopeRequest)
        oneScopeResult = engine.decide(oneScopeRequest, profile: profile, now: Self.now)
        threeScopeResult = engine.decide(threeScopeRequest, profile: profile, now: Self.now)
        realEngine = DecisionEngine(
            catalog: try Catalog.load(bytes: Array(Self.catalogJSON(shape: .real).utf8), fileName: "real-catalog.json"))
        func realRequest(scopes: Int, page: String) -> DecisionRequest {
            let placementIDs = ["web-banner", "email-hero", "app-card"]
            return DecisionRequest(
                requestID: "7c1e2f0a-5b7d-4e44-9a51-3f1d2c8b9e1\(scopes)",
                identity: identity,
                scopes: (0..<scopes).map {
                    ScopeRequest(decisionID: "dec-bench", placementID: placementIDs[$0 % 3], itemCount: 3)
                },
                context: ["page": .string(page), "device": .string("mobile")],
                includeContent: true
            )
        }
        realFormulaRequest = realRequest(scopes: 1, page: "home")
        realPriorityRequest = realRequest(scopes: 1, page: "checkout")
        realThreeScopeRequest = realRequest(scopes: 3, page: "home")
        realThirtyScopeRequest = realRequest(scopes: 30, page: "home")
        var propositions = oneScopeResult.propositions + threeScopeResult.propositions
        for request in [realFormulaRequest, realPriorityRequest, realThreeScopeRequest, realThirtyScopeRequest] {
            propositions += realEngine.decide(request, profile: profile, now: Self.now).propositions
        }
        // A fixture that decides nothing would benchmark the fallback path, not the ranking.
        for proposition in propositions where proposition.outcome != .offers || proposition.items.count != 3 {
            throw FixtureError(message: "expected 3 offers per scope, got \(proposition)")
        }
    }

    /// The shapes of `benchmarks/load/make_catalog.py`.
    public enum CatalogShape: Sendable {
        /// Formula over the offer alone (ranked at load), then priority.
        case bench
        /// Priority on checkout pages, else a formula over the offer and the profile (scored per request).
        case real
    }

    /// The benchmark catalog as JSON text, shaped like `benchmarks/load/make_catalog.py`.
    public static func catalogJSON(shape: CatalogShape = .bench) -> String {
        let placements = ["web-banner": "web", "email-hero": "email", "app-card": "app"]
        let placementIDs = ["web-banner", "email-hero", "app-card"]
        var json = #"{"version":"bench-1","placements":["#
        json += placementIDs.map { id in
            #"{"id":"\#(id)","channel":"\#(placements[id] ?? "web")","contentType":"html"}"#
        }.joined(separator: ",")
        json += #"],"offers":["#
        json += (0..<offerCount).map { index in
            let representations = placementIDs.map { placement in
                #"{"placement":"\#(placement)","format":"text/html","content":"<p>offer \#(index) for \#(placement)</p>"}"#
            }.joined(separator: ",")
            return #"{"id":"offer-\#(index)","name":"Offer \#(index)","status":"approved","#
                + #""priority":\#((index * 7919) % 100),"tags":["c\#(index % collectionCount)"],"#
                + #""characteristics":{"margin":"\#((index * 13) % 50)"},"eligibility":\#(shape == .real ? realEligibility(index) : eligibility(index)),"#
                + #""capping":[{"limit":5}],"representations":[\#(representations)]}"#
        }.joined(separator: ",")
        json += #"],"fallbackOffers":[{"id":"fallback","representations":["#
        json += placementIDs.map { #"{"placement":"\#($0)","content":"hello"}"# }.joined(separator: ",")
        json += #"]}],"collections":["#
        json += (0..<collectionCount).map { #"{"id":"col-\#($0)","anyTags":["c\#($0)"]}"# }.joined(separator: ",")
        json += #"],"rules":["#
        json += (0..<20).map { rule in
            #"{"id":"rule-\#(rule)","condition":"profile.homeAddress.city != null and "#
                + #"profile.loyalty.points > \#(rule * 100)"}"#
        }.joined(separator: ",")
        json += #"],"decisions":[{"id":"dec-bench","status":"live","fallback":"fallback","scopes":["#
        json += [("web-banner", 0), ("email-hero", 3), ("app-card", 6)].map { placement, collection in
            if shape == .real {
                return #"{"placement":"\#(placement)","criteria":["#
                    + #"{"collection":"col-\#(collection)","eligibility":{"condition":"context.page = \"checkout\""}},"#
                    + #"{"collection":"col-\#((collection + 1) % collectionCount)","ranking":{"method":"formula","#
                    + #""formula":"offer.priority + number(offer.characteristics.margin) * 2 + "#
                    + #"profile.loyalty.points / 1000"}}]}"#
            }
            return #"{"placement":"\#(placement)","criteria":["#
                + #"{"collection":"col-\#(collection)","ranking":{"method":"formula","#
                + #""formula":"number(offer.characteristics.margin) * 2 + offer.priority"}},"#
                + #"{"collection":"col-\#((collection + 1) % collectionCount)"}]}"#
        }.joined(separator: ",")
        json += "]}]}"
        return json
    }

    /// The `real` shape's eligibility: a profile attribute and a context value, different for every offer.
    private static func realEligibility(_ index: Int) -> String {
        #"{"condition":"profile.loyalty.points >= \#((index * 37) % 4000) and context.page != \"blocked-\#(index % 7)\""}"#
    }

    /// The four eligibility kinds of `make_catalog.py`, by `index % 4`.
    private static func eligibility(_ index: Int) -> String {
        switch index % 4 {
        case 0: return #"{"condition":"profile.loyalty.points >= \#((index * 37) % 5000)"}"#
        case 1: return #"{"condition":"profile.loyalty.tier in [\"gold\", \"platinum\"] or inAudience(\"vip\")"}"#
        case 2: return #"{"condition":"context.page = \"home\" and not inAudience(\"churn-risk\")"}"#
        default: return #"{"rule":"rule-\#(index % 20)"}"#
        }
    }
}

public struct FixtureError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
