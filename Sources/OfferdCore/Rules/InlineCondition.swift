/// A request value as an ``InlineCondition`` reads it: plain fields (no enum payload, no reference), so reading and
/// comparing one is a few loads. A string of up to 16 UTF-8 bytes is kept inline; a longer one only as such.
struct TypedValue: Sendable, Equatable {
    enum Kind: UInt8, Sendable {
        case null, bool, number, shortText
        /// A string of more than 16 UTF-8 bytes: never equal to a ``shortText``.
        case longText
        /// A list or an object.
        case other
    }

    var kind: Kind
    /// A number's value; a boolean's as 1 or 0.
    var number: Double
    var text: ShortText

    static let null = TypedValue(kind: .null, number: 0, text: .empty)

    init(kind: Kind, number: Double, text: ShortText) {
        self.kind = kind
        self.number = number
        self.text = text
    }

    init(_ value: RuleValue) {
        switch value {
        case .null: self = .null
        case .bool(let flag): self.init(kind: .bool, number: flag ? 1 : 0, text: .empty)
        case .number(let number): self.init(kind: .number, number: number, text: .empty)
        case .string(let string):
            if let text = ShortText(string) {
                self.init(kind: .shortText, number: 0, text: text)
            } else {
                self.init(kind: .longText, number: 0, text: .empty)
            }
        case .list, .object: self.init(kind: .other, number: 0, text: .empty)
        }
    }
}

/// The UTF-8 of a string of at most 16 bytes, in two words. Rule strings are equal when their code points are
/// (SPEC 4: no normalization), that is when their UTF-8 bytes are, so two of these compare as three integers.
struct ShortText: Sendable, Equatable {
    private var low: UInt64 = 0
    private var high: UInt64 = 0
    private var count: UInt8 = 0

    static let empty = ShortText()

    private init() {}

    /// Nil when `text` has more than 16 UTF-8 bytes.
    init?(_ text: String) {
        // Over the contiguous UTF-8: iterating `UTF8View` cost about 200 instructions for a 4-byte string.
        guard let packed = text.withUTF8Span({ Self(utf8: $0) }) else { return nil }
        self = packed
    }

    private init?(utf8: Span<UInt8>) {
        guard utf8.count <= 16 else { return nil }
        for position in utf8.indices {
            let byte = UInt64(utf8[position])
            if position < 8 {
                low |= byte << (8 * UInt64(position))
            } else {
                high |= byte << (8 * UInt64(position - 8))
            }
        }
        count = UInt8(utf8.count)
    }
}

/// Where an inline test reads its value: a context or attribute slot of the request, or `now`.
enum InlineSource: UInt8, Sendable {
    case attribute, context, now
}

/// The request's values at the context and attribute slots the catalog's inline conditions read
/// (``Catalog/inlineContextSlots``, ``Catalog/inlineAttributeSlots``), typed once per request so that the decision
/// loop compares plain values: a ``RuleValue`` read costs a copy, a switch over pairs and, for a string, a retain
/// and a release. Eight slots of each; the others read as null, and a catalog with more context keys or attribute
/// paths has no typed view of them (``InlineCondition/isTrue(_:)`` is then nil).
struct TypedRequest {
    private var context = TypedSlots()
    private var attributes = TypedSlots()
    private let now: Double
    /// The slots typed (a bit each); the others read as null here, whatever the request holds.
    private let typedContextSlots: UInt8
    private let typedAttributeSlots: UInt8

    /// `inputs`' slots whose bit is set in `contextSlots` and `attributeSlots`. Reads the slots in place and only
    /// those: copying a slot table retains every value in it.
    init(_ inputs: borrowing RuleInputs, contextSlots: UInt8 = .max, attributeSlots: UInt8 = .max) {
        now = inputs.now
        typedContextSlots = contextSlots
        typedAttributeSlots = attributeSlots
        if inputs.context.count <= TypedSlots.capacity {
            context.isAvailable = true
            var bits = contextSlots
            while bits != 0 {
                let slot = bits.trailingZeroBitCount
                if slot < inputs.context.count { context.values[slot] = TypedValue(inputs.context[slot]) }
                bits &= bits - 1
            }
        }
        if inputs.attributesResolved && inputs.attributes.count <= TypedSlots.capacity {
            attributes.isAvailable = true
            var bits = attributeSlots
            while bits != 0 {
                let slot = bits.trailingZeroBitCount
                if slot < inputs.attributes.count { attributes.values[slot] = TypedValue(inputs.attributes[slot]) }
                bits &= bits - 1
            }
        }
    }

    /// The value at `slot` of `source`, as ``value(_:slot:)`` gives it, when that slot was typed; nil otherwise.
    mutating func typedValue(_ source: InlineSource, slot: Int) -> TypedValue? {
        switch source {
        case .attribute:
            guard slot >= 0 && slot < 8 && typedAttributeSlots & (1 << UInt8(slot)) != 0 else { return nil }
        case .context: guard slot >= 0 && slot < 8 && typedContextSlots & (1 << UInt8(slot)) != 0 else { return nil }
        case .now: break
        }
        return value(source, slot: slot)
    }

    /// The value at `slot` of `source`; nil when this request has no typed view of it. Mutating only so that
    /// `self` is read in place: a non-mutating read copied the slot tables first (a memcpy per candidate).
    @inline(__always)
    mutating func value(_ source: InlineSource, slot: Int) -> TypedValue? {
        switch source {
        case .attribute: return attributes[slot]
        case .context: return context[slot]
        case .now: return TypedValue(kind: .number, number: now, text: .empty)
        }
    }
}

/// Up to eight typed values by slot; no table when there were more (`isAvailable` false). An `InlineArray` read at a
/// computed offset: a struct of eight fields behind a `switch` made the loop load all eight per candidate.
private struct TypedSlots {
    var values = InlineArray<8, TypedValue>(repeating: .null)
    var isAvailable = false

    static let capacity = 8

    /// The value of `slot` (null past the table's end, as ``RuleValueSlots`` gives); nil when there is no table.
    @inline(__always)
    subscript(slot: Int) -> TypedValue? {
        mutating get {
            guard isAvailable else { return nil }
            guard slot >= 0 && slot < values.count else { return .null }
            return values.span[slot]
        }
    }
}

/// One test of an ``InlineCondition``: what the same ``RuleTest`` gives (SPEC 4), on a ``TypedValue``.
struct InlineTest: Sendable, Equatable {
    enum Kind: UInt8, Sendable {
        /// A bare path: exactly `true`.
        case isTrue
        /// `= literal` (`!=` when negated): false when the two cannot be compared (null, another type).
        case equal
        /// `op number`: false unless the value is a number.
        case order
        /// `= null` (`!= null`, `exists` when negated).
        case isNull
    }

    let kind: Kind
    let negated: Bool
    let ordering: OrderingOperator
    let source: InlineSource
    let slot: Int32
    /// `equal`'s literal (a boolean, a number or a short string); `order`'s bound is its number.
    let literal: TypedValue

    static let filler = InlineTest(
        kind: .isNull, negated: false, ordering: .less, source: .now, slot: 0, literal: .null)

    private init(
        kind: Kind, negated: Bool, ordering: OrderingOperator, source: InlineSource, slot: Int32,
        literal: TypedValue
    ) {
        self.kind = kind
        self.negated = negated
        self.ordering = ordering
        self.source = source
        self.slot = slot
        self.literal = literal
    }

    /// Nil for a test of the offer, an audience, a list, or a null literal or a string literal of more than 16
    /// bytes.
    init?(_ test: RuleTest, constants: [RuleValue]) {
        func place(_ operand: RuleOperand) -> (InlineSource, Int32)? {
            switch operand {
            case .attribute(let slot, _): return slot < 8 ? (.attribute, Int32(slot)) : nil
            case .context(let slot): return slot < 8 ? (.context, Int32(slot)) : nil
            case .now: return (.now, 0)
            case .offerPriority, .characteristic, .characteristicNumber: return nil
            }
        }
        switch test {
        case .isTrue(let operand):
            guard let (source, slot) = place(operand) else { return nil }
            self.init(kind: .isTrue, negated: false, ordering: .less, source: source, slot: slot, literal: .null)
        case .equal(let operand, let index, let negated):
            guard let (source, slot) = place(operand), index < constants.count else { return nil }
            let literal = TypedValue(constants[index])
            switch literal.kind {
            case .bool, .number, .shortText: break
            case .null, .longText, .other: return nil
            }
            self.init(kind: .equal, negated: negated, ordering: .less, source: source, slot: slot, literal: literal)
        case .order(let operand, let ordering, let bound):
            guard let (source, slot) = place(operand) else { return nil }
            self.init(
                kind: .order, negated: false, ordering: ordering, source: source, slot: slot,
                literal: TypedValue(kind: .number, number: bound, text: .empty))
        case .isNull(let operand, let negated):
            guard let (source, slot) = place(operand) else { return nil }
            self.init(kind: .isNull, negated: negated, ordering: .less, source: source, slot: slot, literal: .null)
        case .member, .inAudience:
            return nil
        }
    }

    /// The test's result on `value`, its operand's value.
    @inline(__always)
    func passes(_ value: TypedValue) -> Bool {
        switch kind {
        case .isTrue:
            return value.kind == .bool && value.number == 1
        case .isNull:
            return (value.kind == .null) != negated
        case .order:
            guard value.kind == .number else { return false }
            switch ordering {
            case .less: return value.number < literal.number
            case .lessEqual: return value.number <= literal.number
            case .greater: return value.number > literal.number
            case .greaterEqual: return value.number >= literal.number
            }
        case .equal:
            let equal: Bool
            if value.kind == literal.kind {
                equal = literal.kind == .shortText ? value.text == literal.text : value.number == literal.number
            } else if value.kind == .longText && literal.kind == .shortText {
                equal = false
            } else {
                return false
            }
            return equal != negated
        }
    }
}

/// An eligibility condition of up to three flat tests of request values, such as
/// `profile.loyalty.points >= 1200 and context.page != "blocked-3"`, kept by value beside a candidate
/// (``CandidateScreen``): the decision loop answers it from the request's typed values (``TypedRequest``) without
/// loading the offer, its rule or the program (three dependent cache misses per candidate under load) and without
/// building a ``RuleValue``.
///
/// The tests read nothing but the request and have no effect, so the condition is a function of which of them
/// pass: all are run, and a table made at load from the ``ConditionProgram``'s jumping code gives the result.
struct InlineCondition: Sendable {
    private let test0: InlineTest
    private let test1: InlineTest
    private let test2: InlineTest
    /// How many tests there are; 0 when the offer's eligibility has no inline form (``isTrue(_:)`` is then nil).
    private let count: UInt8
    /// Bit `m` is the condition's value when exactly the tests whose bits are set in `m` pass.
    private let truthTable: UInt8

    static let capacity = 3
    /// No inline form.
    static let none = InlineCondition()

    private init() {
        (test0, test1, test2) = (.filler, .filler, .filler)
        count = 0
        truthTable = 0
    }

    /// The inline form of `program`; `none` unless every test of it is of the request's attributes, context or
    /// `now` against a boolean, a number, null or a string of up to 16 bytes, and there are at most three.
    init(_ program: ConditionProgram) {
        var tests: [InlineTest] = []
        var testNumbers: [Int: Int] = [:]
        for (position, instruction) in program.instructions.enumerated() {
            guard case .test(let test, _, _) = instruction else { continue }
            guard let inline = InlineTest(test, constants: program.constants), tests.count < Self.capacity else {
                self = .none
                return
            }
            testNumbers[position] = tests.count
            tests.append(inline)
        }
        var table: UInt8 = 0
        for outcomes in 0..<(1 << tests.count) {
            // The jumping code, run with the tests' results taken from `outcomes`.
            var position = 0
            var result = false
            var steps = 0
            while position < program.instructions.count && steps <= program.instructions.count {
                steps += 1
                switch program.instructions[position] {
                case .test(_, let jumpIf, let target):
                    let passed = outcomes & (1 << (testNumbers[position] ?? 0)) != 0
                    position = passed == jumpIf ? target : position + 1
                    continue
                case .jump(let target):
                    position = target
                    continue
                case .result(let value):
                    result = value
                }
                break
            }
            if result { table |= 1 << UInt8(outcomes) }
        }
        while tests.count < Self.capacity { tests.append(.filler) }
        (test0, test1, test2) = (tests[0], tests[1], tests[2])
        count = UInt8(testNumbers.count)
        truthTable = table
    }

    /// The context slots (bit per slot) and the attribute slots its tests read.
    var slotsRead: (context: UInt8, attributes: UInt8) {
        var context: UInt8 = 0
        var attributes: UInt8 = 0
        for test in [test0, test1, test2].prefix(Int(count)) {
            switch test.source {
            case .context: context |= 1 << UInt8(test.slot)
            case .attribute: attributes |= 1 << UInt8(test.slot)
            case .now: break
            }
        }
        return (context, attributes)
    }

    /// The condition's value, as ``ConditionProgram/isTrue(profile:inputs:offer:)`` gives it; nil when there is no
    /// inline form, or when the request has no typed view of a value it reads (the program then answers).
    @inline(__always)
    func isTrue(_ request: inout TypedRequest) -> Bool? {
        guard count > 0 else { return nil }
        guard let first = request.value(test0.source, slot: Int(test0.slot)) else { return nil }
        var outcomes: UInt8 = test0.passes(first) ? 1 : 0
        if count > 1 {
            guard let second = request.value(test1.source, slot: Int(test1.slot)) else { return nil }
            if test1.passes(second) { outcomes |= 2 }
            if count > 2 {
                guard let third = request.value(test2.source, slot: Int(test2.slot)) else { return nil }
                if test2.passes(third) { outcomes |= 4 }
            }
        }
        return truthTable & (1 << outcomes) != 0
    }
}
