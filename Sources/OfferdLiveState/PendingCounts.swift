import OfferdCore
import OfferdEventLog

/// A server's own decision events that count on it before its follower has read them back from the log (SPEC
/// 9.1: "decision events buffered meanwhile count on the server that made them at once"; the design sketch's
/// pending table).
///
/// Counted exactly as ``LiveOverlay`` counts them (one per distinct offer of an entry, in every period), so that
/// an entry moved from here to the overlay changes no answer. The runtime adds entries when the writer takes
/// them and takes them back when the follower applies them or the buffer drops them, publishing the table with
/// the overlay after each change.
///
/// Why chunks: the table is published (shared with every Decide) after each change, so a change must not copy
/// what it does not touch. As one pair of dictionaries, the first change after each publish copied both whole,
/// and under load (every Decide records, both threads publish thousands of times a second) that copying was a
/// third of a server's CPU (benchmarks/README.md). Here every change appends one immutable ``PendingChunk`` of
/// signed counts (taking entries back appends negative counts), and a publish shares the chunks. Chunks merge
/// as a binary counter's digits do (a chunk at most about twice the size of the next newer one), so a table
/// holds a few chunks and each count is copied a few times, not once per publish. When every entry added has
/// been taken back, every count is zero and the chunks go.
public struct PendingCounts: Sendable {
    /// Oldest first.
    private var chunks: [PendingChunk] = []
    /// Entries added and not taken back (of the types that count).
    private var outstanding = 0

    public init() {}

    /// True when nothing is pending.
    public var isEmpty: Bool { outstanding == 0 }

    /// Counts decision, display and interact entries (other types count nowhere).
    public mutating func add(_ entries: some Collection<EventLogEntry>) { change(entries, by: 1) }

    /// Counts one entry (see ``add(_:)-5y7f0``).
    public mutating func add(_ entry: EventLogEntry) { change(CollectionOfOne(entry), by: 1) }

    /// Takes back what ``add(_:)-5y7f0`` counted for `entries`; each must have been added and not taken back.
    public mutating func remove(_ entries: some Collection<EventLogEntry>) { change(entries, by: -1) }

    /// Takes back one entry (see ``remove(_:)``).
    public mutating func remove(_ entry: EventLogEntry) { change(CollectionOfOne(entry), by: -1) }

    private mutating func change(_ entries: some Collection<EventLogEntry>, by delta: Int) {
        let counted = entries.reduce(0) { $0 + (PendingChunk.counts($1) ? 1 : 0) }
        guard counted > 0 else { return }
        outstanding += delta * counted
        if outstanding == 0 {
            chunks = []
            return
        }
        chunks.append(PendingChunk(entries, delta: delta))
        while chunks.count >= 2 && chunks[chunks.count - 2].size <= 2 * chunks[chunks.count - 1].size {
            let newer = chunks.removeLast()
            chunks[chunks.count - 1] = PendingChunk(merging: chunks[chunks.count - 1], newer)
        }
    }

    /// False when nothing is pending for the profile key with this hash (``LiveProfileKeyHash``); may be true for
    /// a key with nothing pending (a Bloom filter per chunk).
    func mayContain(hash: Int) -> Bool { chunks.contains { $0.filter.mayContain(hash) } }

    func profileCount(_ key: EventLogProfileKey, _ counter: LiveCounterKey) -> Int {
        chunks.reduce(0) { $0 + ($1.profiles[key]?[counter] ?? 0) }
    }

    func totalCount(_ counter: LiveCounterKey) -> Int { chunks.reduce(0) { $0 + ($1.totals[counter] ?? 0) } }

    /// The key's pending counters, summed over the chunks; nil when no chunk has any for it. `hash` is the key's
    /// ``LiveProfileKeyHash`` value.
    func counters(for key: EventLogProfileKey, hash: Int) -> [LiveCounterKey: Int]? {
        var summed: [LiveCounterKey: Int]?
        for chunk in chunks where chunk.filter.mayContain(hash) {
            guard let counters = chunk.profiles[key] else { continue }
            if summed == nil {
                summed = counters
            } else {
                summed!.merge(counters, uniquingKeysWith: +)
            }
        }
        return summed
    }

    /// Every pending total counter, summed over the chunks (zeros left out).
    var totalCounters: [LiveCounterKey: Int] {
        var summed: [LiveCounterKey: Int] = [:]
        for chunk in chunks { summed.merge(chunk.totals, uniquingKeysWith: +) }
        return summed.filter { $0.value != 0 }
    }
}

/// Signed counts of some pending entries: per profile key and in total. Immutable, so that every published
/// ``PendingCounts`` shares it.
final class PendingChunk: Sendable {
    let profiles: [EventLogProfileKey: [LiveCounterKey: Int]]
    let totals: [LiveCounterKey: Int]
    /// The profile keys in ``profiles``, by ``LiveProfileKeyHash``.
    let filter: KeyHashFilter
    /// What a merge with it copies: its counters.
    let size: Int

    static func counts(_ entry: EventLogEntry) -> Bool {
        entry.type == .decision || entry.type == .display || entry.type == .interact
    }

    /// `delta` for each distinct offer of each entry that counts, in every period.
    convenience init(_ entries: some Collection<EventLogEntry>, delta: Int) {
        var profiles: [EventLogProfileKey: [LiveCounterKey: Int]] = [:]
        var totals: [LiveCounterKey: Int] = [:]
        for entry in entries where Self.counts(entry) {
            let event = LiveOverlay.cappingEvent(entry.type)
            let offers = entry.offerIDs
            for index in offers.indices where !offers[..<index].contains(offers[index]) {
                for period in CappingPeriod.allCases {
                    let counter = LiveCounterKey(
                        offer: offers[index], event: event, period: period,
                        bucket: CalendarBuckets.bucket(period, timeMs: entry.timeMs))
                    totals[counter, default: 0] += delta
                    // In place: the key's table is not copied out and back per counter.
                    profiles[entry.key, default: [:]][counter, default: 0] += delta
                }
            }
        }
        self.init(profiles: profiles, totals: totals)
    }

    /// The sum of `older` and `newer`, counts that sum to zero left out.
    convenience init(merging older: PendingChunk, _ newer: PendingChunk) {
        var profiles = older.profiles
        for (key, counters) in newer.profiles {
            profiles[key, default: [:]].merge(counters, uniquingKeysWith: +)
        }
        self.init(profiles: profiles, totals: older.totals.merging(newer.totals, uniquingKeysWith: +))
    }

    private init(profiles: [EventLogProfileKey: [LiveCounterKey: Int]], totals: [LiveCounterKey: Int]) {
        var kept: [EventLogProfileKey: [LiveCounterKey: Int]] = [:]
        var size = 0
        for (key, counters) in profiles {
            let nonzero = counters.filter { $0.value != 0 }
            if nonzero.isEmpty { continue }
            kept[key] = nonzero
            size += nonzero.count
        }
        self.profiles = kept
        self.totals = totals.filter { $0.value != 0 }
        self.filter = KeyHashFilter(kept.keys.map { LiveProfileKeyHash($0).value })
        self.size = size + self.totals.count
    }
}

/// An immutable Bloom filter of hashes: two bits a hash, at least 32 bits of filter a hash (about 1 miss in
/// 250 passes it). Claims no hash it was not given, never the reverse.
struct KeyHashFilter: Sendable {
    private let words: [UInt64]

    init(_ hashes: [Int]) {
        guard !hashes.isEmpty else {
            words = []
            return
        }
        var count = 1
        while count * 64 < hashes.count * 32 { count *= 2 }
        var words = [UInt64](repeating: 0, count: count)
        for hash in hashes {
            let (first, second) = Self.bits(of: hash, wordCount: count)
            words[first >> 6] |= 1 << (first & 63)
            words[second >> 6] |= 1 << (second & 63)
        }
        self.words = words
    }

    func mayContain(_ hash: Int) -> Bool {
        guard !words.isEmpty else { return false }
        let (first, second) = Self.bits(of: hash, wordCount: words.count)
        return words[first >> 6] & (1 << (first & 63)) != 0 && words[second >> 6] & (1 << (second & 63)) != 0
    }

    /// From the hash's low bits and its bits from 32 on: independent bits of a SipHash.
    private static func bits(of hash: Int, wordCount: Int) -> (Int, Int) {
        let bits = UInt(bitPattern: hash)
        let mask = UInt(wordCount * 64 - 1)
        return (Int(bits & mask), Int((bits >> 32) & mask))
    }
}
