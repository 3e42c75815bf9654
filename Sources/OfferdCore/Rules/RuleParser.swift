/// Compiles rule expressions (SPEC section 4) into ``RuleNode`` trees.
///
/// Grammar, loosest first:
/// ```
/// or         := and ("or" and)*
/// and        := not ("and" not)*
/// not        := "not" not | comparison
/// comparison := additive [("=" | "==" | "!=" | "<" | "<=" | ">" | ">=" | "in") additive]
/// additive   := term (("+" | "-") term)*
/// term       := unary (("*" | "/") unary)*
/// unary      := "-" unary | primary
/// primary    := literal | list | path | "now" | call | "(" or ")"
/// ```
struct RuleParser {
    /// The parsed form of a sub-expression, with what load-time checks need.
    private struct Parsed {
        var node: RuleNode
        var type: StaticType
        /// The top-level operator's position (or the start of a literal, path or call).
        var position: SourcePosition
        var isPath = false
        var isNullLiteral = false
        var description: String
    }

    private static let functionArity: [String: Int] = [
        "inAudience": 1, "exists": 1, "contains": 2, "startsWith": 2, "endsWith": 2, "lower": 1, "upper": 1,
        "len": 1, "number": 1, "if": 3, "min": 2, "max": 2,
    ]
    private static let keywords: Set<String> = ["and", "or", "not", "in", "true", "false", "null", "now"]

    private let tokens: [RuleToken]
    private var index = 0
    private let allowOfferPaths: Bool
    private var symbols: RuleSymbols
    private var firstOfferPathPosition: SourcePosition?

    private init(tokens: [RuleToken], allowOfferPaths: Bool, symbols: RuleSymbols) {
        self.tokens = tokens
        self.allowOfferPaths = allowOfferPaths
        self.symbols = symbols
    }

    /// Compiles `source` as a `kind` expression, registering the context and
    /// characteristic keys it reads in `symbols`.
    static func compile(
        _ source: String,
        kind: RuleKind,
        allowOfferPaths: Bool,
        symbols: inout RuleSymbols
    ) throws(RuleCompileError) -> CompiledExpression {
        let tokens = try RuleLexer.tokenize(source)
        var parser = RuleParser(tokens: tokens, allowOfferPaths: allowOfferPaths, symbols: symbols)
        let parsed = try parser.parseOr()
        if parser.current.kind != .end {
            throw RuleCompileError("unexpected \(parser.current.kind.display)", at: parser.current.position)
        }
        switch kind {
        case .condition:
            guard !parsed.type.isDisjoint(with: [.boolean, .dynamic]) else {
                throw RuleCompileError(
                    "a condition must give a boolean, but \(parsed.description) gives \(parsed.type.display)",
                    at: parsed.position
                )
            }
        case .formula:
            guard !parsed.type.isDisjoint(with: [.number, .dynamic]) else {
                throw RuleCompileError(
                    "a formula must give a number, but \(parsed.description) gives \(parsed.type.display)",
                    at: parsed.position
                )
            }
        }
        symbols = parser.symbols
        return CompiledExpression(
            node: parsed.node,
            usesOfferPaths: parser.firstOfferPathPosition != nil,
            firstOfferPathPosition: parser.firstOfferPathPosition
        )
    }

    private var current: RuleToken { tokens[index] }

    private mutating func advance() { if index < tokens.count - 1 { index += 1 } }

    private func isKeyword(_ keyword: String) -> Bool {
        if case .identifier(let name) = current.kind { return name == keyword }
        return false
    }

    private mutating func expect(_ kind: RuleTokenKind, _ context: String) throws(RuleCompileError) {
        guard current.kind == kind else {
            throw RuleCompileError(
                "expected \(kind.display) \(context), found \(current.kind.display)",
                at: current.position
            )
        }
        advance()
    }

    // MARK: - Boolean operators

    private mutating func parseOr() throws(RuleCompileError) -> Parsed {
        var left = try parseAnd()
        while isKeyword("or") {
            let position = current.position
            advance()
            let right = try parseAnd()
            left = Parsed(node: .or(left.node, right.node), type: .boolean, position: position, description: "'or'")
        }
        return left
    }

    private mutating func parseAnd() throws(RuleCompileError) -> Parsed {
        var left = try parseNot()
        while isKeyword("and") {
            let position = current.position
            advance()
            let right = try parseNot()
            left = Parsed(node: .and(left.node, right.node), type: .boolean, position: position, description: "'and'")
        }
        return left
    }

    private mutating func parseNot() throws(RuleCompileError) -> Parsed {
        guard isKeyword("not") else { return try parseComparison() }
        let position = current.position
        advance()
        let operand = try parseNot()
        return Parsed(node: .not(operand.node), type: .boolean, position: position, description: "'not'")
    }

    // MARK: - Comparisons

    private enum ComparisonToken {
        case equal, notEqual
        case ordering(OrderingOperator)
        case member
    }

    private var comparisonToken: ComparisonToken? {
        switch current.kind {
        case .equal: .equal
        case .notEqual: .notEqual
        case .less: .ordering(.less)
        case .lessEqual: .ordering(.lessEqual)
        case .greater: .ordering(.greater)
        case .greaterEqual: .ordering(.greaterEqual)
        case .identifier("in"): .member
        default: nil
        }
    }

    private mutating func parseComparison() throws(RuleCompileError) -> Parsed {
        let left = try parseAdditive()
        guard let comparison = comparisonToken else { return left }
        let position = current.position
        let operatorText = current.kind == .identifier("in") ? "'in'" : current.kind.display
        advance()
        let right = try parseAdditive()
        if comparisonToken != nil {
            throw RuleCompileError(
                "comparisons do not chain: write 'a < b and b < c' instead of 'a < b < c'",
                at: current.position
            )
        }
        let node: RuleNode
        switch comparison {
        case .equal, .notEqual:
            let negated: Bool
            if case .notEqual = comparison { negated = true } else { negated = false }
            if right.isNullLiteral {
                node = .isNull(left.node, negated: negated)
            } else if left.isNullLiteral {
                node = .isNull(right.node, negated: negated)
            } else {
                node = .equal(left.node, right.node, negated: negated)
            }
        case .ordering(let ordering):
            node = .order(ordering, left.node, right.node)
        case .member:
            node = .member(left.node, right.node)
        }
        return Parsed(node: node, type: .boolean, position: position, description: operatorText)
    }

    // MARK: - Arithmetic

    /// The two binary arithmetic precedence levels, loosest first.
    private enum ArithmeticLevel {
        case additive, multiplicative

        func operation(for kind: RuleTokenKind) -> ArithmeticOperator? {
            switch (self, kind) {
            case (.additive, .plus): .add
            case (.additive, .minus): .subtract
            case (.multiplicative, .star): .multiply
            case (.multiplicative, .slash): .divide
            default: nil
            }
        }
    }

    private mutating func parseAdditive() throws(RuleCompileError) -> Parsed {
        try parseArithmetic(.additive)
    }

    /// One left-associative level: `operand (operator operand)*`.
    private mutating func parseArithmetic(_ level: ArithmeticLevel) throws(RuleCompileError) -> Parsed {
        var left = try parseArithmeticOperand(level)
        while let operation = level.operation(for: current.kind) {
            let position = current.position
            let text = current.kind.display
            advance()
            let right = try parseArithmeticOperand(level)
            left = Parsed(
                node: .arithmetic(operation, left.node, right.node),
                type: [.number, .null],
                position: position,
                description: text
            )
        }
        return left
    }

    private mutating func parseArithmeticOperand(_ level: ArithmeticLevel) throws(RuleCompileError) -> Parsed {
        switch level {
        case .additive: try parseArithmetic(.multiplicative)
        case .multiplicative: try parseUnary()
        }
    }

    private mutating func parseUnary() throws(RuleCompileError) -> Parsed {
        guard current.kind == .minus else { return try parsePrimary() }
        let position = current.position
        advance()
        let operand = try parseUnary()
        if case .literal(.number(let value)) = operand.node {
            return Parsed(node: .literal(.number(-value)), type: .number, position: position, description: "a number")
        }
        return Parsed(node: .negate(operand.node), type: [.number, .null], position: position, description: "'-'")
    }

    // MARK: - Primaries

    private mutating func parsePrimary() throws(RuleCompileError) -> Parsed {
        let token = current
        switch token.kind {
        case .number(let value):
            advance()
            return Parsed(
                node: .literal(.number(value)),
                type: .number,
                position: token.position,
                description: "a number"
            )
        case .string(let value):
            advance()
            return Parsed(
                node: .literal(.string(value)),
                type: .string,
                position: token.position,
                description: "a string"
            )
        case .leftBracket:
            return try parseListLiteral()
        case .leftParen:
            advance()
            let inner = try parseOr()
            try expect(.rightParen, "to close '('")
            return inner
        case .identifier(let name):
            switch name {
            case "true", "false":
                advance()
                return Parsed(
                    node: .literal(.bool(name == "true")),
                    type: .boolean,
                    position: token.position,
                    description: "a boolean"
                )
            case "null":
                advance()
                return Parsed(
                    node: .literal(.null),
                    type: .null,
                    position: token.position,
                    isNullLiteral: true,
                    description: "null"
                )
            case "now":
                advance()
                return Parsed(node: .now, type: .dynamic, position: token.position, isPath: true, description: "now")
            case "profile", "context", "offer":
                return try parsePath(root: name, at: token.position)
            default:
                break
            }
            if Self.keywords.contains(name) {
                throw RuleCompileError("unexpected keyword '\(name)'", at: token.position)
            }
            advance()
            if current.kind == .leftParen {
                return try parseCall(name, at: token.position)
            }
            if Self.functionArity[name] != nil {
                throw RuleCompileError("'\(name)' is a function: write \(name)(...)", at: token.position)
            }
            throw RuleCompileError(
                "unknown name '\(name)' (paths start with profile., context. or offer.)",
                at: token.position
            )
        default:
            throw RuleCompileError("expected a value, found \(token.kind.display)", at: token.position)
        }
    }

    private mutating func parseListLiteral() throws(RuleCompileError) -> Parsed {
        let start = current.position
        advance() // "["
        var items: [RuleValue] = []
        if current.kind == .rightBracket {
            advance()
            return Parsed(node: .literal(.list(items)), type: .list, position: start, description: "a list")
        }
        while true {
            items.append(try parseListItem())
            if current.kind == .comma {
                advance()
                continue
            }
            try expect(.rightBracket, "to close the list")
            return Parsed(node: .literal(.list(items)), type: .list, position: start, description: "a list")
        }
    }

    private mutating func parseListItem() throws(RuleCompileError) -> RuleValue {
        let token = current
        switch token.kind {
        case .string(let value):
            advance()
            return .string(value)
        case .number(let value):
            advance()
            return .number(value)
        case .minus:
            advance()
            guard case .number(let value) = current.kind else {
                throw RuleCompileError("list items must be literal scalars", at: token.position)
            }
            advance()
            return .number(-value)
        case .identifier("true"):
            advance()
            return .bool(true)
        case .identifier("false"):
            advance()
            return .bool(false)
        case .identifier("null"):
            advance()
            return .null
        default:
            throw RuleCompileError(
                "list items must be literal scalars (strings, numbers, true, false, null)",
                at: token.position
            )
        }
    }

    /// Reads the segments after a path root: `.name` or `["any name"]`.
    private mutating func parseSegments() throws(RuleCompileError) -> [(name: String, position: SourcePosition)] {
        var segments: [(name: String, position: SourcePosition)] = []
        while true {
            if current.kind == .dot {
                advance()
                guard case .identifier(let name) = current.kind else {
                    throw RuleCompileError(
                        "expected a name after '.', found \(current.kind.display) (write other names in brackets: "
                            + "[\"name\"])",
                        at: current.position
                    )
                }
                segments.append((name, current.position))
                advance()
            } else if current.kind == .leftBracket {
                advance()
                guard case .string(let name) = current.kind else {
                    throw RuleCompileError(
                        "expected a string in brackets, found \(current.kind.display)",
                        at: current.position
                    )
                }
                segments.append((name, current.position))
                advance()
                try expect(.rightBracket, "after the bracketed name")
            } else {
                return segments
            }
        }
    }

    private mutating func parsePath(root: String, at position: SourcePosition) throws(RuleCompileError) -> Parsed {
        advance() // the root name
        let segments = try parseSegments()
        let text = root + segments.map { ".\($0.name)" }.joined()
        switch root {
        case "profile":
            guard !segments.isEmpty else {
                throw RuleCompileError("'profile' needs an attribute name, e.g. profile.loyalty.tier", at: position)
            }
            // SPEC 4: `profile[""]` is a valid path that is always missing, though a profile may store empty keys
            // (JSON allows them, and the snapshot keeps them). So a path with an empty segment is the null it
            // always reads as, settled here once for every profile view, and it takes no attribute slot.
            if segments.contains(where: { $0.name.isEmpty }) {
                return Parsed(
                    node: .literal(.null), type: .dynamic, position: position, isPath: true, description: text)
            }
            let path = AttributePath(segments.map(\.name))
            let slot = symbols.attributeSlot(for: path)
            return Parsed(
                node: .attribute(path, slot: slot), type: .dynamic, position: position, isPath: true, description: text)
        case "context":
            guard let first = segments.first else {
                throw RuleCompileError("'context' needs a key, e.g. context.channel", at: position)
            }
            if segments.count > 1 {
                throw RuleCompileError(
                    "context is flat: '\(text)' has more than one segment (write context[\"a.b\"] for a dotted key)",
                    at: segments[1].position
                )
            }
            let slot = symbols.contextSlot(for: first.name)
            return Parsed(
                node: .context(slot: slot),
                type: .dynamic,
                position: position,
                isPath: true,
                description: text
            )
        default:
            guard allowOfferPaths else {
                throw RuleCompileError(
                    "offer.* paths are only allowed in ranking formulas and offer eligibility",
                    at: position
                )
            }
            if firstOfferPathPosition == nil { firstOfferPathPosition = position }
            let names = segments.map(\.name)
            if names == ["priority"] {
                return Parsed(node: .offerPriority, type: .dynamic, position: position, isPath: true, description: text)
            }
            if names.count == 2, names[0] == "characteristics" {
                let slot = symbols.characteristicSlot(for: names[1])
                return Parsed(
                    node: .offerCharacteristic(slot: slot),
                    type: .dynamic,
                    position: position,
                    isPath: true,
                    description: text
                )
            }
            throw RuleCompileError(
                "unknown offer path '\(text)': use offer.priority or offer.characteristics.KEY",
                at: position
            )
        }
    }

    private mutating func parseCall(_ name: String, at position: SourcePosition) throws(RuleCompileError) -> Parsed {
        guard let arity = Self.functionArity[name] else {
            throw RuleCompileError(
                "unknown function '\(name)' (known: "
                    + Self.functionArity.keys.sorted().joined(separator: ", ") + ")",
                at: position
            )
        }
        advance() // "("
        var arguments: [Parsed] = []
        if current.kind != .rightParen {
            while true {
                arguments.append(try parseOr())
                if current.kind == .comma {
                    advance()
                    continue
                }
                break
            }
        }
        try expect(.rightParen, "to close the arguments of \(name)")
        guard arguments.count == arity else {
            throw RuleCompileError(
                "\(name) takes \(arity) argument\(arity == 1 ? "" : "s"), got \(arguments.count)",
                at: position
            )
        }
        let description = "\(name)(...)"
        func make(_ node: RuleNode, _ type: StaticType) -> Parsed {
            Parsed(node: node, type: type, position: position, description: description)
        }
        switch name {
        case "inAudience":
            guard case .literal(.string(let audience)) = arguments[0].node else {
                throw RuleCompileError(
                    "inAudience takes a string literal, e.g. inAudience(\"vip\")",
                    at: arguments[0].position
                )
            }
            return make(.inAudience(InternedName(audience)), .boolean)
        case "exists":
            guard arguments[0].isPath else {
                throw RuleCompileError(
                    "exists takes a path, e.g. exists(profile.loyalty.tier)",
                    at: arguments[0].position
                )
            }
            return make(.isNull(arguments[0].node, negated: true), .boolean)
        case "contains": return make(.stringTest(.contains, arguments[0].node, arguments[1].node), .boolean)
        case "startsWith": return make(.stringTest(.startsWith, arguments[0].node, arguments[1].node), .boolean)
        case "endsWith": return make(.stringTest(.endsWith, arguments[0].node, arguments[1].node), .boolean)
        case "lower": return make(.lower(arguments[0].node), [.string, .null])
        case "upper": return make(.upper(arguments[0].node), [.string, .null])
        case "len": return make(.length(arguments[0].node), [.number, .null])
        case "number": return make(.toNumber(arguments[0].node), [.number, .null])
        case "min": return make(.minimum(arguments[0].node, arguments[1].node), [.number, .null])
        case "max": return make(.maximum(arguments[0].node, arguments[1].node), [.number, .null])
        default: // "if": typed by its branches
            return make(
                .conditional(arguments[0].node, arguments[1].node, arguments[2].node),
                arguments[1].type.union(arguments[2].type)
            )
        }
    }
}
