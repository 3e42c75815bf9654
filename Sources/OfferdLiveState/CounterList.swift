import OfferdCore

/// The offer ids the overlay has met, numbered from 0 in the order it met them.
///
/// Why: the follower adds 1 to four counters per offer of every event, for the profile and for the totals. Keyed
/// by the offer's `String` that is sixteen string hashes per two-offer decision event (most of the follower's
/// time, measured); keyed by the offer's number it is one string hash per offer to find the number, and integer
/// compares after that. Numbers are never reused or forgotten: the table holds one entry per distinct offer id the
/// log named (catalog offers, in practice a few thousand), shared copy-on-write with every published value.
struct OfferNumbers: Sendable {
    private var numbers: [String: UInt32] = [:]
    private(set) var names: [String] = []
    /// The numbers by the names' ``stableHash(_:)`` (what an ``InternedName`` carries): a Decide finds an offer's
    /// number by an integer instead of hashing its name. Two names with one stable hash (it is not keyed, and
    /// offer ids in RecordEvents are the caller's) map to nil there, and are found by name.
    private var byStableHash: [UInt64: UInt32?] = [:]

    /// The number of `offer`, numbering it when it is new.
    mutating func number(for offer: String) -> UInt32 {
        if let number = numbers[offer] { return number }
        // 2^32 distinct offer ids would take over 100 GB of names first: not a limit this table can reach.
        let number = UInt32(truncatingIfNeeded: names.count)
        numbers[offer] = number
        names.append(offer)
        let hash = stableHash(offer.utf8)
        if byStableHash[hash] == nil {
            byStableHash[hash] = .some(number)
        } else {
            byStableHash[hash] = .some(nil)
        }
        return number
    }

    /// The number of `offer`; nil when the overlay never met it (so it counts nothing).
    func existingNumber(_ offer: String) -> UInt32? { numbers[offer] }

    /// The number of `offer`, found by its stable hash.
    func existingNumber(_ offer: InternedName) -> UInt32? {
        switch byStableHash[offer.hash] {
        case nil: return nil
        case .some(.some(let number)): return names[Int(number)] == offer.name ? number : nil
        case .some(nil): return numbers[offer.name]
        }
    }
}

/// The overlay's numbers of the offer ids it met lately, found without hashing the id's `String`: the follower's
/// lookup of an offer's number (``OfferNumbers/number(for:)``), two per two-offer event, cost it about 8 % of its
/// time (a SipHash of the id and a dictionary probe; benchmarks/README.md). An event names offers of one catalog,
/// a few hundred at most in practice, and consecutive events name the same ones.
///
/// Direct-mapped by an FNV-1a hash of the id's bytes: a slot holds the last id that fell into it. A hit is
/// checked by comparing the ids themselves (one word compare for a short id), so a collision, even one chosen by
/// whoever wrote the events, costs a probe of ``OfferNumbers`` and never a wrong number. Numbers never change for
/// an id (``OfferNumbers``), so a slot stays right until it is replaced. Kept by the writer, never published.
struct RecentOfferNumbers: Sendable {
    static let slotCount = 256

    private struct Slot: Sendable {
        var offer: String
        var number: UInt32
        var filled: Bool
    }

    private var slots = [Slot](repeating: Slot(offer: "", number: 0, filled: false), count: Self.slotCount)

    /// The number of `offer` in `offers`, numbering it there when it is new.
    @inline(__always)
    mutating func number(for offer: String, in offers: inout OfferNumbers) -> UInt32 {
        var hash: UInt32 = 2_166_136_261
        for byte in offer.utf8 { hash = (hash ^ UInt32(byte)) &* 16_777_619 }
        let slot = Int(truncatingIfNeeded: hash) & (Self.slotCount - 1)
        if slots[slot].filled && slots[slot].offer == offer { return slots[slot].number }
        let number = offers.number(for: offer)
        slots[slot] = Slot(offer: offer, number: number, filled: true)
        return number
    }
}

/// A live counter's key (offer number, event type, period, bucket) packed into one integer, ordered as the tuple.
///
/// Layout: bits 32-63 the offer number, 30-31 the event type, 28-29 the period, 0-27 the bucket plus 2^27. Buckets
/// outside -2^27 ..< 2^27 are clamped to its ends: a day bucket leaves that range about 367,000 years from 1970,
/// so only absurd event times share a counter, and readers clamp the same way.
struct PackedCounterKey: Hashable, Comparable, Sendable {
    var raw: UInt64

    static let bucketBias: Int64 = 1 << 27

    init(offer: UInt32, event: CappingEvent, period: CappingPeriod, bucket: Int64) {
        let biased = UInt64(min(max(bucket, -Self.bucketBias), Self.bucketBias - 1) + Self.bucketBias)
        raw = UInt64(offer) << 32 | UInt64(Self.index(event)) << 30 | UInt64(Self.index(period)) << 28 | biased
    }

    var offer: UInt32 { UInt32(truncatingIfNeeded: raw >> 32) }
    var event: CappingEvent {
        switch (raw >> 30) & 3 {
        case 0: .decision
        case 1: .display
        default: .interact
        }
    }
    var period: CappingPeriod {
        switch (raw >> 28) & 3 {
        case 0: .lifetime
        case 1: .day
        case 2: .week
        default: .month
        }
    }
    var bucket: Int64 { Int64(raw & ((1 << 28) - 1)) - Self.bucketBias }

    static func < (lhs: Self, rhs: Self) -> Bool { lhs.raw < rhs.raw }

    private static func index(_ event: CappingEvent) -> UInt8 {
        switch event {
        case .decision: 0
        case .display: 1
        case .interact: 2
        }
    }

    private static func index(_ period: CappingPeriod) -> UInt8 {
        switch period {
        case .lifetime: 0
        case .day: 1
        case .week: 2
        case .month: 3
        }
    }
}

/// Counters as one array sorted by key: 16 bytes a counter plus the array's spare capacity, found by binary
/// search, with no hashing. A profile holds a few dozen counters (offers x event types x 4 periods), so an insert's
/// move of the tail costs less than a hash table's probes and memory; the totals hold a few thousand.
struct CounterList: Hashable, Sendable {
    struct Counter: Hashable, Sendable {
        var key: PackedCounterKey
        var count: Int
    }

    private(set) var counters: [Counter] = []

    var isEmpty: Bool { counters.isEmpty }
    var count: Int { counters.count }

    subscript(key: PackedCounterKey) -> Int {
        let index = firstIndex(atOrAfter: key)
        return index < counters.count && counters[index].key == key ? counters[index].count : 0
    }

    mutating func add(_ amount: Int, at key: PackedCounterKey) {
        let index = firstIndex(atOrAfter: key)
        if index < counters.count && counters[index].key == key {
            counters[index].count += amount
        } else {
            counters.insert(Counter(key: key, count: amount), at: index)
        }
    }

    /// Adds 1 at each of `keys` (as many ``add(_:at:)`` calls, in one method so that the array's uniqueness is
    /// checked once, not per key).
    mutating func addOne(atEach keys: [PackedCounterKey]) {
        for key in keys {
            let index = firstIndex(atOrAfter: key)
            if index < counters.count && counters[index].key == key {
                counters[index].count += 1
            } else {
                counters.insert(Counter(key: key, count: 1), at: index)
            }
        }
    }

    /// Keeps the counters whose key passes `keep`.
    mutating func keep(where keep: (PackedCounterKey) -> Bool) {
        guard counters.contains(where: { !keep($0.key) }) else { return }
        counters.removeAll { !keep($0.key) }
    }

    private func firstIndex(atOrAfter key: PackedCounterKey) -> Int {
        var low = 0
        var high = counters.count
        while low < high {
            let middle = (low + high) / 2
            if counters[middle].key < key { low = middle + 1 } else { high = middle }
        }
        return low
    }
}
