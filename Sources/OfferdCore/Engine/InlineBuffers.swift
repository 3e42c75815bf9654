// Small fixed-capacity buffers that live inside the per-request state instead of on the heap.
//
// A decision of one scope must cost at most two heap allocations (the result's proposition array and its item
// array, SPEC issue 2). The per-request scratch (context slots, offers already proposed, the top-k candidates)
// is small in the common case, so it is kept in stored properties and only spills to an array when a request
// is unusually large. OfferdCore uses no unsafe code, so the inline slots are plain fields reached through a
// switch; the compiler turns the switch into a jump table or a computed offset.

/// Rule values by slot (the request context, the profile's attributes): the first eight inline, the rest
/// spilled.
struct RuleValueSlots {
    private var slot0: RuleValue = .null
    private var slot1: RuleValue = .null
    private var slot2: RuleValue = .null
    private var slot3: RuleValue = .null
    private var slot4: RuleValue = .null
    private var slot5: RuleValue = .null
    private var slot6: RuleValue = .null
    private var slot7: RuleValue = .null
    private var spilled: [RuleValue] = []
    private(set) var count = 0

    static let inlineCapacity = 8

    init() {}

    init(_ values: [RuleValue]) {
        for value in values { append(value) }
    }

    mutating func append(_ value: RuleValue) {
        switch count {
        case 0: slot0 = value
        case 1: slot1 = value
        case 2: slot2 = value
        case 3: slot3 = value
        case 4: slot4 = value
        case 5: slot5 = value
        case 6: slot6 = value
        case 7: slot7 = value
        default: spilled.append(value)
        }
        count += 1
    }

    /// The value of `slot`, or null outside the table.
    subscript(slot: Int) -> RuleValue {
        guard slot >= 0 && slot < count else { return .null }
        switch slot {
        case 0: return slot0
        case 1: return slot1
        case 2: return slot2
        case 3: return slot3
        case 4: return slot4
        case 5: return slot5
        case 6: return slot6
        case 7: return slot7
        default: return spilled[slot - Self.inlineCapacity]
        }
    }
}

/// The catalog indices of the offers proposed so far in one response, in the order they were chosen.
///
/// A response proposes a handful of offers, so a linear scan of eight inline slots beats a bitset over the
/// whole catalog (which would cost an allocation per request); past eight the indices spill to an array.
struct ChosenOffers {
    private var index0 = 0
    private var index1 = 0
    private var index2 = 0
    private var index3 = 0
    private var index4 = 0
    private var index5 = 0
    private var index6 = 0
    private var index7 = 0
    private var spilled: [Int] = []
    private(set) var count = 0

    static let inlineCapacity = 8

    mutating func append(_ offerIndex: Int) {
        switch count {
        case 0: index0 = offerIndex
        case 1: index1 = offerIndex
        case 2: index2 = offerIndex
        case 3: index3 = offerIndex
        case 4: index4 = offerIndex
        case 5: index5 = offerIndex
        case 6: index6 = offerIndex
        case 7: index7 = offerIndex
        default: spilled.append(offerIndex)
        }
        count += 1
    }

    func contains(_ offerIndex: Int) -> Bool {
        // Unrolled over the inline slots: no bounds checks, no loop-carried switch.
        if count > 0 && index0 == offerIndex { return true }
        if count > 1 && index1 == offerIndex { return true }
        if count > 2 && index2 == offerIndex { return true }
        if count > 3 && index3 == offerIndex { return true }
        if count > 4 && index4 == offerIndex { return true }
        if count > 5 && index5 == offerIndex { return true }
        if count > 6 && index6 == offerIndex { return true }
        if count > 7 && index7 == offerIndex { return true }
        if count > Self.inlineCapacity {
            for spilledIndex in spilled where spilledIndex == offerIndex { return true }
        }
        return false
    }

    /// Forgets the offers chosen after the first `newCount` (`allow_duplicates`: the next scope starts afresh).
    mutating func truncate(to newCount: Int) {
        guard newCount < count else { return }
        let spilledToKeep = max(newCount - Self.inlineCapacity, 0)
        if spilled.count > spilledToKeep {
            spilled.removeLast(spilled.count - spilledToKeep)
        }
        count = newCount
    }
}

/// One candidate kept by the top-k selection.
struct RankedCandidate {
    var offerIndex: Int
    var representationIndex: Int
    var rank: Double
    var tieHash: UInt64
    var idOrder: Int

    /// Higher rank first; equal ranks by ascending tie hash, then by offer id.
    func isBetter(than other: RankedCandidate) -> Bool {
        if rank != other.rank { return rank > other.rank }
        if tieHash != other.tieHash { return tieHash < other.tieHash }
        return idOrder < other.idOrder
    }
}

/// The best candidates of one criterion, best first: eight inline (item counts are usually small), then spilled.
struct TopCandidates {
    private var slot0 = TopCandidates.placeholder
    private var slot1 = TopCandidates.placeholder
    private var slot2 = TopCandidates.placeholder
    private var slot3 = TopCandidates.placeholder
    private var slot4 = TopCandidates.placeholder
    private var slot5 = TopCandidates.placeholder
    private var slot6 = TopCandidates.placeholder
    private var slot7 = TopCandidates.placeholder
    private var spilled: [RankedCandidate] = []
    private(set) var count = 0

    static let inlineCapacity = 8
    private static let placeholder = RankedCandidate(
        offerIndex: 0, representationIndex: 0, rank: 0, tieHash: 0, idOrder: 0)

    subscript(position: Int) -> RankedCandidate {
        get {
            switch position {
            case 0: return slot0
            case 1: return slot1
            case 2: return slot2
            case 3: return slot3
            case 4: return slot4
            case 5: return slot5
            case 6: return slot6
            case 7: return slot7
            default: return spilled[position - Self.inlineCapacity]
            }
        }
        set {
            switch position {
            case 0: slot0 = newValue
            case 1: slot1 = newValue
            case 2: slot2 = newValue
            case 3: slot3 = newValue
            case 4: slot4 = newValue
            case 5: slot5 = newValue
            case 6: slot6 = newValue
            case 7: slot7 = newValue
            default:
                let spilledPosition = position - Self.inlineCapacity
                if spilledPosition == spilled.count {
                    spilled.append(newValue)
                } else {
                    spilled[spilledPosition] = newValue
                }
            }
        }
    }

    mutating func removeAll() {
        count = 0
        spilled.removeAll(keepingCapacity: true)
    }

    /// Keeps `candidate` if it is among the best `capacity` seen so far (insertion into a sorted run: k is small).
    mutating func offer(_ candidate: RankedCandidate, capacity: Int) {
        if count == capacity {
            guard capacity > 0, candidate.isBetter(than: self[count - 1]) else { return }
            count -= 1
        }
        var position = count
        while position > 0 {
            let previous = self[position - 1]
            guard candidate.isBetter(than: previous) else { break }
            self[position] = previous
            position -= 1
        }
        self[position] = candidate
        count += 1
    }

    /// The worst kept rank, when `capacity` candidates are kept: anything ranked strictly lower cannot enter.
    func worstRank(capacity: Int) -> Double? {
        count == capacity && count > 0 ? self[count - 1].rank : nil
    }
}
