import Foundation
import Testing

@testable import OfferdCore

/// `offerd catalog check` warnings: each silent mistake of issue 18 is found, at its JSON path, and a catalog
/// without mistakes gets none.
@Suite struct CatalogLintTests {
    /// A small retailer catalog: offers `o1` (margin 0.4, tags a), `o2` (margin 1.5, tags b), one collection of
    /// both, one live decision whose criterion is `criterion`; `extraOffers`, `rules`, `collections` are added.
    static func catalog(
        criterion: String = #"{"collection": "all"}"#,
        o1: String = #""characteristics": {"margin": "0.4"}, "tags": ["a"]"#,
        o2: String = #""characteristics": {"margin": "1.5"}, "tags": ["b"]"#,
        extraOffers: String = "",
        rules: String = "",
        collections: String = #"{"id": "all", "offers": ["o1", "o2"]}"#
    ) -> String {
        let representations = #""representations": [{"placement": "p", "content": "x"}]"#
        return """
            {"placements": [{"id": "p", "channel": "web", "contentType": "text"}],
             "rules": [\(rules)],
             "offers": [{"id": "o1", "status": "approved", \(o1), \(representations)},
                        {"id": "o2", "status": "approved", \(o2), \(representations)}\(extraOffers)],
             "collections": [\(collections)],
             "decisions": [{"id": "d", "status": "live",
                            "scopes": [{"placement": "p", "criteria": [\(criterion)]}]}]}
            """
    }

    static func formula(_ text: String) -> String {
        let escaped = text.replacingOccurrences(of: "\"", with: "\\\"")
        return #"{"collection": "all", "ranking": {"method": "formula", "formula": "\#(escaped)"}}"#
    }

    static let formulaPath = "decisions[0].scopes[0].criteria[0].ranking.formula"

    /// The warnings of `json`, which must load.
    static func warnings(_ json: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> [CatalogWarning] {
        let bytes = Array(json.utf8)
        do {
            _ = try Catalog.load(bytes: bytes, fileName: "catalog.json")
        } catch {
            Issue.record("the catalog does not load: \(error)", sourceLocation: sourceLocation)
            throw error
        }
        return CatalogLint(bytes: bytes).warnings
    }

    static func profile(_ id: String, audiences: [String] = [], attributes: String = "{}") throws -> InMemoryProfile {
        InMemoryProfile(
            identities: [Identity(namespace: "ECID", id: id)], audiences: audiences,
            attributes: try JSONParser.parse(attributes))
    }

    /// The warnings that need profiles, against `profiles`.
    static func profileWarnings(_ json: String, _ profiles: [InMemoryProfile]) throws -> [CatalogWarning] {
        let lint = CatalogLint(bytes: Array(json.utf8))
        let census = ProfileCensus.take(of: profiles, for: lint, whole: { $0 })
        return lint.profileWarnings(census: census, snapshotName: "profiles.snap")
    }

    @Test func aCatalogWithoutMistakesHasNoWarning() throws {
        #expect(try Self.warnings(Self.catalog()) == [])
        #expect(
            try Self.warnings(Self.catalog(criterion: Self.formula("number(offer.characteristics.margin) * 2"))) == [])
        // Guards and number() on both sides of a comparison are fine.
        let condition =
            #"{"collection": "all", "eligibility": {"condition": "exists(profile.ltv) and profile.ltv > 10"}}"#
        #expect(try Self.warnings(Self.catalog(criterion: condition)) == [])
    }

    /// The example keeps one warning on purpose (docs/catalog.md says so): a rule defined for the docs' examples.
    @Test func theExampleCatalogHasOnlyItsDocumentedWarning() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        let data = try Data(contentsOf: root.appendingPathComponent("examples/catalog.json"))
        #expect(
            CatalogLint(bytes: [UInt8](data)).warnings == [
                CatalogWarning(path: "rules[1]", message: #"rule "big-spender" is used by no offer and no criterion"#)
            ])
    }

    // MARK: Formulas

    @Test func aFormulaOverAStringCharacteristicWithoutNumber() throws {
        let warnings = try Self.warnings(Self.catalog(criterion: Self.formula("offer.characteristics.margin * 2")))
        #expect(warnings.count == 1)
        #expect(warnings.first?.path == Self.formulaPath)
        let message = try #require(warnings.first?.message)
        #expect(message.contains("offer.characteristics.margin is a string"))
        #expect(message.contains("write number(offer.characteristics.margin)"))
        #expect(message.contains("score is 0"))
    }

    @Test func aBareStringCharacteristicAsTheScore() throws {
        let warnings = try Self.warnings(Self.catalog(criterion: Self.formula("offer.characteristics.margin")))
        #expect(warnings.map(\.path) == [Self.formulaPath])
        #expect(warnings.first?.message.contains("0 when it gives none") == true)
    }

    @Test func numberOfACharacteristicSomeOffersLackOrHaveAsText() throws {
        let json = Self.catalog(
            criterion: Self.formula("number(offer.characteristics.margin) * 2 + offer.priority"),
            o2: #""characteristics": {"margin": "high"}"#,
            extraOffers:
                #", {"id": "o3", "status": "approved", "representations": [{"placement": "p", "content": "x"}]}"#,
            collections: #"{"id": "all", "offers": ["o1", "o2", "o3"]}"#)
        let warnings = try Self.warnings(json)
        #expect(warnings.count == 1)
        let message = try #require(warnings.first?.message)
        #expect(message.contains(#"offer "o2" ("high" is not a number)"#))
        #expect(message.contains(#"offer "o3" (it has no "margin")"#))
        #expect(!message.contains(#""o1""#))
    }

    @Test func anExistsGuardCoversAMissingCharacteristic() throws {
        let json = Self.catalog(
            criterion: Self.formula(
                "if(exists(offer.characteristics.margin), number(offer.characteristics.margin), 0) + 1"),
            o2: #""tags": ["b"]"#)
        #expect(try Self.warnings(json) == [])
    }

    @Test func aBooleanInArithmetic() throws {
        let warnings = try Self.warnings(Self.catalog(criterion: Self.formula(#"inAudience("vip") * 2 + 1"#)))
        #expect(warnings.map(\.path) == [Self.formulaPath])
        #expect(warnings.first?.message.contains(#"write if(inAudience("vip"), 1, 0)"#) == true)
    }

    @Test func aBooleanBranchOfTheScore() throws {
        let warnings = try Self.warnings(Self.catalog(criterion: Self.formula(#"if(inAudience("vip"), true, 2)"#)))
        #expect(warnings.map(\.path) == [Self.formulaPath])
        #expect(warnings.first?.message.hasPrefix("true gives a boolean") == true)
        #expect(warnings.first?.message.hasSuffix("write a number (1 or 0)") == true)
    }

    @Test func aStringComparedWithANumberInACondition() throws {
        let criterion = #"{"collection": "all"}"#
        let o1 =
            #""characteristics": {"margin": "0.4"}, "eligibility": {"condition": "offer.characteristics.margin > 0.3"}"#
        let warnings = try Self.warnings(Self.catalog(criterion: criterion, o1: o1))
        #expect(warnings.map(\.path) == ["offers[0].eligibility.condition"])
        #expect(warnings.first?.message.contains("the comparison is false") == true)
    }

    // MARK: Keys and references

    @Test func aCharacteristicKeyNoOfferHas() throws {
        let warnings = try Self.warnings(
            Self.catalog(criterion: Self.formula("number(offer.characteristics.margn) + 1")))
        #expect(warnings.count == 1)
        #expect(warnings.first?.path == Self.formulaPath)
        let message = try #require(warnings.first?.message)
        #expect(message.contains(#"no offer has the characteristic "margn" (did you mean "margin"?)"#))
    }

    @Test func aRuleNothingUses() throws {
        let rules = #"{"id": "gold", "condition": "profile.tier = \"gold\""}"#
        let warnings = try Self.warnings(Self.catalog(rules: rules))
        #expect(
            warnings == [
                CatalogWarning(path: "rules[0]", message: #"rule "gold" is used by no offer and no criterion"#)
            ])
        // Used by an offer: no warning.
        let used = Self.catalog(o1: #""eligibility": {"rule": "gold"}"#, rules: rules)
        #expect(try Self.warnings(used) == [])
    }

    @Test func offersNoCollectionReaches() throws {
        let extra = """
            , {"id": "o3", "status": "approved", "tags": ["c"], "representations": [{"placement": "p", "content": "x"}]},
              {"id": "o4", "status": "archived", "representations": [{"placement": "p", "content": "x"}]}
            """
        let warnings = try Self.warnings(Self.catalog(extraOffers: extra))
        #expect(
            warnings == [
                CatalogWarning(
                    path: "offers[2]", message: #"offer "o3" is in no collection, so no decision can propose it"#)
            ])
        let unused = Self.catalog(
            extraOffers: extra,
            collections: #"{"id": "all", "offers": ["o1", "o2"]}, {"id": "spare", "anyTags": ["c"]}"#)
        #expect(
            try Self.warnings(unused) == [
                CatalogWarning(path: "collections[1]", message: #"collection "spare" is used by no criterion"#),
                CatalogWarning(
                    path: "offers[2]",
                    message:
                        #"offer "o3" is only in collections no criterion uses ("spare"), so no decision can propose it"#
                ),
            ])
    }

    @Test func aTagCollectionThatReachesNothing() throws {
        let warnings = try Self.warnings(
            Self.catalog(collections: #"{"id": "all", "anyTags": ["a", "bb"]}, {"id": "x", "anyTags": ["zz"]}"#))
        #expect(
            warnings.contains(
                CatalogWarning(path: "collections[1]", message: #"collection "x" is used by no criterion"#)))
        #expect(warnings.contains { $0.path == "collections[1].anyTags" && $0.message.contains("no offer has any") })
    }

    // MARK: With profiles

    @Test func aProfilePathNoProfileHas() throws {
        let criterion = #"{"collection": "all", "eligibility": {"condition": "profile.loyalty.teir = \"gold\""}}"#
        let json = Self.catalog(criterion: criterion)
        #expect(try Self.warnings(json) == [])
        let profiles = [
            try Self.profile("1", attributes: #"{"loyalty": {"tier": "gold"}}"#), try Self.profile("2"),
        ]
        let warnings = try Self.profileWarnings(json, profiles)
        #expect(warnings.count == 1)
        #expect(warnings.first?.path == "decisions[0].scopes[0].criteria[0].eligibility.condition")
        let message = try #require(warnings.first?.message)
        #expect(message.contains("profile.loyalty.teir: no profile in profiles.snap has this attribute"))
        #expect(message.contains("did you mean profile.loyalty.tier?"))
        // Once a profile has it, no warning.
        let fixed = [try Self.profile("3", attributes: #"{"loyalty": {"teir": "x"}}"#)]
        #expect(try Self.profileWarnings(json, profiles + fixed) == [])
    }

    @Test func anAudienceNoProfileHas() throws {
        let o1 = #""characteristics": {"margin": "0.4"}, "eligibility": {"anyAudiences": ["vip", "cart-abandonner"]}"#
        let criterion = #"{"collection": "all", "eligibility": {"condition": "inAudience(\"cart-abandonner\")"}}"#
        let json = Self.catalog(criterion: criterion, o1: o1)
        let profiles = [try Self.profile("1", audiences: ["vip", "cart-abandoner"])]
        let warnings = try Self.profileWarnings(json, profiles)
        #expect(
            warnings.map(\.path) == [
                "offers[0].eligibility.anyAudiences[1]", "decisions[0].scopes[0].criteria[0].eligibility.condition",
            ])
        #expect(
            warnings.allSatisfy { $0.message.contains(#"audience "cart-abandonner" (did you mean "cart-abandoner"?)"#) }
        )
        #expect(warnings.last?.message.hasPrefix(#"inAudience("cart-abandonner"): "#) == true)
    }

    @Test func aProfileAttributeThatIsAStringInAFormula() throws {
        let json = Self.catalog(criterion: Self.formula("profile.ltv * 0.01 + offer.priority"))
        let profiles = [
            try Self.profile("1", attributes: #"{"ltv": "1200"}"#), try Self.profile("2", attributes: #"{"ltv": 50}"#),
        ]
        let warnings = try Self.profileWarnings(json, profiles)
        #expect(warnings.count == 1)
        let message = try #require(warnings.first?.message)
        #expect(message.contains("profile.ltv is a string in 1 of the 2 profiles of profiles.snap that have it"))
        #expect(message.contains("write number(profile.ltv)"))
    }

    @Test func aProfileAttributeSomeProfilesLackInArithmetic() throws {
        let profiles = [try Self.profile("1", attributes: #"{"ltv": 10}"#), try Self.profile("2")]
        let plain = Self.catalog(criterion: Self.formula("profile.ltv * 0.01 + offer.priority"))
        let warnings = try Self.profileWarnings(plain, profiles)
        #expect(warnings.count == 1)
        #expect(warnings.first?.message.contains("profile.ltv is missing in 1 of the 2 profiles") == true)
        let guarded = Self.catalog(
            criterion: Self.formula("if(exists(profile.ltv), profile.ltv * 0.01, 0) + offer.priority"))
        #expect(try Self.profileWarnings(guarded, profiles) == [])
        // Alone, a missing attribute scores 0, which is what the author expects.
        let alone = Self.catalog(criterion: Self.formula("profile.ltv"))
        #expect(try Self.profileWarnings(alone, profiles) == [])
    }

    @Test func suggestionsAreForNearMissesOnly() {
        #expect(nearest("margn", among: ["margin", "campaign"]) == "margin")
        #expect(nearest("xyz", among: ["margin"]) == nil)
        #expect(editDistance("teir", "tier") == 1)
        #expect(nearestPath(["loyalty", "teir"], among: [["loyalty", "tier"], ["loyalty"]]) == ["loyalty", "tier"])
    }
}
