import Testing

@testable import OfferdCore

/// Live counts from a table, counting the questions asked (so a test can see that consent stops the engine
/// before it reads any count).
struct TableLiveCounts: LiveCappingCounts {
    struct Key: Hashable {
        var offer: String
        var event: CappingEvent
        var period: CappingPeriod
        var scope: CappingScope
    }

    var counts: [Key: Int] = [:]
    final class Questions: @unchecked Sendable {
        var count = 0
    }
    let questions = Questions()

    /// As the overlay answers: false when the table holds no `profile` count.
    var hasProfileCounts: Bool { counts.keys.contains { $0.scope == .profile } }

    func count(offer: InternedName, event: CappingEvent, period: CappingPeriod, scope: CappingScope, now: Double)
        -> Int
    {
        questions.count += 1
        return counts[Key(offer: offer.name, event: event, period: period, scope: scope)] ?? 0
    }
}

@Suite("Capping rules: loading and counting")
struct CappingRuleTests {
    @Test func rulesLoadWithTheirDefaults() throws {
        let catalog = try engineCatalog(offers: [
            offerJSON(
                "capped",
                extra: tagged
                    + #", "capping": [{"limit": 3}, {"limit": 5, "scope": "total", "event": "display", "#
                    + #""period": "week"}, {"limit": 1, "event": "interact", "period": "day"}]"#),
            offerJSON("free", extra: tagged),
        ])
        #expect(
            catalog.offers[0].cappingRules == [
                CappingRule(limit: 3, scope: .profile, event: .decision, period: .lifetime),
                CappingRule(limit: 5, scope: .total, event: .display, period: .week),
                CappingRule(limit: 1, scope: .profile, event: .interact, period: .day),
            ])
        #expect(catalog.offers[0].recordsDecisions)
        #expect(catalog.offers[1].cappingRules.isEmpty)
        #expect(!catalog.offers[1].recordsDecisions)
    }

    @Test func tenRulesAreAllowed() throws {
        let rules = Array(repeating: #"{"limit": 1, "period": "month"}"#, count: 10).joined(separator: ", ")
        let catalog = try engineCatalog(offers: [offerJSON("o", extra: tagged + #", "capping": [\#(rules)]"#)])
        #expect(catalog.offers[0].cappingRules.count == 10)
        #expect(!catalog.offers[0].recordsDecisions || catalog.offers[0].cappingRules[0].event == .decision)
    }

    @Test func everyErrorOfOneOfferIsReportedWithItsPath() {
        let issues = catalogIssues(
            offerCatalog(
                #""status": "approved", "capping": [{"limit": 0, "scope": "all"}, {"event": "view", "period": 7}]"#))
        let paths = Set(issues.map(\.path))
        #expect(
            paths
                == [
                    "offers[0].capping[0].limit", "offers[0].capping[0].scope", "offers[0].capping[1].limit",
                    "offers[0].capping[1].event", "offers[0].capping[1].period",
                ], "\(issues)")
    }

    /// The engine's choice between a capped offer (priority 9) and a free one (priority 1).
    private func firstOffer(
        rule: String, counts: CappingCounts? = nil, live: TableLiveCounts? = nil
    ) throws -> String? {
        let catalog = try engineCatalog(offers: [
            offerJSON("capped", priority: 9, extra: tagged + #", "capping": [\#(rule)]"#),
            offerJSON("free", priority: 1, extra: tagged),
        ])
        let engine = DecisionEngine(catalog: catalog)
        let person = counts.map { profile(capping: [("capped", $0)]) } ?? profile()
        return engine.decide(request([scope()]), profile: person, live: live, now: testNow)
            .propositions[0].items.first?.id
    }

    private func live(
        _ count: Int, event: CappingEvent = .decision, period: CappingPeriod = .lifetime, scope: CappingScope = .profile
    ) -> TableLiveCounts {
        var table = TableLiveCounts()
        table.counts[.init(offer: "capped", event: event, period: period, scope: scope)] = count
        return table
    }

    @Test(arguments: CappingEvent.allCases)
    func profileLifetimeRulesReadTheSnapshotsCountOfTheirEvent(event: CappingEvent) throws {
        let rule = #"{"limit": 2, "event": "\#(event.rawValue)"}"#
        var below = CappingCounts(decision: 5, display: 5, interact: 5)
        below[event] = 1
        var reached = CappingCounts()
        reached[event] = 2
        #expect(try firstOffer(rule: rule, counts: below) == "capped")
        #expect(try firstOffer(rule: rule, counts: reached) == "free")
        // The snapshot's and the log's counts add up.
        #expect(try firstOffer(rule: rule, counts: below, live: live(1, event: event)) == "free")
        #expect(try firstOffer(rule: rule, counts: below, live: live(1, event: event, period: .day)) == "capped")
        #expect(try firstOffer(rule: rule, live: live(2, event: event)) == "free")
    }

    /// `total` and period rules count the event log alone (SPEC 9.3): never the profile's snapshot counts, so
    /// without a log they never cap.
    @Test(
        arguments: [
            (CappingScope.total, CappingPeriod.lifetime), (.profile, .day), (.profile, .week), (.profile, .month),
            (.total, .day), (.total, .week), (.total, .month),
        ])
    func rulesOtherThanProfileLifetimeCountTheLogAlone(scope: CappingScope, period: CappingPeriod) throws {
        let rule = #"{"limit": 2, "scope": "\#(scope.rawValue)", "period": "\#(period.rawValue)"}"#
        let huge = CappingCounts(decision: 100, display: 100, interact: 100)
        #expect(try firstOffer(rule: rule, counts: huge) == "capped")
        #expect(try firstOffer(rule: rule, counts: huge, live: TableLiveCounts()) == "capped")
        #expect(try firstOffer(rule: rule, live: live(1, period: period, scope: scope)) == "capped")
        #expect(try firstOffer(rule: rule, live: live(2, period: period, scope: scope)) == "free")
        // Another scope's, period's or event's count is not this rule's.
        let otherScope: CappingScope = scope == .total ? .profile : .total
        #expect(try firstOffer(rule: rule, live: live(9, period: period, scope: otherScope)) == "capped")
        let otherPeriod: CappingPeriod = period == .day ? .week : .day
        #expect(try firstOffer(rule: rule, live: live(9, period: otherPeriod, scope: scope)) == "capped")
        #expect(try firstOffer(rule: rule, live: live(9, event: .display, period: period, scope: scope)) == "capped")
    }

    @Test func anyRuleAtItsLimitCaps() throws {
        let rules = #"{"limit": 5}, {"limit": 2, "event": "display", "period": "day"}, {"limit": 9, "scope": "total"}"#
        #expect(try firstOffer(rule: rules, counts: 4) == "capped")
        #expect(try firstOffer(rule: rules, counts: 5) == "free")
        #expect(try firstOffer(rule: rules, live: live(2, event: .display, period: .day)) == "free")
        #expect(try firstOffer(rule: rules, live: live(9, scope: .total)) == "free")
        #expect(try firstOffer(rule: rules, live: live(8, scope: .total)) == "capped")
    }

    @Test func anUnknownProfileIsCappedByLiveCountsOnly() throws {
        let catalog = try engineCatalog(offers: [
            offerJSON("capped", priority: 9, extra: tagged + #", "capping": [{"limit": 1}]"#),
            offerJSON("free", priority: 1, extra: tagged),
        ])
        let engine = DecisionEngine(catalog: catalog)
        #expect(engine.decide(request([scope()]), now: testNow).propositions[0].items.first?.id == "capped")
        #expect(
            engine.decide(request([scope()]), live: live(1), now: testNow).propositions[0].items.first?.id == "free")
    }

    /// A profile with no live counter is not asked about `profile` rules (they would all answer zero); `total`
    /// rules are still counted, and the answers are those of a table that is asked every time.
    @Test func aProfileWithNothingLiveIsAskedOnlyAboutTotalRules() throws {
        let profileRulesOnly = #"{"limit": 1}, {"limit": 1, "event": "display", "period": "day"}"#
        let totalsOnly = live(5, scope: .total)
        #expect(!totalsOnly.hasProfileCounts)
        #expect(try firstOffer(rule: profileRulesOnly, counts: 0, live: totalsOnly) == "capped")
        #expect(try firstOffer(rule: profileRulesOnly, counts: 1, live: totalsOnly) == "free")
        #expect(totalsOnly.questions.count == 0)

        let withTotalRule = profileRulesOnly + #", {"limit": 5, "scope": "total"}"#
        #expect(try firstOffer(rule: withTotalRule, live: totalsOnly) == "free")
        #expect(totalsOnly.questions.count > 0)
        let profileCount = live(1, event: .display, period: .day)
        #expect(profileCount.hasProfileCounts)
        #expect(try firstOffer(rule: profileRulesOnly, live: profileCount) == "free")
    }

    /// Capping never opens a door consent closed: a denied consent answers as before, and no count is read.
    @Test func consentIsDecidedBeforeAnyCount() throws {
        let catalog = try engineCatalog(offers: [
            offerJSON(
                "capped", priority: 9, placements: ["web", "email"], extra: tagged + #", "capping": [{"limit": 1}]"#),
            offerJSON("free", priority: 1, placements: ["web", "email"], extra: tagged),
        ])
        let engine = DecisionEngine(catalog: catalog)
        let table = live(0)
        let deniedPersonalization = profile(
            consents: ConsentRecord(personalizeContent: .n), capping: [("capped", 7)])
        let result = engine.decide(request([scope()]), profile: deniedPersonalization, live: table, now: testNow)
        #expect(result.propositions[0].reason == .personalizationDenied)
        #expect(result.propositions[0].items.map(\.isFallback) == [true])
        let deniedMarketing = profile(consents: ConsentRecord(marketingAny: .n))
        let email = engine.decide(request([scope("email")]), profile: deniedMarketing, live: table, now: testNow)
        #expect(email.propositions[0].outcome == .suppressed)
        #expect(email.propositions[0].reason == .marketingDenied)
        #expect(table.questions.count == 0)
    }
}
