/// A value a condition test reads directly, with no expression evaluated around it: a path, `now`, or
/// `number(offer.characteristics.key)` (whose numbers were parsed at catalog load).
enum RuleOperand: Sendable, Equatable {
    /// The request's resolved value in `slot` of the catalog's attribute table, or `paths[path]` of the program
    /// asked of the profile when the request did not resolve attributes.
    case attribute(slot: Int, path: Int)
    case context(slot: Int)
    case offerPriority
    case characteristic(slot: Int)
    case characteristicNumber(slot: Int)
    case now
}

/// One test of a ``ConditionProgram``: a comparison of an operand with a literal folded in at load, or an
/// audience. Each gives exactly what the tree walker gives for the same node (SPEC 4).
enum RuleTest: Sendable, Equatable {
    /// A bare path used as a condition: exactly `true`.
    case isTrue(RuleOperand)
    /// `operand = constants[index]` (`!=` when negated); the literal is never null (that is `isNull`).
    case equal(RuleOperand, constant: Int, negated: Bool)
    /// `operand op number`: false unless the operand is a number.
    case order(RuleOperand, OrderingOperator, Double)
    /// `operand in constants[index]`.
    case member(RuleOperand, constant: Int)
    /// `operand = null` (`!= null`, `exists(...)` when negated).
    case isNull(RuleOperand, negated: Bool)
    /// `inAudience(audiences[index])`.
    case inAudience(Int)
}

extension RuleTest {
    /// The operand of a test that needs nothing but its operand's value (no literal table, no audience).
    var selfContainedOperand: RuleOperand? {
        switch self {
        case .isTrue(let operand), .order(let operand, _, _), .isNull(let operand, _): return operand
        case .equal, .member, .inAudience: return nil
        }
    }

    /// The result of a self-contained test (``selfContainedOperand``) whose operand reads `value`; false for the
    /// others.
    func passes(_ value: RuleValue) -> Bool {
        switch self {
        case .isTrue:
            if case .bool(true) = value { return true }
            return false
        case .order(_, let ordering, let right):
            guard case .number(let left) = value else { return false }
            switch ordering {
            case .less: return left < right
            case .lessEqual: return left <= right
            case .greater: return left > right
            case .greaterEqual: return left >= right
            }
        case .isNull(_, let negated):
            if case .null = value { return !negated }
            return negated
        case .equal, .member, .inAudience:
            return false
        }
    }
}

/// One step of a ``ConditionProgram``. Plain data (no indirect payload), so walking a program retains nothing;
/// the `RuleNode` tree is an indirect enum, whose every visited node costs a retain and a release of its box.
enum ConditionInstruction: Sendable, Equatable {
    /// Continues at `target` when the test's result is `jumpIf`, else at the next instruction.
    case test(RuleTest, jumpIf: Bool, target: Int)
    case jump(target: Int)
    /// The condition's result.
    case result(Bool)
}

/// An eligibility condition compiled at catalog load into jumping code over flat tests:
/// `context.page = "home" and not inAudience("churn-risk")` is "test page = "home", go to false unless it holds;
/// test the audience, go to false if member; true". No value is built for `and`, `or`, `not` or `if`, no literal
/// is copied, nothing is allocated, and evaluation short-circuits like the tree walker.
///
/// Covers conditions made of `and`, `or`, `not`, `if`, boolean literals, audiences, bare paths, and comparisons
/// (`=`, `!=`, `<`..., `in`, `= null`, `exists`) of a path with a literal: what catalog rules are made of. Any other
/// condition has no program (``init?(_:)`` is nil) and is walked as a tree (``RuleNode/isTrue(profile:inputs:)``),
/// which stays the reference: a differential test runs both on random conditions and profiles.
struct ConditionProgram: Sendable {
    let instructions: [ConditionInstruction]
    /// String and list literals of `equal` and `member`.
    let constants: [RuleValue]
    let audiences: [InternedName]
    /// Attribute paths, for requests that did not resolve the profile's attributes into slots.
    let paths: [AttributePath]

    /// Compiles `node` as a condition; nil when a part of it is not a flat test.
    init?(_ node: RuleNode) {
        var compiler = ConditionCompiler()
        var toFalse: [Int] = []
        guard compiler.emitBranch(node, jumpIf: false, to: &toFalse) else { return nil }
        compiler.append(.result(true))
        compiler.patch(toFalse)
        compiler.append(.result(false))
        instructions = compiler.instructions
        constants = compiler.constants
        audiences = compiler.audiences
        paths = compiler.paths
    }

    /// Whether the condition is exactly `true` (SPEC 4) for `offer`; `inputs.offer` is ignored, so that the
    /// decision loop keeps one set of inputs for the whole request. Never throws, never traps.
    func isTrue<Profile: ProfileView>(profile: Profile, inputs: RuleInputs, offer: OfferDefinition?) -> Bool {
        var position = 0
        while position < instructions.count {
            switch instructions[position] {
            case .test(let test, let jumpIf, let target):
                let passed = passes(test, profile: profile, inputs: inputs, offer: offer)
                position = passed == jumpIf ? target : position + 1
            case .jump(let target):
                position = target
            case .result(let value):
                return value
            }
        }
        return false // not reached: every program ends in `result`
    }

    private func passes<Profile: ProfileView>(
        _ test: RuleTest,
        profile: Profile,
        inputs: RuleInputs,
        offer: OfferDefinition?
    ) -> Bool {
        if let operand = test.selfContainedOperand {
            return test.passes(read(operand, profile: profile, inputs: inputs, offer: offer))
        }
        switch test {
        case .isTrue, .order, .isNull:
            return false // not reached: answered above
        case .equal(let operand, let index, let negated):
            let value = read(operand, profile: profile, inputs: inputs, offer: offer)
            guard let equal = RuleValue.ruleEquality(value, constants[index]) else { return false }
            return equal != negated
        case .member(let operand, let index):
            let element = read(operand, profile: profile, inputs: inputs, offer: offer)
            return RuleValue.ruleMembership(element, constants[index])
        case .inAudience(let index):
            return profile.isMember(of: audiences[index])
        }
    }

    private func read<Profile: ProfileView>(
        _ operand: RuleOperand,
        profile: Profile,
        inputs: RuleInputs,
        offer: OfferDefinition?
    ) -> RuleValue {
        switch operand {
        case .attribute(let slot, let path):
            return inputs.attributesResolved ? inputs.attributes[slot] : profile.attribute(at: paths[path])
        case .context(let slot):
            return inputs.context[slot]
        case .offerPriority:
            guard let offer else { return .null }
            return .number(Double(offer.priority))
        case .characteristic(let slot):
            guard let offer, slot < offer.characteristicValues.count else { return .null }
            return offer.characteristicValues[slot]
        case .characteristicNumber(let slot):
            guard let offer, slot < offer.characteristicNumbers.count else { return .null }
            return offer.characteristicNumbers[slot]
        case .now:
            return .number(inputs.now)
        }
    }
}

/// Turns a condition's ``RuleNode`` tree into jumping code.
private struct ConditionCompiler {
    var instructions: [ConditionInstruction] = []
    var constants: [RuleValue] = []
    var audiences: [InternedName] = []
    var paths: [AttributePath] = []

    /// Emits code that continues at a target (recorded in `targets`, patched by the caller) when `node` is exactly
    /// `true` if `jumpIf`, not exactly `true` if not `jumpIf`, and falls through otherwise. False when a part of
    /// `node` is not a flat test (the program is then abandoned).
    mutating func emitBranch(_ node: RuleNode, jumpIf: Bool, to targets: inout [Int]) -> Bool {
        switch node {
        case .literal(let value):
            if (value == .bool(true)) == jumpIf { targets.append(append(.jump(target: -1))) }
            return true
        case .not(let operand):
            return emitBranch(operand, jumpIf: !jumpIf, to: &targets)
        case .and(let left, let right):
            // Jumping when true: a false left skips the right. Jumping when false: either side failing jumps.
            var skip: [Int] = []
            let leftFits =
                jumpIf
                ? emitBranch(left, jumpIf: false, to: &skip) : emitBranch(left, jumpIf: false, to: &targets)
            guard leftFits, emitBranch(right, jumpIf: jumpIf, to: &targets) else { return false }
            patch(skip)
            return true
        case .or(let left, let right):
            // Jumping when true: either side holding jumps. Jumping when false: a true left skips the right.
            var skip: [Int] = []
            let leftFits =
                jumpIf
                ? emitBranch(left, jumpIf: true, to: &targets) : emitBranch(left, jumpIf: true, to: &skip)
            guard leftFits, emitBranch(right, jumpIf: jumpIf, to: &targets) else { return false }
            patch(skip)
            return true
        case .conditional(let condition, let whenTrue, let whenFalse):
            var toElse: [Int] = []
            guard emitBranch(condition, jumpIf: false, to: &toElse),
                emitBranch(whenTrue, jumpIf: jumpIf, to: &targets)
            else { return false }
            let toEnd = append(.jump(target: -1))
            patch(toElse)
            guard emitBranch(whenFalse, jumpIf: jumpIf, to: &targets) else { return false }
            patch([toEnd])
            return true
        case .inAudience(let audience):
            audiences.append(audience)
            return emitTest(.inAudience(audiences.count - 1), jumpIf: jumpIf, to: &targets)
        case .isNull(let operand, let negated):
            guard let operand = self.operand(operand) else { return false }
            return emitTest(.isNull(operand, negated: negated), jumpIf: jumpIf, to: &targets)
        case .equal(let left, let right, let negated):
            // Equality is symmetric, so the literal may be on either side. Null literals were made `isNull`.
            let test: RuleTest
            if case .literal(let value) = right, value != .null, let operand = operand(left) {
                test = .equal(operand, constant: constant(value), negated: negated)
            } else if case .literal(let value) = left, value != .null, let operand = operand(right) {
                test = .equal(operand, constant: constant(value), negated: negated)
            } else {
                return false
            }
            return emitTest(test, jumpIf: jumpIf, to: &targets)
        case .order(let ordering, let left, let right):
            let test: RuleTest
            if case .literal(.number(let number)) = right, let operand = operand(left) {
                test = .order(operand, ordering, number)
            } else if case .literal(.number(let number)) = left, let operand = operand(right) {
                test = .order(operand, ordering.mirrored, number) // `2 < x` is `x > 2`
            } else {
                return false
            }
            return emitTest(test, jumpIf: jumpIf, to: &targets)
        case .member(let element, let list):
            guard case .literal(let value) = list, let operand = operand(element) else { return false }
            return emitTest(.member(operand, constant: constant(value)), jumpIf: jumpIf, to: &targets)
        default:
            guard let operand = operand(node) else { return false }
            return emitTest(.isTrue(operand), jumpIf: jumpIf, to: &targets)
        }
    }

    /// The operand a leaf node reads, or nil when `node` is not a leaf.
    private mutating func operand(_ node: RuleNode) -> RuleOperand? {
        switch node {
        case .attribute(let path, let slot):
            paths.append(path)
            return .attribute(slot: slot, path: paths.count - 1)
        case .context(let slot): return .context(slot: slot)
        case .offerPriority: return .offerPriority
        case .offerCharacteristic(let slot): return .characteristic(slot: slot)
        case .toNumber(.offerCharacteristic(let slot)): return .characteristicNumber(slot: slot)
        case .now: return .now
        default: return nil
        }
    }

    private mutating func emitTest(_ test: RuleTest, jumpIf: Bool, to targets: inout [Int]) -> Bool {
        targets.append(append(.test(test, jumpIf: jumpIf, target: -1)))
        return true
    }

    private mutating func constant(_ value: RuleValue) -> Int {
        constants.append(value)
        return constants.count - 1
    }

    /// Appends `instruction`; returns its position.
    @discardableResult
    mutating func append(_ instruction: ConditionInstruction) -> Int {
        instructions.append(instruction)
        return instructions.count - 1
    }

    /// Points the jumps and tests at `positions` to the next instruction emitted.
    mutating func patch(_ positions: [Int]) {
        let target = instructions.count
        for position in positions {
            switch instructions[position] {
            case .test(let test, let jumpIf, _): instructions[position] = .test(test, jumpIf: jumpIf, target: target)
            case .jump: instructions[position] = .jump(target: target)
            case .result: break
            }
        }
    }
}

extension OrderingOperator {
    /// The operator with its operands swapped: `a < b` is `b > a`.
    var mirrored: OrderingOperator {
        switch self {
        case .less: .greater
        case .lessEqual: .greaterEqual
        case .greater: .less
        case .greaterEqual: .lessEqual
        }
    }
}

/// A rule as the catalog keeps it: the tree (the reference semantics, and the form of formulas and of conditions
/// that are not flat tests) and, for a condition, its ``ConditionProgram``. A class, so that reading an offer's
/// eligibility retains one reference rather than each array of the program, and so that offers sharing a named
/// rule or a condition text share one instance and its memo slot.
final class CompiledRule: Sendable {
    let node: RuleNode
    let condition: ConditionProgram?
    /// The rule in the VM's form, for a formula and for a condition that is not made of flat tests; nil when it
    /// needs `lower` or `upper` (see ``ExpressionProgram``) and for a condition that has a ``ConditionProgram``.
    let program: ExpressionProgram?
    /// For a condition that does not read `offer.*`: its slot in the request's ``ConditionMemo``.
    let memoSlot: Int?

    init(_ node: RuleNode, kind: RuleKind, memoSlot: Int? = nil) {
        self.node = node
        let condition = kind == .condition ? ConditionProgram(node) : nil
        self.condition = condition
        program = condition == nil ? ExpressionProgram(node) : nil
        self.memoSlot = memoSlot
    }

    /// Whether the rule is exactly `true` for `offer` (nil: no offer); `inputs.offer` is ignored.
    func isTrue<Profile: ProfileView>(profile: Profile, inputs: RuleInputs, offer: OfferDefinition?) -> Bool {
        // Called through the optionals in place: binding one copies the program out (a retain and a release for
        // each of its arrays, per candidate).
        if let result = condition?.isTrue(profile: profile, inputs: inputs, offer: offer) { return result }
        if let result = program?.isTrue(profile: profile, inputs: inputs, offer: offer) { return result }
        return node.isTrue(profile: profile, inputs: inputs.with(offer: offer))
    }

    /// ``isTrue(profile:inputs:offer:)``, answered from `memo` when this condition was already evaluated for
    /// the request (it reads nothing of the offer, so every candidate gets the same answer).
    func isTrue<Profile: ProfileView>(
        profile: Profile,
        inputs: RuleInputs,
        offer: OfferDefinition?,
        memo: inout ConditionMemo
    ) -> Bool {
        guard let memoSlot else { return isTrue(profile: profile, inputs: inputs, offer: offer) }
        if let known = memo[memoSlot] { return known }
        let result = isTrue(profile: profile, inputs: inputs, offer: offer)
        memo[memoSlot] = result
        return result
    }

    /// The formula's score for `offer`; `inputs.offer` is ignored.
    func score<Profile: ProfileView>(profile: Profile, inputs: RuleInputs, offer: OfferDefinition?) -> Double {
        if let score = program?.score(profile: profile, inputs: inputs, offer: offer) { return score }
        return node.score(profile: profile, inputs: inputs.with(offer: offer))
    }
}

/// The results of the offer-independent conditions already evaluated in one request, by memo slot: two bits
/// per slot in four words kept inline, so a decision allocates nothing for it.
///
/// Catalogs share conditions between many offers (named rules, repeated condition texts); a condition that reads
/// only the profile, the context and `now` is the same for every candidate of the request, so it is evaluated once.
struct ConditionMemo {
    static let capacity = 128

    private var knownLow: UInt64 = 0
    private var knownHigh: UInt64 = 0
    private var trueLow: UInt64 = 0
    private var trueHigh: UInt64 = 0

    /// The result recorded for `slot` (0 ..< capacity), or nil before it was evaluated.
    subscript(slot: Int) -> Bool? {
        get {
            let bit: UInt64 = 1 << UInt64(slot & 63)
            if slot < 64 {
                return knownLow & bit == 0 ? nil : trueLow & bit != 0
            }
            return knownHigh & bit == 0 ? nil : trueHigh & bit != 0
        }
        set {
            guard let newValue else { return }
            let bit: UInt64 = 1 << UInt64(slot & 63)
            if slot < 64 {
                knownLow |= bit
                if newValue { trueLow |= bit }
            } else {
                knownHigh |= bit
                if newValue { trueHigh |= bit }
            }
        }
    }
}
