import Testing

@testable import OfferdCore

/// A profile for rule tests: loyalty attributes, an object, a list and audiences. It also stores empty keys, which
/// no rule path reaches (SPEC 4: `profile[""]` is always missing).
let ruleTestProfile = InMemoryProfile(
    identities: [Identity(namespace: "ECID", id: "4711")],
    audiences: ["vip", "cart-abandoner"],
    attributes: try! JSONParser.parse(
        #"""
        {"loyalty": {"tier": "gold", "points": 1200}, "homeAddress": {"city": "Paris"},
         "tags": ["a", "b", 3, null], "name": "Ana", "flag": true, "nothing": null,
         "person": {"first-name": "Ana", "": "blank"}, "": {"": "empty keys", "person": 1}, "accent": "\u00e9", "decomposed": "e\u0301", "empty": "",
         "numbers": [1, 2]}
        """#
    )
)

/// Compiles and evaluates `source` against ``ruleTestProfile`` (or `profile`).
func evaluateRule(
    _ source: String,
    kind: RuleKind = .condition,
    context: [String: ContextValue] = [:],
    profile: InMemoryProfile? = ruleTestProfile,
    now: Double = 1_000
) throws -> RuleValue {
    var symbols = RuleSymbols()
    let compiled = try RuleParser.compile(source, kind: kind, allowOfferPaths: true, symbols: &symbols)
    let slots = symbols.contextKeys.map { key in context[key].map(RuleValue.init(context:)) ?? .null }
    let environment = RuleEnvironment(profile: profile, context: slots, now: now, offer: nil)
    return compiled.node.evaluate(in: environment)
}

/// Compiles `source` and returns its error.
func compileError(_ source: String, kind: RuleKind = .condition, allowOfferPaths: Bool = true) -> RuleCompileError? {
    var symbols = RuleSymbols()
    do {
        _ = try RuleParser.compile(source, kind: kind, allowOfferPaths: allowOfferPaths, symbols: &symbols)
        return nil
    } catch {
        return error
    }
}

@Suite struct RuleEvaluationTests {
    @Test(arguments: [
        // Paths and literals.
        ("profile.loyalty.tier", RuleValue.string("gold")),
        ("profile.loyalty.points", .number(1200)),
        ("profile . loyalty [ \"tier\" ]", .string("gold")),
        ("profile.person[\"first-name\"]", .string("Ana")),
        ("profile.missing.deep", .null),
        ("profile.name.length", .null),
        ("profile.nothing", .null),
        ("profile.homeAddress", .object),
        ("profile[\"\"]", .null),
        // SPEC 4: an empty bracketed segment is a segment, one no profile holds.
        ("profile[\"\"] = null", .bool(true)),
        ("profile[\"\"] != null", .bool(false)),
        ("profile.person[\"\"]", .null),
        ("profile.person[\"\"] = null", .bool(true)),
        ("profile.person[\"\"][\"first-name\"]", .null),
        ("profile[\"\"].person", .null),
        ("profile[\"\"][\"\"]", .null),
        ("profile[ \"\" ] in [null]", .bool(false)),
        ("profile.tags", .list([.string("a"), .string("b"), .number(3), .null])),
        ("-profile.loyalty.points", .number(-1200)),
        ("-profile.name", .null),
        ("now", .number(1_000)),
        // Equality.
        ("profile.loyalty.tier = \"gold\"", .bool(true)),
        ("profile.loyalty.tier == \"gold\"", .bool(true)),
        ("profile.loyalty.tier != \"gold\"", .bool(false)),
        ("profile.loyalty.tier != \"silver\"", .bool(true)),
        ("profile.loyalty.points = 1200", .bool(true)),
        ("profile.loyalty.points = \"1200\"", .bool(false)),
        ("profile.loyalty.points != \"1200\"", .bool(false)),
        ("profile.missing = 1", .bool(false)),
        ("profile.missing != 1", .bool(false)),
        ("profile.missing = null", .bool(true)),
        ("null = profile.missing", .bool(true)),
        ("profile.missing != null", .bool(false)),
        ("profile.name = null", .bool(false)),
        ("profile.name != null", .bool(true)),
        ("profile.homeAddress != null", .bool(true)),
        ("profile.homeAddress = null", .bool(false)),
        ("profile.homeAddress = profile.homeAddress", .bool(false)),
        ("profile.homeAddress != \"x\"", .bool(false)),
        ("profile.flag = true", .bool(true)),
        ("profile.flag != false", .bool(true)),
        ("profile.accent = \"e\u{301}\"", .bool(false)),
        ("profile.accent = profile.decomposed", .bool(false)),
        ("profile.accent != profile.decomposed", .bool(true)),
        ("profile.tags = [\"a\", \"b\", 3, null]", .bool(true)),
        ("profile.tags = [\"a\", \"b\", 3, 4]", .bool(false)),
        ("profile.tags != [\"a\"]", .bool(true)),
        ("profile.numbers = [1, 2]", .bool(true)),
        ("[-1, null] = [-1, null]", .bool(true)),
        ("null = null", .bool(true)),
        // Ordering.
        ("profile.loyalty.points > 1000", .bool(true)),
        ("profile.loyalty.points >= 1200", .bool(true)),
        ("profile.loyalty.points < 1200", .bool(false)),
        ("profile.loyalty.points <= 1199.5", .bool(false)),
        ("\"abc\" < \"abd\"", .bool(true)),
        ("\"Z\" < \"a\"", .bool(true)),
        ("\"b\" >= \"a\"", .bool(true)),
        ("profile.accent > \"z\"", .bool(true)),
        ("profile.loyalty.tier > 3", .bool(false)),
        ("profile.missing < 3", .bool(false)),
        ("true < false", .bool(false)),
        ("profile.homeAddress > 1", .bool(false)),
        // Boolean operators.
        ("true and false", .bool(false)),
        ("true and true", .bool(true)),
        ("false or true", .bool(true)),
        ("not false", .bool(true)),
        ("not null", .bool(true)),
        ("not profile.name", .bool(true)),
        ("profile.flag and profile.name", .bool(false)),
        ("profile.missing or profile.flag", .bool(true)),
        ("not profile.loyalty.tier = \"gold\"", .bool(false)),
        ("true or false and false", .bool(true)),
        ("(true or false) and false", .bool(false)),
        // Membership.
        ("profile.loyalty.tier in [\"gold\", \"platinum\"]", .bool(true)),
        ("profile.loyalty.tier in [\"silver\"]", .bool(false)),
        ("3 in profile.tags", .bool(true)),
        ("\"3\" in profile.tags", .bool(false)),
        ("null in [null]", .bool(false)),
        ("profile.missing in profile.tags", .bool(false)),
        ("\"a\" in profile.name", .bool(false)),
        ("-1 in [-1, null]", .bool(true)),
        // Arithmetic.
        ("1 + 2 * 3", .number(7)),
        ("(1 + 2) * 3", .number(9)),
        ("10 - 4 - 3", .number(3)),
        ("12 / 4 / 3", .number(1)),
        ("1 / 0", .null),
        ("0 / 0", .null),
        ("1 + \"2\"", .null),
        ("profile.missing * 2", .null),
        ("- - 2", .number(2)),
        ("1.5 + 1", .number(2.5)),
        ("profile.loyalty.points / 100", .number(12)),
        // Functions.
        ("inAudience(\"vip\")", .bool(true)),
        ("inAudience(\"gold\")", .bool(false)),
        ("inAudience(\"VIP\")", .bool(false)),
        ("exists(profile.name)", .bool(true)),
        ("exists(profile.missing)", .bool(false)),
        ("exists(profile.homeAddress)", .bool(true)),
        ("exists(profile.nothing)", .bool(false)),
        ("exists(profile[\"\"])", .bool(false)),
        ("exists(profile.person[\"\"])", .bool(false)),
        ("exists(profile.person[\"\"][\"\"])", .bool(false)),
        ("exists(context.page)", .bool(false)),
        ("contains(profile.name, \"n\")", .bool(true)),
        ("contains(profile.name, \"x\")", .bool(false)),
        ("contains(profile.name, \"\")", .bool(true)),
        ("contains(profile.empty, \"\")", .bool(true)),
        ("contains(profile.accent, \"e\")", .bool(false)),
        ("contains(profile.decomposed, \"e\")", .bool(true)),
        ("contains(profile.tags, \"a\")", .bool(false)),
        ("contains(3, \"3\")", .bool(false)),
        ("startsWith(profile.name, \"An\")", .bool(true)),
        ("startsWith(profile.name, \"\")", .bool(true)),
        ("startsWith(profile.name, \"na\")", .bool(false)),
        ("startsWith(profile.missing, \"\")", .bool(false)),
        ("endsWith(profile.name, \"na\")", .bool(true)),
        ("endsWith(profile.name, \"\")", .bool(true)),
        ("endsWith(profile.name, \"Anna\")", .bool(false)),
        ("endsWith(profile.decomposed, \"\u{301}\")", .bool(true)),
        ("endsWith(profile.decomposed, \"e\u{301}\")", .bool(true)),
        ("lower(\"ÀB\")", .string("àb")),
        ("upper(profile.loyalty.tier)", .string("GOLD")),
        ("upper(\"straße\")", .string("STRASSE")),
        ("lower(null)", .null),
        ("lower(3)", .null),
        ("len(profile.name)", .number(3)),
        ("len(profile.decomposed)", .number(2)),
        ("len(profile.tags)", .number(4)),
        ("len(3)", .null),
        ("len(profile.missing)", .null),
        ("number(\"2.5\")", .number(2.5)),
        ("number(\"-7\")", .number(-7)),
        ("number(\"x\")", .null),
        ("number(\"1e5\")", .null),
        ("number(\"1.\")", .null),
        ("number(\".5\")", .null),
        ("number(\" 1\")", .null),
        ("number(\"\")", .null),
        ("number(\"-\")", .null),
        ("number(4)", .number(4)),
        ("number(true)", .null),
        ("number(\"" + String(repeating: "9", count: 400) + "\")", .null),
        ("if(true, 1, 2)", .number(1)),
        ("if(null, 1, 2)", .number(2)),
        ("if(profile.flag, \"y\", \"n\")", .string("y")),
        ("min(3, 2)", .number(2)),
        ("max(3, 2)", .number(3)),
        ("min(3, \"2\")", .null),
        ("max(profile.missing, 1)", .null),
    ])
    func evaluates(source: String, expected: RuleValue) throws {
        // The `if` wrapper has a dynamic branch, so load-time typing accepts every value kind here;
        // top-level typing has its own tests below.
        let value = try evaluateRule("if(true, \(source), profile.unused)")
        #expect(value == expected, "\(source)")
    }

    @Test func contextValuesAreVisible() throws {
        let context: [String: ContextValue] = [
            "page": .string("home"), "page.type": .string("pdp"), "cartValue": .number(99.5), "mobile": .bool(true),
            "nothing": .null,
        ]
        #expect(try evaluateRule("context.page = \"home\"", context: context) == .bool(true))
        #expect(try evaluateRule("context[\"page.type\"] = \"pdp\"", context: context) == .bool(true))
        #expect(try evaluateRule("context.cartValue > 50", context: context) == .bool(true))
        #expect(try evaluateRule("context.mobile", context: context) == .bool(true))
        #expect(try evaluateRule("context.nothing = null", context: context) == .bool(true))
        #expect(try evaluateRule("context.absent = null", context: context) == .bool(true))
        #expect(try evaluateRule("exists(context.page)", context: context) == .bool(true))
    }

    @Test func unknownProfileSeesNothing() throws {
        #expect(try evaluateRule("profile.loyalty.tier = null", profile: nil) == .bool(true))
        #expect(try evaluateRule("inAudience(\"vip\")", profile: nil) == .bool(false))
        #expect(try evaluateRule("not inAudience(\"vip\")", profile: nil) == .bool(true))
    }

    @Test func formulaScoreIsZeroUnlessANumber() throws {
        var symbols = RuleSymbols()
        let environment = RuleEnvironment<InMemoryProfile>(profile: ruleTestProfile, context: [], now: 0, offer: nil)
        for (source, expected) in [("profile.name", 0.0), ("1 / 0", 0), ("profile.loyalty.points * 2", 2400)] {
            let compiled = try RuleParser.compile(source, kind: .formula, allowOfferPaths: true, symbols: &symbols)
            #expect(compiled.node.score(in: environment) == expected, "\(source)")
        }
    }
}

@Suite struct RuleCompileErrorTests {
    @Test(arguments: [
        ("profile.a = ", 1, 13, "expected a value, found the end of the expression"),
        ("foo(1)", 1, 1, "unknown function 'foo'"),
        ("contains(profile.a)", 1, 1, "contains takes 2 arguments, got 1"),
        ("if(true, 1)", 1, 1, "if takes 3 arguments, got 2"),
        ("1 < profile.a < 3", 1, 15, "comparisons do not chain"),
        ("profile.a = 1 = 2", 1, 15, "comparisons do not chain"),
        ("profile.a in [1] in [2]", 1, 18, "comparisons do not chain"),
        ("\"a\\x\"", 1, 3, "invalid escape '\\x'"),
        ("context.a.b", 1, 11, "context is flat"),
        ("context", 1, 1, "'context' needs a key"),
        ("profile", 1, 1, "'profile' needs an attribute name"),
        ("exists(1)", 1, 8, "exists takes a path"),
        ("exists(lower(profile.a))", 1, 8, "exists takes a path"),
        ("inAudience(profile.a)", 1, 12, "inAudience takes a string literal"),
        ("1 + 2", 1, 3, "a condition must give a boolean, but '+' gives a number or null"),
        ("\"x\"", 1, 1, "a condition must give a boolean, but a string gives a string"),
        ("null", 1, 1, "a condition must give a boolean"),
        ("[1, 2]", 1, 1, "a condition must give a boolean"),
        ("len(profile.a)", 1, 1, "a condition must give a boolean, but len(...) gives a number or null"),
        ("lower(profile.a)", 1, 1, "a condition must give a boolean"),
        ("if(profile.a, 1, 2)", 1, 1, "a condition must give a boolean"),
        ("profile.a &&\n profile.b", 1, 11, "unexpected '&': write 'and'"),
        ("profile.a and\n  foo", 2, 3, "unknown name 'foo'"),
        ("profile.a and\n\t!profile.b", 2, 2, "unexpected '!'"),
        ("\"unterminated", 1, 1, "unterminated string"),
        ("TRUE", 1, 1, "unknown name 'TRUE'"),
        ("profile.a = 'x'", 1, 13, "strings are written in double quotes"),
        ("[profile.a] = [1]", 1, 2, "list items must be literal scalars"),
        ("[[1]] = [1]", 1, 2, "list items must be literal scalars"),
        ("profile.a = 1e5", 1, 14, "unexpected 'e' after a number (exponents are not supported)"),
        ("profile.a = 1.", 1, 14, "expected digits after '.'"),
        ("(profile.a", 1, 11, "expected ')' to close '('"),
        ("profile.a profile.b", 1, 11, "unexpected 'profile'"),
        ("offer.name = 1", 1, 1, "unknown offer path 'offer.name'"),
        ("\"é\" = 1 and é", 1, 13, "unexpected character 'é'"),
        ("lower", 1, 1, "'lower' is a function"),
        ("profile.a = and", 1, 13, "unexpected keyword 'and'"),
        ("profile[1]", 1, 9, "expected a string in brackets"),
    ])
    func reportsConditionErrors(source: String, line: Int, column: Int, message: String) {
        let error = compileError(source)
        #expect(error != nil, "\(source) compiled")
        #expect(error?.line == line, "\(source): \(String(describing: error))")
        #expect(error?.column == column, "\(source): \(String(describing: error))")
        #expect(error?.message.hasPrefix(message) == true, "\(source): \(String(describing: error))")
    }

    @Test(arguments: [
        ("profile.a = 1", 1, 11, "a formula must give a number, but '=' gives a boolean"),
        ("\"x\"", 1, 1, "a formula must give a number, but a string gives a string"),
        ("true", 1, 1, "a formula must give a number"),
        ("lower(profile.a)", 1, 1, "a formula must give a number"),
        ("contains(profile.a, \"b\")", 1, 1, "a formula must give a number"),
    ])
    func reportsFormulaErrors(source: String, line: Int, column: Int, message: String) {
        let error = compileError(source, kind: .formula)
        #expect(error?.line == line && error?.column == column, "\(source): \(String(describing: error))")
        #expect(error?.message.hasPrefix(message) == true, "\(source): \(String(describing: error))")
    }

    @Test(arguments: [
        "profile.a", "now", "context.x", "offer.priority", "number(offer.characteristics.margin) * 2",
        "if(profile.a, 1, profile.b)", "len(profile.tags)", "min(1, 2)", "-offer.priority",
        "offer.characteristics[\"a b\"]",
    ])
    func acceptsFormulas(source: String) {
        #expect(compileError(source, kind: .formula) == nil, "\(source)")
    }

    @Test(arguments: [
        "profile.a", "context.x", "exists(now)", "if(profile.a, true, 1)", "if(true, profile.a, 2)",
        "inAudience(\"vip\") or profile.loyalty.tier in [\"gold\"]", "profile.not.in.and = 1",
        "profile [ \"a\" ] . b = 1", "profile[\"\"] = null", "not not true",
    ])
    func acceptsConditions(source: String) {
        #expect(compileError(source) == nil, "\(source): \(String(describing: compileError(source)))")
    }

    @Test func offerPathsAreRefusedWhereNotAllowed() {
        let error = compileError("offer.priority > 3", allowOfferPaths: false)
        #expect(error?.column == 1)
        #expect(error?.message.contains("only allowed in ranking formulas and offer eligibility") == true)
    }

    @Test func columnsCountUnicodeScalars() {
        let error = compileError("\"ééé\" = 1 and foo")
        #expect(error?.column == 15)
    }
}
