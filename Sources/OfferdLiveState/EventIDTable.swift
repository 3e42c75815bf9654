/// The event ids applied for one profile key, each with the log clock (``LiveOverlay/logClockMs``) when it was
/// (SPEC 9.4's duplicates by event id).
///
/// Why not one `Dictionary`: the overlay is published after every applied batch, so the follower's next new id for
/// a key copies that key's table (a published value still shares it). A key keeps its ids for 31 days, hundreds
/// or thousands for an active profile, and one dictionary made every new event copy all of them. Here a new id
/// goes into a small table of the newest ids (at most ``recentLimit``); when it is full it becomes an immutable
/// chunk shared by every later copy, and chunks of equal size merge (a binary counter), so a key holds
/// log2(ids / 16) chunks at most. A new id then copies at most ``recentLimit`` entries and a few references,
/// and each id is copied into a merged chunk about log2(ids / 16) times over its life.
///
/// An id is hashed once per lookup whatever the number of chunks (``HashedID`` keeps its hash), and a lookup of
/// an id the table does not hold (every new event: RecordEvents' duplicate check, then the follower) reads one
/// word of a Bloom filter and nothing else (about 1 in 10 such lookups goes on to the parts).
public struct EventIDTable: Sendable {
    /// The most ids in ``recent`` before it becomes a chunk.
    static let recentLimit = 16

    /// An event id with its hash, computed once: every table it is looked up in uses the stored hash.
    struct HashedID: Hashable, Sendable {
        let id: String
        let hash: Int

        init(_ id: String) {
            self.id = id
            hash = id.hashValue
        }

        static func == (lhs: Self, rhs: Self) -> Bool { lhs.hash == rhs.hash && lhs.id == rhs.id }
        func hash(into hasher: inout Hasher) { hasher.combine(hash) }
        /// The stored hash is already a seeded SipHash of the id: the table uses it as it is (mixed with the table's
        /// own seed) instead of hashing it again.
        func _rawHashValue(seed: Int) -> Int { hash ^ seed }
    }

    /// A full table of ids, never changed once made: copies of the table share it.
    final class Chunk: Sendable {
        let ids: [HashedID: Int64]
        init(_ ids: [HashedID: Int64]) { self.ids = ids }
    }

    /// The newest ids: the only part a new id changes.
    private var recent: [HashedID: Int64] = [:]
    /// Older ids, oldest first, each chunk at least as large as the next.
    private var chunks: [Chunk] = []
    /// A Bloom filter of every id held (one bit per id, 8 to 16 bits per id): a lookup of an id the table does not
    /// hold (a new event: RecordEvents' duplicate check, then the follower), the common case, reads one word of it
    /// and nothing else.
    private var filter: [UInt64] = []
    /// The ids added to ``filter`` since it was built (an id applied again counts again).
    private var filterLoad = 0

    public init() {}

    /// The newest part and the chunks (tests: how much a new id may copy).
    var partCount: Int { 1 + chunks.count }

    /// Whether the table holds no id.
    public var isEmpty: Bool { recent.isEmpty && chunks.isEmpty }

    /// The log clock when `id` was last applied; nil when never (or expired).
    public subscript(id: String) -> Int64? { time(of: HashedID(id)) }

    private func time(of hashed: HashedID) -> Int64? {
        guard Self.mayHold(filter, hashed) else { return nil }
        if let time = recent[hashed] { return time }
        // Newest first: an id applied again after its retention carries its newer time in a newer part.
        var index = chunks.count
        while index > 0 {
            index -= 1
            if let time = chunks[index].ids[hashed] { return time }
        }
        return nil
    }

    /// Records `id` as applied at `time` unless it was applied within `retention` before it (a duplicate, SPEC
    /// 9.4: then nothing changes). Returns whether it was a duplicate.
    mutating func insert(_ id: String, time: Int64, unlessWithin retention: Int64) -> Bool {
        let hashed = HashedID(id)
        if let seen = self.time(of: hashed), time - seen <= retention { return true }
        insert(hashed, time: time)
        return false
    }

    private mutating func insert(_ hashed: HashedID, time: Int64) {
        recent[hashed] = time
        if (filterLoad + 1) * Self.filterBitsPerID > filter.count * 64 {
            rebuildFilter(forIDs: filterLoad + 1)
        } else {
            Self.add(hashed, to: &filter)
            filterLoad += 1
        }
        guard recent.count >= Self.recentLimit else { return }
        chunks.append(Chunk(recent))
        recent = [:]
        // Merge the two newest chunks while the older is no larger: sizes then at least double from newest to
        // oldest, so there are few chunks and each id is merged a few times.
        while chunks.count >= 2, chunks[chunks.count - 2].ids.count <= chunks[chunks.count - 1].ids.count {
            let newer = chunks.removeLast()
            let older = chunks.removeLast()
            chunks.append(Chunk(older.ids.merging(newer.ids) { max($0, $1) }))
        }
    }

    static let filterBitsPerID = 8

    private static func bit(_ hashed: HashedID, words: Int) -> (word: Int, mask: UInt64) {
        // `words` is a power of two; the hash is a SipHash, its low bits as good as any.
        let bit = Int(truncatingIfNeeded: UInt(bitPattern: hashed.hash) & UInt(words * 64 - 1))
        return (bit >> 6, 1 << UInt64(bit & 63))
    }

    private static func mayHold(_ filter: [UInt64], _ hashed: HashedID) -> Bool {
        guard !filter.isEmpty else { return false }
        let (word, mask) = bit(hashed, words: filter.count)
        return filter[word] & mask != 0
    }

    private static func add(_ hashed: HashedID, to filter: inout [UInt64]) {
        let (word, mask) = bit(hashed, words: filter.count)
        filter[word] |= mask
    }

    /// A filter of the next power of two words for twice `ids` (rebuilt once per doubling), of every id held.
    private mutating func rebuildFilter(forIDs ids: Int) {
        var words = 1
        while words * 64 < 2 * ids * Self.filterBitsPerID { words *= 2 }
        filter = Array(repeating: 0, count: words)
        for chunk in chunks { for hashed in chunk.ids.keys { Self.add(hashed, to: &filter) } }
        for hashed in recent.keys { Self.add(hashed, to: &filter) }
        filterLoad = ids
    }

    /// Every id with its newest time, from every part.
    private var newest: [HashedID: Int64] {
        var result = chunks.first?.ids ?? recent
        for part in chunks.dropFirst().map(\.ids) + (chunks.isEmpty ? [] : [recent]) {
            result.merge(part) { max($0, $1) }
        }
        return result
    }

    /// Every id with its newest time.
    var all: [String: Int64] {
        Dictionary(uniqueKeysWithValues: newest.map { ($0.key.id, $0.value) })
    }

    /// Keeps the ids for which `keep` holds on their newest time, in one chunk (or in the newest part when few).
    mutating func keep(where keep: (Int64) -> Bool) {
        let kept = newest.filter { keep($0.value) }
        if kept.count < Self.recentLimit {
            (recent, chunks) = (kept, [])
        } else {
            (recent, chunks) = ([:], [Chunk(kept)])
        }
        if kept.isEmpty {
            (filter, filterLoad) = ([], 0)
        } else {
            rebuildFilter(forIDs: kept.count)
        }
    }
}

extension EventIDTable: Hashable {
    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.all == rhs.all }
    public func hash(into hasher: inout Hasher) { hasher.combine(all) }
}
