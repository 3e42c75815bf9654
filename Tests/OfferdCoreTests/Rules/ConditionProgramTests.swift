import Testing

@testable import OfferdCore

/// Random conditions over a fixed vocabulary of paths, literals and operators, as rule source text (also used by
/// ExpressionProgramTests).
struct ConditionGenerator {
    var random: SplitMix64

    static let leaves = [
        "profile.loyalty.tier", "profile.loyalty.points", "profile.name", "profile.tags", "profile.homeAddress",
        "profile.missing.deep", "profile.flag", "context.page", "context.cart", "offer.priority",
        "offer.characteristics.margin", "number(offer.characteristics.margin)", "now",
        // Stored below an empty key, which no path reaches (SPEC 4).
        #"profile.loyalty[""]"#,
    ]
    static let literals = [
        #""gold""#, #""home""#, #""""#, #""Ana""#, "1200", "0", "-3", "2.5", "12", "true", "false", "null",
        #"["gold", 3, null]"#, #"["a", "b"]"#, "[]", "[1200, -3]",
        // Strings about the 16 UTF-8 bytes an inline condition keeps inline.
        #""exactly-16-bytes""#, #""seventeen-bytes!!""#, #""exactly-16-byteX""#, #""Ünïcödé-16-b""#,
    ]
    static let names = [
        #""Ana""#, "null", #""""#, "[]", #""exactly-16-bytes""#, #""seventeen-bytes!!""#, #""Ünïcödé-16-b""#,
    ]
    static let comparisons = ["=", "==", "!=", "<", "<=", ">", ">="]

    mutating func pick(_ options: [String]) -> String {
        options[random.next(below: options.count)]
    }

    /// A condition; `depth` bounds the nesting of boolean operators.
    mutating func condition(depth: Int) -> String {
        let choice = random.next(below: depth > 0 ? 14 : 8)
        switch choice {
        case 0: return "\(pick(Self.leaves)) \(pick(Self.comparisons)) \(pick(Self.literals))"
        case 1: return "\(pick(Self.literals)) \(pick(Self.comparisons)) \(pick(Self.leaves))"
        case 2: return "\(pick(Self.leaves)) in \(pick(Self.literals))"
        case 3: return "inAudience(\(pick([#""vip""#, #""x""#])))"
        case 4: return "exists(\(pick(Self.leaves.filter { !$0.hasPrefix("number") && $0 != "now" })))"
        case 5: return pick(Self.leaves)
        case 6: return pick(["true", "false", "null", #""text""#, "3"])
        case 7:
            // Not flat tests: the whole condition is walked as a tree.
            return pick([
                "\(pick(Self.leaves)) = \(pick(Self.leaves))",
                #"contains(\#(pick(Self.leaves)), "ol")"#,
                "len(\(pick(Self.leaves))) > 1",
                "\(pick(Self.leaves)) + 1 > 3",
            ])
        case 8, 9: return "\(condition(depth: depth - 1)) and \(condition(depth: depth - 1))"
        case 10, 11: return "\(condition(depth: depth - 1)) or \(condition(depth: depth - 1))"
        case 12: return "not (\(condition(depth: depth - 1)))"
        default:
            return "if(\(condition(depth: depth - 1)), \(condition(depth: depth - 1)), \(condition(depth: depth - 1)))"
        }
    }

    mutating func profile() throws -> InMemoryProfile {
        let tier = pick([#""gold""#, #""silver""#, "null", "5", #""Gold""#])
        let points = pick(["1200", "0", "-3", #""1200""#, "null", "2.5"])
        var members = [#""loyalty": {"tier": \#(tier), "points": \#(points), "": "gold"}"#]
        if random.next(below: 3) > 0 { members.append(#""name": \#(pick(Self.names))"#) }
        if random.next(below: 3) > 0 {
            members.append(#""tags": \#(pick([#"["a", "b", 3, null]"#, "[]", #""a""#, #"["gold", 3, null]"#]))"#)
        }
        if random.next(below: 2) > 0 { members.append(#""homeAddress": \#(pick([#"{"city": "Paris"}"#, #""x""#]))"#) }
        if random.next(below: 2) > 0 { members.append(#""flag": \#(pick(["true", "false", #""true""#]))"#) }
        let audiences = ["vip", "x"].filter { _ in random.next(below: 2) == 0 }
        return InMemoryProfile(
            identities: [Identity(namespace: "ECID", id: "p")],
            audiences: audiences,
            attributes: try JSONParser.parse(Array("{\(members.joined(separator: ", "))}".utf8))
        )
    }

    /// A random profile, context and offer for rules compiled with `symbols`, and the rule inputs of each, with
    /// the profile's attributes resolved into slots (`resolved`) and asked of the profile.
    mutating func request(symbols: RuleSymbols) throws -> (
        profile: InMemoryProfile, context: [String: ContextValue], offer: OfferDefinition?,
        inputs: [(resolved: Bool, inputs: RuleInputs)]
    ) {
        let profile = try profile()
        let context = context()
        let contextSlots = symbols.contextKeys.map { context[$0].map(RuleValue.init(context:)) ?? .null }
        let offer = offer(characteristicKeys: symbols.characteristicKeys)
        let attributes = RuleValueSlots(symbols.attributePaths.map { profile.attribute(at: $0) })
        let inputs = [true, false].map { resolved in
            (
                resolved,
                RuleInputs(
                    context: RuleValueSlots(contextSlots), attributes: resolved ? attributes : nil, now: 1_000,
                    offer: offer)
            )
        }
        return (profile, context, offer, inputs)
    }

    mutating func context() -> [String: ContextValue] {
        var context: [String: ContextValue] = [:]
        switch random.next(below: 4) {
        case 0: context["page"] = .string("home")
        case 1: context["page"] = .string(pick(["other", "exactly-16-bytes", "seventeen-bytes!!", "Ünïcödé-16-b"]))
        case 2: context["page"] = .number(3)
        default: break
        }
        switch random.next(below: 3) {
        case 0: context["cart"] = .number(2.5)
        case 1: context["cart"] = .string("2.5")
        default: break
        }
        return context
    }

    mutating func offer(characteristicKeys: [String]) -> OfferDefinition? {
        guard random.next(below: 5) > 0 else { return nil }
        let margin = pick(["12", "x", "2.5", "-3", ""])
        return OfferDefinition(
            index: 0,
            id: "o",
            name: nil,
            status: .approved,
            priority: random.next(below: 4) * 400,
            startDate: -.infinity,
            endDate: .infinity,
            tags: [],
            characteristics: [],
            characteristicValues: characteristicKeys.map { $0 == "margin" ? .string(margin) : .null },
            eligibility: nil,
            cappingRules: [],
            representations: [],
            representationByPlacement: [],
            idOrder: 0
        )
    }
}

@Suite struct ConditionProgramTests {
    /// The compiled program and the tree walker agree on random conditions, profiles, contexts and offers, with
    /// the profile's attributes resolved into slots and asked of the profile.
    @Test(arguments: [1, 2, 3, 4] as [UInt64])
    func programMatchesTheTreeWalker(seed: UInt64) throws {
        var generator = ConditionGenerator(random: SplitMix64(seed: seed))
        var compared = 0
        var programs = 0
        var trueResults = 0
        var inlineAnswers = 0
        var inlineCompoundAnswers = 0
        var gateRejections = 0
        for _ in 0..<400 {
            let source = generator.condition(depth: 3)
            var symbols = RuleSymbols()
            guard
                let compiled = try? RuleParser.compile(
                    source,
                    kind: .condition,
                    allowOfferPaths: true,
                    symbols: &symbols
                )
            else { continue }
            let program = ConditionProgram(compiled.node)
            if program != nil { programs += 1 }
            for _ in 0..<8 {
                let request = try generator.request(symbols: symbols)
                let (profile, context, offer) = (request.profile, request.context, request.offer)
                for (resolved, inputs) in request.inputs {
                    let expected = compiled.node.isTrue(profile: profile, inputs: inputs)
                    if expected { trueResults += 1 }
                    // The program reads the offer from its argument, never from the inputs.
                    let programInputs = inputs.with(offer: nil)
                    let rule = CompiledRule(compiled.node, kind: .condition)
                    #expect(
                        rule.isTrue(profile: profile, inputs: programInputs, offer: offer) == expected,
                        "\(source) on \(profile.attributes), context \(context), resolved \(resolved)"
                    )
                    if let program {
                        #expect(program.isTrue(profile: profile, inputs: programInputs, offer: offer) == expected)
                        // The decision loop's inline form of conditions of a few flat tests of the request, where it
                        // answers at all (from the typed view of the request's values).
                        var typed = TypedRequest(programInputs)
                        if let answer = InlineCondition(program).isTrue(&typed) {
                            #expect(answer == expected, "inline \(source), resolved \(resolved)")
                            inlineAnswers += 1
                            if program.instructions.count > 3 { inlineCompoundAnswers += 1 }
                        }
                        // A request the condition's threshold gate turns away must be one it is false for.
                        let gate = ThresholdGate(conditions: [program])
                        if gate.key != nil, !(gate.requestKey(&typed) >= gate.bounds[0]) {
                            #expect(!expected, "gate of \(source) on \(profile.attributes), resolved \(resolved)")
                            gateRejections += 1
                        }
                    }
                    compared += 1
                }
            }
        }
        // The generator must exercise both forms and both answers, or the comparison proves little.
        #expect(compared > 2_000)
        #expect(programs > 150)
        #expect(inlineAnswers > 100)
        #expect(inlineCompoundAnswers > 30)
        #expect(gateRejections > 20)
        #expect(trueResults > compared / 10 && trueResults < compared * 9 / 10)
    }

    /// Which conditions the decision loop answers inline, from the request's typed values.
    @Test(arguments: [
        ("profile.loyalty.points >= 1200 and context.page != \"blocked-3\"", true),
        ("not (profile.tier = \"gold\" or context.page = \"exactly-16-bytes\")", true),
        ("exists(profile.tier) and profile.flag and now > 5", true),
        ("context.page != \"seventeen-bytes!!\"", false),
        ("inAudience(\"vip\") and profile.a > 1", false),
        ("profile.a > 1 and profile.b > 1 and profile.c > 1 and profile.d > 1", false),
        ("profile.a in [1, 2]", false),
        ("offer.priority > 1 and profile.a > 1", false),
    ])
    func whichConditionsAreInline(source: String, inline: Bool) throws {
        var symbols = RuleSymbols()
        let compiled = try RuleParser.compile(source, kind: .condition, allowOfferPaths: true, symbols: &symbols)
        let program = try #require(ConditionProgram(compiled.node))
        let inputs = RuleInputs(
            context: RuleValueSlots(symbols.contextKeys.map { _ in .null }),
            attributes: RuleValueSlots(symbols.attributePaths.map { _ in .null }), now: 7, offer: nil)
        var typed = TypedRequest(inputs)
        #expect((InlineCondition(program).isTrue(&typed) != nil) == inline, "\(source)")
    }

    @Test(arguments: [
        ("context.page = \"home\" and not inAudience(\"churn-risk\")", true),
        ("profile.a > 1 or (profile.b = \"x\" and exists(profile.c))", true),
        ("if(inAudience(\"vip\"), profile.a in [1, 2], not profile.b)", true),
        ("2 < profile.a", true),
        ("profile.a = context.b", false),
        ("contains(profile.a, \"x\")", false),
        ("profile.a + 1 > 2", false),
        ("len(profile.tags) > 0 and inAudience(\"vip\")", false),
    ])
    func whichConditionsCompile(source: String, compiles: Bool) throws {
        var symbols = RuleSymbols()
        let compiled = try RuleParser.compile(source, kind: .condition, allowOfferPaths: true, symbols: &symbols)
        #expect((ConditionProgram(compiled.node) != nil) == compiles)
    }

    @Test func literalsOnTheLeftMirrorTheComparison() throws {
        var symbols = RuleSymbols()
        let compiled = try RuleParser.compile(
            "2 < profile.a",
            kind: .condition,
            allowOfferPaths: true,
            symbols: &symbols
        )
        let program = try #require(ConditionProgram(compiled.node))
        let mirrored = ConditionInstruction.test(
            .order(.attribute(slot: 0, path: 0), .greater, 2),
            jumpIf: false,
            target: 2
        )
        #expect(program.instructions.contains(mirrored))
    }

    @Test(arguments: [0, 1, 63, 64, 100, 127])
    func memoRemembersEachSlotApart(slot: Int) {
        var memo = ConditionMemo()
        #expect(memo[slot] == nil)
        memo[slot] = true
        #expect(memo[slot] == true)
        for other in [0, 1, 63, 64, 100, 127] where other != slot {
            #expect(memo[other] == nil)
        }
        var falseMemo = ConditionMemo()
        falseMemo[slot] = false
        #expect(falseMemo[slot] == false)
    }
}

@Suite struct ConditionMemoEngineTests {
    /// Offers sharing a named rule and an inline condition text share one memo slot: within a request every one of
    /// them gets the same answer, and the answer is worked out again for the next request.
    @Test func sharedConditionsAreDecidedPerRequest() throws {
        let home = #", "eligibility": {"condition": "context.page = \"home\" and not inAudience(\"churn\")"}"#
        let paris = #", "eligibility": {"rule": "paris"}"#
        // Reads the offer, so it is never memoised: each offer is tested on its own margin.
        let margin = #", "eligibility": {"condition": "number(offer.characteristics.margin) > context.cut"}"#
        let catalog = try engineCatalog(
            offers: [
                offerJSON("h1", priority: 9, extra: tagged + home),
                offerJSON("h2", priority: 8, extra: tagged + home),
                offerJSON("p1", priority: 7, extra: tagged + paris),
                offerJSON("p2", priority: 6, extra: tagged + paris),
                offerJSON("m1", priority: 5, characteristics: #"{"margin": "10"}"#, extra: tagged + margin),
                offerJSON("m2", priority: 4, characteristics: #"{"margin": "30"}"#, extra: tagged + margin),
            ],
            rules: #"[{"id": "paris", "condition": "profile.homeAddress.city = \"Paris\""}]"#
        )
        let engine = DecisionEngine(catalog: catalog)
        func chosen(_ person: InMemoryProfile, _ context: [String: ContextValue]) -> [String] {
            engine.decide(request([scope(items: 6)], context: context), profile: person, now: testNow)
                .propositions[0].items.filter { !$0.isFallback }.map(\.id)
        }
        let parisian = profile(attributes: #"{"homeAddress": {"city": "Paris"}}"#)
        #expect(chosen(parisian, ["page": .string("home"), "cut": .number(20)]) == ["h1", "h2", "p1", "p2", "m2"])
        #expect(chosen(parisian, ["page": .string("cart"), "cut": .number(5)]) == ["p1", "p2", "m1", "m2"])
        #expect(chosen(profile(audiences: ["churn"]), ["page": .string("home"), "cut": .number(50)]) == [])
        #expect(chosen(profile(), ["page": .string("home")]) == ["h1", "h2"])
    }
}
