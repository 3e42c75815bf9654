import FuzzDriver
import OfferdCore

/// The rule language end to end: the fuzzed text becomes the condition of a rule, an offer's eligibility and a
/// ranking formula of a small catalog; a catalog that loads is then used to decide for a profile with nested
/// attributes and context values, so both the compiler and the evaluator see the expression.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRuleExpression(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let expression = String(decoding: UnsafeBufferPointer(start: data, count: count), as: UTF8.self)
    for catalogText in [conditionCatalog(expression), formulaCatalog(expression)] {
        guard let catalog = try? Catalog.load(bytes: Array(catalogText.utf8), fileName: "fuzz.json") else {
            continue
        }
        let engine = DecisionEngine(catalog: catalog)
        _ = engine.decide(FuzzFixture.request, profile: FuzzFixture.profile, now: 1_800_000_000)
        _ = engine.decide(FuzzFixture.request, profile: FuzzFixture.emptyProfile, now: 0)
    }
    return 0
}

/// JSON string literal of `text` (quotes included).
func jsonString(_ text: String) -> String {
    var out = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        default:
            if scalar.value < 0x20 {
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
    }
    return out + "\""
}

private let catalogHead = """
    {"placements":[{"id":"p","channel":"web","contentType":"text"}],
    "fallbackOffers":[{"id":"fb","representations":[{"placement":"p","content":"x"}]}],
    """

func conditionCatalog(_ expression: String) -> String {
    catalogHead + """
        "rules":[{"id":"r","condition":\(jsonString(expression))}],
        "offers":[{"id":"o1","status":"approved","characteristics":{"margin":"2"},"eligibility":{"rule":"r"},
                   "representations":[{"placement":"p","content":"a"}]},
                  {"id":"o2","status":"approved","eligibility":{"condition":\(jsonString(expression))},
                   "representations":[{"placement":"p","content":"b"}]}],
        "collections":[{"id":"c","offers":["o1","o2"]}],
        "decisions":[{"id":"d","status":"live","fallback":"fb","scopes":[{"placement":"p",
                      "criteria":[{"collection":"c"}]}]}]}
        """
}

func formulaCatalog(_ expression: String) -> String {
    catalogHead + """
        "offers":[{"id":"o1","status":"approved","priority":3,"characteristics":{"margin":"2"},
                   "representations":[{"placement":"p","content":"a"}]},
                  {"id":"o2","status":"approved","representations":[{"placement":"p","content":"b"}]}],
        "collections":[{"id":"c","offers":["o1","o2"]}],
        "decisions":[{"id":"d","status":"live","fallback":"fb","scopes":[{"placement":"p",
                      "criteria":[{"collection":"c",
                                   "ranking":{"method":"formula","formula":\(jsonString(expression))}}]}]}]}
        """
}

enum FuzzFixture {
    static let request = DecisionRequest(
        identity: Identity(namespace: "ECID", id: "1"),
        scopes: [ScopeRequest(decisionID: "d", placementID: "p", itemCount: 2)],
        context: ["page": .string("home"), "n": .number(2.5), "b": .bool(true), "z": .null, "a.b": .string("x")],
        explain: true
    )

    static let profile: InMemoryProfile = {
        let attributes =
            (try? JSONParser.parse(
                Array(
                    #"""
                    {"loyalty":{"tier":"gold","points":1200,"tags":["a","b",3,null]},"age":41,"name":"Zoë",
                     "first-name":"x","flag":true,"nothing":null,"person":{"first-name":"Ana"}}
                    """#.utf8
                )
            )) ?? .object([])
        return InMemoryProfile(
            identities: [Identity(namespace: "ECID", id: "1")],
            audiences: ["vip", "cart-abandoner"],
            attributes: attributes,
            capping: [(offerID: "o1", count: 1)]
        )
    }()

    static let emptyProfile = InMemoryProfile(identities: [Identity(namespace: "ECID", id: "2")])
}

/// The executable's entry (SwiftPM aliases `main` to it): hands the arguments and the target to libFuzzer.
@_cdecl("FuzzRuleExpression_main")
public func fuzzRuleExpressionMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    offerd_fuzz_run(argc, argv) { data, size in fuzzRuleExpression(data, size) }
}
