/// What a rule can see while it is evaluated: the profile (nil for an unknown
/// one: no attributes, no audiences), the request context resolved into
/// slots, the request time, and the offer being considered (formulas and
/// offer eligibility only).
///
/// The convenient form for tests and the explain path; the decision loop uses
/// ``RuleInputs`` and a non-optional profile instead (see there for why).
struct RuleEnvironment<Profile: ProfileView> {
    var profile: Profile?
    /// The request context, indexed by the catalog's context slots.
    var context: [RuleValue]
    /// Request time, epoch seconds.
    var now: Double
    var offer: OfferDefinition?

    /// Calls `body` with the profile (an ``AbsentProfile`` when there is none) and the rule inputs.
    func withInputs<Result>(_ body: (any ProfileView, RuleInputs) -> Result) -> Result {
        let inputs = RuleInputs(context: RuleValueSlots(context), attributes: nil, now: now, offer: offer)
        if let profile { return body(profile, inputs) }
        return body(AbsentProfile(), inputs)
    }
}

/// Everything but the profile that a rule reads: a non-generic struct.
///
/// Why the profile travels separately: `DecisionEngine.decide` is generic over the profile type and is called
/// from other modules, so its body runs unspecialized. Every generic *type* instantiated in unspecialized code
/// (`RuleEnvironment<Profile>`, `Optional<Profile>`) costs a runtime metadata-cache lookup at each use, which
/// was the top of the decide profile. Generic *functions* over a plain `Profile` argument only pass the
/// caller's metadata and witness table along, at no cost.
struct RuleInputs {
    init(context: RuleValueSlots, attributes: RuleValueSlots?, now: Double, offer: OfferDefinition?) {
        self.init(
            context: context, attributes: attributes ?? RuleValueSlots(), attributesResolved: attributes != nil,
            now: now, offer: offer)
    }

    /// The decision loop's form: the slot tables are moved in, not copied (each copy retains every value).
    init(
        context: consuming RuleValueSlots, attributes: consuming RuleValueSlots, attributesResolved: Bool,
        now: Double, offer: OfferDefinition?
    ) {
        self.context = context
        self.attributes = attributes
        self.attributesResolved = attributesResolved
        self.now = now
        self.offer = offer
    }

    /// The request context, indexed by the catalog's context slots.
    var context: RuleValueSlots
    /// The profile's value at each of the catalog's attribute paths, read once per request when the catalog
    /// has few enough paths to keep them inline (a rule reads the same few attributes for every candidate);
    /// nil: ask the profile at each use. Kept as a flag and a plain table so that a read does not copy it.
    private(set) var attributes: RuleValueSlots
    private(set) var attributesResolved: Bool
    /// Request time, epoch seconds.
    var now: Double
    var offer: OfferDefinition?
}

extension RuleInputs {
    /// Appends the value of the next attribute slot (the decision loop fills its inputs in place).
    mutating func appendAttribute(_ value: RuleValue) {
        attributes.append(value)
    }

    /// Marks every attribute path as read into `attributes`.
    mutating func markAttributesResolved() {
        attributesResolved = true
    }

    /// The same inputs, for `offer`.
    func with(offer: OfferDefinition?) -> RuleInputs {
        var copy = self
        copy.offer = offer
        return copy
    }
}

/// The profile of an identity that is not in the snapshot: no attributes, no audiences, no capping counts.
struct AbsentProfile: ProfileView {
    var primaryIdentity: Identity { Identity(namespace: "", id: "") }
    var consents: ConsentRecord { .empty }
    func attribute(at path: AttributePath) -> RuleValue { .null }
    func isMember(of audience: InternedName) -> Bool { false }
    func cappingCount(for offer: InternedName, event: CappingEvent) -> Int { 0 }
    var cappingSummary: UInt64 { 0 }
}

extension RuleNode {
    /// Whether the expression evaluates to exactly `true`; see ``isTrue(profile:inputs:)``.
    func isTrue<Profile: ProfileView>(in environment: RuleEnvironment<Profile>) -> Bool {
        environment.withInputs { profile, inputs in isTrue(profile: profile, inputs: inputs) }
    }

    /// The expression's value; see ``evaluate(profile:inputs:)``.
    func evaluate<Profile: ProfileView>(in environment: RuleEnvironment<Profile>) -> RuleValue {
        environment.withInputs { profile, inputs in evaluate(profile: profile, inputs: inputs) }
    }

    /// A formula's score; see ``score(profile:inputs:)``.
    func score<Profile: ProfileView>(in environment: RuleEnvironment<Profile>) -> Double {
        environment.withInputs { profile, inputs in score(profile: profile, inputs: inputs) }
    }

    /// Whether the expression evaluates to exactly `true` (SPEC 4: anything else is false).
    /// Never throws, never traps.
    func isTrue<Profile: ProfileView>(profile: Profile, inputs: RuleInputs) -> Bool {
        switch self {
        case .literal(let value):
            return value == .bool(true)
        case .not(let operand):
            return !operand.isTrue(profile: profile, inputs: inputs)
        case .and(let left, let right):
            return left.isTrue(profile: profile, inputs: inputs) && right.isTrue(profile: profile, inputs: inputs)
        case .or(let left, let right):
            return left.isTrue(profile: profile, inputs: inputs) || right.isTrue(profile: profile, inputs: inputs)
        case .equal(let left, let right, let negated):
            let lhs = left.evaluate(profile: profile, inputs: inputs)
            let rhs = right.evaluate(profile: profile, inputs: inputs)
            guard let equal = RuleValue.ruleEquality(lhs, rhs) else { return false }
            return equal != negated
        case .isNull(let operand, let negated):
            let isNull = operand.evaluate(profile: profile, inputs: inputs) == .null
            return isNull != negated
        case .order(let ordering, let left, let right):
            return RuleValue.ruleOrder(
                ordering, left.evaluate(profile: profile, inputs: inputs),
                right.evaluate(profile: profile, inputs: inputs))
        case .member(let element, let list):
            return RuleValue.ruleMembership(
                element.evaluate(profile: profile, inputs: inputs), list.evaluate(profile: profile, inputs: inputs))
        case .inAudience(let audience):
            return profile.isMember(of: audience)
        case .stringTest(let test, let subject, let pattern):
            return RuleValue.ruleStringTest(
                test,
                subject.evaluate(profile: profile, inputs: inputs),
                pattern.evaluate(profile: profile, inputs: inputs)
            )
        case .conditional(let condition, let whenTrue, let whenFalse):
            return condition.isTrue(profile: profile, inputs: inputs)
                ? whenTrue.isTrue(profile: profile, inputs: inputs) : whenFalse.isTrue(profile: profile, inputs: inputs)
        default:
            return evaluate(profile: profile, inputs: inputs) == .bool(true)
        }
    }

    /// The expression's value. Never throws, never traps: bad operands give null (or false).
    func evaluate<Profile: ProfileView>(profile: Profile, inputs: RuleInputs) -> RuleValue {
        switch self {
        case .literal(let value):
            return value
        case .attribute(let path, let slot):
            if inputs.attributesResolved { return inputs.attributes[slot] }
            return profile.attribute(at: path)
        case .context(let slot):
            return inputs.context[slot]
        case .offerPriority:
            guard let offer = inputs.offer else { return .null }
            return .number(Double(offer.priority))
        case .offerCharacteristic(let slot):
            guard let offer = inputs.offer, slot < offer.characteristicValues.count else { return .null }
            return offer.characteristicValues[slot]
        case .now:
            return .number(inputs.now)
        case .not, .and, .or, .equal, .isNull, .order, .member, .inAudience, .stringTest:
            return .bool(isTrue(profile: profile, inputs: inputs))
        case .arithmetic(let operation, let left, let right):
            return RuleValue.ruleArithmetic(
                operation,
                left.evaluate(profile: profile, inputs: inputs),
                right.evaluate(profile: profile, inputs: inputs)
            )
        case .negate(let operand):
            guard case .number(let value) = operand.evaluate(profile: profile, inputs: inputs) else { return .null }
            return .number(-value)
        case .lower(let operand):
            guard case .string(let text) = operand.evaluate(profile: profile, inputs: inputs) else { return .null }
            return .string(text.lowercased())
        case .upper(let operand):
            guard case .string(let text) = operand.evaluate(profile: profile, inputs: inputs) else { return .null }
            return .string(text.uppercased())
        case .length(let operand):
            return RuleValue.ruleLength(operand.evaluate(profile: profile, inputs: inputs))
        case .toNumber(let operand):
            if case .offerCharacteristic(let slot) = operand {
                // Characteristic values are strings; their numbers were parsed at load.
                guard let offer = inputs.offer, slot < offer.characteristicNumbers.count else { return .null }
                return offer.characteristicNumbers[slot]
            }
            return RuleValue.ruleNumber(operand.evaluate(profile: profile, inputs: inputs))
        case .conditional(let condition, let whenTrue, let whenFalse):
            return condition.isTrue(profile: profile, inputs: inputs)
                ? whenTrue.evaluate(profile: profile, inputs: inputs)
                : whenFalse.evaluate(profile: profile, inputs: inputs)
        case .minimum(let left, let right):
            return RuleValue.ruleExtremum(
                left.evaluate(profile: profile, inputs: inputs),
                right.evaluate(profile: profile, inputs: inputs),
                minimum: true
            )
        case .maximum(let left, let right):
            return RuleValue.ruleExtremum(
                left.evaluate(profile: profile, inputs: inputs),
                right.evaluate(profile: profile, inputs: inputs),
                minimum: false
            )
        }
    }

    /// A formula's score: its number, or 0 when it is not a number (SPEC 4).
    func score<Profile: ProfileView>(profile: Profile, inputs: RuleInputs) -> Double {
        if case .number(let value) = evaluate(profile: profile, inputs: inputs), value.isFinite { return value }
        return 0
    }
}

extension ArithmeticOperator {
    /// The operation on two numbers; nil (the rule's null) for a division by zero or a non-finite result.
    @inline(__always)
    func apply(_ lhs: Double, _ rhs: Double) -> Double? {
        let result: Double
        switch self {
        case .add: result = lhs + rhs
        case .subtract: result = lhs - rhs
        case .multiply: result = lhs * rhs
        case .divide:
            guard rhs != 0 else { return nil }
            result = lhs / rhs
        }
        return result.isFinite ? result : nil
    }
}

extension RuleValue {
    /// `=` between two values: nil when they cannot be compared (null, an
    /// object, or mismatched types), else whether they are equal. Strings
    /// compare by Unicode code points, with no normalization.
    static func ruleEquality(_ lhs: RuleValue, _ rhs: RuleValue) -> Bool? {
        switch (lhs, rhs) {
        case (.bool(let a), .bool(let b)): return a == b
        case (.number(let a), .number(let b)): return a == b
        case (.string(let a), .string(let b)): return UnicodeText.equal(a, b)
        case (.list(let a), .list(let b)):
            guard a.count == b.count else { return false }
            for (itemA, itemB) in zip(a, b) {
                if itemA == .null && itemB == .null { continue }
                guard ruleEquality(itemA, itemB) == true else { return false }
            }
            return true
        default: return nil
        }
    }

    /// `<`, `<=`, `>`, `>=`: numbers, and strings by code points; anything else is false.
    static func ruleOrder(_ ordering: OrderingOperator, _ lhs: RuleValue, _ rhs: RuleValue) -> Bool {
        switch (lhs, rhs) {
        case (.number(let a), .number(let b)):
            switch ordering {
            case .less: return a < b
            case .lessEqual: return a <= b
            case .greater: return a > b
            case .greaterEqual: return a >= b
            }
        case (.string(let a), .string(let b)):
            switch ordering {
            case .less: return UnicodeText.less(a, b)
            case .lessEqual: return !UnicodeText.less(b, a)
            case .greater: return UnicodeText.less(b, a)
            case .greaterEqual: return !UnicodeText.less(a, b)
            }
        default:
            return false
        }
    }

    /// `+`, `-`, `*`, `/` of two numbers; null for any other operand, a division by zero or a non-finite result.
    static func ruleArithmetic(_ operation: ArithmeticOperator, _ left: RuleValue, _ right: RuleValue) -> RuleValue {
        guard case .number(let lhs) = left, case .number(let rhs) = right else { return .null }
        return operation.apply(lhs, rhs).map(RuleValue.number) ?? .null
    }

    /// `min` or `max` of two numbers; null for any other operand.
    static func ruleExtremum(_ left: RuleValue, _ right: RuleValue, minimum: Bool) -> RuleValue {
        guard case .number(let lhs) = left, case .number(let rhs) = right else { return .null }
        return .number(minimum ? Swift.min(lhs, rhs) : Swift.max(lhs, rhs))
    }

    /// `contains`, `startsWith`, `endsWith` of two strings; false for any other operand.
    static func ruleStringTest(_ test: StringTest, _ subject: RuleValue, _ pattern: RuleValue) -> Bool {
        guard case .string(let text) = subject, case .string(let part) = pattern else { return false }
        switch test {
        case .contains: return UnicodeText.contains(text, part)
        case .startsWith: return UnicodeText.hasPrefix(text, part)
        case .endsWith: return UnicodeText.hasSuffix(text, part)
        }
    }

    /// `len`: a string's code points or a list's items; null for anything else.
    static func ruleLength(_ value: RuleValue) -> RuleValue {
        switch value {
        case .string(let text): return .number(Double(text.unicodeScalars.count))
        case .list(let items): return .number(Double(items.count))
        default: return .null
        }
    }

    /// `number(x)`: a number as is, a strictly numeric string converted (SPEC 4), else null.
    static func ruleNumber(_ value: RuleValue) -> RuleValue {
        switch value {
        case .number(let number): return .number(number)
        case .string(let text): return UnicodeText.strictNumber(text).map(RuleValue.number) ?? .null
        default: return .null
        }
    }

    /// `x in list`: an item equals `x` (same type); a null `x` or a non-list is false.
    static func ruleMembership(_ element: RuleValue, _ list: RuleValue) -> Bool {
        guard case .list(let items) = list else { return false }
        switch element {
        case .null, .object, .list: return false
        default: break
        }
        for item in items where ruleEquality(element, item) == true { return true }
        return false
    }
}

/// String operations by Unicode code point, never by canonical equivalence
/// (Swift's `String ==` would call `"é"` and `"e\u{301}"` equal; SPEC 4 says
/// they differ). UTF-8 byte order is code point order, and UTF-8 is
/// self-synchronising, so byte-wise comparison and search are exact.
enum UnicodeText {
    static func equal(_ a: String, _ b: String) -> Bool {
        sameCodePoints(a, b)
    }

    static func less(_ a: String, _ b: String) -> Bool {
        a.utf8.lexicographicallyPrecedes(b.utf8)
    }

    static func hasPrefix(_ text: String, _ prefix: String) -> Bool {
        text.utf8.starts(with: prefix.utf8)
    }

    static func hasSuffix(_ text: String, _ suffix: String) -> Bool {
        let textCount = text.utf8.count
        let suffixCount = suffix.utf8.count
        guard suffixCount <= textCount else { return false }
        return text.utf8.dropFirst(textCount - suffixCount).elementsEqual(suffix.utf8)
    }

    static func contains(_ text: String, _ part: String) -> Bool {
        let partCount = part.utf8.count
        if partCount == 0 { return true }
        return text.withUTF8Span { haystack in
            part.withUTF8Span { needle in search(haystack, needle) }
        }
    }

    private static func search(_ haystack: Span<UInt8>, _ needle: Span<UInt8>) -> Bool {
        let count = needle.count
        guard count <= haystack.count, count > 0 else { return count == 0 }
        let first = needle[0]
        var start = 0
        let last = haystack.count - count
        while start <= last {
            if haystack[start] == first {
                var matched = 1
                while matched < count, haystack[start + matched] == needle[matched] {
                    matched += 1
                }
                if matched == count { return true }
            }
            start += 1
        }
        return false
    }

    /// `number(s)`: `-?[0-9]+(\.[0-9]+)?` exactly, and finite; else nil.
    static func strictNumber(_ text: String) -> Double? {
        var sawDigit = false
        var sawDot = false
        var digitsAfterDot = 0
        for (offset, byte) in text.utf8.enumerated() {
            switch byte {
            case UInt8(ascii: "-") where offset == 0:
                continue
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                sawDigit = true
                if sawDot { digitsAfterDot += 1 }
            case UInt8(ascii: ".") where sawDigit && !sawDot:
                sawDot = true
            default:
                return nil
            }
        }
        guard sawDigit, !sawDot || digitsAfterDot > 0, let value = Double(text), value.isFinite else { return nil }
        return value
    }
}
