import Testing

@testable import OfferdCore

extension ConditionGenerator {
    static let numericLeaves = [
        "offer.priority", "number(offer.characteristics.margin)", "profile.loyalty.points", "context.cart",
        "number(context.cart)", "len(profile.name)", "len(profile.tags)", "len(offer.characteristics.margin)",
        "number(profile.loyalty.points)", "1000", "2", "-1.5", "0", "null", #""7""#, "profile.loyalty.tier",
        "now", "profile.homeAddress", "profile.tags",
    ]

    /// A formula: arithmetic, `min`/`max`, `if` and `len` over leaves that are numbers, strings, null or anything.
    mutating func formula(depth: Int) -> String {
        guard depth > 0 else { return pick(Self.numericLeaves) }
        switch random.next(below: 10) {
        case 0, 1: return pick(Self.numericLeaves)
        case 2, 3: return "\(formula(depth: depth - 1)) \(pick(["+", "-", "*", "/"])) \(formula(depth: depth - 1))"
        case 4: return "-(\(formula(depth: depth - 1)))"
        case 5: return "\(pick(["min", "max"]))(\(formula(depth: depth - 1)), \(formula(depth: depth - 1)))"
        case 6: return "if(\(condition(depth: 1)), \(formula(depth: depth - 1)), \(formula(depth: depth - 1)))"
        case 7:
            // A stored value chosen per candidate, measured or converted: contents read through a conditional.
            let text = pick(["profile.name", "offer.characteristics.margin", "profile.tags", #""abc""#])
            return "\(pick(["len", "number"]))(if(\(condition(depth: 1)), \(text), \(pick(Self.leaves))))"
        case 8:
            // `lower` of a value of both the offer and the request has no folded program; of one side it folds.
            return pick([
                "len(lower(if(offer.priority > 1, profile.name, \"X\")))",
                "len(upper(profile.name)) * offer.priority",
                "len(lower(offer.characteristics.margin)) + profile.loyalty.points",
            ])
        default: return "\(formula(depth: depth - 1)) + \(formula(depth: depth - 1))"
        }
    }
}

@Suite struct ExpressionProgramTests {
    /// Plain programs give what the tree walker gives (values, nulls, truth) on random conditions and formulas,
    /// with the profile's attributes resolved into slots and asked of the profile.
    @Test(arguments: [11, 12, 13, 14] as [UInt64])
    func plainProgramMatchesTheTreeWalker(seed: UInt64) throws {
        var generator = ConditionGenerator(random: SplitMix64(seed: seed))
        var compared = 0
        var programs = 0
        var kinds = Set<String>()
        for round in 0..<600 {
            let kind: RuleKind = round % 2 == 0 ? .condition : .formula
            let source = kind == .condition ? generator.condition(depth: 3) : generator.formula(depth: 3)
            var symbols = RuleSymbols()
            guard
                let compiled = try? RuleParser.compile(source, kind: kind, allowOfferPaths: true, symbols: &symbols)
            else { continue }
            guard let program = ExpressionProgram(compiled.node) else { continue }
            programs += 1
            for _ in 0..<6 {
                let request = try generator.request(symbols: symbols)
                let (profile, context, offer) = (request.profile, request.context, request.offer)
                for (_, inputs) in request.inputs {
                    let expected = compiled.node.evaluate(profile: profile, inputs: inputs)
                    // The program reads the offer from its argument, never from the inputs.
                    let programInputs = inputs.with(offer: nil)
                    let value = program.evaluate(profile: profile, inputs: programInputs, offer: offer)
                    #expect(value == expected, "\(source) on \(profile.attributes), context \(context)")
                    #expect(
                        program.isTrue(profile: profile, inputs: programInputs, offer: offer)
                            == compiled.node.isTrue(profile: profile, inputs: inputs), "\(source)")
                    let score = program.score(profile: profile, inputs: programInputs, offer: offer)
                    #expect(score.bitPattern == compiled.node.score(profile: profile, inputs: inputs).bitPattern)
                    kinds.insert(Self.kind(of: expected))
                    compared += 1
                }
            }
        }
        // Every kind of value must come out, or the comparison proves little.
        #expect(compared > 4_000)
        #expect(programs > 400)
        #expect(kinds == ["null", "bool", "number", "string", "list", "object"])
    }

    /// Folded programs (offer parts at load, request parts per request) score every candidate as the tree walker
    /// scores the formula for that offer.
    @Test(arguments: [21, 22, 23] as [UInt64])
    func foldedFormulaMatchesTheTreeWalker(seed: UInt64) throws {
        var generator = ConditionGenerator(random: SplitMix64(seed: seed))
        var compared = 0
        var folded = 0
        var nonZero = 0
        for _ in 0..<300 {
            let source = generator.formula(depth: 3)
            var symbols = RuleSymbols()
            guard
                let compiled = try? RuleParser.compile(
                    source, kind: .formula, allowOfferPaths: true, symbols: &symbols)
            else { continue }
            let offers = (0..<6).compactMap { _ in generator.offer(characteristicKeys: symbols.characteristicKeys) }
            let candidates = offers.map { CandidateOffer(offer: $0, representationIndex: 0) }
            guard let ranking = FormulaRanking(formula: compiled.node, candidates: candidates) else { continue }
            folded += 1
            for _ in 0..<4 {
                let profile = try generator.profile()
                let context = generator.context()
                let contextSlots = symbols.contextKeys.map { context[$0].map(RuleValue.init(context:)) ?? .null }
                let inputs = RuleInputs(context: RuleValueSlots(contextSlots), attributes: nil, now: 7, offer: nil)
                let parts = FoldedParts(ranking, profile: profile, inputs: inputs)
                for (position, candidate) in ranking.candidates.candidates.enumerated() {
                    parts.offerBase = position * ranking.partsPerCandidate
                    let score = ranking.program.score(profile: profile, inputs: inputs, offer: nil, parts: parts)
                    let expected = compiled.node.score(profile: profile, inputs: inputs.with(offer: candidate.offer))
                    #expect(score.bitPattern == expected.bitPattern, "\(source) on \(profile.attributes)")
                    if expected != 0 { nonZero += 1 }
                    compared += 1
                }
            }
        }
        #expect(folded > 200)
        #expect(compared > 3_000)
        #expect(nonZero > compared / 4)
    }

    /// A separable formula's candidates, walked in the direction a request picks, score what the folded program
    /// scores and never more than the candidate before: what stopping the walk early relies on. Offer and request
    /// values of every sign and kind, ties after rounding, and magnitudes near overflow.
    @Test(arguments: [31, 32, 33] as [UInt64])
    func separableScoresNeverIncreaseAlongTheWalk(seed: UInt64) throws {
        var generator = ConditionGenerator(random: SplitMix64(seed: seed))
        let offerSides = [
            "offer.priority", "number(offer.characteristics.margin)", "offer.priority * \(decimal(-17))",
            "-offer.priority / 3", "len(offer.characteristics.margin)", "offer.priority * \(decimal(299))",
            "offer.priority * 4\(decimal(307).dropFirst())", "offer.characteristics.margin",
            // With `points * 1e305`, some of {0, 4e307, 8e307, 1.2e308} + 1.2e308 overflow to null, so score 0.
            "offer.priority * \(decimal(305))",
        ]
        let requestSides = [
            "profile.loyalty.points", "number(context.cart)", "-profile.loyalty.points / 7", "context.cart",
            "profile.loyalty.points * \(decimal(298))", "profile.loyalty.points * \(decimal(305))", "now",
            "profile.loyalty.points - 1200",
        ]
        var walked = 0
        var fellBack = 0
        var directions = Set<String>()
        for _ in 0..<400 {
            let offerSide = generator.pick(offerSides)
            let requestSide = generator.pick(requestSides)
            let operation = generator.pick(["+", "-", "*", "/"])
            let source =
                generator.random.next(below: 2) == 0
                ? "(\(offerSide)) \(operation) (\(requestSide))" : "(\(requestSide)) \(operation) (\(offerSide))"
            var symbols = RuleSymbols()
            let compiled = try RuleParser.compile(source, kind: .formula, allowOfferPaths: true, symbols: &symbols)
            let offers = (0..<8).compactMap { _ in generator.offer(characteristicKeys: symbols.characteristicKeys) }
            let candidates = offers.map { CandidateOffer(offer: $0, representationIndex: 0) }
            let ranking = try #require(FormulaRanking(formula: compiled.node, candidates: candidates))
            // `t / c` is not monotonic in `c`: it must not be separable.
            let separable = ranking.separable
            #expect((separable == nil) == (operation == "/" && source.hasPrefix("(\(requestSide))")), "\(source)")
            guard let separable else { continue }
            for _ in 0..<4 {
                let profile = try generator.profile()
                let context = generator.context()
                let contextSlots = symbols.contextKeys.map { context[$0].map(RuleValue.init(context:)) ?? .null }
                let inputs = RuleInputs(context: RuleValueSlots(contextSlots), attributes: nil, now: 7, offer: nil)
                let parts = FoldedParts(ranking, profile: profile, inputs: inputs)
                let requestValue = parts.requestValues[separable.requestPart]
                guard case .number(let request) = requestValue, let direction = separable.direction(for: requestValue)
                else {
                    fellBack += 1
                    continue
                }
                directions.insert("\(direction)")
                let count = ranking.candidates.candidates.count
                let order =
                    direction == .largestFirst
                    ? Array(separable.numericStart..<count) : Array((separable.numericStart..<count).reversed())
                var previous = Double.infinity
                for position in order {
                    parts.offerBase = position * ranking.partsPerCandidate
                    let score = ranking.program.score(profile: profile, inputs: inputs, offer: nil, parts: parts)
                    let expected = compiled.node.score(
                        profile: profile, inputs: inputs.with(offer: ranking.candidates.candidates[position].offer))
                    #expect(score.bitPattern == expected.bitPattern, "\(source)")
                    #expect(separable.score(at: position, request: request).bitPattern == score.bitPattern)
                    #expect(score <= previous, "\(source) on \(profile.attributes), context \(context)")
                    previous = score
                    walked += 1
                }
            }
        }
        #expect(walked > 2_000)
        #expect(fellBack > 100)
        #expect(directions == ["largestFirst", "smallestFirst"])
    }

    @Test(arguments: [
        // (formula, offer parts, request parts, instructions)
        ("offer.priority + number(offer.characteristics.margin) * 2 + profile.loyalty.points / 1000", 1, 1, 3),
        ("profile.loyalty.points * offer.priority", 1, 1, 3),
        ("2 * 3 + offer.priority", 1, 0, 1),
        ("if(inAudience(\"vip\"), 2, 1) * number(offer.characteristics.margin)", 1, 1, 3),
        ("profile.loyalty.points", 0, 1, 1),
    ])
    func foldingKeepsOnlyWhatMixesOfferAndRequest(
        formula: String, offerParts: Int, requestParts: Int, instructions: Int
    ) throws {
        var symbols = RuleSymbols()
        let compiled = try RuleParser.compile(formula, kind: .formula, allowOfferPaths: true, symbols: &symbols)
        let ranking = try #require(FormulaRanking(formula: compiled.node, candidates: []))
        #expect(ranking.partsPerCandidate == offerParts)
        #expect(ranking.requestParts.count == requestParts)
        #expect(ranking.program.instructions.count == instructions)
    }

    @Test func lowerOfAValueOfBothSidesHasNoProgram() throws {
        var symbols = RuleSymbols()
        let source = #"len(lower(if(offer.priority > 1, profile.name, "X")))"#
        let compiled = try RuleParser.compile(source, kind: .formula, allowOfferPaths: true, symbols: &symbols)
        #expect(FormulaRanking(formula: compiled.node, candidates: []) == nil)
        #expect(ExpressionProgram(compiled.node) == nil)
        // On one side only, it is folded.
        let oneSide = try RuleParser.compile(
            "len(lower(profile.name)) * offer.priority", kind: .formula, allowOfferPaths: true, symbols: &symbols)
        #expect(FormulaRanking(formula: oneSide.node, candidates: []) != nil)
    }

    private static func kind(of value: RuleValue) -> String {
        switch value {
        case .null: "null"
        case .bool: "bool"
        case .number: "number"
        case .string: "string"
        case .list: "list"
        case .object: "object"
        }
    }
}
