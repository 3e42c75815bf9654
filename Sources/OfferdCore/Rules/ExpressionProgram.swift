/// A rule value as an ``ExpressionProgram`` passes it between instructions: null, booleans and numbers unboxed, and
/// a value with storage (a string, a list, an object) as the position of the instruction that read it. An operator
/// that needs such a value's contents reads them again from where they are kept (the request's slots, the offer,
/// the program's literals, a folded part), in place. A trivial type: evaluating a program retains nothing.
enum ProgramValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(Double)
    /// A string, a list or an object, read by the instruction at this position.
    case stored(position: Int32)

    /// `value` unboxed when it is a scalar; else a stored value read back by the instruction at `position`.
    init(_ value: RuleValue, storedAt position: Int32) {
        switch value {
        case .null: self = .null
        case .bool(let flag): self = .bool(flag)
        case .number(let number): self = .number(number)
        case .string, .list, .object: self = .stored(position: position)
        }
    }

    var isStored: Bool {
        if case .stored = self { return true }
        return false
    }
}

/// One instruction of an ``ExpressionProgram``: a leaf that reads a value, or an operator whose operands are the
/// positions of earlier instructions. Plain data, so walking a program retains nothing (a `RuleNode` tree costs a
/// retain and a release of every box it visits).
enum ExpressionInstruction: Sendable, Equatable {
    /// A null, boolean or number literal.
    case scalar(ProgramValue)
    /// A string or list literal: the program's `constants[index]`.
    case constant(index: Int32)
    /// `profile.…`: the request's resolved `slot`, or the program's `paths[path]` asked of the profile.
    case attribute(slot: Int32, path: Int32)
    case context(slot: Int32)
    case offerPriority
    case characteristic(slot: Int32)
    /// `number(offer.characteristics.key)`, parsed at catalog load.
    case characteristicNumber(slot: Int32)
    case now
    /// A sub-expression that reads the request but no offer, evaluated once per request (``FoldedParts``).
    case requestPart(index: Int32)
    /// A sub-expression that reads the offer but not the request, evaluated per candidate at catalog load.
    case offerPart(index: Int32)
    case not(Int32)
    case and(Int32, Int32)
    case or(Int32, Int32)
    case equal(Int32, Int32, negated: Bool)
    case isNull(Int32, negated: Bool)
    case order(OrderingOperator, Int32, Int32)
    case member(Int32, Int32)
    case arithmetic(ArithmeticOperator, Int32, Int32)
    case negate(Int32)
    case inAudience(index: Int32)
    case stringTest(StringTest, Int32, Int32)
    case length(Int32)
    case toNumber(Int32)
    case conditional(Int32, Int32, Int32)
    case minimum(Int32, Int32)
    case maximum(Int32, Int32)
}

/// The values of a formula's folded parts while one request scores one criterion's candidates: the request parts
/// (evaluated once, when this is made) and every candidate's offer parts (evaluated at catalog load), read by
/// ``ExpressionInstruction/requestPart`` and ``ExpressionInstruction/offerPart``.
///
/// A class, made once per criterion and request: the program's evaluation passes one reference down its recursion,
/// where a struct of inline slots was copied at every call (a tenth of a formula-ranked Decide, measured).
final class FoldedParts {
    /// The request parts' values, and the same as program values (stored ones read back from `request`).
    private(set) var request = RuleValueSlots()
    private(set) var requestValues = SmallArray<ProgramValue>(filler: .null)
    /// Every candidate's offer parts, ``FormulaRanking/partsPerCandidate`` values a candidate, and the same as
    /// program values.
    let offerTable: [RuleValue]
    let offerValues: [ProgramValue]
    /// Where the candidate being scored starts in `offerTable` and `offerValues`.
    var offerBase = 0

    init<Profile: ProfileView>(_ ranking: FormulaRanking, profile: Profile, inputs: RuleInputs) {
        offerTable = ranking.offerParts
        offerValues = ranking.offerValues
        for (index, part) in ranking.requestParts.enumerated() {
            let value = part.evaluate(profile: profile, inputs: inputs)
            requestValues.append(ProgramValue(value, storedAt: ranking.requestPartPositions[index]))
            request.append(value)
        }
    }
}

/// A rule expression compiled into flat code over ``ProgramValue``: the rule VM of the decision loop.
///
/// Instructions are in post-order (every operand before its operator) and the last one is the result; evaluation
/// recurses from the result over positions in one array of plain values, so it allocates nothing and retains
/// nothing, and `and`, `or` and `if` short-circuit exactly as the tree walker does. Every operator gives what
/// ``RuleNode/evaluate(profile:inputs:)`` gives for the same node, nulls and type mismatches included (SPEC 4); the
/// tree walker stays the reference, and a differential test runs both on random rules.
///
/// A program is either plain (its leaves read the profile, the context, `now` and the offer) or folded for one
/// criterion (``FormulaRanking``): its maximal sub-expressions that read only the offer are replaced by
/// per-candidate values computed at load, and those that read only the request by values computed once per request,
/// so a formula such as `offer.priority + number(offer.characteristics.margin) * 2 + profile.loyalty.points / 1000`
/// costs one addition per candidate.
///
/// `lower` and `upper` make new strings, which a ``ProgramValue`` cannot hold: a rule that needs them per candidate
/// has no program (``init?(_:)`` is nil) and stays on the tree walker.
struct ExpressionProgram: Sendable {
    let instructions: [ExpressionInstruction]
    /// String and list literals.
    let constants: [RuleValue]
    let audiences: [InternedName]
    /// Attribute paths, for requests that did not resolve the profile's attributes into slots.
    let paths: [AttributePath]

    /// The plain program of `node`; nil when it needs `lower` or `upper`.
    init?(_ node: RuleNode) {
        var compiler = ExpressionCompiler(fold: nil)
        guard compiler.emit(node) != nil else { return nil }
        self.init(compiler)
    }

    fileprivate init(_ compiler: ExpressionCompiler) {
        instructions = compiler.instructions
        constants = compiler.constants
        audiences = compiler.audiences
        paths = compiler.paths
    }

    private var result: Int32 { Int32(instructions.count - 1) }

    /// Whether the expression is exactly `true` (SPEC 4) for `offer`; `inputs.offer` is ignored.
    func isTrue<Profile: ProfileView>(
        profile: Profile, inputs: RuleInputs, offer: OfferDefinition?, parts: FoldedParts? = nil
    ) -> Bool {
        truth(at: result, profile: profile, inputs: inputs, offer: offer, parts: parts)
    }

    /// The formula's score for `offer`: its number, or 0 when it gives anything else (SPEC 4).
    func score<Profile: ProfileView>(
        profile: Profile, inputs: RuleInputs, offer: OfferDefinition?, parts: FoldedParts? = nil
    ) -> Double {
        if case .number(let number) = value(at: result, profile: profile, inputs: inputs, offer: offer, parts: parts),
            number.isFinite
        {
            return number
        }
        return 0
    }

    /// The expression's value as a ``RuleValue`` (the tree walker's form; tests and folding at load).
    func evaluate<Profile: ProfileView>(
        profile: Profile, inputs: RuleInputs, offer: OfferDefinition?, parts: FoldedParts? = nil
    ) -> RuleValue {
        let value = value(at: result, profile: profile, inputs: inputs, offer: offer, parts: parts)
        return contents(of: value, profile: profile, inputs: inputs, offer: offer, parts: parts)
    }

    /// ``RuleNode/isTrue(profile:inputs:)`` of the instruction at `position`.
    private func truth<Profile: ProfileView>(
        at position: Int32, profile: Profile, inputs: RuleInputs, offer: OfferDefinition?, parts: FoldedParts?
    ) -> Bool {
        switch instructions[Int(position)] {
        case .not(let operand):
            return !truth(at: operand, profile: profile, inputs: inputs, offer: offer, parts: parts)
        case .and(let left, let right):
            return truth(at: left, profile: profile, inputs: inputs, offer: offer, parts: parts)
                && truth(at: right, profile: profile, inputs: inputs, offer: offer, parts: parts)
        case .or(let left, let right):
            return truth(at: left, profile: profile, inputs: inputs, offer: offer, parts: parts)
                || truth(at: right, profile: profile, inputs: inputs, offer: offer, parts: parts)
        case .conditional(let condition, let whenTrue, let whenFalse):
            let branch =
                truth(at: condition, profile: profile, inputs: inputs, offer: offer, parts: parts)
                ? whenTrue : whenFalse
            return truth(at: branch, profile: profile, inputs: inputs, offer: offer, parts: parts)
        default:
            return value(at: position, profile: profile, inputs: inputs, offer: offer, parts: parts) == .bool(true)
        }
    }

    /// ``RuleNode/evaluate(profile:inputs:)`` of the instruction at `position`.
    private func value<Profile: ProfileView>(
        at position: Int32, profile: Profile, inputs: RuleInputs, offer: OfferDefinition?, parts: FoldedParts?
    ) -> ProgramValue {
        func operand(_ position: Int32) -> ProgramValue {
            value(at: position, profile: profile, inputs: inputs, offer: offer, parts: parts)
        }
        func contents(_ value: ProgramValue) -> RuleValue {
            self.contents(of: value, profile: profile, inputs: inputs, offer: offer, parts: parts)
        }
        switch instructions[Int(position)] {
        case .scalar(let value):
            return value
        case .requestPart(let index):
            return parts?.requestValues[Int(index)] ?? .null
        case .offerPart(let index):
            guard let parts else { return .null }
            return parts.offerValues[parts.offerBase + Int(index)]
        case .constant, .attribute, .context, .characteristic:
            return Self.classify(
                leaf(at: position, profile: profile, inputs: inputs, offer: offer, parts: parts), position)
        case .offerPriority:
            guard let offer else { return .null }
            return .number(Double(offer.priority))
        case .characteristicNumber(let slot):
            guard let offer, Int(slot) < offer.characteristicNumbers.count else { return .null }
            return Self.classify(offer.characteristicNumbers[Int(slot)], position)
        case .now:
            return .number(inputs.now)
        case .not, .and, .or:
            return .bool(truth(at: position, profile: profile, inputs: inputs, offer: offer, parts: parts))
        case .equal(let left, let right, let negated):
            let lhs = operand(left)
            let rhs = operand(right)
            let equal: Bool?
            switch (lhs, rhs) {
            case (.bool(let a), .bool(let b)): equal = a == b
            case (.number(let a), .number(let b)): equal = a == b
            case (.stored, _), (_, .stored): equal = RuleValue.ruleEquality(contents(lhs), contents(rhs))
            default: equal = nil
            }
            guard let equal else { return .bool(false) }
            return .bool(equal != negated)
        case .isNull(let operand, let negated):
            return .bool(
                (value(at: operand, profile: profile, inputs: inputs, offer: offer, parts: parts) == .null)
                    != negated)
        case .order(let ordering, let left, let right):
            switch (operand(left), operand(right)) {
            case (.number(let lhs), .number(let rhs)):
                switch ordering {
                case .less: return .bool(lhs < rhs)
                case .lessEqual: return .bool(lhs <= rhs)
                case .greater: return .bool(lhs > rhs)
                case .greaterEqual: return .bool(lhs >= rhs)
                }
            case (let lhs, let rhs) where lhs.isStored && rhs.isStored:
                // Strings by code points; anything else with storage is false.
                return .bool(RuleValue.ruleOrder(ordering, contents(lhs), contents(rhs)))
            default:
                return .bool(false)
            }
        case .member(let element, let list):
            let items = operand(list)
            guard items.isStored else { return .bool(false) }
            return .bool(RuleValue.ruleMembership(contents(operand(element)), contents(items)))
        case .arithmetic(let operation, let left, let right):
            guard case .number(let lhs) = operand(left), case .number(let rhs) = operand(right),
                let result = operation.apply(lhs, rhs)
            else { return .null }
            return .number(result)
        case .negate(let operand):
            guard
                case .number(let number) = value(
                    at: operand, profile: profile, inputs: inputs, offer: offer, parts: parts)
            else { return .null }
            return .number(-number)
        case .inAudience(let index):
            return .bool(profile.isMember(of: audiences[Int(index)]))
        case .stringTest(let test, let subject, let pattern):
            let text = operand(subject)
            let part = operand(pattern)
            guard text.isStored && part.isStored else { return .bool(false) }
            return .bool(RuleValue.ruleStringTest(test, contents(text), contents(part)))
        case .length(let operand):
            let value = value(at: operand, profile: profile, inputs: inputs, offer: offer, parts: parts)
            guard value.isStored else { return .null }
            return Self.classify(RuleValue.ruleLength(contents(value)), position)
        case .toNumber(let operand):
            let value = value(at: operand, profile: profile, inputs: inputs, offer: offer, parts: parts)
            switch value {
            case .number: return value
            case .stored: return Self.classify(RuleValue.ruleNumber(contents(value)), position)
            case .null, .bool: return .null
            }
        case .conditional(let condition, let whenTrue, let whenFalse):
            let branch =
                truth(at: condition, profile: profile, inputs: inputs, offer: offer, parts: parts)
                ? whenTrue : whenFalse
            return operand(branch)
        case .minimum(let left, let right):
            guard case .number(let lhs) = operand(left), case .number(let rhs) = operand(right) else { return .null }
            return .number(Swift.min(lhs, rhs))
        case .maximum(let left, let right):
            guard case .number(let lhs) = operand(left), case .number(let rhs) = operand(right) else { return .null }
            return .number(Swift.max(lhs, rhs))
        }
    }

    /// A leaf's ``ProgramValue``: scalars unboxed, anything with storage as the leaf's position.
    private static func classify(_ value: RuleValue, _ position: Int32) -> ProgramValue {
        ProgramValue(value, storedAt: position)
    }

    /// The contents of `value`: a scalar as is; a stored value read again by the leaf that produced it.
    private func contents<Profile: ProfileView>(
        of value: ProgramValue, profile: Profile, inputs: RuleInputs, offer: OfferDefinition?, parts: FoldedParts?
    ) -> RuleValue {
        switch value {
        case .null: return .null
        case .bool(let flag): return .bool(flag)
        case .number(let number): return .number(number)
        case .stored(let position):
            return leaf(at: position, profile: profile, inputs: inputs, offer: offer, parts: parts)
        }
    }

    /// What the leaf at `position` reads, as a ``RuleValue``; null for an instruction that is not a leaf with
    /// storage (``length`` and ``toNumber`` of a stored value give numbers or null, never stored values).
    private func leaf<Profile: ProfileView>(
        at position: Int32, profile: Profile, inputs: RuleInputs, offer: OfferDefinition?, parts: FoldedParts?
    ) -> RuleValue {
        switch instructions[Int(position)] {
        case .constant(let index):
            return constants[Int(index)]
        case .attribute(let slot, let path):
            return inputs.attributesResolved ? inputs.attributes[Int(slot)] : profile.attribute(at: paths[Int(path)])
        case .context(let slot):
            return inputs.context[Int(slot)]
        case .characteristic(let slot):
            guard let offer, Int(slot) < offer.characteristicValues.count else { return .null }
            return offer.characteristicValues[Int(slot)]
        case .requestPart(let index):
            return parts?.request[Int(index)] ?? .null
        case .offerPart(let index):
            guard let parts else { return .null }
            return parts.offerTable[parts.offerBase + Int(index)]
        default:
            // Not reached: only the leaves above give stored values (a conditional passes on its branch's).
            return .null
        }
    }
}

/// Turns a ``RuleNode`` tree into an ``ExpressionProgram``'s instructions; with `fold`, replaces each maximal
/// sub-expression that reads only the offer, or only the request, by a part (and one that reads neither by its
/// value).
private struct ExpressionCompiler {
    /// The parts of a folded program, in the order of their indices.
    struct Folding {
        var requestParts: [RuleNode] = []
        var offerParts: [RuleNode] = []
    }

    var fold: Folding?
    var instructions: [ExpressionInstruction] = []
    var constants: [RuleValue] = []
    var audiences: [InternedName] = []
    var paths: [AttributePath] = []

    /// Emits `node` and returns the position of its result; nil when it needs `lower` or `upper` per evaluation.
    mutating func emit(_ node: RuleNode) -> Int32? {
        if fold != nil, let folded = emitFolded(node) { return folded }
        switch node {
        case .literal(let value):
            return emitLiteral(value)
        case .attribute(let path, let slot):
            paths.append(path)
            return append(.attribute(slot: Int32(slot), path: Int32(paths.count - 1)))
        case .context(let slot):
            return append(.context(slot: Int32(slot)))
        case .offerPriority:
            return append(.offerPriority)
        case .offerCharacteristic(let slot):
            return append(.characteristic(slot: Int32(slot)))
        case .toNumber(.offerCharacteristic(let slot)):
            return append(.characteristicNumber(slot: Int32(slot)))
        case .now:
            return append(.now)
        case .inAudience(let audience):
            audiences.append(audience)
            return append(.inAudience(index: Int32(audiences.count - 1)))
        case .lower, .upper:
            return nil
        case .not(let operand):
            return emit(operand).flatMap { append(.not($0)) }
        case .negate(let operand):
            return emit(operand).flatMap { append(.negate($0)) }
        case .length(let operand):
            return emit(operand).flatMap { append(.length($0)) }
        case .toNumber(let operand):
            return emit(operand).flatMap { append(.toNumber($0)) }
        case .isNull(let operand, let negated):
            return emit(operand).flatMap { append(.isNull($0, negated: negated)) }
        case .and(let left, let right):
            return emitPair(left, right) { .and($0, $1) }
        case .or(let left, let right):
            return emitPair(left, right) { .or($0, $1) }
        case .equal(let left, let right, let negated):
            return emitPair(left, right) { .equal($0, $1, negated: negated) }
        case .order(let ordering, let left, let right):
            return emitPair(left, right) { .order(ordering, $0, $1) }
        case .member(let element, let list):
            return emitPair(element, list) { .member($0, $1) }
        case .arithmetic(let operation, let left, let right):
            return emitPair(left, right) { .arithmetic(operation, $0, $1) }
        case .stringTest(let test, let subject, let pattern):
            return emitPair(subject, pattern) { .stringTest(test, $0, $1) }
        case .minimum(let left, let right):
            return emitPair(left, right) { .minimum($0, $1) }
        case .maximum(let left, let right):
            return emitPair(left, right) { .maximum($0, $1) }
        case .conditional(let condition, let whenTrue, let whenFalse):
            guard let condition = emit(condition), let whenTrue = emit(whenTrue), let whenFalse = emit(whenFalse)
            else { return nil }
            return append(.conditional(condition, whenTrue, whenFalse))
        }
    }

    /// The part or literal that stands for `node` in a folded program; nil when `node` reads both the offer and
    /// the request, so it is compiled as an operator over folded operands.
    private mutating func emitFolded(_ node: RuleNode) -> Int32? {
        let readsOffer = node.readsOffer
        let readsRequest = !node.isRequestIndependent
        switch (readsOffer, readsRequest) {
        case (false, false):
            // Literals only: its value is the same for every offer and request.
            let inputs = RuleInputs(context: RuleValueSlots(), attributes: nil, now: 0, offer: nil)
            return emitLiteral(node.evaluate(profile: AbsentProfile(), inputs: inputs))
        case (true, false):
            fold?.offerParts.append(node)
            return append(.offerPart(index: Int32((fold?.offerParts.count ?? 1) - 1)))
        case (false, true):
            fold?.requestParts.append(node)
            return append(.requestPart(index: Int32((fold?.requestParts.count ?? 1) - 1)))
        case (true, true):
            return nil
        }
    }

    private mutating func emitLiteral(_ value: RuleValue) -> Int32 {
        switch value {
        case .null: return append(.scalar(.null))
        case .bool(let flag): return append(.scalar(.bool(flag)))
        case .number(let number): return append(.scalar(.number(number)))
        case .string, .list, .object:
            constants.append(value)
            return append(.constant(index: Int32(constants.count - 1)))
        }
    }

    private mutating func emitPair(
        _ left: RuleNode, _ right: RuleNode, _ instruction: (Int32, Int32) -> ExpressionInstruction
    ) -> Int32? {
        guard let left = emit(left), let right = emit(right) else { return nil }
        return append(instruction(left, right))
    }

    private mutating func append(_ instruction: ExpressionInstruction) -> Int32 {
        instructions.append(instruction)
        return Int32(instructions.count - 1)
    }
}

/// A formula folded for one criterion's candidates: what ``ScopeWalker`` scores a formula-ranked criterion with
/// when the formula reads the request (one that does not is ranked at load, see ``StaticRanking``).
///
/// The formula's maximal offer-only sub-expressions were evaluated for every candidate at load (`offerParts`), and
/// its request-only ones are evaluated once per request (`requestParts`), so the per-candidate program combines a
/// few folded values. The candidates are a ``StaticRanking`` with one tie group: the same plain-value screens the
/// priority path tests before it loads an offer. They are in collection order, or, for a separable formula
/// (``SeparableScore``), in the order of their offer part.
final class FormulaRanking: Sendable {
    let program: ExpressionProgram
    /// Evaluated once per request, in order: the values of ``ExpressionInstruction/requestPart``.
    let requestParts: [RuleNode]
    /// The positions of the program's ``ExpressionInstruction/requestPart`` instructions, by part index.
    let requestPartPositions: [Int32]
    /// `partsPerCandidate` values for each candidate of `candidates`, at the same positions.
    let offerParts: [RuleValue]
    /// `offerParts` as program values.
    let offerValues: [ProgramValue]
    let partsPerCandidate: Int
    let candidates: StaticRanking
    /// Set when the formula is one operator between an offer part and a request part: `candidates` are then in
    /// the order of that offer part, and a request can walk them best first and stop early.
    let separable: SeparableScore?

    /// Nil when the formula needs `lower` or `upper` of a value that depends on both the offer and the request.
    init?(formula: RuleNode, candidates: [CandidateOffer]) {
        var compiler = ExpressionCompiler(fold: ExpressionCompiler.Folding())
        guard compiler.emit(formula) != nil, let folding = compiler.fold else { return nil }
        program = ExpressionProgram(compiler)
        requestParts = folding.requestParts
        partsPerCandidate = folding.offerParts.count
        // Offer parts read nothing of the request, so empty inputs give what every request would.
        func offerPart(_ part: RuleNode, of offer: OfferDefinition) -> RuleValue {
            let inputs = RuleInputs(context: RuleValueSlots(), attributes: nil, now: 0, offer: offer)
            return part.evaluate(profile: AbsentProfile(), inputs: inputs)
        }
        let shape = SeparableScore.Shape(program)
        var ordered = candidates
        if let shape {
            ordered = SeparableScore.order(candidates) { offerPart(folding.offerParts[shape.offerPart], of: $0) }
        }
        let ranked = StaticRanking(candidates: ordered, ranks: ordered.map { _ in 0 })
        var offerParts: [RuleValue] = []
        offerParts.reserveCapacity(ranked.candidates.count * folding.offerParts.count)
        for candidate in ranked.candidates {
            for part in folding.offerParts { offerParts.append(offerPart(part, of: candidate.offer)) }
        }
        var requestPartPositions = [Int32](repeating: 0, count: folding.requestParts.count)
        var offerPartPositions = [Int32](repeating: 0, count: folding.offerParts.count)
        for (position, instruction) in program.instructions.enumerated() {
            switch instruction {
            case .requestPart(let index): requestPartPositions[Int(index)] = Int32(position)
            case .offerPart(let index): offerPartPositions[Int(index)] = Int32(position)
            default: break
            }
        }
        self.requestPartPositions = requestPartPositions
        self.offerParts = offerParts
        offerValues = offerParts.enumerated().map { index, value in
            ProgramValue(value, storedAt: offerPartPositions[index % max(folding.offerParts.count, 1)])
        }
        self.candidates = ranked
        separable = shape.map { shape in
            SeparableScore(
                shape,
                offerConstants: ranked.candidates.indices.map {
                    offerParts[$0 * folding.offerParts.count + shape.offerPart]
                },
                requestPart: folding.requestParts[shape.requestPart])
        }
    }
}

/// A formula that is one arithmetic operator between a value of the offer alone `c` and a value of the request
/// alone `t` (`c + t`, `c - t`, `t - c`, `c * t`, `t * c`, `c / t`), as issue 15's
/// `offer.priority + number(offer.characteristics.margin) * 2 + profile.loyalty.points / 1000` folds to.
///
/// For one request, such a score is a monotonic function of `c`: rounding to the nearest double never reverses an
/// order, so `c1 <= c2` gives `c1 + t <= c2 + t`, and likewise for the other operators (by the sign of `t` for `*`
/// and `/`). Its candidates are sorted at load by `c`, and a request walks them from the best end and stops at the
/// first candidate whose score is strictly below the worst of a full top-k: no later candidate can score more.
/// Candidates with equal scores are all walked and ranked by the usual tie-break, so the answer is exactly the one
/// scoring every candidate gives. The walk is used only when it is sound for the request: `t` a number, and no
/// score that could overflow to a non-finite value (SPEC 4 makes that null, which scores 0 out of order); any other
/// request scores every candidate.
struct SeparableScore: Sendable {
    /// Where the operator's operands come from in a folded program.
    struct Shape {
        let operation: ArithmeticOperator
        /// The index of the offer part and the request part the operator combines.
        let offerPart: Int
        let requestPart: Int
        /// True for `c op t`, false for `t op c`.
        let offerFirst: Bool

        /// The shape of `program`; nil unless it is one monotonic operator between an offer part and a request
        /// part (`t / c` is not monotonic in `c`).
        init?(_ program: ExpressionProgram) {
            guard program.instructions.count == 3,
                case .arithmetic(let operation, let left, let right) = program.instructions[2]
            else { return nil }
            switch (program.instructions[Int(left)], program.instructions[Int(right)]) {
            case (.offerPart(let offer), .requestPart(let request)):
                (offerPart, requestPart, offerFirst) = (Int(offer), Int(request), true)
            case (.requestPart(let request), .offerPart(let offer)) where operation != .divide:
                (offerPart, requestPart, offerFirst) = (Int(offer), Int(request), false)
            default:
                return nil
            }
            self.operation = operation
        }
    }

    /// Which way a request walks the candidates, best scores first.
    enum Direction {
        /// From the first numeric candidate (largest `c`) to the last: the score does not decrease with `c`.
        case largestFirst
        /// From the last candidate (smallest `c`) back to the first numeric one: the score does not increase
        /// with `c`.
        case smallestFirst
    }

    let operation: ArithmeticOperator
    let requestPart: Int
    let offerFirst: Bool
    /// Each candidate's `c`, at the candidates' positions (0 below `numericStart`).
    let offerConstants: [Double]
    /// Candidates below this position have an offer part that is not a finite number: each scores 0 for every
    /// request, and every walk ranks them first. From here on, `c` does not increase.
    let numericStart: Int
    /// The largest `|c|`, to rule out overflow per request.
    let largestMagnitude: Double
    /// At each position from `numericStart`: the bounds of the run of candidates whose `c` has the same bits (they
    /// score the same for every request, so a walk takes them as one tie group).
    let runStarts: [Int]
    let runEnds: [Int]

    /// A request's score can only overflow past this magnitude (far above it, in fact): the early stop is used
    /// below it only.
    private static let safeMagnitude = 1e300

    /// The request part `t` when it is an attribute, or an attribute and a number under one arithmetic operator
    /// (`profile.loyalty.points / 1000`): a request reads it from its attribute slots without walking the tree.
    enum RequestTerm: Sendable {
        case attribute(slot: Int)
        /// `attribute op literal`, or `literal op attribute` when `attributeFirst` is false.
        case arithmetic(ArithmeticOperator, slot: Int, literal: Double, attributeFirst: Bool)

        init?(_ node: RuleNode) {
            switch node {
            case .attribute(_, let slot):
                self = .attribute(slot: slot)
            case .arithmetic(let operation, .attribute(_, let slot), .literal(.number(let literal))):
                self = .arithmetic(operation, slot: slot, literal: literal, attributeFirst: true)
            case .arithmetic(let operation, .literal(.number(let literal)), .attribute(_, let slot)):
                self = .arithmetic(operation, slot: slot, literal: literal, attributeFirst: false)
            default:
                return nil
            }
        }
    }

    let requestTerm: RequestTerm?

    init(_ shape: Shape, offerConstants: [RuleValue], requestPart part: RuleNode) {
        operation = shape.operation
        requestPart = shape.requestPart
        offerFirst = shape.offerFirst
        requestTerm = RequestTerm(part)
        var constants: [Double] = []
        var numericStart = 0
        var largest = 0.0
        for value in offerConstants {
            if let number = Self.finiteNumber(value) {
                constants.append(number)
                largest = max(largest, abs(number))
            } else {
                constants.append(0)
                numericStart = constants.count
            }
        }
        self.offerConstants = constants
        self.numericStart = numericStart
        largestMagnitude = largest
        var runStarts = Array(constants.indices)
        var runEnds = Array(constants.indices).map { $0 + 1 }
        for position in constants.indices.dropFirst()
        where position > numericStart && constants[position].bitPattern == constants[position - 1].bitPattern {
            runStarts[position] = runStarts[position - 1]
        }
        for position in constants.indices.reversed().dropFirst()
        where position >= numericStart && constants[position].bitPattern == constants[position + 1].bitPattern {
            runEnds[position] = runEnds[position + 1]
        }
        self.runStarts = runStarts
        self.runEnds = runEnds
    }

    private static func finiteNumber(_ value: RuleValue) -> Double? {
        if case .number(let number) = value, number.isFinite { return number }
        return nil
    }

    /// `candidates` in walking order: those whose offer part (`part`) is not a finite number first, in collection
    /// order, then the others by descending offer part (ties in collection order).
    static func order(_ candidates: [CandidateOffer], part: (OfferDefinition) -> RuleValue) -> [CandidateOffer] {
        let keys = candidates.map { finiteNumber(part($0.offer)) }
        let other = candidates.indices.filter { keys[$0] == nil }
        let numeric = candidates.indices.filter { keys[$0] != nil }.sorted { lhs, rhs in
            let (left, right) = (keys[lhs] ?? 0, keys[rhs] ?? 0)
            return left != right ? left > right : lhs < rhs
        }
        return (other + numeric).map { candidates[$0] }
    }

    /// The request part `t` for this request: what `part` (the formula's request part this score combines)
    /// evaluates to, read straight from the attribute slots when the inputs hold them and `requestTerm` is set.
    @inline(__always)
    func requestValue<Profile: ProfileView>(
        of parts: [RuleNode], profile: Profile, inputs: RuleInputs
    ) -> RuleValue {
        if inputs.attributesResolved, let term = requestTerm {
            switch term {
            case .attribute(let slot):
                return inputs.attributes[slot]
            case .arithmetic(let operation, let slot, let literal, let attributeFirst):
                let value = inputs.attributes[slot]
                return attributeFirst
                    ? RuleValue.ruleArithmetic(operation, value, .number(literal))
                    : RuleValue.ruleArithmetic(operation, .number(literal), value)
            }
        }
        return parts[requestPart].evaluate(profile: profile, inputs: inputs)
    }

    /// The walk for a request whose request part is `value`; nil when an early stop would not be sound for it
    /// (then every candidate is scored).
    func direction(for value: ProgramValue) -> Direction? {
        guard case .number(let request) = value, request.isFinite else { return nil }
        let magnitude = abs(request)
        switch operation {
        case .add, .subtract:
            guard largestMagnitude + magnitude < Self.safeMagnitude else { return nil }
            return operation == .subtract && !offerFirst ? .smallestFirst : .largestFirst
        case .multiply:
            guard largestMagnitude * magnitude < Self.safeMagnitude else { return nil }
            return request < 0 ? .smallestFirst : .largestFirst
        case .divide:
            // `c / 0` is null for every candidate; a tiny divisor could overflow.
            guard request != 0, largestMagnitude / magnitude < Self.safeMagnitude else { return nil }
            return request < 0 ? .smallestFirst : .largestFirst
        }
    }

    /// The score of the candidate at `position` (at or past `numericStart`) for request part `request`: what the
    /// folded program gives, SPEC 4's null (a non-finite result) scoring 0.
    @inline(__always)
    func score(at position: Int, request: Double) -> Double {
        let constant = offerConstants[position]
        let result = offerFirst ? operation.apply(constant, request) : operation.apply(request, constant)
        return result ?? 0
    }
}

extension RuleNode {
    /// Whether the value depends on `offer.*`.
    var readsOffer: Bool {
        switch self {
        case .offerPriority, .offerCharacteristic:
            return true
        case .literal, .attribute, .context, .now, .inAudience:
            return false
        case .not(let operand), .isNull(let operand, _), .negate(let operand), .lower(let operand),
            .upper(let operand), .length(let operand), .toNumber(let operand):
            return operand.readsOffer
        case .and(let lhs, let rhs), .or(let lhs, let rhs), .equal(let lhs, let rhs, _), .order(_, let lhs, let rhs),
            .member(let lhs, let rhs), .arithmetic(_, let lhs, let rhs), .stringTest(_, let lhs, let rhs),
            .minimum(let lhs, let rhs), .maximum(let lhs, let rhs):
            return lhs.readsOffer || rhs.readsOffer
        case .conditional(let condition, let then, let otherwise):
            return condition.readsOffer || then.readsOffer || otherwise.readsOffer
        }
    }
}
