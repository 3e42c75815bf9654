/// Ordering operators of the rule language.
enum OrderingOperator: Sendable, Equatable {
    case less, lessEqual, greater, greaterEqual
}

/// Arithmetic operators of the rule language.
enum ArithmeticOperator: Sendable, Equatable {
    case add, subtract, multiply, divide
}

/// The string tests `contains`, `startsWith`, `endsWith`.
enum StringTest: Sendable, Equatable {
    case contains, startsWith, endsWith
}

/// A compiled rule expression: an enum tree whose paths, audiences and
/// context keys were resolved at catalog load, so evaluation never parses,
/// never hashes a string and never looks a name up in a dictionary.
indirect enum RuleNode: Sendable {
    case literal(RuleValue)
    /// `profile.a.b`, resolved to the key the profile store understands, and to a slot of the catalog's
    /// attribute table (see `RuleInputs.attributes`).
    case attribute(AttributePath, slot: Int)
    /// `context.key`, resolved to a slot of the request's context table.
    case context(slot: Int)
    case offerPriority
    /// `offer.characteristics.key`, resolved to a slot of every offer's characteristic table.
    case offerCharacteristic(slot: Int)
    case now
    case not(RuleNode)
    case and(RuleNode, RuleNode)
    case or(RuleNode, RuleNode)
    /// `=` (negated false) and `!=` (negated true) between two non-literal-null operands.
    case equal(RuleNode, RuleNode, negated: Bool)
    /// `x = null` / `x != null` (either side the literal null), and `exists(x)`.
    case isNull(RuleNode, negated: Bool)
    case order(OrderingOperator, RuleNode, RuleNode)
    case member(RuleNode, RuleNode)
    case arithmetic(ArithmeticOperator, RuleNode, RuleNode)
    case negate(RuleNode)
    case inAudience(InternedName)
    case stringTest(StringTest, RuleNode, RuleNode)
    case lower(RuleNode)
    case upper(RuleNode)
    case length(RuleNode)
    case toNumber(RuleNode)
    case conditional(RuleNode, RuleNode, RuleNode)
    case minimum(RuleNode, RuleNode)
    case maximum(RuleNode, RuleNode)
}

/// What kinds of value an expression can give, as far as load-time typing
/// can tell (SPEC 4: the top-level node only; paths are dynamic).
struct StaticType: OptionSet, Sendable {
    let rawValue: UInt8
    static let boolean = StaticType(rawValue: 1)
    static let number = StaticType(rawValue: 2)
    static let string = StaticType(rawValue: 4)
    static let list = StaticType(rawValue: 8)
    static let null = StaticType(rawValue: 16)
    /// A path: anything at run time.
    static let dynamic = StaticType(rawValue: 32)

    var display: String {
        var names: [String] = []
        if contains(.boolean) { names.append("a boolean") }
        if contains(.number) { names.append("a number") }
        if contains(.string) { names.append("a string") }
        if contains(.list) { names.append("a list") }
        if contains(.null) { names.append("null") }
        if contains(.dynamic) { names.append("any value") }
        return names.joined(separator: " or ")
    }
}

/// What a rule expression must give.
enum RuleKind: Sendable {
    /// An eligibility condition: must be able to give a boolean.
    case condition
    /// A ranking formula: must be able to give a number.
    case formula
}

/// A rule expression compiled once at catalog load.
struct CompiledExpression: Sendable {
    var node: RuleNode
    /// Whether it reads `offer.*` (so it cannot be a criterion's eligibility).
    var usesOfferPaths: Bool
    /// Position of the first `offer.*` path, for the criterion error.
    var firstOfferPathPosition: SourcePosition?
}

/// Names shared by every expression of one catalog: the context keys and
/// offer characteristic keys that rules read, each given a slot.
struct RuleSymbols: Sendable {
    private(set) var contextKeys: [String] = []
    private(set) var characteristicKeys: [String] = []
    private(set) var attributePaths: [AttributePath] = []
    private var attributeSlots: [AttributePath: Int] = [:]
    private var contextSlots: [String: Int] = [:]
    private var characteristicSlots: [String: Int] = [:]

    mutating func contextSlot(for key: String) -> Int {
        if let slot = contextSlots[key] { return slot }
        contextKeys.append(key)
        contextSlots[key] = contextKeys.count - 1
        return contextKeys.count - 1
    }

    mutating func attributeSlot(for path: AttributePath) -> Int {
        if let slot = attributeSlots[path] { return slot }
        attributePaths.append(path)
        attributeSlots[path] = attributePaths.count - 1
        return attributePaths.count - 1
    }

    mutating func characteristicSlot(for key: String) -> Int {
        if let slot = characteristicSlots[key] { return slot }
        characteristicKeys.append(key)
        characteristicSlots[key] = characteristicKeys.count - 1
        return characteristicKeys.count - 1
    }
}

extension RuleNode {
    /// Whether the value depends only on literals and `offer.*`, never on the profile, the context, `now` or
    /// audiences: such a formula gives each offer the same score in every request, so it is folded at load.
    var isRequestIndependent: Bool {
        switch self {
        case .literal, .offerPriority, .offerCharacteristic:
            return true
        case .attribute, .context, .now, .inAudience:
            return false
        case .not(let operand), .isNull(let operand, _), .negate(let operand), .lower(let operand),
            .upper(let operand), .length(let operand), .toNumber(let operand):
            return operand.isRequestIndependent
        case .and(let lhs, let rhs), .or(let lhs, let rhs), .equal(let lhs, let rhs, _), .order(_, let lhs, let rhs),
            .member(let lhs, let rhs), .arithmetic(_, let lhs, let rhs), .stringTest(_, let lhs, let rhs),
            .minimum(let lhs, let rhs), .maximum(let lhs, let rhs):
            return lhs.isRequestIndependent && rhs.isRequestIndependent
        case .conditional(let condition, let then, let otherwise):
            return condition.isRequestIndependent && then.isRequestIndependent && otherwise.isRequestIndependent
        }
    }
}

extension RuleNode {
    /// Calls `body` with the attribute slot of every `profile.*` path the expression reads.
    func forEachAttributeSlot(_ body: (Int) -> Void) {
        switch self {
        case .attribute(_, let slot):
            body(slot)
        case .literal, .context, .offerPriority, .offerCharacteristic, .now, .inAudience:
            break
        case .not(let operand), .isNull(let operand, _), .negate(let operand), .lower(let operand),
            .upper(let operand), .length(let operand), .toNumber(let operand):
            operand.forEachAttributeSlot(body)
        case .and(let lhs, let rhs), .or(let lhs, let rhs), .equal(let lhs, let rhs, _), .order(_, let lhs, let rhs),
            .member(let lhs, let rhs), .arithmetic(_, let lhs, let rhs), .stringTest(_, let lhs, let rhs),
            .minimum(let lhs, let rhs), .maximum(let lhs, let rhs):
            lhs.forEachAttributeSlot(body)
            rhs.forEachAttributeSlot(body)
        case .conditional(let condition, let then, let otherwise):
            condition.forEachAttributeSlot(body)
            then.forEachAttributeSlot(body)
            otherwise.forEachAttributeSlot(body)
        }
    }
}
