/// One step of a ``RuleProgram``: a flat, non-indirect instruction whose payload is plain data, so that walking
/// a program retains nothing (the `RuleNode` tree it is compiled from is an indirect enum: every node visited
/// costs a retain and a release of its box).
///
/// Stack effects are written `before -> after` (top of the stack on the right). A `branch...` instruction tests
/// something, pops what it tested, and continues at `target` when the test's result is `jumpIf`.
enum RuleInstruction: Sendable, Equatable {
    /// `-> null`, `-> bool`, `-> number`: literals that need no constant pool.
    case pushNull
    case pushBool(Bool)
    case pushNumber(Double)
    /// `-> constants[index]`: a string or list literal.
    case pushConstant(Int)
    /// `-> profile attribute`: the request's resolved value in `slot`, or `paths[path]` asked of the profile.
    case pushAttribute(slot: Int, path: Int)
    /// `-> context value in slot`.
    case pushContext(slot: Int)
    case pushOfferPriority
    /// `-> offer.characteristics[slot]` (a string, or null).
    case pushCharacteristic(slot: Int)
    /// `-> number(offer.characteristics[slot])`, parsed at catalog load.
    case pushCharacteristicNumber(slot: Int)
    case pushNow
    /// `a b -> bool(a = b)` (or `!=` when negated), SPEC 4 equality: false when not comparable.
    case equal(negated: Bool)
    /// `x -> bool(x is null)` (or not null when negated).
    case isNull(negated: Bool)
    /// `a b -> bool(a op b)`.
    case order(OrderingOperator)
    /// `x list -> bool(x in list)`.
    case member
    /// `a b -> a op b` (numbers, else null).
    case arithmetic(ArithmeticOperator)
    case negate
    /// `s p -> bool(test(s, p))`.
    case stringTest(StringTest)
    case lower
    case upper
    case length
    case toNumber
    case minimum
    case maximum
    /// `x ->`: tests whether `x` is exactly `true`.
    case branch(jumpIf: Bool, target: Int)
    /// `a ->`: tests `a = constants[index]` (`!=` when negated); the literal is never null.
    case branchEqualConstant(Int, negated: Bool, jumpIf: Bool, target: Int)
    /// `a ->`: tests `a op literal`.
    case branchOrderNumber(OrderingOperator, Double, jumpIf: Bool, target: Int)
    /// `x ->`: tests `x in constants[index]`.
    case branchMemberConstant(Int, jumpIf: Bool, target: Int)
    /// `x ->`: tests whether `x` is null (not null when negated).
    case branchIsNull(negated: Bool, jumpIf: Bool, target: Int)
    /// `->`: tests `inAudience(audiences[index])`.
    case branchAudience(Int, jumpIf: Bool, target: Int)
    /// Continues at `target`.
    case jump(target: Int)

    /// The same instruction continuing at `target` (for jumps emitted before their target was known).
    func retargeted(_ target: Int) -> RuleInstruction {
        switch self {
        case .branch(let jumpIf, _): .branch(jumpIf: jumpIf, target: target)
        case .branchEqualConstant(let index, let negated, let jumpIf, _):
            .branchEqualConstant(index, negated: negated, jumpIf: jumpIf, target: target)
        case .branchOrderNumber(let ordering, let number, let jumpIf, _):
            .branchOrderNumber(ordering, number, jumpIf: jumpIf, target: target)
        case .branchMemberConstant(let index, let jumpIf, _):
            .branchMemberConstant(index, jumpIf: jumpIf, target: target)
        case .branchIsNull(let negated, let jumpIf, _): .branchIsNull(negated: negated, jumpIf: jumpIf, target: target)
        case .branchAudience(let index, let jumpIf, _): .branchAudience(index, jumpIf: jumpIf, target: target)
        case .jump: .jump(target: target)
        default: self
        }
    }
}

/// A rule expression compiled at catalog load into postfix instructions for a value stack of at most
/// ``RuleStack/capacity`` entries, evaluated by one loop.
///
/// Gives exactly what the reference tree walker (``RuleNode/evaluate(profile:inputs:)``) gives, SPEC 4's null and
/// type-mismatch rules included: both share the operator functions (`RuleValue.ruleEquality` and friends), and a
/// differential test runs both on random expressions and profiles.
///
/// Boolean operators compile to jumping code: `a and not inAudience("x")` is "test a, jump out unless true; test
/// the audience, jump out if member", with no boolean pushed for `and`/`or`/`not` and literals folded into the
/// comparison that reads them. Evaluation short-circuits like the tree walker. An expression deeper than the stack
/// has no program (``init?(_:)`` is nil) and is walked as a tree.
struct RuleProgram: Sendable {
    let instructions: [RuleInstruction]
    /// String and list literals.
    let constants: [RuleValue]
    /// Audiences of `inAudience`.
    let audiences: [InternedName]
    /// Attribute paths, for profiles whose attributes were not resolved into slots for the request.
    let paths: [AttributePath]

    /// Compiles `node`; nil when it needs more than ``RuleStack/capacity`` stack entries.
    init?(_ node: RuleNode) {
        var compiler = RuleProgramCompiler()
        compiler.emit(node)
        guard compiler.maximumDepth <= RuleStack.capacity else { return nil }
        instructions = compiler.instructions
        constants = compiler.constants
        audiences = compiler.audiences
        paths = compiler.paths
    }

    /// Whether the program evaluates to exactly `true` (SPEC 4: anything else is false).
    func isTrue<Profile: ProfileView>(profile: Profile, inputs: RuleInputs, offer: OfferDefinition?) -> Bool {
        if case .bool(true) = evaluate(profile: profile, inputs: inputs, offer: offer) { return true }
        return false
    }

    /// A formula's score: its number, or 0 when it is not a number (SPEC 4).
    func score<Profile: ProfileView>(profile: Profile, inputs: RuleInputs, offer: OfferDefinition?) -> Double {
        if case .number(let value) = evaluate(profile: profile, inputs: inputs, offer: offer), value.isFinite {
            return value
        }
        return 0
    }

    /// The expression's value; `offer` stands in for `inputs.offer` (the decision loop keeps its inputs fixed
    /// for the whole request and passes the candidate here, so that no per-candidate copy of them is made).
    /// Never throws, never traps.
    func evaluate<Profile: ProfileView>(profile: Profile, inputs: RuleInputs, offer: OfferDefinition?) -> RuleValue {
        var stack = RuleStack()
        var position = 0
        let count = instructions.count
        while position < count {
            let instruction = instructions[position]
            position += 1
            switch instruction {
            case .pushNull:
                stack.push(.null)
            case .pushBool(let value):
                stack.push(.bool(value))
            case .pushNumber(let value):
                stack.push(.number(value))
            case .pushConstant(let index):
                stack.push(constants[index])
            case .pushAttribute(let slot, let path):
                if inputs.attributesResolved {
                    stack.push(inputs.attributes[slot])
                } else {
                    stack.push(profile.attribute(at: paths[path]))
                }
            case .pushContext(let slot):
                stack.push(inputs.context[slot])
            case .pushOfferPriority:
                if let offer { stack.push(.number(Double(offer.priority))) } else { stack.push(.null) }
            case .pushCharacteristic(let slot):
                if let offer, slot < offer.characteristicValues.count {
                    stack.push(offer.characteristicValues[slot])
                } else {
                    stack.push(.null)
                }
            case .pushCharacteristicNumber(let slot):
                if let offer, slot < offer.characteristicNumbers.count {
                    stack.push(offer.characteristicNumbers[slot])
                } else {
                    stack.push(.null)
                }
            case .pushNow:
                stack.push(.number(inputs.now))
            case .equal(let negated):
                let right = stack.pop()
                let left = stack.pop()
                let equal = RuleValue.ruleEquality(left, right)
                stack.push(.bool(equal.map { $0 != negated } ?? false))
            case .isNull(let negated):
                stack.push(.bool(stack.popIsNull() != negated))
            case .order(let ordering):
                let right = stack.pop()
                let left = stack.pop()
                stack.push(.bool(RuleValue.ruleOrder(ordering, left, right)))
            case .member:
                let list = stack.pop()
                let element = stack.pop()
                stack.push(.bool(RuleValue.ruleMembership(element, list)))
            case .arithmetic(let operation):
                let right = stack.pop()
                let left = stack.pop()
                stack.push(RuleValue.ruleArithmetic(operation, left, right))
            case .negate:
                if case .number(let value) = stack.pop() { stack.push(.number(-value)) } else { stack.push(.null) }
            case .stringTest(let test):
                let pattern = stack.pop()
                let subject = stack.pop()
                stack.push(.bool(RuleValue.ruleStringTest(test, subject, pattern)))
            case .lower:
                if case .string(let text) = stack.pop() {
                    stack.push(.string(text.lowercased()))
                } else {
                    stack.push(.null)
                }
            case .upper:
                if case .string(let text) = stack.pop() {
                    stack.push(.string(text.uppercased()))
                } else {
                    stack.push(.null)
                }
            case .length:
                stack.push(RuleValue.ruleLength(stack.pop()))
            case .toNumber:
                stack.push(RuleValue.ruleNumber(stack.pop()))
            case .minimum:
                let right = stack.pop()
                let left = stack.pop()
                stack.push(RuleValue.ruleExtremum(left, right, minimum: true))
            case .maximum:
                let right = stack.pop()
                let left = stack.pop()
                stack.push(RuleValue.ruleExtremum(left, right, minimum: false))
            case .branch(let jumpIf, let target):
                if stack.popIsTrue() == jumpIf { position = target }
            case .branchEqualConstant(let index, let negated, let jumpIf, let target):
                let equal = RuleValue.ruleEquality(stack.pop(), constants[index]).map { $0 != negated } ?? false
                if equal == jumpIf { position = target }
            case .branchOrderNumber(let ordering, let right, let jumpIf, let target):
                if stack.popOrder(ordering, right) == jumpIf { position = target }
            case .branchMemberConstant(let index, let jumpIf, let target):
                if RuleValue.ruleMembership(stack.pop(), constants[index]) == jumpIf { position = target }
            case .branchIsNull(let negated, let jumpIf, let target):
                if (stack.popIsNull() != negated) == jumpIf { position = target }
            case .branchAudience(let index, let jumpIf, let target):
                if profile.isMember(of: audiences[index]) == jumpIf { position = target }
            case .jump(let target):
                position = target
            }
        }
        return stack.pop()
    }
}

/// Turns a ``RuleNode`` tree into instructions, tracking the stack depth they need.
private struct RuleProgramCompiler {
    var instructions: [RuleInstruction] = []
    var constants: [RuleValue] = []
    var audiences: [InternedName] = []
    var paths: [AttributePath] = []
    private var depth = 0
    private(set) var maximumDepth = 0

    /// Emits code that leaves `node`'s value on the stack (one entry more than before).
    mutating func emit(_ node: RuleNode) {
        switch node {
        case .literal(let value):
            switch value {
            case .null: append(.pushNull, effect: 1)
            case .bool(let flag): append(.pushBool(flag), effect: 1)
            case .number(let number): append(.pushNumber(number), effect: 1)
            case .string, .list, .object: append(.pushConstant(constant(value)), effect: 1)
            }
        case .attribute(let path, let slot):
            paths.append(path)
            append(.pushAttribute(slot: slot, path: paths.count - 1), effect: 1)
        case .context(let slot):
            append(.pushContext(slot: slot), effect: 1)
        case .offerPriority:
            append(.pushOfferPriority, effect: 1)
        case .offerCharacteristic(let slot):
            append(.pushCharacteristic(slot: slot), effect: 1)
        case .now:
            append(.pushNow, effect: 1)
        case .not, .and, .or, .inAudience:
            emitBoolean(node)
        case .equal(let left, let right, let negated):
            if Self.foldedLiteral(of: node) != nil {
                emitBoolean(node)
            } else {
                emitBinary(left, right, .equal(negated: negated))
            }
        case .isNull(let operand, let negated):
            emit(operand)
            append(.isNull(negated: negated), effect: 0)
        case .order(let ordering, let left, let right):
            if Self.foldedLiteral(of: node) != nil {
                emitBoolean(node)
            } else {
                emitBinary(left, right, .order(ordering))
            }
        case .member(let element, let list):
            if Self.foldedLiteral(of: node) != nil {
                emitBoolean(node)
            } else {
                emitBinary(element, list, .member)
            }
        case .arithmetic(let operation, let left, let right):
            emitBinary(left, right, .arithmetic(operation))
        case .negate(let operand):
            emit(operand)
            append(.negate, effect: 0)
        case .stringTest(let test, let subject, let pattern):
            emitBinary(subject, pattern, .stringTest(test))
        case .lower(let operand):
            emit(operand)
            append(.lower, effect: 0)
        case .upper(let operand):
            emit(operand)
            append(.upper, effect: 0)
        case .length(let operand):
            emit(operand)
            append(.length, effect: 0)
        case .toNumber(let operand):
            if case .offerCharacteristic(let slot) = operand {
                // Characteristic values are strings; their numbers were parsed at load.
                append(.pushCharacteristicNumber(slot: slot), effect: 1)
            } else {
                emit(operand)
                append(.toNumber, effect: 0)
            }
        case .conditional(let condition, let whenTrue, let whenFalse):
            var toElse: [Int] = []
            emitBranch(condition, jumpIf: false, to: &toElse)
            emit(whenTrue)
            let toEnd = placeholder(.jump(target: -1), effect: 0)
            depth -= 1  // the other branch starts from the depth before `whenTrue`
            patch(toElse)
            emit(whenFalse)
            patch([toEnd])
        case .minimum(let left, let right):
            emitBinary(left, right, .minimum)
        case .maximum(let left, let right):
            emitBinary(left, right, .maximum)
        }
    }

    /// Pushes the boolean `node` gives, through its jumping code.
    private mutating func emitBoolean(_ node: RuleNode) {
        var toFalse: [Int] = []
        emitBranch(node, jumpIf: false, to: &toFalse)
        append(.pushBool(true), effect: 1)
        let toEnd = placeholder(.jump(target: -1), effect: 0)
        depth -= 1
        patch(toFalse)
        append(.pushBool(false), effect: 1)
        patch([toEnd])
    }

    /// Emits code that leaves the stack as it was and continues at a target (recorded in `targets`, patched by the
    /// caller) when `node` is exactly `true` if `jumpIf`, not exactly `true` if not `jumpIf`; else falls through.
    private mutating func emitBranch(_ node: RuleNode, jumpIf: Bool, to targets: inout [Int]) {
        switch node {
        case .literal(let value):
            if (value == .bool(true)) == jumpIf { targets.append(placeholder(.jump(target: -1), effect: 0)) }
        case .not(let operand):
            emitBranch(operand, jumpIf: !jumpIf, to: &targets)
        case .and(let left, let right):
            if jumpIf {
                var skip: [Int] = []
                emitBranch(left, jumpIf: false, to: &skip)
                emitBranch(right, jumpIf: true, to: &targets)
                patch(skip)
            } else {
                emitBranch(left, jumpIf: false, to: &targets)
                emitBranch(right, jumpIf: false, to: &targets)
            }
        case .or(let left, let right):
            if jumpIf {
                emitBranch(left, jumpIf: true, to: &targets)
                emitBranch(right, jumpIf: true, to: &targets)
            } else {
                var skip: [Int] = []
                emitBranch(left, jumpIf: true, to: &skip)
                emitBranch(right, jumpIf: false, to: &targets)
                patch(skip)
            }
        case .conditional(let condition, let whenTrue, let whenFalse):
            var toElse: [Int] = []
            emitBranch(condition, jumpIf: false, to: &toElse)
            emitBranch(whenTrue, jumpIf: jumpIf, to: &targets)
            let toEnd = placeholder(.jump(target: -1), effect: 0)
            patch(toElse)
            emitBranch(whenFalse, jumpIf: jumpIf, to: &targets)
            patch([toEnd])
        case .inAudience(let audience):
            audiences.append(audience)
            targets.append(placeholder(.branchAudience(audiences.count - 1, jumpIf: jumpIf, target: -1), effect: 0))
        case .isNull(let operand, let negated):
            emit(operand)
            targets.append(placeholder(.branchIsNull(negated: negated, jumpIf: jumpIf, target: -1), effect: -1))
        case .equal(_, _, let negated):
            if let (other, literal, _) = Self.foldedLiteral(of: node) {
                emit(other)
                let index = constant(literal)
                targets.append(
                    placeholder(.branchEqualConstant(index, negated: negated, jumpIf: jumpIf, target: -1), effect: -1)
                )
            } else {
                emitTestedValue(node, jumpIf: jumpIf, to: &targets)
            }
        case .order(let ordering, _, _):
            if let (other, literal, literalOnLeft) = Self.foldedLiteral(of: node), case .number(let number) = literal {
                // `2 < x` is `x > 2`.
                let effective = literalOnLeft ? ordering.mirrored : ordering
                emit(other)
                targets.append(
                    placeholder(.branchOrderNumber(effective, number, jumpIf: jumpIf, target: -1), effect: -1)
                )
            } else {
                emitTestedValue(node, jumpIf: jumpIf, to: &targets)
            }
        case .member(let element, _):
            if let (_, literal, _) = Self.foldedLiteral(of: node) {
                emit(element)
                let index = constant(literal)
                targets.append(placeholder(.branchMemberConstant(index, jumpIf: jumpIf, target: -1), effect: -1))
            } else {
                emitTestedValue(node, jumpIf: jumpIf, to: &targets)
            }
        default:
            emitTestedValue(node, jumpIf: jumpIf, to: &targets)
        }
    }

    /// The generic branch: computes the value, then tests it. Never used for a node whose value is computed
    /// through ``emitBranch(_:jumpIf:to:)`` (and, or, not, audiences, folded comparisons), so there is no cycle.
    private mutating func emitTestedValue(_ node: RuleNode, jumpIf: Bool, to targets: inout [Int]) {
        emit(node)
        targets.append(placeholder(.branch(jumpIf: jumpIf, target: -1), effect: -1))
    }

    /// For a comparison with a literal operand that can be folded into its test instruction: the other operand and
    /// the literal. `=`/`!=` fold any non-null literal on either side (equality is symmetric), `<`... a number
    /// literal on either side (the operator is then mirrored), `in` a literal on the right.
    private static func foldedLiteral(
        of node: RuleNode
    ) -> (other: RuleNode, literal: RuleValue, literalOnLeft: Bool)? {
        switch node {
        case .equal(let left, let right, _):
            if case .literal(let value) = right, value != .null { return (left, value, false) }
            if case .literal(let value) = left, value != .null { return (right, value, true) }
            return nil
        case .order(_, let left, let right):
            if case .literal(.number(let number)) = right { return (left, .number(number), false) }
            if case .literal(.number(let number)) = left { return (right, .number(number), true) }
            return nil
        case .member(let element, let list):
            if case .literal(let value) = list { return (element, value, false) }
            return nil
        default:
            return nil
        }
    }

    private mutating func emitBinary(_ left: RuleNode, _ right: RuleNode, _ operation: RuleInstruction) {
        emit(left)
        emit(right)
        append(operation, effect: -1)
    }

    private mutating func constant(_ value: RuleValue) -> Int {
        constants.append(value)
        return constants.count - 1
    }

    private mutating func append(_ instruction: RuleInstruction, effect: Int) {
        instructions.append(instruction)
        depth += effect
        maximumDepth = max(maximumDepth, depth)
    }

    /// Appends a jump whose target is patched once known; returns its position.
    private mutating func placeholder(_ instruction: RuleInstruction, effect: Int) -> Int {
        append(instruction, effect: effect)
        return instructions.count - 1
    }

    /// Points the jumps at `positions` to the next instruction emitted.
    private mutating func patch(_ positions: [Int]) {
        for position in positions {
            instructions[position] = instructions[position].retargeted(instructions.count)
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

/// The value stack of ``RuleProgram``: four entries in stored properties, so evaluating allocates nothing (few
/// rules need more than two; deeper ones are walked as trees). OfferdCore uses no unsafe code, so an entry is
/// reached through a switch. Programs are compiled only when they fit (``RuleProgram/init?(_:)``), so `push`
/// never overflows.
struct RuleStack {
    static let capacity = 4

    private var entry0: RuleValue = .null
    private var entry1: RuleValue = .null
    private var entry2: RuleValue = .null
    private var entry3: RuleValue = .null
    private var depth = 0

    mutating func push(_ value: RuleValue) {
        switch depth {
        case 0: entry0 = value
        case 1: entry1 = value
        case 2: entry2 = value
        default:
            // The compiler proved the depth; a program that breaks it is an engine bug, not bad input.
            precondition(depth == 3, "rule program exceeds its stack")
            entry3 = value
        }
        depth += 1
    }

    /// Removes and returns the top entry; null on an empty stack (never reached by a compiled program).
    mutating func pop() -> RuleValue {
        guard depth > 0 else { return .null }
        depth -= 1
        switch depth {
        case 0: return entry0
        case 1: return entry1
        case 2: return entry2
        default: return entry3
        }
    }

    /// Removes the top entry and tells whether it is exactly `true`.
    mutating func popIsTrue() -> Bool {
        if case .bool(true) = pop() { return true }
        return false
    }

    /// Removes the top entry and tells whether it is null.
    mutating func popIsNull() -> Bool {
        if case .null = pop() { return true }
        return false
    }

    /// Removes the top entry and compares it with a number (SPEC 4: false unless it is a number).
    mutating func popOrder(_ ordering: OrderingOperator, _ right: Double) -> Bool {
        guard case .number(let left) = pop() else { return false }
        switch ordering {
        case .less: return left < right
        case .lessEqual: return left <= right
        case .greater: return left > right
        case .greaterEqual: return left >= right
        }
    }
}

/// A rule as the catalog keeps it: the tree (the reference semantics) and its flat program (what the decision
/// loop runs), when it fits the stack. A class, so that reading an offer's eligibility retains one reference
/// rather than each array of the program.
final class CompiledRule: Sendable {
    let node: RuleNode
    let program: RuleProgram?

    init(_ node: RuleNode) {
        self.node = node
        self.program = RuleProgram(node)
    }

    /// Whether the rule is exactly `true` for `offer` (nil: no offer); `inputs.offer` is ignored.
    func isTrue<Profile: ProfileView>(profile: Profile, inputs: RuleInputs, offer: OfferDefinition?) -> Bool {
        if let program { return program.isTrue(profile: profile, inputs: inputs, offer: offer) }
        return node.isTrue(profile: profile, inputs: inputs.with(offer: offer))
    }

    /// The formula's score for `offer`; `inputs.offer` is ignored.
    func score<Profile: ProfileView>(profile: Profile, inputs: RuleInputs, offer: OfferDefinition?) -> Double {
        if let program { return program.score(profile: profile, inputs: inputs, offer: offer) }
        return node.score(profile: profile, inputs: inputs.with(offer: offer))
    }
}
