import Testing

@testable import OfferdCore

@Suite struct RequestValidationTests {
    static func request(
        namespace: String = "ECID",
        id: String = "1",
        scopes: [ScopeRequest] = [ScopeRequest(decisionID: "d", placementID: "p")],
        context: [String: ContextValue] = [:]
    ) -> DecisionRequest {
        DecisionRequest(identity: Identity(namespace: namespace, id: id), scopes: scopes, context: context)
    }

    static let scope = ScopeRequest(decisionID: "d", placementID: "p", itemCount: 1)

    @Test func acceptsAValidRequest() {
        #expect(Self.request().validationError() == nil)
        let full = Self.request(
            scopes: Array(repeating: ScopeRequest(decisionID: "d", placementID: "p", itemCount: 0), count: 30),
            context: Dictionary(uniqueKeysWithValues: (0..<64).map { ("k\($0)", ContextValue.number(1)) })
        )
        #expect(full.validationError() == nil)
        let hundred = Self.request(
            scopes: Array(repeating: ScopeRequest(decisionID: "d", placementID: "p", itemCount: 25), count: 4)
        )
        #expect(hundred.validationError() == nil)
    }

    @Test(arguments: [
        (request(namespace: ""), "identity.namespace is empty"),
        (request(id: ""), "identity.id is empty"),
        (request(scopes: []), "scopes is empty; at least 1 is required"),
        (request(scopes: Array(repeating: scope, count: 31)), "scopes has 31 entries; at most 30"),
        (
            request(scopes: [scope, scope, ScopeRequest(decisionID: "d", placementID: "p", itemCount: 31)]),
            "scopes[2].item_count 31 exceeds 30"
        ),
        (request(scopes: [scope, ScopeRequest(decisionID: "", placementID: "p")]), "scopes[1].decision_id is empty"),
        (request(scopes: [ScopeRequest(decisionID: "d", placementID: "")]), "scopes[0].placement_id is empty"),
        (
            request(scopes: Array(repeating: ScopeRequest(decisionID: "d", placementID: "p", itemCount: 30), count: 4)),
            "scopes ask for 120 items in total; at most 100"
        ),
        (
            request(context: Dictionary(uniqueKeysWithValues: (0..<65).map { ("k\($0)", ContextValue.null) })),
            "context has 65 entries; at most 64"
        ),
        (request(context: ["": .string("x")]), "context key is empty"),
        (request(context: ["x": .number(.nan)]), "context[\"x\"] is not a finite number"),
        (
            request(context: ["y": .number(.infinity), "b": .number(-.infinity)]),
            "context[\"b\"] is not a finite number"
        ),
    ])
    func refuses(request: DecisionRequest, message: String) {
        #expect(request.validationError() == message)
    }
}
