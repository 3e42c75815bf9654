import Testing

@testable import OfferdCore

/// Builds a catalog document; every section defaults to a small valid one.
func catalogJSON(
    version: String? = nil,
    placements: String = """
    [{"id": "web-banner", "channel": "web", "contentType": "html"},
     {"id": "email-hero", "channel": "email", "contentType": "html"}]
    """,
    offers: String = """
    [{"id": "o1", "status": "approved", "representations": [{"placement": "web-banner", "content": "a"}]}]
    """,
    fallbackOffers: String = """
    [{"id": "fb", "representations": [{"placement": "web-banner", "content": "f"},
                                      {"placement": "email-hero", "content": "f"}]}]
    """,
    collections: String = #"[{"id": "all", "offers": ["o1"]}]"#,
    rules: String = #"[{"id": "gold", "condition": "profile.loyalty.tier = \"gold\""}]"#,
    decisions: String = """
    [{"id": "d1", "status": "live", "fallback": "fb",
      "scopes": [{"placement": "web-banner", "criteria": [{"collection": "all"}]}]}]
    """
) -> String {
    var text = "{"
    if let version { text += "\"version\": \"\(version)\", " }
    text += "\"placements\": \(placements), \"offers\": \(offers), \"fallbackOffers\": \(fallbackOffers), "
    text += "\"collections\": \(collections), \"rules\": \(rules), \"decisions\": \(decisions)}"
    return text
}

/// A catalog whose only offer is `{"id": "o1", FIELDS, "representations": [web-banner]}`
/// (or `{"id": "o1", FIELDS}` when `representations` is nil).
func offerCatalog(
    _ fields: String,
    representations: String? = #"[{"placement": "web-banner", "content": "a"}]"#
)
    -> String
{
    let representationPart = representations.map { #", "representations": \#($0)"# } ?? ""
    return catalogJSON(offers: #"[{"id": "o1", \#(fields)\#(representationPart)}]"#)
}

/// A catalog whose only decision is `{"id": "d1", "status": "live", FIELDS}`.
func liveDecisionCatalog(_ fields: String) -> String {
    catalogJSON(decisions: #"[{"id": "d1", "status": "live", \#(fields)}]"#)
}

/// A catalog whose only decision has one `web-banner` criterion `{"collection": "all", FIELDS}`.
func criterionCatalog(_ fields: String) -> String {
    liveDecisionCatalog(#""scopes": [{"placement": "web-banner", "criteria": [{"collection": "all", \#(fields)}]}]"#)
}

/// The issues of loading `json` (empty when it loads).
func catalogIssues(_ json: String) -> [CatalogIssue] {
    do {
        _ = try Catalog.load(bytes: Array(json.utf8), fileName: "catalog.json")
        return []
    } catch {
        return error.issues
    }
}

@Suite struct CatalogLoadTests {
    @Test func loadsTheDefaultCatalog() throws {
        let catalog = try Catalog.load(bytes: Array(catalogJSON(version: "v7").utf8), fileName: "catalog.json")
        #expect(catalog.version == "v7")
        #expect(
            catalog.summary
                == CatalogSummary(
                    placements: 2,
                    offers: 1,
                    fallbackOffers: 1,
                    collections: 1,
                    rules: 1,
                    decisions: 1
                )
        )
    }

    @Test func versionDefaultsToAHashOfTheBytes() throws {
        let text = catalogJSON()
        let first = try Catalog.load(bytes: Array(text.utf8), fileName: "a")
        let again = try Catalog.load(bytes: Array(text.utf8), fileName: "b")
        let other = try Catalog.load(bytes: Array((text + " ").utf8), fileName: "c")
        #expect(first.version.count == 16)
        #expect(first.version == again.version)
        #expect(first.version != other.version)
    }

    @Test func emptyObjectIsAValidEmptyCatalog() throws {
        let catalog = try Catalog.load(bytes: Array("{}".utf8), fileName: "c")
        #expect(
            catalog.summary
                == CatalogSummary(
                    placements: 0,
                    offers: 0,
                    fallbackOffers: 0,
                    collections: 0,
                    rules: 0,
                    decisions: 0
                )
        )
    }

    @Test func jsonSyntaxErrorHasLineAndColumn() {
        let issues = catalogIssues("{\n  \"placements\": [,]\n}")
        #expect(issues.count == 1)
        #expect(issues.first?.path == "")
        #expect(issues.first?.line == 2)
        #expect(issues.first?.message.hasPrefix("invalid JSON") == true)
    }

    @Test func duplicateKeysAreRefused() {
        let issues = catalogIssues(#"{"offers": [], "offers": []}"#)
        #expect(issues.first?.message == "invalid JSON: duplicate key \"offers\"")
    }

    @Test func descriptionPrintsOneIssuePerLine() {
        do {
            _ = try Catalog.load(bytes: Array(#"{"offerz": [], "placements": 3}"#.utf8), fileName: "shop.json")
            Issue.record("loaded")
        } catch {
            let lines = error.description.split(separator: "\n")
            #expect(lines.count == 2)
            #expect(lines[0].hasPrefix("shop.json: offerz: unknown key"))
            #expect(lines[1] == "shop.json: placements: must be an array, not a number")
        }
    }

    @Test func reportsEveryIssueAtOnce() {
        let issues = catalogIssues(
            catalogJSON(
                placements: #"[{"id": "web-banner", "channel": "tv", "contentType": "html"}]"#,
                offers: #"[{"id": "o1", "status": "live", "priority": 5.5, "representations": []}]"#,
                decisions: #"[{"id": "d1", "status": "live", "scopes": []}]"#
            )
        )
        let paths = issues.map(\.path)
        #expect(paths.contains("placements[0].channel"))
        #expect(paths.contains("offers[0].status"))
        #expect(paths.contains("offers[0].priority"))
        #expect(paths.contains("offers[0].representations"))
        #expect(paths.contains("decisions[0].scopes"))
        #expect(issues.count >= 5)
    }

    /// One case per error kind: the catalog, the path, and the start of the message.
    @Test(arguments: [
        // Structure and types.
        (#"[1]"#, "", "must be an object, not an array"),
        (#"{"x": 1}"#, "x", "unknown key (allowed: version, placements"),
        (catalogJSON(version: ""), "version", "must not be empty"),
        (
            catalogJSON(placements: #"[{"id": "p", "channel": "web", "contentType": "html", "size": 3}]"#),
            "placements[0].size", "unknown key (allowed: id, name, channel, contentType)"
        ),
        (catalogJSON(placements: #"[{"id": "p", "contentType": "html"}]"#), "placements[0].channel", "is required"),
        (
            catalogJSON(placements: #"[{"id": "p", "channel": "tv", "contentType": "html"}]"#),
            "placements[0].channel",
            "\"tv\" is not one of \"web\", \"app\", \"email\", \"sms\", \"push\", \"call\", \"offline\""
        ),
        (
            catalogJSON(placements: #"[{"id": "p", "channel": "web", "contentType": "pdf"}]"#),
            "placements[0].contentType", "\"pdf\" is not one of"
        ),
        (
            catalogJSON(placements: #"[{"id": 3, "channel": "web", "contentType": "html"}]"#),
            "placements[0].id", "must be a string, not a number"
        ),
        (
            catalogJSON(placements: #"[{"id": "", "channel": "web", "contentType": "html"}]"#),
            "placements[0].id", "must not be empty"
        ),
        (
            catalogJSON(
                placements:
                    #"[{"id": "p", "channel": "web", "contentType": "html"}, {"id": "p", "channel": "web", "#
                    + #""contentType": "html"}]"#
            ),
            "placements[1].id", "duplicate placement id \"p\" (first declared at placements[0].id)"
        ),
        (catalogJSON(placements: "{}"), "placements", "must be an array, not an object"),
        (catalogJSON(placements: "[3]"), "placements[0]", "must be an object, not a number"),
        // Offers.
        (
            offerCatalog(#""name": "no status""#),
            "offers[0].status", "is required"
        ),
        (
            offerCatalog(#""status": "live""#),
            "offers[0].status", "\"live\" is not one of \"draft\", \"approved\", \"archived\""
        ),
        (
            offerCatalog(#""status": "approved", "priority": 5.5"#),
            "offers[0].priority", "must be an integer, not 5.5"
        ),
        (
            offerCatalog(#""status": "approved", "priority": -1"#),
            "offers[0].priority", "must be at least 0 and at most 1000000, not -1"
        ),
        (
            offerCatalog(#""status": "approved", "priority": 1000001"#),
            "offers[0].priority", "must be at least 0 and at most 1000000, not 1000001"
        ),
        (
            offerCatalog(#""status": "approved", "priority": "5""#),
            "offers[0].priority", "must be an integer, not a string"
        ),
        (
            offerCatalog(#""status": "approved", "startDate": "2026-01-01""#),
            "offers[0].startDate", "\"2026-01-01\" is not an RFC 3339 timestamp"
        ),
        (
            offerCatalog(#""status": "approved", "endDate": "2026-06-30T23:59:60Z""#),
            "offers[0].endDate", "\"2026-06-30T23:59:60Z\" is not an RFC 3339 timestamp: leap seconds"
        ),
        (
            offerCatalog(
                #""status": "approved", "startDate": "2026-02-01T00:00:00Z", "endDate": "2026-02-01T01:00:00+01:00""#
            ),
            "offers[0].endDate", "must be after startDate"
        ),
        (
            offerCatalog(#""status": "approved", "tags": ["a", ""]"#),
            "offers[0].tags[1]", "must not be empty"
        ),
        (
            offerCatalog(#""status": "approved", "characteristics": {"margin": 3}"#),
            "offers[0].characteristics[\"margin\"]", "must be a string, not a number"
        ),
        (
            offerCatalog(#""status": "approved", "eligibility": {"rule": "gold", "anyAudiences": ["vip"]}"#),
            "offers[0].eligibility", "needs exactly one of rule, condition, anyAudiences, allAudiences"
        ),
        (
            offerCatalog(#""status": "approved", "eligibility": {"rule": "platinum"}"#),
            "offers[0].eligibility.rule", "unknown rule \"platinum\""
        ),
        (
            offerCatalog(#""status": "approved", "eligibility": {"anyAudiences": []}"#),
            "offers[0].eligibility.anyAudiences", "must not be empty"
        ),
        (
            offerCatalog(#""status": "approved", "eligibility": {"allAudiences": [""]}"#),
            "offers[0].eligibility.allAudiences[0]", "must not be empty"
        ),
        (
            offerCatalog(#""status": "approved", "capping": [{"limit": 3, "scope": "total"}]"#),
            "offers[0].capping[0].scope", "\"total\" capping is not supported yet"
        ),
        (
            offerCatalog(#""status": "approved", "capping": [{"limit": 3, "scope": "session"}]"#),
            "offers[0].capping[0].scope", "\"session\" is not one of \"profile\""
        ),
        (
            offerCatalog(#""status": "approved", "capping": [{"limit": 0}]"#),
            "offers[0].capping[0].limit", "must be at least 1"
        ),
        (
            offerCatalog(#""status": "approved", "capping": [{"scope": "profile"}]"#),
            "offers[0].capping[0].limit", "is required"
        ),
        (
            offerCatalog(#""status": "approved""#, representations: "[]"),
            "offers[0].representations", "needs at least one representation"
        ),
        (catalogJSON(offers: #"[{"id": "o1", "status": "approved"}]"#), "offers[0].representations", "is required"),
        (
            offerCatalog(
                #""status": "approved", "representations": [{"placement": "tv", "content": "a"}]"#,
                representations: nil
            ),
            "offers[0].representations[0].placement", "unknown placement \"tv\""
        ),
        (
            offerCatalog(
                #""status": "approved", "representations": [{"placement": "web-banner", "content": "a"}, "#
                    + #"{"placement": "web-banner", "content": "b"}]"#,
                representations: nil
            ),
            "offers[0].representations[1].placement",
            "a second representation for placement \"web-banner\" (first at offers[0].representations[0])"
        ),
        (
            offerCatalog(
                #""status": "approved", "representations": [{"placement": "web-banner", "format": "text/html"}]"#,
                representations: nil
            ),
            "offers[0].representations[0]", "needs content or deliveryUrl"
        ),
        (
            offerCatalog(
                #""status": "approved", "representations": [{"placement": "web-banner", "content": "a", "#
                    + #""language": ["en", ""]}]"#,
                representations: nil
            ),
            "offers[0].representations[0].language[1]", "must not be empty"
        ),
        (
            offerCatalog(#""status": "approved", "eligibility": {"condition": "profile.a >"}"#),
            "offers[0].eligibility.condition", "expected a value, found the end of the expression"
        ),
        // Fallback offers.
        (
            catalogJSON(
                fallbackOffers: #"[{"id": "o1", "representations": [{"placement": "web-banner", "content": "f"}]}]"#
            ),
            "fallbackOffers[0].id", "duplicate offer id \"o1\" (first declared at offers[0].id)"
        ),
        (
            catalogJSON(
                fallbackOffers:
                    #"[{"id": "fb", "status": "paused", "representations": [{"placement": "web-banner", "#
                    + #""content": "f"}]}]"#
            ),
            "fallbackOffers[0].status", "\"paused\" is not one of"
        ),
        (
            catalogJSON(
                fallbackOffers:
                    #"[{"id": "fb", "eligibility": {"rule": "gold"}, "#
                    + #""representations": [{"placement": "web-banner", "content": "f"}]}]"#
            ),
            "fallbackOffers[0].eligibility", "unknown key"
        ),
        // Collections.
        (
            catalogJSON(collections: #"[{"id": "all", "offers": ["o1", "o9"]}]"#),
            "collections[0].offers[1]", "unknown offer \"o9\""
        ),
        (
            catalogJSON(collections: #"[{"id": "all", "offers": ["fb"]}]"#),
            "collections[0].offers[0]", "unknown offer \"fb\" (it is a fallback offer; collections hold offers)"
        ),
        (
            catalogJSON(collections: #"[{"id": "all", "offers": ["o1"], "anyTags": ["x"]}]"#),
            "collections[0]", "needs exactly one of offers, anyTags, allTags"
        ),
        (
            catalogJSON(collections: #"[{"id": "all"}]"#), "collections[0]",
            "needs exactly one of offers, anyTags, allTags"
        ),
        (catalogJSON(collections: #"[{"id": "all", "allTags": []}]"#), "collections[0].allTags", "must not be empty"),
        (
            catalogJSON(collections: #"[{"id": "all", "offers": []}, {"id": "all", "anyTags": ["x"]}]"#),
            "collections[1].id", "duplicate collection id \"all\""
        ),
        // Rules.
        (
            catalogJSON(rules: #"[{"id": "r1", "condition": "profile.a = 1"}, {"id": "r1", "condition": "true"}]"#),
            "rules[1].id", "duplicate rule id \"r1\""
        ),
        (catalogJSON(rules: #"[{"id": "r1"}]"#), "rules[0].condition", "is required"),
        (
            catalogJSON(rules: #"[{"id": "r1", "condition": "profile.a +"}]"#),
            "rules[0].condition", "rule \"r1\": expected a value"
        ),
        // Decisions.
        (
            catalogJSON(
                decisions:
                    #"[{"id": "d1", "status": "on", "scopes": [{"placement": "web-banner", "#
                    + #""criteria": [{"collection": "all"}]}]}]"#
            ),
            "decisions[0].status", "\"on\" is not one of \"draft\", \"live\", \"completed\", \"archived\""
        ),
        (
            liveDecisionCatalog(#""scopes": []"#), "decisions[0].scopes",
            "must not be empty"
        ),
        (
            liveDecisionCatalog(#""scopes": [{"placement": "web-banner", "criteria": []}]"#),
            "decisions[0].scopes[0].criteria", "must not be empty"
        ),
        (
            liveDecisionCatalog(#""scopes": [{"placement": "tv", "criteria": [{"collection": "all"}]}]"#),
            "decisions[0].scopes[0].placement", "unknown placement \"tv\""
        ),
        (
            liveDecisionCatalog(
                #""scopes": [{"placement": "web-banner", "criteria": [{"collection": "all"}]}, "#
                    + #"{"placement": "web-banner", "criteria": [{"collection": "all"}]}]"#
            ),
            "decisions[0].scopes[1].placement",
            "the decision already has a scope for placement \"web-banner\" (decisions[0].scopes[0])"
        ),
        (
            liveDecisionCatalog(
                #""scopes": [{"placement": "web-banner", "criteria": [{"collection": "all"}, {"collection": "none"}]}]"#
            ),
            "decisions[0].scopes[0].criteria[1].collection", "unknown collection \"none\""
        ),
        (
            liveDecisionCatalog(
                #""fallback": "nope", "scopes": [{"placement": "web-banner", "criteria": [{"collection": "all"}]}]"#
            ),
            "decisions[0].fallback", "unknown fallback offer \"nope\""
        ),
        (
            liveDecisionCatalog(
                #""fallback": "o1", "scopes": [{"placement": "web-banner", "criteria": [{"collection": "all"}]}]"#
            ),
            "decisions[0].fallback", "\"o1\" is an offer, not a fallback offer"
        ),
        (
            catalogJSON(
                fallbackOffers: #"[{"id": "fb", "representations": [{"placement": "web-banner", "content": "f"}]}]"#,
                decisions:
                    #"[{"id": "d1", "status": "draft", "fallback": "fb", "scopes": [{"placement": "web-banner", "#
                    + #""criteria": [{"collection": "all"}]}, {"placement": "email-hero", "#
                    + #""criteria": [{"collection": "all"}]}]}]"#
            ),
            "decisions[0].fallback",
            "fallback offer \"fb\" has no representation for placement \"email-hero\" (used by decisions[0].scopes[1])"
        ),
        (
            catalogJSON(
                fallbackOffers:
                    #"[{"id": "fb", "status": "draft", "representations": [{"placement": "web-banner", "#
                    + #""content": "f"}]}]"#
            ),
            "decisions[0].fallback", "fallback offer \"fb\" is draft; a live decision's fallback must be approved"
        ),
        (
            liveDecisionCatalog(
                #""startDate": "2026-03-01T00:00:00Z", "endDate": "2026-03-01T00:00:00Z", "#
                    + #""scopes": [{"placement": "web-banner", "criteria": [{"collection": "all"}]}]"#
            ),
            "decisions[0].endDate", "must be after startDate"
        ),
        (
            criterionCatalog(#""ranking": {"method": "formula"}"#),
            "decisions[0].scopes[0].criteria[0].ranking.formula", "is required with \"method\": \"formula\""
        ),
        (
            criterionCatalog(#""ranking": {"method": "priority", "formula": "1"}"#),
            "decisions[0].scopes[0].criteria[0].ranking.formula", "is only allowed with \"method\": \"formula\""
        ),
        (
            criterionCatalog(#""ranking": {"method": "random"}"#),
            "decisions[0].scopes[0].criteria[0].ranking.method", "\"random\" is not one of \"priority\", \"formula\""
        ),
        (
            criterionCatalog(#""ranking": {"method": "formula", "formula": "offer.priority > 2"}"#),
            "decisions[0].scopes[0].criteria[0].ranking.formula",
            "a formula must give a number, but '>' gives a boolean"
        ),
        (
            criterionCatalog(#""eligibility": {"condition": "inAudience(\"vip\") and offer.priority > 2"}"#),
            "decisions[0].scopes[0].criteria[0].eligibility.condition",
            "a criterion's eligibility cannot use offer.* paths"
        ),
        (
            catalogJSON(
                rules: #"[{"id": "rich", "condition": "number(offer.characteristics.margin) > 2"}]"#,
                decisions:
                    #"[{"id": "d1", "status": "live", "scopes": [{"placement": "web-banner", "#
                    + #""criteria": [{"collection": "all", "eligibility": {"rule": "rich"}}]}]}]"#
            ),
            "decisions[0].scopes[0].criteria[0].eligibility.rule", "rule \"rich\" uses offer.* paths"
        ),
    ])
    func reportsErrorKind(json: String, path: String, message: String) {
        let issues = catalogIssues(json)
        let match = issues.first { $0.path == path && $0.message.hasPrefix(message) }
        #expect(match != nil, "expected \(path): \(message); got \(issues)")
    }

    @Test func ruleErrorsCarryLineAndColumn() {
        let issues = catalogIssues(
            catalogJSON(
                rules:
                    #"[{"id": "ok", "condition": "true"}, {"id": "bad", "#
                    + #""condition": "inAudience(\"vip\") and\n  foo(1)"}]"#
            )
        )
        #expect(issues.count == 1)
        #expect(issues.first?.path == "rules[1].condition")
        #expect(issues.first?.line == 2)
        #expect(issues.first?.column == 3)
        #expect(issues.first?.message.hasPrefix("rule \"bad\": unknown function 'foo'") == true)
        #expect(issues.first?.description.hasPrefix("rules[1].condition: line 2, column 3: rule \"bad\"") == true)
    }

    @Test func criterionOfferPathErrorPointsAtThePath() {
        let issues = catalogIssues(
            catalogJSON(
                decisions: """
                    [{"id": "d1", "status": "live", "scopes": [{"placement": "web-banner",
                      "criteria": [{"collection": "all",
                                    "eligibility": {"condition": "true and offer.priority > 1"}}]}]}]
                    """
            )
        )
        #expect(issues.first?.line == 1)
        #expect(issues.first?.column == 10)
    }

    @Test func acceptedVariants() {
        // 5.0 reads as 5; capping scope defaults to profile; ids in a collection may repeat; fallback status defaults
        // to approved; lower-case t/z and offsets; an empty offers collection; a formula criterion.
        let json = catalogJSON(
            offers: """
                [{"id": "o1", "status": "approved", "priority": 5.0, "startDate": "2026-01-01t00:00:00z",
                  "endDate": "2026-12-31T23:59:59.999+02:00", 
                  "capping": [{"limit": 2.0}, {"limit": 1, "scope": "profile"}],
                  "representations": [{"placement": "web-banner", "deliveryUrl": "https://x/y.png"}]}]
                """,
            collections: #"[{"id": "all", "offers": ["o1", "o1"]}, {"id": "none", "offers": []}]"#,
            decisions: """
                [{"id": "d1", "status": "live", "fallback": "fb",
                  "scopes": [{"placement": "web-banner", "criteria": [{"collection": "none"},
                    {"collection": "all", "ranking": {"method": "formula", "formula": "offer.priority * 2"}}]}]}]
                """
        )
        #expect(catalogIssues(json) == [])
    }
}
