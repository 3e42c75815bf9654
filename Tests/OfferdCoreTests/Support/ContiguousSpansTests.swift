import Testing

@testable import OfferdCore

/// The span helpers hold the module's only unsafe code: what they lend must be exactly the storage's bytes.
@Suite struct ContiguousSpansTests {
    /// Small (inline), native heap-allocated, empty and non-ASCII strings, and a substring's copy.
    @Test(arguments: ["", "a", "ECID", "é✓😀", String(repeating: "offer-", count: 40), String("xxabcxx".dropFirst(2))])
    func stringSpanHoldsTheUTF8(_ text: String) {
        let lent = text.withUTF8Span { bytes in bytes.indices.map { bytes[$0] } }
        #expect(lent == Array(text.utf8))
    }

    @Test func arraySpanHoldsTheElements() {
        let values = (0..<100).map { "v\($0)" }
        let lent = values.withSpan { elements in elements.indices.map { elements[$0] } }
        #expect(lent == values)
        #expect([Int]().withSpan { $0.count } == 0)
    }

    @Test func identityLendsNamespaceAndID() {
        let identity = Identity(namespace: "Email", id: String(repeating: "ana@example.com", count: 3))
        let lent = identity.withUTF8 { namespace, id in
            (namespace.indices.map { namespace[$0] }, id.indices.map { id[$0] })
        }
        #expect(lent.0 == Array(identity.namespace.utf8))
        #expect(lent.1 == Array(identity.id.utf8))
    }
}
