import OfferdCore
import OfferdEventLog
import PropertyBased
import Testing

@testable import OfferdLiveState

/// Decide with the overlay's consents and counts, as the server calls the engine (SPEC 9.3, 9.5).
@Suite("Decide with the overlay")
struct DecideWithOverlayTests {
    static let catalog = try! Catalog.load(
        bytes: Array(
            #"""
            {"placements": [{"id": "web", "channel": "web", "contentType": "text"},
                            {"id": "mail", "channel": "email", "contentType": "text"}],
             "offers": [
               {"id": "a", "status": "approved", "priority": 9, "tags": ["t"], "capping": [{"limit": 1}],
                "representations": [{"placement": "web", "content": "a"}, {"placement": "mail", "content": "a"}]},
               {"id": "b", "status": "approved", "priority": 1, "tags": ["t"],
                "representations": [{"placement": "web", "content": "b"}, {"placement": "mail", "content": "b"}]}],
             "fallbackOffers": [{"id": "fb", "representations": [{"placement": "web", "content": "fb"},
                                                                  {"placement": "mail", "content": "fb"}]}],
             "collections": [{"id": "all", "anyTags": ["t"]}],
             "decisions": [{"id": "d", "status": "live", "fallback": "fb",
               "scopes": [{"placement": "web", "criteria": [{"collection": "all"}]},
                          {"placement": "mail", "criteria": [{"collection": "all"}]}]}]}
            """#.utf8),
        fileName: "c.json")

    static let ana = InMemoryProfile(
        identities: [Identity(namespace: "ECID", id: "4711"), Identity(namespace: "Email", id: "ana@example.com")],
        consents: ConsentRecord(personalizeContent: .y, marketingAny: .y))

    /// Decides `identity` the way the server does: the profile from a one-profile "snapshot", its key, the
    /// overlay's consents on top of the profile's (empty when unknown), the overlay's counts.
    static func decide(_ identity: Identity, overlay: LiveOverlaySnapshot, placement: String = "web") -> Proposition {
        // The snapshot's lookup: namespaces fold ASCII case, ids do not.
        let profile =
            ana.identities.contains {
                $0.namespace.lowercased() == identity.namespace.lowercased() && $0.id == identity.id
            }
            ? ana : nil
        let key = EventLogProfileKey(identity: identity, primaryIdentity: profile?.primaryIdentity)
        let request = DecisionRequest(
            identity: identity, scopes: [ScopeRequest(decisionID: "d", placementID: placement)])
        return DecisionEngine(catalog: catalog).decide(
            request, profile: profile, live: overlay.counts(for: key),
            consents: overlay.consents(for: key, snapshotConsents: profile?.consents ?? .empty), now: noonSeconds
        ).propositions[0]
    }

    @Test func profileKeysArePrimaryIdentitiesOrTheIdentityItself() {
        let secondary = Identity(namespace: "EMAIL", id: "ana@example.com")
        #expect(
            EventLogProfileKey(identity: secondary, primaryIdentity: Self.ana.primaryIdentity)
                == EventLogProfileKey(namespace: "ecid", id: "4711"))
        let stranger = Identity(namespace: "CRMID", id: "Zed")
        #expect(EventLogProfileKey(identity: stranger, primaryIdentity: nil).description == "crmid:Zed")
    }

    @Test func anOptOutInTheLogDeniesPersonalizationThroughEveryIdentity() {
        var log = LogBuilder()
        log.add(
            EventLogProfileKey(namespace: "ECID", id: "4711"), .consent, eventID: "c1",
            consents: ["personalize.content": "n"])
        var overlay = LiveOverlay()
        #expect(
            Self.decide(Identity(namespace: "ECID", id: "4711"), overlay: overlay.published()).items.first?.id == "a")
        overlay.apply(log.records)
        for identity in Self.ana.identities + [Identity(namespace: "email", id: "ana@example.com")] {
            let proposition = Self.decide(identity, overlay: overlay.published())
            #expect(proposition.reason == .personalizationDenied, "\(identity)")
            #expect(proposition.items.map(\.id) == ["fb"])
        }
        // Marketing: an email opt-out suppresses the email placement only.
        log.add(
            EventLogProfileKey(namespace: "ECID", id: "4711"), .consent, eventID: "c2",
            consents: ["marketing.email": "n", "personalize.content": "y"])
        overlay.apply(log.records)
        #expect(
            Self.decide(Identity(namespace: "ECID", id: "4711"), overlay: overlay.published(), placement: "mail")
                .outcome == .suppressed)
        #expect(
            Self.decide(Identity(namespace: "ECID", id: "4711"), overlay: overlay.published()).items.first?.id == "a")
    }

    @Test func anUnknownIdentityKeepsItsUpdatedConsents() {
        let stranger = Identity(namespace: "CRMID", id: "z")
        var log = LogBuilder()
        log.add(
            EventLogProfileKey(namespace: "crmid", id: "z"), .consent, eventID: "c1",
            consents: ["personalize.content": "n"])
        var overlay = LiveOverlay()
        overlay.apply(log.records)
        #expect(Self.decide(stranger, overlay: overlay.published()).reason == .personalizationDenied)
        #expect(Self.decide(Identity(namespace: "CRMID", id: "Z"), overlay: overlay.published()).items.first?.id == "a")
    }

    @Test func aCapCountedUnderASecondaryIdentityHoldsUnderThePrimary() {
        var log = LogBuilder()
        let key = EventLogProfileKey(
            identity: Identity(namespace: "Email", id: "ana@example.com"), primaryIdentity: Self.ana.primaryIdentity)
        log.add(key, .decision, offers: ["a"])
        var overlay = LiveOverlay()
        overlay.apply(log.records)
        #expect(
            Self.decide(Identity(namespace: "ECID", id: "4711"), overlay: overlay.published()).items.first?.id == "b")
    }

    /// Consent through the overlay decides exactly as a profile whose snapshot consents were the merged values:
    /// no update can grant what the merged record denies, for every channel and default.
    @Test func overlayConsentsDecideLikeMergedSnapshotConsents() async {
        let choices = ["y", "n", "p", "u", "dy", "dn", "LI"]
        await propertyCheck(count: 300, input: Gen.int(in: 0...Int(Int32.max))) { seed in
            var random = SplitMix64(state: UInt64(seed))
            func choice() -> ConsentChoice { ConsentChoice.allCases.randomElement(using: &random)! }
            let snapshotConsents = ConsentRecord(
                personalizeContent: choice(), marketingAny: choice(), marketingEmail: choice(), marketingSMS: choice(),
                marketingPush: choice(), marketingCall: choice())
            var log = LogBuilder()
            let key = EventLogProfileKey(namespace: "ECID", id: "4711")
            for index in 0..<Int.random(in: 0...4, using: &random) {
                var update: [String: String] = [:]
                for consentKey in ConsentOverride.keys where Bool.random(using: &random) {
                    update[consentKey] = choices.randomElement(using: &random)!
                }
                log.add(key, .consent, eventID: "c\(index)", consents: update)
            }
            var overlay = LiveOverlay()
            overlay.apply(log.records)
            let merged = overlay.published().consents(for: key, snapshotConsents: snapshotConsents)
            var profile = Self.ana
            profile.consents = snapshotConsents
            var mergedProfile = Self.ana
            mergedProfile.consents = merged
            for defaultChoice in [ConsentDefault.granted, .denied] {
                let engine = DecisionEngine(
                    catalog: Self.catalog, options: EngineOptions(consentDefault: defaultChoice))
                for placement in ["web", "mail"] {
                    let request = DecisionRequest(
                        identity: profile.primaryIdentity,
                        scopes: [ScopeRequest(decisionID: "d", placementID: placement)])
                    let viaOverlay = engine.decide(request, profile: profile, consents: merged, now: noonSeconds)
                    let viaSnapshot = engine.decide(request, profile: mergedProfile, now: noonSeconds)
                    #expect(viaOverlay.propositions.map(\.outcome) == viaSnapshot.propositions.map(\.outcome))
                    #expect(viaOverlay.propositions.map(\.reason) == viaSnapshot.propositions.map(\.reason))
                    #expect(
                        viaOverlay.propositions.map { $0.items.map(\.id) }
                            == viaSnapshot.propositions.map { $0.items.map(\.id) })
                }
            }
        }
    }
}
