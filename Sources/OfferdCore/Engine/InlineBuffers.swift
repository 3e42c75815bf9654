// Small fixed-capacity buffers that live inside the per-request state instead of on the heap.
//
// A decision of one scope must cost at most two heap allocations (the result's proposition array and its item
// array, SPEC issue 2). The per-request scratch (context slots, offers already proposed, the top-k candidates)
// is small in the common case, so it is kept in stored properties and only spills to an array when a request
// is unusually large. The inline slots are plain fields reached through a switch, not pointers (OfferdCore keeps
// its unsafe code to two places, see OfferdCore.docc); the compiler turns the switch into a jump table or a
// computed offset.

/// Rule values by slot (the request context, the profile's attributes): the first eight inline, the rest
/// spilled.
struct RuleValueSlots {
    private var storage = SmallArray<RuleValue>(filler: .null)

    static let inlineCapacity = SmallArray<RuleValue>.inlineCapacity

    init() {}

    init(_ values: [RuleValue]) {
        for value in values { append(value) }
    }

    var count: Int { storage.count }

    mutating func append(_ value: RuleValue) {
        storage.append(value)
    }

    /// The value of `slot`, or null outside the table.
    subscript(slot: Int) -> RuleValue {
        guard slot >= 0 && slot < storage.count else { return .null }
        return storage[slot]
    }
}

/// The catalog indices of the offers proposed so far in one response, in the order they were chosen.
///
/// A response proposes a handful of offers, so a linear scan of eight inline slots beats a bitset over the
/// whole catalog (which would cost an allocation per request); past eight the indices spill to an array. A
/// 256-bit filter (bit `index & 255` of every chosen index) answers most `contains` for offers not chosen without
/// the scan: a 30-scope request chooses up to 90 offers, and scanning them for every screened candidate was 29% of
/// its instructions (callgrind).
struct ChosenOffers {
    private var storage = SmallArray<Int>(filler: 0)
    private var filter0: UInt64 = 0
    private var filter1: UInt64 = 0
    private var filter2: UInt64 = 0
    private var filter3: UInt64 = 0

    var count: Int { storage.count }

    mutating func append(_ offerIndex: Int) {
        storage.append(offerIndex)
        mark(offerIndex)
    }

    @inline(__always)
    func contains(_ offerIndex: Int) -> Bool {
        // A clear bit: no chosen index has these low bits.
        guard isMarked(offerIndex) else { return false }
        for position in 0..<storage.count where storage[position] == offerIndex { return true }
        return false
    }

    /// Forgets the offers chosen after the first `newCount` (`allow_duplicates`: the next scope starts afresh).
    mutating func truncate(to newCount: Int) {
        guard newCount < storage.count else { return }
        storage.truncate(to: newCount)
        (filter0, filter1, filter2, filter3) = (0, 0, 0, 0)
        for position in 0..<storage.count { mark(storage[position]) }
    }

    private mutating func mark(_ offerIndex: Int) {
        let bit: UInt64 = 1 << UInt64(offerIndex & 63)
        switch (offerIndex >> 6) & 3 {
        case 0: filter0 |= bit
        case 1: filter1 |= bit
        case 2: filter2 |= bit
        default: filter3 |= bit
        }
    }

    @inline(__always)
    private func isMarked(_ offerIndex: Int) -> Bool {
        let word: UInt64
        switch (offerIndex >> 6) & 3 {
        case 0: word = filter0
        case 1: word = filter1
        case 2: word = filter2
        default: word = filter3
        }
        return word & (1 << UInt64(offerIndex & 63)) != 0
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

/// The best candidates of one criterion: eight inline (item counts are usually small), then spilled.
///
/// Kept unordered while candidates arrive, with the worst of them beside: a candidate that enters replaces the
/// worst in place, so an entry costs one store and a scan of k instead of shifting a sorted run. Call
/// ``sortBestFirst()`` before reading the result.
struct TopCandidates {
    private var storage = SmallArray<RankedCandidate>(filler: Self.filler)
    /// The worst kept candidate and its position, meaningful once `capacity` candidates are kept.
    private var worst = Self.filler
    private var worstPosition = 0

    private static let filler = RankedCandidate(offerIndex: 0, representationIndex: 0, rank: 0, tieHash: 0, idOrder: 0)

    var count: Int { storage.count }

    subscript(position: Int) -> RankedCandidate { storage[position] }

    mutating func removeAll() {
        storage.truncate(to: 0)
    }

    /// Keeps `candidate` if it is among the best `capacity` seen so far (`capacity` is fixed until `removeAll`).
    @inline(__always)
    mutating func offer(_ candidate: RankedCandidate, capacity: Int) {
        if storage.count < capacity {
            storage.append(candidate)
            if storage.count == capacity { findWorst() }
        } else if capacity > 0 && candidate.isBetter(than: worst) {
            storage[worstPosition] = candidate
            findWorst()
        }
    }

    /// Whether ``offer(_:capacity:)`` would keep `candidate`.
    @inline(__always)
    func wouldKeep(_ candidate: RankedCandidate, capacity: Int) -> Bool {
        storage.count < capacity || (capacity > 0 && candidate.isBetter(than: worst))
    }

    private mutating func findWorst() {
        worstPosition = 0
        worst = storage[0]
        for position in 1..<storage.count {
            let candidate = storage[position]
            if worst.isBetter(than: candidate) {
                worst = candidate
                worstPosition = position
            }
        }
    }

    /// Orders the kept candidates best first (insertion sort: k is small).
    mutating func sortBestFirst() {
        guard storage.count > 1 else { return }
        for end in 1..<storage.count {
            let candidate = storage[end]
            var position = end
            while position > 0 {
                let previous = storage[position - 1]
                guard candidate.isBetter(than: previous) else { break }
                storage[position] = previous
                position -= 1
            }
            storage[position] = candidate
        }
    }

    /// The worst kept rank, when `capacity` candidates are kept: anything ranked strictly lower cannot enter.
    func worstRank(capacity: Int) -> Double? {
        storage.count == capacity && storage.count > 0 ? worst.rank : nil
    }
}

/// A growable array whose first eight elements live inline, so the per-request scratch of a decision
/// (context values, chosen offers, top-k candidates) costs no heap allocation in the common case; past
/// eight, elements spill to an ordinary array.
struct SmallArray<Element> {
    private var slot0: Element
    private var slot1: Element
    private var slot2: Element
    private var slot3: Element
    private var slot4: Element
    private var slot5: Element
    private var slot6: Element
    private var slot7: Element
    private var spilled: [Element] = []
    private(set) var count = 0

    static var inlineCapacity: Int { 8 }

    /// `filler` occupies unused inline slots; it is never read back.
    init(filler: Element) {
        slot0 = filler
        slot1 = filler
        slot2 = filler
        slot3 = filler
        slot4 = filler
        slot5 = filler
        slot6 = filler
        slot7 = filler
    }

    mutating func append(_ element: Element) {
        let position = count
        count += 1
        self[position] = element
    }

    /// Drops the elements after the first `newCount`, keeping the spill array's capacity.
    mutating func truncate(to newCount: Int) {
        guard newCount < count else { return }
        let spilledToKeep = max(newCount - Self.inlineCapacity, 0)
        if spilled.count > spilledToKeep {
            spilled.removeLast(spilled.count - spilledToKeep)
        }
        count = newCount
    }

    /// The element at `position` (0 ..< count).
    subscript(position: Int) -> Element {
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
}
