import Testing

@testable import OfferdCore

/// SplitMix64: a small seeded generator, so a failing seed can be replayed.
private struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64

    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var mixed = state
        mixed = (mixed ^ (mixed >> 30)) &* 0xbf58_476d_1ce4_e5b9
        mixed = (mixed ^ (mixed >> 27)) &* 0x94d0_49bb_1331_11eb
        return mixed ^ (mixed >> 31)
    }

    mutating func chance(_ probability: Double) -> Bool { Double.random(in: 0..<1, using: &self) < probability }
}

/// One random catalog, profile and request: small offer counts and few priorities, so ties, full slots,
/// partial fills and empty answers all happen often.
private struct RandomCase {
    let catalog: Catalog
    let profile: InMemoryProfile
    let request: DecisionRequest
    /// Live counts for some of the offers (nil in half the cases: the snapshot's counts alone).
    let live: TableLiveCounts?

    static let requestFormulas = [
        "profile.points * offer.priority", "if(inAudience(\"a1\"), offer.priority, 1)",
        "number(context.boost) + offer.priority", "now - now + offer.priority",
        "if(profile.tier = offer.characteristics.kind, 2, 1) * offer.priority",
        "if(offer.characteristics.kind = \"a\", profile.points, -profile.points)",
        "min(profile.points, offer.priority * 3) + number(offer.characteristics.margin)",
        "len(if(offer.priority > 1, profile.tier, offer.characteristics.kind)) - offer.priority",
        "number(if(inAudience(\"a1\"), offer.characteristics.margin, context.boost))",
        // No folded program (`lower` of a value of both sides): every candidate scored by the plain path.
        "len(lower(if(offer.priority > 1, profile.tier, \"X\"))) + offer.priority",
        // Separable (an offer part and a request part under one operator): walked in score order, stopping early.
        "offer.priority + number(offer.characteristics.margin) * 2 + profile.points / 4",
        "number(context.boost) - offer.priority", "offer.priority * number(context.boost)",
        "number(offer.characteristics.margin) / number(context.boost)",
        "profile.points - number(offer.characteristics.margin) / 2",
        "number(offer.characteristics.margin) - profile.points / 3",
        // Distinct offer parts whose scores tie once rounded (1 + 1e-17 = 1).
        "offer.priority * \(decimal(-17)) + profile.points",
        // Scores that overflow to null (so 0) for some offers or requests, out of the offer parts' order.
        "offer.priority * \(decimal(308)) + number(context.boost)",
        "number(offer.characteristics.margin) * \(decimal(299)) + profile.points * \(decimal(298))",
        "(offer.priority - 1.5) * \(decimal(308)) - number(context.boost) * \(decimal(308))",
    ]
    static let constantFormulas = [
        "number(offer.characteristics.margin) * 2", "offer.priority - 1",
        "0 - offer.priority", "-offer.priority * 0", "1",
        "number(offer.characteristics.margin) / offer.priority",
        "max(offer.priority, number(offer.characteristics.margin))",
        "if(offer.characteristics.kind = \"a\", 2, offer.priority)",
        "if(offer.priority > 1, -0, 0)",
    ]
    static let eligibilities = [
        #""eligibility": {"condition": "profile.tier = \"gold\""}"#,
        #""eligibility": {"condition": "profile.points > 5 or offer.priority > 1"}"#,
        #""eligibility": {"anyAudiences": ["a1", "a2"]}"#,
        #""eligibility": {"allAudiences": ["a1", "a2"]}"#,
        #""eligibility": {"rule": "r1"}"#,
        #""eligibility": {"condition": "context.page = \"home\""}"#,
        // Inline conditions of several tests (typed request values), and one with a literal too long to inline.
        #""eligibility": {"condition": "profile.points >= 3 and context.page != \"home\""}"#,
        #""eligibility": {"condition": "not (profile.tier = \"gold\" or context.page = \"home\")"}"#,
        #""eligibility": {"condition": "profile.points < 6 and context.page != \"home-and-seventeen\""}"#,
        // Thresholds on one request value, each needed by its condition: the walk's gate passes over the offers whose
        // bound the request misses (the bound is drawn per offer, see `threshold`).
        #""eligibility": {"condition": "profile.points >= THRESHOLD and context.page != \"blocked\""}"#,
        #""eligibility": {"condition": "profile.points > THRESHOLD"}"#,
        #""eligibility": {"condition": "THRESHOLD <= profile.points"}"#,
        #""eligibility": {"condition": "profile.points <= THRESHOLD or profile.points >= 9"}"#,
        #""eligibility": {"condition": "profile.points < THRESHOLD and inAudience(\"a1\")"}"#,
        #""eligibility": {"condition": "profile.points >= THRESHOLD and profile.points >= 4"}"#,
        #""eligibility": {"condition": "context.boost >= THRESHOLD"}"#,
        #""eligibility": {"condition": "not (profile.points < THRESHOLD)"}"#,
        #""eligibility": {"condition": "now > NOW_BOUND"}"#,
    ]

    init(seed: UInt64) throws {
        var random = SeededGenerator(state: seed)
        let offerCount = Int.random(in: 1...14, using: &random)
        var offers: [String] = []
        var offerIDs: [String] = []
        for index in 0..<offerCount {
            // Some ids past the eight bytes the tie hash reads from a candidate's screen, beside shorter ones.
            let lengthened = random.chance(0.3) ? "-lengthened" : ""
            let id = "o\(Int.random(in: 0...999, using: &random))-\(index)\(lengthened)"
            offerIDs.append(id)
            var fields: [String] = [random.chance(0.5) ? #""tags": ["t"]"# : #""tags": ["t", "u"]"#]
            if random.chance(0.3) {
                // The thresholds straddle the profiles' points (0 to 10) and the boosts (-2 to 2).
                let threshold = String(Int.random(in: -3...11, using: &random))
                let eligibility = Self.eligibilities.randomElement(using: &random) ?? ""
                fields.append(
                    eligibility.replacingOccurrences(of: "THRESHOLD", with: threshold).replacingOccurrences(
                        of: "NOW_BOUND", with: String(1_799_999_995 + Int(threshold)!)))
            }
            if random.chance(0.3) {
                var rules: [String] = []
                for _ in 0..<Int.random(in: 1...3, using: &random) {
                    var rule = #"{"limit": \#(Int.random(in: 1...3, using: &random))"#
                    if random.chance(0.5) {
                        rule += #", "scope": "\#(CappingScope.allCases.randomElement(using: &random)!.rawValue)""#
                    }
                    if random.chance(0.5) {
                        rule += #", "event": "\#(CappingEvent.allCases.randomElement(using: &random)!.rawValue)""#
                    }
                    if random.chance(0.5) {
                        rule += #", "period": "\#(CappingPeriod.allCases.randomElement(using: &random)!.rawValue)""#
                    }
                    rules.append(rule + "}")
                }
                fields.append(#""capping": [\#(rules.joined(separator: ", "))]"#)
            }
            if random.chance(0.05) {
                fields.append(#""endDate": "2020-01-01T00:00:00Z""#)
            } else if random.chance(0.05) {
                fields.append(#""startDate": "2030-01-01T00:00:00Z""#)
            }
            let margin = random.chance(0.8) ? #", "margin": "\#(Int.random(in: 0...3, using: &random))""# : ""
            let kind = ["a", "b"].randomElement(using: &random) ?? "a"
            offers.append(
                offerJSON(
                    id,
                    priority: Int.random(in: 0...3, using: &random),
                    status: random.chance(0.9) ? "approved" : "draft",
                    placements: random.chance(0.85) ? ["web", "app"] : ["app"],
                    characteristics: #"{"kind": "\#(kind)"\#(margin)}"#,
                    extra: fields.joined(separator: ", ")
                )
            )
        }
        var criteria: [String] = []
        for _ in 0..<Int.random(in: 1...3, using: &random) {
            var fields = [#""collection": "\#(random.chance(0.6) ? "all" : "some")""#]
            switch Int.random(in: 0..<3, using: &random) {
            case 0:
                fields.append(#""ranking": {"method": "priority"}"#)
            case 1:
                let formula = Self.constantFormulas.randomElement(using: &random) ?? "1"
                fields.append(#""ranking": {"method": "formula", "formula": "\#(jsonEscaped(formula))"}"#)
            default:
                let formula = Self.requestFormulas.randomElement(using: &random) ?? "1"
                fields.append(#""ranking": {"method": "formula", "formula": "\#(jsonEscaped(formula))"}"#)
            }
            if random.chance(0.15) { fields.append(#""eligibility": {"condition": "profile.points > 3"}"#) }
            criteria.append("{" + fields.joined(separator: ", ") + "}")
        }
        catalog = try engineCatalog(
            offers: offers,
            decisions: [
                decisionJSON(criteria: "[" + criteria.joined(separator: ", ") + "]", placements: ["web", "app"])
            ],
            collections: #"[{"id": "all", "anyTags": ["t"]}, {"id": "some", "allTags": ["u"]}]"#,
            rules: #"[{"id": "r1", "condition": "profile.points >= 2"}]"#
        )
        let capping = offerIDs.filter { _ in random.chance(0.3) }.map {
            (
                offerID: $0,
                counts: CappingCounts(
                    decision: Int.random(in: 0...3, using: &random),
                    display: random.chance(0.5) ? Int.random(in: 0...3, using: &random) : 0,
                    interact: random.chance(0.5) ? Int.random(in: 0...3, using: &random) : 0)
            )
        }
        if random.chance(0.5) {
            var table = TableLiveCounts()
            for offerID in offerIDs where random.chance(0.4) {
                table.counts[
                    TableLiveCounts.Key(
                        offer: offerID, event: CappingEvent.allCases.randomElement(using: &random)!,
                        period: CappingPeriod.allCases.randomElement(using: &random)!,
                        scope: CappingScope.allCases.randomElement(using: &random)!)] = Int.random(
                        in: 0...3, using: &random)
            }
            live = table
        } else {
            live = nil
        }
        let tier = ["gold", "silver"].randomElement(using: &random) ?? "gold"
        profile = OfferdCoreTests.profile(
            "p\(Int.random(in: 0...99, using: &random))",
            audiences: ["a1", "a2", "a3"].filter { _ in random.chance(0.5) },
            attributes: #"{"tier": "\#(tier)", "points": \#(Int.random(in: 0...10, using: &random))}"#,
            capping: capping
        )
        var scopes: [ScopeRequest] = []
        for _ in 0..<Int.random(in: 1...3, using: &random) {
            scopes.append(scope(random.chance(0.7) ? "web" : "app", items: UInt32.random(in: 1...4, using: &random)))
        }
        var context: [String: ContextValue] = [:]
        if random.chance(0.5) { context["page"] = .string("home") }
        if random.chance(0.5) {
            context["boost"] = .number(Double(Int.random(in: -2...2, using: &random)))
        } else if random.chance(0.2) {
            context["boost"] = .string(random.chance(0.5) ? "1.5" : "x")
        }
        request = OfferdCoreTests.request(
            scopes,
            identity: Identity(namespace: "ECID", id: profile.primaryIdentity.id),
            context: context,
            allowDuplicates: random.chance(0.3)
        )
    }
}

/// `10^exponent` as a rule literal (rules have no exponent notation).
func decimal(_ exponent: Int) -> String {
    exponent >= 0
        ? "1" + String(repeating: "0", count: exponent) : "0." + String(repeating: "0", count: -exponent - 1) + "1"
}

private func jsonEscaped(_ text: String) -> String {
    text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
}

@Suite struct StaticRankingTests {
    /// The fast path (tie groups, stop when full) against the explain path, which tests and ranks every offer.
    @Test(arguments: 0..<4)
    func fastPathAnswersLikeTheFullEvaluation(block: Int) throws {
        var comparedItems = 0
        var staticCriteria = 0
        var formulaCriteria = 0
        var separableCriteria = 0
        var gatedCriteria = 0
        for seed in UInt64(block * 1000)..<UInt64(block * 1000 + 1000) {
            let random = try RandomCase(seed: seed)
            let engine = DecisionEngine(catalog: random.catalog)
            var explained = random.request
            explained.explain = true
            let now = 1_800_000_000.0
            let fast = engine.decide(random.request, profile: random.profile, live: random.live, now: now)
            var full = engine.decide(explained, profile: random.profile, live: random.live, now: now)
            for index in full.propositions.indices { full.propositions[index].trace = [] }
            #expect(fast == full, "seed \(seed)")
            // `==` on Double ties -0.0 and 0.0; the folded score must be the very value the formula gives.
            let fastScores = fast.propositions.flatMap { $0.items.map { $0.score?.bitPattern } }
            let fullScores = full.propositions.flatMap { $0.items.map { $0.score?.bitPattern } }
            #expect(fastScores == fullScores, "seed \(seed)")
            if fast != full { return }
            comparedItems += fast.propositions.reduce(0) { $0 + $1.items.count }
            for decision in random.catalog.decisions {
                for scope in decision.scopeByPlacement.compactMap({ $0 }) {
                    staticCriteria += scope.criteria.filter { $0.staticRanking != nil }.count
                    formulaCriteria += scope.criteria.filter { $0.formulaRanking != nil }.count
                    separableCriteria += scope.criteria.filter { $0.formulaRanking?.separable != nil }.count
                    gatedCriteria +=
                        scope.criteria.filter { criterion in
                            (criterion.staticRanking ?? criterion.formulaRanking?.candidates)?.gate.key != nil
                        }.count
                }
            }
        }
        // The generator must exercise the fast path, not just fall back everywhere.
        #expect(comparedItems > 1000)
        #expect(staticCriteria > 1000)
        #expect(formulaCriteria > 300)
        #expect(separableCriteria > 150)
        #expect(gatedCriteria > 1000)
    }

    /// The early stop of a separable formula, on cases picked to break a wrong one: a score that overflows to null
    /// (so 0) after the stopping candidate, scores that tie only once rounded, a request term that is not a number,
    /// a negative multiplier (walked from the other end), and personalization consent denied.
    @Test(
        arguments: [
            // (formula, context boost, items, the expected scores best first)
            // c - t: -2.5e308 overflows to null, so offer p0 scores 0 and outranks p2, after p1 stops a walk.
            ("(offer.priority - 1.5) * \(decimal(308)) - number(context.boost) * \(decimal(308))", 1.0, 2, [5e307, 0]),
            // 1 + c * 1e-17 rounds to 1 for every offer: four ties, broken by the per-person hash.
            ("offer.priority * \(decimal(-17)) + number(context.boost)", 1.0, 2, [1, 1]),
            // Not a number: every score is null, so 0.
            ("offer.priority + number(context.page)", 1.0, 3, [0, 0, 0]),
            ("offer.priority * number(context.boost)", -2.0, 2, [0, -2]),
            ("number(context.boost) - offer.priority", 0.5, 1, [0.5]),
        ] as [(String, Double, Int, [Double])])
    func separableWalkStopsOnlyWhenNoLaterScoreCanEnter(
        formula: String, boost: Double, items: Int, scores: [Double]
    ) throws {
        let offers = (0..<4).map { offerJSON("p\($0)", priority: $0, extra: tagged) }
        let criteria = #"[{"collection": "all", "ranking": {"method": "formula", "formula": "\#(formula)"}}]"#
        let catalog = try engineCatalog(
            offers: offers, decisions: [decisionJSON(criteria: criteria, placements: ["web"])])
        let criterion = try #require(catalog.decisions.first?.scopeByPlacement.compactMap { $0 }.first?.criteria.first)
        #expect(criterion.formulaRanking?.separable != nil, "\(formula)")
        let engine = DecisionEngine(catalog: catalog)
        var decisionRequest = request(
            [scope("web", items: UInt32(items))], context: ["boost": .number(boost), "page": .string("home")])
        let now = 1_800_000_000.0
        let fast = engine.decide(decisionRequest, profile: profile(), now: now)
        decisionRequest.explain = true
        var full = engine.decide(decisionRequest, profile: profile(), now: now)
        for index in full.propositions.indices { full.propositions[index].trace = [] }
        #expect(fast == full, "\(formula)")
        #expect(fast.propositions.first?.items.map { $0.score } == scores, "\(formula)")
        // Denied personalization: the fallback only, whatever the formula.
        let denied = engine.decide(
            decisionRequest,
            profile: profile(consents: .init(personalizeContent: .n)),
            now: now)
        #expect(denied.propositions.first?.outcome == .fallback)
        #expect(denied.propositions.first?.items.map(\.isFallback) == [true])
    }

    /// Issue 15's shape at a small scale: offers of few distinct ranks (large tie groups), each eligible above its
    /// own points threshold and on pages but one. The threshold gate and the tie-group skip (a full top-k screens only a candidate that
    /// would enter) against the explain path, for profiles below, among and above the thresholds, without points
    /// and with points that are not a number; and with personalization denied, the fallback only.
    @Test(arguments: ["priority", "offer.priority + profile.points / 1000", "offer.priority * 2"])
    func thresholdGateAndTieGroupsAnswerLikeTheFullEvaluation(formula: String) throws {
        let offers = (0..<40).map { index in
            // A quarter of the offers are ineligible on page `p1` for a reason the gate does not read.
            let condition = "profile.points >= \(index * 10) and context.page != \\\"p\(index % 4)\\\""
            return offerJSON(
                "t\(index)", priority: index % 3,
                extra: tagged + #", "eligibility": {"condition": "\#(condition)"}"#)
        }
        let ranking =
            formula == "priority" ? #"{"method": "priority"}"# : #"{"method": "formula", "formula": "\#(formula)"}"#
        let criteria = #"[{"collection": "all", "ranking": \#(ranking)}]"#
        let catalog = try engineCatalog(
            offers: offers, decisions: [decisionJSON(criteria: criteria, placements: ["web"])])
        let criterion = try #require(catalog.decisions.first?.scopeByPlacement.compactMap { $0 }.first?.criteria.first)
        let gate = try #require((criterion.staticRanking ?? criterion.formulaRanking?.candidates)?.gate)
        #expect(gate.key != nil)
        let engine = DecisionEngine(catalog: catalog)
        let now = 1_800_000_000.0
        var decided = 0
        for points in ["-1", "0", "5", "10", "95", "200", "1000", "null", "\"300\""] {
            for person in 0..<6 {
                let id = "person-\(person)"
                let attributes = #"{"points": \#(points)}"#
                for items in [1, 3, 5] as [UInt32] {
                    var decisionRequest = request(
                        [scope("web", items: items)], identity: Identity(namespace: "ECID", id: id),
                        context: ["page": .string("p1")])
                    let fast = engine.decide(decisionRequest, profile: profile(id, attributes: attributes), now: now)
                    decisionRequest.explain = true
                    var full = engine.decide(decisionRequest, profile: profile(id, attributes: attributes), now: now)
                    for index in full.propositions.indices { full.propositions[index].trace = [] }
                    #expect(fast == full, "\(formula), points \(points), \(id), \(items) items")
                    decided += fast.propositions.first?.outcome == .offers ? 1 : 0
                    let denied = engine.decide(
                        decisionRequest,
                        profile: profile(id, consents: .init(personalizeContent: .n), attributes: attributes),
                        now: now)
                    #expect(denied.propositions.first?.outcome == .fallback)
                    #expect(denied.propositions.first?.items.map(\.isFallback) == [true])
                }
            }
        }
        #expect(decided > 60)
    }

    /// An engine over tie groups of `sizes` members (group `g` ranked above group `g + 1`, offers `g<g>-<m>`), one
    /// criterion ranking them by `formula` (or `priority`); `condition(group, member, offerNumber)` is each
    /// offer's eligibility.
    private func tieGroupEngine(
        sizes: [Int], formula: String, condition: (Int, Int, Int) -> String
    ) throws -> DecisionEngine {
        var offers: [String] = []
        for (group, size) in sizes.enumerated() {
            for member in 0..<size {
                let condition = condition(group, member, offers.count)
                offers.append(
                    offerJSON(
                        "g\(group)-\(member)", priority: sizes.count - group,
                        extra: tagged + #", "eligibility": {"condition": "\#(condition)"}"#))
            }
        }
        let ranking =
            formula == "priority" ? #"{"method": "priority"}"# : #"{"method": "formula", "formula": "\#(formula)"}"#
        let criteria = #"[{"collection": "all", "ranking": \#(ranking)}]"#
        return DecisionEngine(
            catalog: try engineCatalog(
                offers: offers, decisions: [decisionJSON(criteria: criteria, placements: ["web"])]))
    }

    /// Decides every page, person (`points(person)`) and item count on the fast path and the explain path (traces
    /// left out) and expects the same; returns how many decisions filled all their items.
    private func expectFastPathAnswersLikeExplain(
        _ engine: DecisionEngine, pages: [String], people: Int, points: (Int) -> Int, label: String
    ) -> Int {
        let now = 1_800_000_000.0
        var decided = 0
        for page in pages {
            for person in 0..<people {
                let id = "person-\(person)"
                let attributes = #"{"points": \#(points(person))}"#
                for items in [1, 3, 10, 70] as [UInt32] {
                    var decisionRequest = request(
                        [scope("web", items: items)], identity: Identity(namespace: "ECID", id: id),
                        context: ["page": .string(page)])
                    let fast = engine.decide(decisionRequest, profile: profile(id, attributes: attributes), now: now)
                    decisionRequest.explain = true
                    var full = engine.decide(decisionRequest, profile: profile(id, attributes: attributes), now: now)
                    for index in full.propositions.indices { full.propositions[index].trace = [] }
                    #expect(fast == full, "\(label), page \(page), \(id), \(items) items")
                    decided += fast.propositions.first?.items.count == Int(items) ? 1 : 0
                }
            }
        }
        return decided
    }

    /// Tie groups of every length the walk treats apart: one member, two, 20 and 56 (hashed and ordered on the
    /// stack, eight keys at a time, so that more items than eight or members screened out need the next eight), 57
    /// and 150 (offered member by member), a fifth of each ineligible on the request's page, and a page that turns
    /// one whole group away so that the walk reaches the next. The fast path against the explain path, for several
    /// people and item counts past the top-k's eight inline slots.
    @Test(arguments: ["priority", "offer.priority + profile.points / 1000", "offer.priority * profile.points"])
    func tieGroupsOfEveryLengthAnswerLikeTheFullEvaluation(formula: String) throws {
        let engine = try tieGroupEngine(sizes: [1, 2, 20, 56, 57, 150, 3], formula: formula) { group, _, number in
            "context.page != \\\"p\(number % 5)\\\" and context.page != \\\"g\(group)\\\""
        }
        let decided = expectFastPathAnswersLikeExplain(
            engine, pages: ["p1", "g0", "g1", "g2", "g3", "g4", "g5"], people: 5, points: { $0 * 250 - 100 },
            label: formula)
        #expect(decided > 100)
    }

    /// When most screens of a request fail (every member of the first groups is ineligible on page `cold`, as when
    /// a person has every offer capped), later tie groups are screened member by member instead of hashed and
    /// ordered first: the same offers, in the same order, as the explain path, past the point where the walk
    /// switches and with members of the later groups screened out too.
    @Test(arguments: ["priority", "offer.priority + profile.points / 1000"])
    func groupsAfterMostScreensFailedAnswerLikeTheFullEvaluation(formula: String) throws {
        let engine = try tieGroupEngine(sizes: [30, 30, 20, 56, 3], formula: formula) { group, member, _ in
            (group < 2 ? #"context.page != \"cold\" and "# : "") + "context.page != \\\"p\(member % 3)\\\""
        }
        let decided = expectFastPathAnswersLikeExplain(
            engine, pages: ["cold", "p1", "p2"], people: 4, points: { $0 * 300 }, label: formula)
        #expect(decided > 20)
    }

    /// A separable formula whose request part is an attribute, or an attribute and a number under one operator,
    /// is read from the request's attribute slots; the fast path against the explain path (scores included) with
    /// the literal on either side, every operator, and points that are negative, zero, fractional, null, a string
    /// or missing (a division by zero points, and a non-number, make the request part null).
    @Test(arguments: [
        "offer.priority + profile.points / 1000", "offer.priority + 1000 / profile.points",
        "offer.priority * (profile.points - 3)", "offer.priority - profile.points", "offer.priority * profile.points",
        "offer.priority / (2 + profile.points)", "(profile.points * 2) - offer.priority",
    ])
    func requestPartsReadFromSlotsAnswerLikeTheFullEvaluation(formula: String) throws {
        // A second attribute slot beside `points`, so that reading the wrong slot reads a number.
        let offers = (0..<12).map { index in
            offerJSON(
                "r\(index)", priority: index % 4,
                extra: tagged + #", "eligibility": {"condition": "profile.other != 12345"}"#)
        }
        let criteria = #"[{"collection": "all", "ranking": {"method": "formula", "formula": "\#(formula)"}}]"#
        let catalog = try engineCatalog(
            offers: offers, decisions: [decisionJSON(criteria: criteria, placements: ["web"])])
        let criterion = try #require(catalog.decisions.first?.scopeByPlacement.compactMap { $0 }.first?.criteria.first)
        #expect(criterion.formulaRanking?.separable?.requestTerm != nil, "\(formula)")
        let engine = DecisionEngine(catalog: catalog)
        let now = 1_800_000_000.0
        for points in ["-5", "0", "3", "7.5", "-2", "null", "\"12\"", nil] as [String?] {
            let attributes = points.map { #"{"points": \#($0), "other": 40}"# } ?? #"{"other": 40}"#
            for items in [1, 3, 12] as [UInt32] {
                var decisionRequest = request(
                    [scope("web", items: items)], identity: Identity(namespace: "ECID", id: "person-1"))
                let fast = engine.decide(
                    decisionRequest, profile: profile("person-1", attributes: attributes), now: now)
                decisionRequest.explain = true
                var full = engine.decide(
                    decisionRequest, profile: profile("person-1", attributes: attributes), now: now)
                for index in full.propositions.indices { full.propositions[index].trace = [] }
                #expect(fast == full, "\(formula), points \(points ?? "missing"), \(items) items")
            }
        }
    }

    /// A criterion's eligibility of flat tests is answered from the request's typed values, which must then include
    /// the values it reads when no offer's condition reads them (here no offer has a condition at all).
    @Test(
        arguments: [
            ("checkout", "5", true), ("home", "5", false), ("checkout", "2", false), ("checkout", "3", true),
            ("checkout", "null", false), ("checkout", "\"5\"", false), (nil, "5", false),
        ] as [(String?, String, Bool)])
    func criterionEligibilityReadsValuesNoOfferReads(page: String?, points: String, eligible: Bool) throws {
        let condition = #"context.page = \"checkout\" and profile.points >= 3"#
        let criteria = #"[{"collection": "all", "eligibility": {"condition": "\#(condition)"}}]"#
        let catalog = try engineCatalog(
            offers: [offerJSON("a", extra: tagged)], decisions: [decisionJSON(criteria: criteria, placements: ["web"])])
        let criterion = try #require(catalog.decisions.first?.scopeByPlacement.compactMap { $0 }.first?.criteria.first)
        var typed = TypedRequest(
            RuleInputs(context: RuleValueSlots(), attributes: RuleValueSlots(), now: 0, offer: nil))
        #expect(criterion.inlineEligibility.isTrue(&typed) != nil)
        let engine = DecisionEngine(catalog: catalog)
        let decided = engine.decide(
            request([scope("web")], context: page.map { ["page": .string($0)] } ?? [:]),
            profile: profile(attributes: #"{"points": \#(points)}"#), now: 1_800_000_000)
        #expect(decided.propositions.first?.outcome == (eligible ? .offers : .fallback), "\(page ?? "-"), \(points)")
    }

    /// A request reads from the profile only the attribute paths of rules a decision can evaluate: offers' and
    /// criteria's eligibility (a named rule through the offer that refers to it) and ranking formulas. A path only
    /// an unreferenced named rule reads is not read; every other one must be, or the decision changes.
    @Test func attributesOnlyUnreferencedRulesReadAreNotRead() throws {
        let offers = [
            offerJSON("a", priority: 1, extra: tagged + #", "eligibility": {"rule": "used"}"#),
            offerJSON("b", priority: 2, extra: tagged + #", "eligibility": {"condition": "profile.y = \"yes\""}"#),
        ]
        let criteria = #"""
            [{"collection": "all", "eligibility": {"condition": "profile.w != null"},
              "ranking": {"method": "formula", "formula": "profile.z * 10 + offer.priority"}}]
            """#
        let catalog = try engineCatalog(
            offers: offers, decisions: [decisionJSON(criteria: criteria, placements: ["web"])],
            rules:
                #"[{"id": "unused", "condition": "profile.unused > 1"}, {"id": "used", "condition": "profile.x >= 2"}]"#
        )
        let read = Dictionary(
            uniqueKeysWithValues: zip(
                catalog.attributePaths.map { $0.segments.joined(separator: ".") },
                catalog.attributeSlotsRead))
        #expect(read == ["unused": false, "x": true, "y": true, "z": true, "w": true])
        let engine = DecisionEngine(catalog: catalog)
        func scores(_ attributes: String) -> [Double?] {
            let decided = engine.decide(
                request([scope("web", items: 2)]), profile: profile(attributes: attributes), now: 1_800_000_000)
            return decided.propositions.first?.items.map { $0.isFallback ? nil : $0.score } ?? []
        }
        #expect(scores(#"{"x": 3, "y": "yes", "z": 5, "w": 1, "unused": 9}"#) == [52, 51])
        #expect(scores(#"{"x": 1, "y": "yes", "z": 5, "w": 1}"#) == [52])
        #expect(scores(#"{"x": 3, "y": "no", "z": 5, "w": 1}"#) == [51])
        #expect(scores(#"{"x": 3, "y": "yes", "z": 5}"#) == [nil])
    }

    @Test func requestDependentFormulasAreNotFolded() throws {
        let formulas: [(String, Bool)] = [
            ("number(offer.characteristics.margin) * 2 + offer.priority", true),
            ("1", true),
            ("profile.points + offer.priority", false),
            ("number(context.boost)", false),
            ("now", false),
            ("if(inAudience(\"a\"), 1, 2)", false),
        ]
        for (formula, folded) in formulas {
            let ranking = #"{"method": "formula", "formula": "\#(jsonEscaped(formula))"}"#
            let criteria = #"[{"collection": "all", "ranking": \#(ranking)}]"#
            let catalog = try engineCatalog(
                offers: [offerJSON("a", extra: tagged)],
                decisions: [decisionJSON(criteria: criteria, placements: ["web"])]
            )
            let scope = try #require(catalog.decisions.first?.scopeByPlacement.compactMap { $0 }.first)
            let criterion = try #require(scope.criteria.first)
            #expect((criterion.staticRanking != nil) == folded, "\(formula)")
        }
    }

    @Test func groupsAreDescendingAndNegativeZeroTiesZero() throws {
        let offers = [
            offerJSON("a", priority: 0, extra: tagged), offerJSON("b", priority: 2, extra: tagged),
            offerJSON("c", priority: 1, extra: tagged), offerJSON("d", priority: 2, extra: tagged),
        ]
        // -0.0 for the two offers of priority 2, 0.0 for the others: one tie group.
        let formula = #"{"method": "formula", "formula": "if(offer.priority > 1, -0, 0)"}"#
        let criteria = #"[{"collection": "all", "ranking": \#(formula)}, {"collection": "all"}]"#
        let catalog = try engineCatalog(
            offers: offers,
            decisions: [decisionJSON(criteria: criteria, placements: ["web"])]
        )
        let scope = try #require(catalog.decisions.first?.scopeByPlacement.compactMap { $0 }.first)
        let criteriaDefinitions = scope.criteria
        let folded = try #require(criteriaDefinitions[0].staticRanking)
        #expect(folded.groupEnds == [4])
        let byPriority = try #require(criteriaDefinitions[1].staticRanking)
        #expect(byPriority.candidates.map(\.offer.id) == ["b", "d", "c", "a"])
        #expect(byPriority.groupEnds == [2, 3, 4])
    }
}
