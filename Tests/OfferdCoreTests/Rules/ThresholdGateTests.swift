import Testing

@testable import OfferdCore

@Suite struct ThresholdGateTests {
    private static let values: [Double] = [
        -.infinity, -.greatestFiniteMagnitude, -3, -2.5, -0.0, 0, .leastNonzeroMagnitude, 1, 2.5, 3, 3.0.nextUp,
        .greatestFiniteMagnitude, .infinity,
    ]

    /// `key(x) >= bound` gives exactly `x op literal` for every number `x`, the edges of doubles included.
    @Test func normalizedBoundsAnswerLikeTheTest() {
        let orderings: [OrderingOperator] = [.less, .lessEqual, .greater, .greaterEqual]
        for ordering in orderings {
            for literal in Self.values + [.nan] {
                let (upper, bound) = ThresholdGate.normalized(ordering, literal)
                for value in Self.values {
                    let expected = RuleTest.order(.now, ordering, literal).passes(.number(value))
                    let key = upper ? -value : value
                    #expect((key >= bound) == expected, "\(value) \(ordering) \(literal)")
                }
            }
        }
    }

    /// Which `order` tests a condition needs, and the bound each gives.
    @Test(
        arguments: [
            ("profile.points >= 1200 and context.page != \"blocked-3\"", [false: 1200.0]),
            ("profile.points > 3", [false: 3.0.nextUp]),
            ("profile.points <= 3", [true: -3.0]),
            ("3 > profile.points", [true: (-3.0).nextUp]),
            ("profile.points >= 2 and profile.points >= 5", [false: 5.0]),
            ("profile.points >= 2 and (profile.points >= 5 or context.page = \"x\")", [false: 2.0]),
            ("profile.points >= 2 or inAudience(\"a\")", [:]),
            ("not (profile.points < 3)", [:]),
            ("if(context.page = \"x\", profile.points > 1, profile.points > 2)", [:]),
            ("offer.priority > 2", [:]),
        ] as [(String, [Bool: Double])])
    func necessaryBounds(source: String, expected: [Bool: Double]) throws {
        var symbols = RuleSymbols()
        let compiled = try RuleParser.compile(source, kind: .condition, allowOfferPaths: true, symbols: &symbols)
        let program = try #require(ConditionProgram(compiled.node))
        let bounds = program.necessaryBounds()
        #expect(Dictionary(uniqueKeysWithValues: bounds.map { ($0.key.upper, $0.value) }) == expected, "\(source)")
    }

    /// The gate takes the key most candidates need; the others pass it whatever the request.
    @Test func gateKeepsTheCommonestKey() throws {
        func program(_ source: String, _ symbols: inout RuleSymbols) throws -> ConditionProgram? {
            let compiled = try RuleParser.compile(source, kind: .condition, allowOfferPaths: true, symbols: &symbols)
            return ConditionProgram(compiled.node)
        }
        var symbols = RuleSymbols()
        let conditions = [
            try program("profile.points >= 10", &symbols), try program("context.cart < 4", &symbols),
            try program("profile.points > 20 and context.cart < 2", &symbols), nil,
        ]
        let gate = ThresholdGate(conditions: conditions)
        #expect(gate.key == ThresholdGate.Key(source: .attribute, slot: 0, upper: false))
        #expect(gate.bounds == [10, -.infinity, 20.0.nextUp, -.infinity])
    }
}
