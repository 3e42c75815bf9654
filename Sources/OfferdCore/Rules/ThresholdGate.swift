/// One bound per candidate of a ranking on one request value, which the candidate's eligibility cannot be true
/// without: the decision loop passes over a candidate whose bound the request does not meet with one comparison,
/// before it reads anything else of it.
///
/// Issue 15's catalogs give each offer a condition such as `profile.loyalty.points >= N and context.page !=
/// "blocked-K"`. For a profile with few points, most of the best-ranked offers are ineligible, and the walk tested
/// each of them in full (screens, the inline condition's tests, the score). The gate keeps, at load, the bound of an
/// `order` test that each condition needs (a test whose failure makes the condition false whatever the others give)
/// on the request value most of the ranking's conditions test that way, normalised so that one comparison answers
/// it: `key >= bounds[position]`, where the request's key is the value (a lower bound, `>=` or `>`) or its negation
/// (an upper bound, `<=` or `<`).
///
/// A failed gate is exactly a failed `order` test of SPEC 4 (false unless the value is a number), so passing over
/// the candidate gives what testing it would. A passed gate decides nothing: the candidate is screened as before.
struct ThresholdGate: Sendable {
    /// The request value a gate reads and which way it bounds it.
    struct Key: Hashable, Sendable {
        let source: InlineSource
        let slot: Int32
        /// True for `<` and `<=` tests: the key is then the negated value.
        let upper: Bool
    }

    /// Nil when no candidate's condition needs an `order` test of a request value the typed view holds: then every
    /// bound is `-infinity` and every request's key `+infinity`.
    let key: Key?
    /// At each candidate position: `-infinity` when the candidate needs no test of `key` (every key passes), NaN
    /// when the test can never pass.
    let bounds: [Double]

    /// The gate of the candidates whose eligibility conditions are `conditions`, at the same positions (nil: none, or
    /// one that is not a ``ConditionProgram``).
    init(conditions: [ConditionProgram?]) {
        let needs = conditions.map { $0?.necessaryBounds() ?? [:] }
        var candidatesByKey: [Key: Int] = [:]
        var firstSeen: [Key] = []
        for need in needs {
            for key in need.keys.sorted(by: Self.order) {
                if candidatesByKey[key] == nil { firstSeen.append(key) }
                candidatesByKey[key, default: 0] += 1
            }
        }
        // The key most candidates need; the first seen among equals, so a catalog always gets the same gate.
        var best: Key?
        var bestCount = 0
        for key in firstSeen where candidatesByKey[key, default: 0] > bestCount {
            (best, bestCount) = (key, candidatesByKey[key, default: 0])
        }
        key = best
        bounds = needs.map { need in best.flatMap { need[$0] } ?? -Double.infinity }
    }

    private static func order(_ left: Key, _ right: Key) -> Bool {
        (left.source.rawValue, left.slot, left.upper ? 1 : 0) < (right.source.rawValue, right.slot, right.upper ? 1 : 0)
    }

    /// The request's key: the value at `key` (negated for an upper bound) when it is a number; `-infinity` when it
    /// is not (every `order` test of it fails: only candidates without one pass), or NaN (likewise); `+infinity`
    /// when there is no gate or the request has no typed view of the value (every candidate passes: the catalog
    /// types the slots its gates read, see ``Catalog/inlineAttributeSlots``).
    @inline(__always)
    func requestKey(_ request: inout TypedRequest) -> Double {
        guard let key, let value = request.typedValue(key.source, slot: Int(key.slot)) else { return .infinity }
        guard value.kind == .number, !value.number.isNaN else { return -.infinity }
        return key.upper ? -value.number : value.number
    }

    /// `ordering bound` as a key and the bound the key must reach: `x >= b` is `x >= b`; `x > b` is `x >= next(b)`
    /// (no double lies between); `x <= b` is `-x >= -b`; `x < b` is `-x >= next(-b)`. NaN for a test no number
    /// passes (`> +infinity`, `< -infinity`, a NaN bound).
    static func normalized(_ ordering: OrderingOperator, _ bound: Double) -> (upper: Bool, bound: Double) {
        func above(_ value: Double) -> Double { value == .infinity || value.isNaN ? .nan : value.nextUp }
        switch ordering {
        case .greaterEqual: return (false, bound)
        case .greater: return (false, above(bound))
        case .lessEqual: return (true, -bound)
        case .less: return (true, above(-bound))
        }
    }
}

extension ConditionProgram {
    /// The normalised bounds (``ThresholdGate/normalized(_:_:)``) of the `order` tests of request values the
    /// condition needs, by key; the highest bound when several tests of one key are needed.
    ///
    /// A test is needed when no path of the jumping code reaches `result(true)` with that test failing and every
    /// other test free to go either way. Paths a real evaluation cannot take (two tests of one value that cannot
    /// both hold) only make this say "not needed" more often, never wrongly "needed".
    func necessaryBounds() -> [ThresholdGate.Key: Double] {
        var bounds: [ThresholdGate.Key: Double] = [:]
        for (position, instruction) in instructions.enumerated() {
            guard case .test(.order(let operand, let ordering, let bound), _, _) = instruction else { continue }
            let source: InlineSource
            let slot: Int
            switch operand {
            case .attribute(let attributeSlot, _): (source, slot) = (.attribute, attributeSlot)
            case .context(let contextSlot): (source, slot) = (.context, contextSlot)
            case .now: (source, slot) = (.now, 0)
            case .offerPriority, .characteristic, .characteristicNumber: continue
            }
            // The typed view holds eight slots of each (see `TypedRequest`).
            guard slot < 8, !canBeTrue(failing: position) else { continue }
            let (upper, normalized) = ThresholdGate.normalized(ordering, bound)
            let key = ThresholdGate.Key(source: source, slot: Int32(slot), upper: upper)
            if let known = bounds[key] {
                // Both are needed: the key must reach the higher (NaN, never reached, wins).
                bounds[key] = known.isNaN || normalized.isNaN ? .nan : max(known, normalized)
            } else {
                bounds[key] = normalized
            }
        }
        return bounds
    }

    /// Whether some path reaches `result(true)` when the test at `failing` fails and every other goes either way.
    private func canBeTrue(failing: Int) -> Bool {
        var seen = [Bool](repeating: false, count: instructions.count)
        var pending = [0]
        while let position = pending.popLast() {
            guard position >= 0 && position < instructions.count, !seen[position] else { continue }
            seen[position] = true
            switch instructions[position] {
            case .test(_, let jumpIf, let target):
                if position == failing {
                    pending.append(jumpIf ? position + 1 : target)
                } else {
                    pending.append(position + 1)
                    pending.append(target)
                }
            case .jump(let target):
                pending.append(target)
            case .result(let value):
                if value { return true }
            }
        }
        return false
    }
}
