import Testing

@testable import OfferdCore

/// Every channel gets a placement named after it.
let allPlacementsJSON =
    "["
    + Channel.allCases.map {
        #"{"id": "\#($0.rawValue)", "channel": "\#($0.rawValue)", "contentType": "text"}"#
    }.joined(separator: ", ") + "]"

/// An offer with a representation for each of `placements`.
func offerJSON(
    _ id: String,
    priority: Int = 0,
    status: String = "approved",
    placements: [String] = Channel.allCases.map(\.rawValue),
    characteristics: String? = nil,
    extra: String = ""
) -> String {
    let representations = placements.map { #"{"placement": "\#($0)", "content": "\#(id)@\#($0)"}"# }
        .joined(separator: ", ")
    return
        #"{"id": "\#(id)", "status": "\#(status)", "priority": \#(priority), "#
        + #""characteristics": \#(characteristics ?? "{\"kind\": \"\(id)\"}"), "#
        + #""representations": [\#(representations)]\#(extra.isEmpty ? "" : ", " + extra)}"#
}

/// A decision with one scope per placement in `placements`, each with the given criteria JSON.
func decisionJSON(
    _ id: String = "d",
    status: String = "live",
    fallback: String? = "fb",
    criteria: String = #"[{"collection": "all"}]"#,
    placements: [String] = Channel.allCases.map(\.rawValue),
    extra: String = ""
) -> String {
    let scopes = placements.map { #"{"placement": "\#($0)", "criteria": \#(criteria)}"# }.joined(separator: ", ")
    let fallbackPart = fallback.map { #""fallback": "\#($0)", "# } ?? ""
    return #"{"id": "\#(id)", "status": "\#(status)", \#(fallbackPart)\#(extra.isEmpty ? "" : extra + ", ")"#
        + #""scopes": [\#(scopes)]}"#
}

/// Loads a catalog for engine tests; the collection `all` holds every offer unless `collections` says otherwise.
func engineCatalog(
    offers: [String],
    decisions: [String] = [decisionJSON()],
    collections: String? = nil,
    rules: String = "[]"
) throws -> Catalog {
    let fallback =
        #"{"id": "fb", "name": "Fallback", "characteristics": {"kind": "fallback"}, "representations": ["#
        + Channel.allCases.map { #"{"placement": "\#($0.rawValue)", "content": "fb@\#($0.rawValue)"}"# }
        .joined(separator: ", ") + "]}"
    let json = """
        {"placements": \(allPlacementsJSON), "offers": [\(offers.joined(separator: ", "))],
         "fallbackOffers": [\(fallback)],
         "collections": \(collections ?? #"[{"id": "all", "anyTags": ["t"]}]"#),
         "rules": \(rules), "decisions": [\(decisions.joined(separator: ", "))]}
        """
    return try Catalog.load(bytes: Array(json.utf8), fileName: "test.json")
}

func profile(
    _ id: String = "p1",
    namespace: String = "ECID",
    consents: ConsentRecord = .empty,
    audiences: [String] = [],
    attributes: String = "{}",
    capping: [(offerID: String, count: Int)] = []
) -> InMemoryProfile {
    InMemoryProfile(
        identities: [Identity(namespace: namespace, id: id)],
        consents: consents,
        audiences: audiences,
        attributes: (try? JSONParser.parse(attributes)) ?? .object([]),
        capping: capping
    )
}

func request(
    _ scopes: [ScopeRequest],
    identity: Identity = Identity(namespace: "ECID", id: "p1"),
    context: [String: ContextValue] = [:],
    allowDuplicates: Bool = false,
    explain: Bool = false
) -> DecisionRequest {
    DecisionRequest(
        identity: identity,
        scopes: scopes,
        context: context,
        allowDuplicates: allowDuplicates,
        explain: explain
    )
}

func scope(_ placement: String = "web", decision: String = "d", items: UInt32 = 1) -> ScopeRequest {
    ScopeRequest(decisionID: decision, placementID: placement, itemCount: items)
}

/// The SPEC 6 tie-break hash, written independently of the engine.
func referenceTieHash(namespace: String, id: String, offerID: String) -> UInt64 {
    var bytes = Array(namespace.lowercased().utf8)
    bytes.append(0x1F)
    bytes += Array(id.utf8)
    bytes.append(0x1F)
    bytes += Array(offerID.utf8)
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in bytes {
        hash ^= UInt64(byte)
        hash = hash &* 0x100_0000_01b3
    }
    hash ^= hash >> 33
    hash = hash &* 0xff51_afd7_ed55_8ccd
    hash ^= hash >> 33
    hash = hash &* 0xc4ce_b9fe_1a85_ec53
    hash ^= hash >> 33
    return hash
}

let tagged = #""tags": ["t"]"#
