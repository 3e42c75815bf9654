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
/// Why this shape: the table is published (shared with every Decide) after each change, and under load both
/// threads change it thousands of times a second. As a pair of count dictionaries, the first change after each
/// publish copied both whole, and every change hashed a counter key per offer and period: a third of a loaded
/// server's CPU (benchmarks/README.md). Here the entries themselves are kept, in immutable chunks (one per
/// change, merged as a binary counter's digits are, so a table holds a few), each with the hashes of its profile
/// keys and a Bloom filter of them. A change appends a chunk or moves a chunk's start past the entries the
/// follower applied (they come back in the order they were added); a publish shares the chunks. A Decide whose
/// key no filter passes reads nothing here; one whose key passes counts its own entries when it asks.
///
/// Totals (`total` capping rules) are counted into a dictionary as entries come and go, only for entries added
/// with `countingTotals` (the writer sets it from the catalog): a catalog without `total` rules never reads them.
public struct PendingCounts: Sendable {
    private struct Slice: Sendable {
        let chunk: PendingChunk
        /// Entries before it have been taken back.
        var start: Int
        var remaining: Int { chunk.entries.count - start }
    }

    /// Oldest first.
    private var slices: [Slice] = []
    /// Entries added and not taken back.
    private var outstanding = 0
    /// The total counters of the entries added with `countingTotals` and not taken back (zeros left out).
    private var totals: [LiveCounterKey: Int] = [:]

    public init() {}

    /// True when nothing is pending.
    public var isEmpty: Bool { outstanding == 0 }

    /// Counts the decision, display and interact entries of `entries` (other types count nowhere), for their
    /// profile keys and, with `countingTotals`, in the totals.
    public mutating func add(_ entries: some Collection<EventLogEntry>, countingTotals: Bool = true) {
        let counted = entries.filter(PendingChunk.counts)
        guard !counted.isEmpty else { return }
        outstanding += counted.count
        if countingTotals {
            for entry in counted { Self.changeTotals(&totals, entry, by: 1) }
        }
        slices.append(Slice(chunk: PendingChunk(counted, countingTotals: countingTotals), start: 0))
        while slices.count >= 2 && slices[slices.count - 2].remaining <= 2 * slices[slices.count - 1].remaining {
            let newer = slices.removeLast()
            let older = slices.removeLast()
            slices.append(
                Slice(
                    chunk: PendingChunk(older.chunk, from: older.start, then: newer.chunk, from: newer.start), start: 0)
            )
        }
    }

    /// Counts one entry (see ``add(_:countingTotals:)``).
    public mutating func add(_ entry: EventLogEntry, countingTotals: Bool = true) {
        add(CollectionOfOne(entry), countingTotals: countingTotals)
    }

    /// Takes back what ``add(_:countingTotals:)`` counted for `entries` (matched by profile key, type, time and
    /// offers). An entry that matches nothing pending is skipped.
    public mutating func remove(_ entries: some Collection<EventLogEntry>) {
        for entry in entries where PendingChunk.counts(entry) {
            let hash = LiveProfileKeyHash(entry.key).value
            guard let (slice, index) = find(entry, hash: hash) else { continue }
            outstanding -= 1
            let chunk = slices[slice].chunk
            if chunk.countsTotals[index] { Self.changeTotals(&totals, entry, by: -1) }
            if index == slices[slice].start {
                // The usual case: the follower applies them in the order the writer took them.
                slices[slice].start += 1
            } else {
                slices[slice] = Slice(chunk: chunk.removing(index, before: slices[slice].start), start: 0)
            }
            if slices[slice].remaining == 0 { slices.remove(at: slice) }
        }
        if outstanding == 0 {
            slices = []
            totals = [:]
        }
    }

    /// Takes back one entry (see ``remove(_:)``).
    public mutating func remove(_ entry: EventLogEntry) { remove(CollectionOfOne(entry)) }

    private func find(_ entry: EventLogEntry, hash: Int) -> (Int, Int)? {
        for (number, slice) in slices.enumerated() {
            let chunk = slice.chunk
            for index in slice.start..<chunk.entries.count
            where chunk.keyHashes[index] == hash && PendingChunk.same(chunk.entries[index], entry) {
                return (number, index)
            }
        }
        return nil
    }

    private static func changeTotals(_ totals: inout [LiveCounterKey: Int], _ entry: EventLogEntry, by delta: Int) {
        PendingChunk.forEachCounter(of: entry) { counter in
            let value = totals[counter, default: 0] + delta
            totals[counter] = value == 0 ? nil : value
        }
    }

    /// False when nothing is pending for the profile key with this hash (``LiveProfileKeyHash``); may be true for
    /// a key with nothing pending (Bloom filters, and a chunk's filter keeps the keys of entries taken back).
    func mayContain(hash: Int) -> Bool { slices.contains { $0.chunk.filter.mayContain(hash) } }

    /// Pending total counts: only those of entries added with `countingTotals`.
    func totalCount(_ counter: LiveCounterKey) -> Int { totals[counter] ?? 0 }

    /// The key's pending counters; nil when nothing is pending for it. `hash` is the key's ``LiveProfileKeyHash``
    /// value.
    func counters(for key: EventLogProfileKey, hash: Int) -> [LiveCounterKey: Int]? {
        var counters: [LiveCounterKey: Int] = [:]
        var found = false
        for slice in slices where slice.chunk.filter.mayContain(hash) {
            let chunk = slice.chunk
            for index in slice.start..<chunk.entries.count
            where chunk.keyHashes[index] == hash && chunk.entries[index].key == key {
                found = true
                PendingChunk.forEachCounter(of: chunk.entries[index]) { counters[$0, default: 0] += 1 }
            }
        }
        return found ? counters : nil
    }
}

/// Pending entries, with their profile keys' hashes and a filter of them. Immutable, so that every published
/// ``PendingCounts`` shares it.
final class PendingChunk: Sendable {
    let entries: [EventLogEntry]
    /// Each entry's ``LiveProfileKeyHash`` value.
    let keyHashes: [Int]
    /// Whether each entry counts in the totals.
    let countsTotals: [Bool]
    let filter: KeyHashFilter

    static func counts(_ entry: EventLogEntry) -> Bool {
        entry.type == .decision || entry.type == .display || entry.type == .interact
    }

    /// The same event as the overlay counts it: profile key, type, time and offers (a written entry also carries
    /// the writer's id and batch number, which the pending one did not have yet).
    static func same(_ lhs: EventLogEntry, _ rhs: EventLogEntry) -> Bool {
        lhs.timeMs == rhs.timeMs && lhs.type == rhs.type && lhs.key == rhs.key && lhs.offerIDs == rhs.offerIDs
    }

    /// Calls `body` with each counter `entry` adds one to: each distinct offer, in every period.
    static func forEachCounter(of entry: EventLogEntry, _ body: (LiveCounterKey) -> Void) {
        let event = LiveOverlay.cappingEvent(entry.type)
        let offers = entry.offerIDs
        for index in offers.indices where !offers[..<index].contains(offers[index]) {
            for period in CappingPeriod.allCases {
                body(
                    LiveCounterKey(
                        offer: offers[index], event: event, period: period,
                        bucket: CalendarBuckets.bucket(period, timeMs: entry.timeMs)))
            }
        }
    }

    convenience init(_ entries: [EventLogEntry], countingTotals: Bool) {
        self.init(
            entries: entries, keyHashes: entries.map { LiveProfileKeyHash($0.key).value },
            countsTotals: Array(repeating: countingTotals, count: entries.count))
    }

    /// `older`'s entries from `olderStart` on, then `newer`'s from `newerStart` on.
    convenience init(_ older: PendingChunk, from olderStart: Int, then newer: PendingChunk, from newerStart: Int) {
        self.init(
            entries: Array(older.entries[olderStart...] + newer.entries[newerStart...]),
            keyHashes: Array(older.keyHashes[olderStart...] + newer.keyHashes[newerStart...]),
            countsTotals: Array(older.countsTotals[olderStart...] + newer.countsTotals[newerStart...]))
    }

    private init(entries: [EventLogEntry], keyHashes: [Int], countsTotals: [Bool]) {
        self.entries = entries
        self.keyHashes = keyHashes
        self.countsTotals = countsTotals
        filter = KeyHashFilter(keyHashes)
    }

    /// Its entries from `start` on without the one at `index`.
    func removing(_ index: Int, before start: Int) -> PendingChunk {
        var kept = Array(start..<entries.count)
        kept.removeAll { $0 == index }
        return PendingChunk(
            entries: kept.map { entries[$0] }, keyHashes: kept.map { keyHashes[$0] },
            countsTotals: kept.map { countsTotals[$0] })
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
