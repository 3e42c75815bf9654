import Testing

@testable import OfferdCore

let testNow: Double = 1_800_000_000 // 2027-01-15

@Suite struct DecisionOutcomeTests {
    static func engine(options: EngineOptions = EngineOptions()) throws -> DecisionEngine {
        let catalog = try engineCatalog(
            offers: [offerJSON("a", priority: 5, extra: tagged)],
            decisions: [
                decisionJSON("d"),
                decisionJSON("nofb", fallback: nil),
                decisionJSON("draft", status: "draft"),
                decisionJSON("completed", status: "completed"),
                decisionJSON("later", extra: #""startDate": "2030-01-01T00:00:00Z""#),
                decisionJSON("over", extra: #""endDate": "2020-01-01T00:00:00Z""#),
                decisionJSON("webonly", placements: ["web"]),
                decisionJSON("empty", criteria: #"[{"collection": "none"}]"#),
                decisionJSON("emptynofb", fallback: nil, criteria: #"[{"collection": "none"}]"#),
            ],
            collections: #"[{"id": "all", "anyTags": ["t"]}, {"id": "none", "offers": []}]"#
        )
        return DecisionEngine(catalog: catalog, options: options)
    }

    static let denyAll = ConsentRecord(personalizeContent: .n, marketingAny: .n)

    struct Case: Sendable, CustomStringConvertible {
        var name: String
        var scope: ScopeRequest
        var profile: InMemoryProfile?
        var options = EngineOptions()
        var outcome: Outcome
        var reason: Reason
        var items: [String]
        var description: String { name }
    }

    static let cases: [Case] = [
        Case(name: "offers", scope: scope(), profile: profile(), outcome: .offers, reason: .unspecified, items: ["a"]),
        Case(
            name: "no eligible, fallback",
            scope: scope(decision: "empty"),
            profile: profile(),
            outcome: .fallback,
            reason: .noEligibleOffers,
            items: ["fb"]
        ),
        Case(
            name: "no eligible, no fallback",
            scope: scope(decision: "emptynofb"),
            profile: profile(),
            outcome: .suppressed,
            reason: .noEligibleOffers,
            items: []
        ),
        Case(
            name: "personalization denied",
            scope: scope(),
            profile: profile(consents: .init(personalizeContent: .n)),
            outcome: .fallback,
            reason: .personalizationDenied,
            items: ["fb"]
        ),
        Case(
            name: "personalization denied, no fallback",
            scope: scope(decision: "nofb"),
            profile: profile(consents: .init(personalizeContent: .dn)),
            outcome: .suppressed,
            reason: .personalizationDenied,
            items: []
        ),
        Case(
            name: "marketing denied",
            scope: scope("email"),
            profile: profile(consents: .init(marketingEmail: .n)),
            outcome: .suppressed,
            reason: .marketingDenied,
            items: []
        ),
        Case(
            name: "marketing denied beats personalization",
            scope: scope("sms"),
            profile: profile(consents: denyAll),
            outcome: .suppressed,
            reason: .marketingDenied,
            items: []
        ),
        Case(
            name: "web ignores marketing",
            scope: scope("web"),
            profile: profile(consents: .init(marketingAny: .n)),
            outcome: .offers,
            reason: .unspecified,
            items: ["a"]
        ),
        Case(
            name: "unknown profile decides",
            scope: scope(),
            profile: nil,
            outcome: .offers,
            reason: .unspecified,
            items: ["a"]
        ),
        Case(
            name: "unknown profile fallback",
            scope: scope(),
            profile: nil,
            options: EngineOptions(unknownProfile: .fallback),
            outcome: .fallback,
            reason: .unknownProfile,
            items: ["fb"]
        ),
        Case(
            name: "unknown profile, no fallback",
            scope: scope(decision: "nofb"),
            profile: nil,
            options: EngineOptions(unknownProfile: .fallback),
            outcome: .suppressed,
            reason: .unknownProfile,
            items: []
        ),
        Case(
            name: "unknown profile, consent default denied",
            scope: scope(),
            profile: nil,
            options: EngineOptions(consentDefault: .denied),
            outcome: .fallback,
            reason: .personalizationDenied,
            items: ["fb"]
        ),
        Case(
            name: "unknown profile, marketing under default denied",
            scope: scope("push"),
            profile: nil,
            options: EngineOptions(consentDefault: .denied, unknownProfile: .fallback),
            outcome: .suppressed,
            reason: .marketingDenied,
            items: []
        ),
        Case(
            name: "unknown decision",
            scope: scope(decision: "nope"),
            profile: profile(),
            outcome: .error,
            reason: .decisionNotFound,
            items: []
        ),
        Case(
            name: "draft decision",
            scope: scope(decision: "draft"),
            profile: profile(),
            outcome: .error,
            reason: .decisionInactive,
            items: []
        ),
        Case(
            name: "completed decision",
            scope: scope(decision: "completed"),
            profile: profile(),
            outcome: .error,
            reason: .decisionInactive,
            items: []
        ),
        Case(
            name: "not started",
            scope: scope(decision: "later"),
            profile: profile(),
            outcome: .error,
            reason: .decisionInactive,
            items: []
        ),
        Case(
            name: "ended",
            scope: scope(decision: "over"),
            profile: profile(),
            outcome: .error,
            reason: .decisionInactive,
            items: []
        ),
        Case(
            name: "inactive beats placement",
            scope: scope("nowhere", decision: "draft"),
            profile: profile(),
            outcome: .error,
            reason: .decisionInactive,
            items: []
        ),
        Case(
            name: "placement not in decision",
            scope: scope("email", decision: "webonly"),
            profile: profile(),
            outcome: .error,
            reason: .placementNotInDecision,
            items: []
        ),
        Case(
            name: "unknown placement",
            scope: scope("nowhere"),
            profile: profile(),
            outcome: .error,
            reason: .placementNotInDecision,
            items: []
        ),
    ]

    @Test(arguments: cases)
    func outcomeAndReason(_ testCase: Case) throws {
        let engine = try Self.engine(options: testCase.options)
        let result = engine.decide(request([testCase.scope]), profile: testCase.profile, now: testNow)
        #expect(result.profileFound == (testCase.profile != nil))
        let proposition = try #require(result.propositions.first)
        #expect(proposition.outcome == testCase.outcome)
        #expect(proposition.reason == testCase.reason)
        #expect(proposition.items.map(\.id) == testCase.items)
        #expect(proposition.decisionID == testCase.scope.decisionID)
        #expect(proposition.placementID == testCase.scope.placementID)
        #expect(proposition.trace.isEmpty)
    }

    @Test func everyOutcomeReasonPairIsCovered() {
        let pairs = Set(Self.cases.map { "\($0.outcome)/\($0.reason)" })
        let expected: Set<String> = [
            "offers/unspecified", "fallback/noEligibleOffers", "suppressed/noEligibleOffers",
            "fallback/personalizationDenied", "suppressed/personalizationDenied", "suppressed/marketingDenied",
            "fallback/unknownProfile", "suppressed/unknownProfile", "error/decisionNotFound",
            "error/placementNotInDecision", "error/decisionInactive",
        ]
        #expect(pairs == expected)
    }

    @Test func fallbackItemIsMarked() throws {
        let engine = try Self.engine()
        let result = engine.decide(request([scope("app", decision: "empty")]), profile: profile(), now: testNow)
        let item = try #require(result.propositions.first?.items.first)
        #expect(item.isFallback)
        #expect(item.priority == 0)
        #expect(item.score == nil)
        #expect(item.name == "Fallback")
        #expect(item.representation.placementID == "app")
        #expect(item.representation.content == "fb@app")
        #expect(item.characteristics == [Characteristic(key: "kind", value: "fallback")])
    }

    @Test func aScopeProblemDoesNotFailTheOthers() throws {
        let engine = try Self.engine()
        let result = engine.decide(
            request([scope(decision: "nope"), scope(), scope("email", decision: "webonly")]),
            profile: profile(),
            now: testNow
        )
        #expect(result.propositions.map(\.outcome) == [.error, .offers, .error])
        #expect(result.catalogVersion == engine.catalog.version)
    }

    @Test func fallbackIsNeverDeduplicated() throws {
        let engine = try Self.engine()
        let result = engine.decide(
            request([scope("web", decision: "empty"), scope("app", decision: "empty")]),
            profile: profile(),
            now: testNow
        )
        #expect(result.propositions.map { $0.items.map(\.id) } == [["fb"], ["fb"]])
    }

    @Test func personalizationDeniedUsesNoProfileData() throws {
        // The offer would be eligible only through profile data; denied consent must not reveal it.
        let catalog = try engineCatalog(
            offers: [offerJSON("vip", priority: 5, extra: tagged + #", "eligibility": {"anyAudiences": ["vip"]}"#)])
        let engine = DecisionEngine(catalog: catalog)
        for choice in [ConsentChoice.n, .dn, .p] {
            let result = engine.decide(
                request([scope()]),
                profile: profile(consents: .init(personalizeContent: choice), audiences: ["vip"]),
                now: testNow
            )
            #expect(result.propositions[0].outcome == .fallback)
            #expect(result.propositions[0].items.count == 1)
            #expect(result.propositions[0].items.allSatisfy { $0.isFallback })
        }
    }
}

@Suite struct DecisionSelectionTests {
    @Test func criteriaAreWalkedInOrder() throws {
        let catalog = try engineCatalog(
            offers: [
                offerJSON("low", priority: 1, extra: #""tags": ["first"]"#),
                offerJSON("high", priority: 100, extra: #""tags": ["second"]"#),
                offerJSON("mid", priority: 50, extra: #""tags": ["second"]"#),
            ],
            decisions: [decisionJSON(criteria: #"[{"collection": "first"}, {"collection": "second"}]"#)],
            collections: #"[{"id": "first", "anyTags": ["first"]}, {"id": "second", "anyTags": ["second"]}]"#
        )
        let engine = DecisionEngine(catalog: catalog)
        let two = engine.decide(request([scope(items: 2)]), profile: profile(), now: testNow)
        #expect(two.propositions[0].items.map(\.id) == ["low", "high"])
        let three = engine.decide(request([scope(items: 3)]), profile: profile(), now: testNow)
        #expect(three.propositions[0].items.map(\.id) == ["low", "high", "mid"])
        let one = engine.decide(request([scope(items: 0)]), profile: profile(), now: testNow)
        #expect(one.propositions[0].items.map(\.id) == ["low"])
    }

    @Test func ineligibleCriterionContributesNothing() throws {
        let catalog = try engineCatalog(
            offers: [
                offerJSON("gold-only", priority: 100, extra: #""tags": ["first"]"#),
                offerJSON("other", priority: 1, extra: #""tags": ["second"]"#),
            ],
            decisions: [
                decisionJSON(
                    criteria: """
                        [{"collection": "first", "eligibility": {"rule": "gold"}}, {"collection": "second"}]
                        """
                )
            ],
            collections: #"[{"id": "first", "anyTags": ["first"]}, {"id": "second", "anyTags": ["second"]}]"#,
            rules: #"[{"id": "gold", "condition": "profile.loyalty.tier = \"gold\""}]"#
        )
        let engine = DecisionEngine(catalog: catalog)
        let silver = engine.decide(
            request([scope(items: 2)]),
            profile: profile(attributes: #"{"loyalty": {"tier": "silver"}}"#),
            now: testNow
        )
        #expect(silver.propositions[0].items.map(\.id) == ["other"])
        let gold = engine.decide(
            request([scope(items: 2)]),
            profile: profile(attributes: #"{"loyalty": {"tier": "gold"}}"#),
            now: testNow
        )
        #expect(gold.propositions[0].items.map(\.id) == ["gold-only", "other"])
    }

    @Test func duplicatesAreRemovedAcrossScopesUnlessAllowed() throws {
        let catalog = try engineCatalog(offers: [
            offerJSON("a", priority: 3, extra: tagged), offerJSON("b", priority: 2, extra: tagged),
            offerJSON("c", priority: 1, extra: tagged),
        ])
        let engine = DecisionEngine(catalog: catalog)
        let scopes = [scope("web", items: 2), scope("app", items: 2), scope("offline", items: 2)]
        let deduplicated = engine.decide(request(scopes), profile: profile(), now: testNow)
        #expect(deduplicated.propositions.map { $0.items.map(\.id) } == [["a", "b"], ["c"], ["fb"]])
        #expect(deduplicated.propositions[2].reason == .noEligibleOffers)
        let independent = engine.decide(request(scopes, allowDuplicates: true), profile: profile(), now: testNow)
        #expect(independent.propositions.map { $0.items.map(\.id) } == [["a", "b"], ["a", "b"], ["a", "b"]])
    }

    @Test func anOfferIsNotTakenTwiceInOneScopeEvenWithDuplicatesAllowed() throws {
        let catalog = try engineCatalog(
            offers: [offerJSON("a", priority: 3, extra: tagged), offerJSON("b", priority: 2, extra: tagged)],
            decisions: [decisionJSON(criteria: #"[{"collection": "all"}, {"collection": "all"}]"#)]
        )
        let engine = DecisionEngine(catalog: catalog)
        for allow in [false, true] {
            let result = engine.decide(
                request([scope(items: 3)], allowDuplicates: allow),
                profile: profile(),
                now: testNow
            )
            #expect(result.propositions[0].items.map(\.id) == ["a", "b"])
        }
    }

    @Test func partialFillIsOffers() throws {
        let catalog = try engineCatalog(offers: [offerJSON("a", extra: tagged), offerJSON("b", extra: tagged)])
        let result = DecisionEngine(catalog: catalog).decide(
            request([scope(items: 30)]),
            profile: profile(),
            now: testNow
        )
        #expect(result.propositions[0].outcome == .offers)
        #expect(result.propositions[0].items.count == 2)
    }

    @Test func statusesDatesAndRepresentationsFilter() throws {
        let catalog = try engineCatalog(offers: [
            offerJSON("draft", priority: 9, status: "draft", extra: tagged),
            offerJSON("archived", priority: 9, status: "archived", extra: tagged),
            offerJSON("expired", priority: 9, extra: tagged + #", "endDate": "2027-01-15T08:00:00Z""#),
            offerJSON("future", priority: 9, extra: tagged + #", "startDate": "2027-01-15T08:00:00.001Z""#),
            offerJSON("emailonly", priority: 9, placements: ["email"], extra: tagged),
            offerJSON("started", priority: 1, extra: tagged + #", "startDate": "2027-01-15T08:00:00Z""#),
            offerJSON("ending", priority: 2, extra: tagged + #", "endDate": "2027-01-15T08:00:00.5Z""#),
        ])
        // testNow is exactly 2027-01-15T08:00:00Z: a start equal to now is inside, an end equal to now is outside.
        let result = DecisionEngine(catalog: catalog).decide(
            request([scope(items: 10)]),
            profile: profile(),
            now: testNow
        )
        #expect(result.propositions[0].items.map(\.id) == ["ending", "started"])
        let email = DecisionEngine(catalog: catalog).decide(
            request([scope("email", items: 1)]),
            profile: profile(),
            now: testNow
        )
        #expect(email.propositions[0].items.first?.representation.content == "emailonly@email")
    }

    @Test func cappingUsesTheSmallestLimit() throws {
        let catalog = try engineCatalog(offers: [
            offerJSON("capped", priority: 9, extra: tagged + #", "capping": [{"limit": 5}, {"limit": 2}]"#),
            offerJSON("other", priority: 1, extra: tagged),
        ])
        let engine = DecisionEngine(catalog: catalog)
        func first(_ count: Int?) -> String? {
            let person = count.map { profile(capping: [("capped", CappingCounts(decision: $0))]) } ?? profile()
            return engine.decide(request([scope()]), profile: person, now: testNow).propositions[0].items.first?.id
        }
        #expect(first(nil) == "capped")
        #expect(first(1) == "capped")
        #expect(first(2) == "other")
        #expect(first(7) == "other")
        #expect(engine.decide(request([scope()]), now: testNow).propositions[0].items.first?.id == "capped")
    }

    @Test func eligibilityKinds() throws {
        let catalog = try engineCatalog(
            offers: [
                offerJSON("any", priority: 4, extra: tagged + #", "eligibility": {"anyAudiences": ["vip", "new"]}"#),
                offerJSON(
                    "all",
                    priority: 3,
                    extra: tagged + #", "eligibility": {"allAudiences": ["vip", "cart-abandoner"]}"#
                ),
                offerJSON("rule", priority: 2, extra: tagged + #", "eligibility": {"rule": "paris"}"#),
                offerJSON(
                    "inline",
                    priority: 1,
                    extra: tagged
                        + #", "eligibility": {"condition": "#
                        + #""context.page = \"home\" and offer.characteristics.kind = \"inline\""}"#
                ),
            ],
            rules: #"[{"id": "paris", "condition": "profile.homeAddress.city = \"Paris\""}]"#
        )
        let engine = DecisionEngine(catalog: catalog)
        func chosen(_ person: InMemoryProfile?, context: [String: ContextValue] = [:]) -> [String] {
            engine.decide(request([scope(items: 4)], context: context), profile: person, now: testNow)
                .propositions[0].items.filter { !$0.isFallback }.map(\.id)
        }
        #expect(chosen(profile(audiences: ["vip"])) == ["any"])
        #expect(chosen(profile(audiences: ["vip", "cart-abandoner"])) == ["any", "all"])
        #expect(chosen(profile(attributes: #"{"homeAddress": {"city": "Paris"}}"#)) == ["rule"])
        #expect(chosen(profile(), context: ["page": .string("home")]) == ["inline"])
        #expect(chosen(nil, context: ["page": .string("home")]) == ["inline"])
        #expect(chosen(nil) == [])
    }

    /// A separable formula's walk scores a run of equal offer parts once; -0 and 0 are equal but score apart
    /// (`-0 * 2` is -0), so each keeps its own score, in either collection order.
    @Test(arguments: [["negative-zero", "zero"], ["zero", "negative-zero"]])
    func offerPartsOfMinusZeroAndZeroScoreApart(order: [String]) throws {
        let margins = ["negative-zero": "-0", "zero": "0"]
        let catalog = try engineCatalog(
            offers: order.map { id in
                offerJSON(id, characteristics: #"{"margin": "\#(margins[id] ?? "")"}"#, extra: tagged)
            },
            decisions: [
                decisionJSON(
                    "formula",
                    criteria: """
                        [{"collection": "all", "ranking": {"method": "formula",
                          "formula": "number(offer.characteristics.margin) * context.boost"}}]
                        """
                )
            ]
        )
        let result = DecisionEngine(catalog: catalog).decide(
            request([scope(decision: "formula", items: 2)], context: ["boost": .number(2)]), profile: profile(),
            now: testNow)
        let signs = Dictionary(
            uniqueKeysWithValues: result.propositions[0].items.map { ($0.id, $0.score.map(\.sign)) })
        #expect(signs == ["negative-zero": .minus, "zero": .plus])
    }

    @Test func formulaRankingSetsTheScore() throws {
        let catalog = try engineCatalog(
            offers: [
                offerJSON("cheap", priority: 100, characteristics: #"{"margin": "1.5"}"#, extra: tagged),
                offerJSON("rich", priority: 1, characteristics: #"{"margin": "4"}"#, extra: tagged),
                offerJSON("none", priority: 50, characteristics: #"{"margin": "n/a"}"#, extra: tagged),
            ],
            decisions: [
                decisionJSON(
                    "formula",
                    criteria: """
                        [{"collection": "all", "ranking": {"method": "formula",
                          "formula": "number(offer.characteristics.margin) * context.boost"}}]
                        """
                ),
                decisionJSON("priority"),
            ]
        )
        let engine = DecisionEngine(catalog: catalog)
        let byFormula = engine.decide(
            request([scope(decision: "formula", items: 3)], context: ["boost": .number(2)]),
            profile: profile(),
            now: testNow
        )
        #expect(byFormula.propositions[0].items.map(\.id) == ["rich", "cheap", "none"])
        #expect(byFormula.propositions[0].items.map(\.score) == [8, 3, 0])
        let byPriority = engine.decide(
            request([scope(decision: "priority", items: 3)]),
            profile: profile(),
            now: testNow
        )
        #expect(byPriority.propositions[0].items.map(\.id) == ["cheap", "none", "rich"])
        #expect(byPriority.propositions[0].items.allSatisfy { $0.score == nil && !$0.isFallback })
        #expect(byPriority.propositions[0].items.map(\.priority) == [100, 50, 1])
    }

    @Test func itemsCarryTheirPlacementsRepresentation() throws {
        let catalog = try engineCatalog(offers: [offerJSON("a", extra: tagged + #", "name": "Offer A""#)])
        let result = DecisionEngine(catalog: catalog).decide(request([scope("app")]), profile: profile(), now: testNow)
        let item = try #require(result.propositions[0].items.first)
        #expect(item.name == "Offer A")
        #expect(item.representation.placementID == "app")
        #expect(item.representation.content == "a@app")
        #expect(item.characteristics == [Characteristic(key: "kind", value: "a")])
    }
}

@Suite struct ExplainTraceTests {
    @Test func traceFollowsTheSpecOrder() throws {
        let catalog = try engineCatalog(
            offers: [
                offerJSON("draft", priority: 9, status: "draft", extra: tagged),
                offerJSON("expired", priority: 9, extra: tagged + #", "endDate": "2020-01-01T00:00:00Z""#),
                offerJSON("emailonly", priority: 9, placements: ["email"], extra: tagged),
                offerJSON("vip", priority: 9, extra: tagged + #", "eligibility": {"anyAudiences": ["vip"]}"#),
                offerJSON("capped", priority: 9, extra: tagged + #", "capping": [{"limit": 1}]"#),
                offerJSON("taken", priority: 8, extra: tagged),
                offerJSON("best", priority: 7, extra: tagged),
                offerJSON("second", priority: 6, extra: tagged),
                offerJSON("third", priority: 5, extra: tagged),
                // An expired offer that is also not approved: the first failing test wins.
                offerJSON("both", status: "archived", extra: tagged + #", "endDate": "2020-01-01T00:00:00Z""#),
            ],
            decisions: [
                decisionJSON("first", criteria: #"[{"collection": "taken"}]"#),
                decisionJSON(
                    "d",
                    criteria: """
                        [{"collection": "all"}, {"collection": "gated", "eligibility": {"anyAudiences": ["nobody"]}},
                         {"collection": "all"}]
                        """
                ),
            ],
            collections: """
                [{"id": "all", "anyTags": ["t"]}, {"id": "taken", "offers": ["taken"]},
                 {"id": "gated", "offers": ["best", "draft"]}]
                """
        )
        let engine = DecisionEngine(catalog: catalog)
        let result = engine.decide(
            request([scope(decision: "first"), scope(decision: "d", items: 2)], explain: true),
            profile: profile(capping: [("capped", 1)]),
            now: testNow
        )
        #expect(result.propositions[0].items.map(\.id) == ["taken"])
        #expect(
            result.propositions[0].trace == [
                TraceEntry(offerID: "taken", criterion: "0", verdict: .chosen, collectionID: "taken")
            ])
        let proposition = result.propositions[1]
        #expect(proposition.items.map(\.id) == ["best", "second"])
        let expectedPerOffer: [(String, TraceVerdict)] = [
            ("draft", .notApproved), ("expired", .outsideDates), ("emailonly", .noRepresentation),
            ("vip", .ineligible), ("capped", .capped), ("taken", .duplicate),
        ]
        var expected: [TraceEntry] = []
        for (id, verdict) in expectedPerOffer {
            expected.append(TraceEntry(offerID: id, criterion: "0", verdict: verdict))
        }
        expected += [
            TraceEntry(offerID: "best", criterion: "0", verdict: .chosen),
            TraceEntry(offerID: "second", criterion: "0", verdict: .chosen),
            TraceEntry(offerID: "third", criterion: "0", verdict: .rankedOut),
            TraceEntry(offerID: "both", criterion: "0", verdict: .notApproved),
            TraceEntry(offerID: "best", criterion: "1", verdict: .criterionIneligible),
            TraceEntry(offerID: "draft", criterion: "1", verdict: .criterionIneligible),
        ]
        // The third criterion is reached after the slots are full: earlier choices are duplicates, the rest ranked out.
        for (id, verdict) in expectedPerOffer {
            expected.append(TraceEntry(offerID: id, criterion: "2", verdict: verdict))
        }
        expected += [
            TraceEntry(offerID: "best", criterion: "2", verdict: .duplicate),
            TraceEntry(offerID: "second", criterion: "2", verdict: .duplicate),
            TraceEntry(offerID: "third", criterion: "2", verdict: .rankedOut),
            TraceEntry(offerID: "both", criterion: "2", verdict: .notApproved),
        ]
        // Each entry names its criterion's collection.
        let collections = ["0": "all", "1": "gated", "2": "all"]
        for index in expected.indices { expected[index].collectionID = collections[expected[index].criterion] ?? "" }
        #expect(proposition.trace == expected)
    }

    @Test func explainDoesNotChangeTheChoice() throws {
        let catalog = try engineCatalog(offers: (0..<12).map { offerJSON("o\($0)", priority: $0 % 3, extra: tagged) })
        let engine = DecisionEngine(catalog: catalog)
        for id in ["x", "y", "z", "w"] {
            let scopes = [scope("web", items: 3), scope("app", items: 4)]
            let plain = engine.decide(request(scopes), profile: profile(id), now: testNow)
            let explained = engine.decide(request(scopes, explain: true), profile: profile(id), now: testNow)
            #expect(plain.propositions.map(\.items) == explained.propositions.map(\.items))
            #expect(explained.propositions[0].trace.filter { $0.verdict == .chosen }.count == 3)
        }
    }

    @Test func onlyWalkedScopesCarryATrace() throws {
        let catalog = try engineCatalog(offers: [offerJSON("a", extra: tagged)])
        let result = DecisionEngine(catalog: catalog).decide(
            request([scope(decision: "nope"), scope("email"), scope()], explain: true),
            profile: profile(consents: .init(marketingEmail: .n)),
            now: testNow
        )
        // An ERROR proposition has no trace; one decided by consent has one entry that says so.
        #expect(result.propositions[0].trace.isEmpty)
        #expect(
            result.propositions[1].trace == [
                TraceEntry.proposition(
                    .marketingDenied,
                    detail: #"marketing consent for the email channel is denied: marketing.email is "n""#)
            ])
        #expect(
            result.propositions[2].trace == [
                TraceEntry(offerID: "a", criterion: "0", verdict: .chosen, collectionID: "all")
            ])
    }

    @Test func explainSaysWhyConsentOrTheUnknownProfilePolicyDecided() throws {
        let catalog = try engineCatalog(offers: [offerJSON("a", extra: tagged)])
        let deniedByDefault = DecisionEngine(
            catalog: catalog, options: EngineOptions(consentDefault: .denied)
        ).decide(request([scope()], explain: true), profile: profile(consents: .init()), now: testNow)
        #expect(
            deniedByDefault.propositions[0].trace == [
                TraceEntry.proposition(
                    .personalizationDenied,
                    detail: "personalization consent is denied: personalize.content is empty, and the server's "
                        + "--consent-default is denied")
            ])
        let optedOut = DecisionEngine(catalog: catalog).decide(
            request([scope("email")], explain: true),
            profile: profile(consents: .init(marketingAny: .dn, marketingEmail: .y)), now: testNow)
        #expect(optedOut.propositions[0].reason == .marketingDenied)
        #expect(
            optedOut.propositions[0].trace.map(\.detail) == [
                #"marketing consent for the email channel is denied: marketing.any is "dn", which denies every "#
                    + "marketing channel"
            ])
        let unknown = DecisionEngine(catalog: catalog, options: EngineOptions(unknownProfile: .fallback)).decide(
            request([scope()], explain: true), profile: InMemoryProfile?.none, now: testNow)
        #expect(unknown.propositions[0].trace.map(\.verdict) == [.unknownProfile])
        // Without explain, nothing.
        let plain = DecisionEngine(catalog: catalog, options: EngineOptions(unknownProfile: .fallback)).decide(
            request([scope()]), profile: InMemoryProfile?.none, now: testNow)
        #expect(plain.propositions[0].trace.isEmpty)
    }

    @Test func explainCarriesTheFormulaScoreOfRankedCandidates() throws {
        let offers = [
            offerJSON("cheap", characteristics: #"{"margin": "1"}"#, extra: tagged),
            offerJSON("rich", characteristics: #"{"margin": "4"}"#, extra: tagged),
            offerJSON(
                "nope", characteristics: #"{"margin": "9"}"#,
                extra: tagged + #", "eligibility": {"condition": "false"}"#),
        ]
        // One formula the catalog folds at load (request-independent), one it scores per request.
        for formula in [
            "number(offer.characteristics.margin) * 2", "number(offer.characteristics.margin) + profile.boost",
        ] {
            let criteria = #"[{"collection": "all", "ranking": {"method": "formula", "formula": "\#(formula)"}}]"#
            let catalog = try engineCatalog(offers: offers, decisions: [decisionJSON(criteria: criteria)])
            let result = DecisionEngine(catalog: catalog).decide(
                request([scope(items: 1)], explain: true), profile: profile(attributes: #"{"boost": 1}"#),
                now: testNow)
            let trace = result.propositions[0].trace
            let plus = formula.hasSuffix("boost") ? 1.0 : 0.0
            let factor = formula.hasSuffix("boost") ? 1.0 : 2.0
            #expect(trace.first { $0.offerID == "rich" }?.score == 4 * factor + plus, "\(formula)")
            #expect(trace.first { $0.offerID == "rich" }?.verdict == .chosen)
            #expect(trace.first { $0.offerID == "cheap" }?.score == 1 * factor + plus)
            #expect(trace.first { $0.offerID == "cheap" }?.verdict == .rankedOut)
            #expect(trace.first { $0.offerID == "nope" }?.score == nil)
            // The chosen item's score is the one the trace gives.
            #expect(result.propositions[0].items.first?.score == trace.first { $0.offerID == "rich" }?.score)
        }
    }
}

@Suite struct TieBreakTests {
    static let tiedCatalog: Catalog = {
        // Four offers tied at priority 5, one below.
        let offers =
            ["offer-a", "offer-b", "offer-c", "offer-d"].map { offerJSON($0, priority: 5, extra: tagged) }
            + [offerJSON("offer-low", priority: 4, extra: tagged)]
        return try! engineCatalog(offers: offers)
    }()

    @Test func followsTheSpecHash() throws {
        let engine = DecisionEngine(catalog: Self.tiedCatalog)
        for id in ["4711", "ana@example.com", "x"] {
            let result = engine.decide(
                request([scope(items: 5)]),
                profile: profile(id, namespace: "CrmID"),
                now: testNow
            )
            let expected =
                ["offer-a", "offer-b", "offer-c", "offer-d"].sorted {
                    referenceTieHash(namespace: "crmid", id: id, offerID: $0)
                        < referenceTieHash(namespace: "crmid", id: id, offerID: $1)
                } + ["offer-low"]
            #expect(result.propositions[0].items.map(\.id) == expected)
        }
    }

    @Test func usesThePrimaryIdentityOfAFoundProfile() throws {
        let engine = DecisionEngine(catalog: Self.tiedCatalog)
        let person = InMemoryProfile(identities: [
            Identity(namespace: "ECID", id: "primary-1"), Identity(namespace: "Email", id: "ana@example.com"),
        ])
        var differing = 0
        for index in 0..<20 {
            let primary = InMemoryProfile(identities: [
                Identity(namespace: "ECID", id: "primary-\(index)"), Identity(namespace: "Email", id: "e\(index)"),
            ])
            let viaEmail = engine.decide(
                request([scope(items: 4)], identity: Identity(namespace: "EMAIL", id: "e\(index)")),
                profile: primary,
                now: testNow
            )
            let viaECID = engine.decide(
                request([scope(items: 4)], identity: Identity(namespace: "ecid", id: "primary-\(index)")),
                profile: primary,
                now: testNow
            )
            #expect(viaEmail.propositions[0].items == viaECID.propositions[0].items)
            let unknownByEmail = engine.decide(
                request([scope(items: 4)], identity: Identity(namespace: "Email", id: "e\(index)")),
                now: testNow
            )
            if unknownByEmail.propositions[0].items != viaEmail.propositions[0].items { differing += 1 }
        }
        // An unknown profile hashes the request identity instead, so some orders must differ.
        #expect(differing > 0)
        _ = person
    }

    @Test func isStableForOnePerson() throws {
        let engine = DecisionEngine(catalog: Self.tiedCatalog)
        let first = engine.decide(request([scope()]), profile: profile("stable"), now: testNow)
        for _ in 0..<10 {
            let again = engine.decide(request([scope()]), profile: profile("stable"), now: testNow + 1)
            #expect(again.propositions[0].items == first.propositions[0].items)
        }
        let reloadedCatalog = try engineCatalog(
            offers: ["offer-d", "offer-c", "offer-b", "offer-a"]
                .map { offerJSON($0, priority: 5, extra: tagged) }
        )
        let reloaded = DecisionEngine(catalog: reloadedCatalog)
        let afterReload = reloaded.decide(request([scope()]), profile: profile("stable"), now: testNow)
        #expect(afterReload.propositions[0].items.map(\.id) == first.propositions[0].items.map(\.id))
    }

    @Test func isUniformOverPeople() throws {
        let engine = DecisionEngine(catalog: Self.tiedCatalog)
        var wins: [String: Int] = [:]
        let people = 2_000
        for index in 0..<people {
            let result = engine.decide(request([scope()]), profile: profile("person-\(index)"), now: testNow)
            wins[result.propositions[0].items[0].id, default: 0] += 1
        }
        #expect(wins.keys.sorted() == ["offer-a", "offer-b", "offer-c", "offer-d"])
        for (offer, count) in wins {
            let share = Double(count) / Double(people)
            #expect(abs(share - 0.25) <= 0.04, "\(offer) won \(share)")
        }
    }
}
