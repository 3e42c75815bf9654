import OfferdEventLog

/// A dictionary cut into a fixed number of small tables (leaves), each an ordinary copy-on-write `Dictionary`,
/// held in two levels: 1,024 shards of 8 leaves each.
///
/// Why: the overlay is published as an immutable value after every applied batch, and its writer then goes on
/// changing its own copy. With one dictionary that first change after a publish copies every key. Here the first
/// change after a publish copies the top array (a reference per shard), and per key changed its shard's array of
/// 8 leaves and its leaf: about `keys / 8,192` entries. (With one level of 1,024 shards a batch of 100 keys
/// copied 100 shards of `keys / 1,024` entries each, growing with the keys; benchmarks/README.md.) A large batch
/// still copies much of the table, which is why the follower does not publish during its replay. A shard is
/// created on its first key, so an empty table is the top array alone.
///
/// A table made with `loading: true` holds its keys in one plain dictionary instead, until ``finishLoading()``
/// splits them into the two levels once: for a table that nobody reads while it is filled (the follower's start-up
/// replay), which then skips, per key changed, the load of its shard's array of leaves (a cache miss in a large
/// table, measured: benchmarks/README.md). Such a table answers exactly as a split one, and its copies stay as
/// they were, but the first change after a copy copies every key.
///
/// Each leaf keeps a Bloom filter of its keys' hashes (``Leaf``), and a key's hash is one its reader can compute
/// from bytes (``ShardedKey``): ``mayContain(hash:)`` answers most misses from the hash alone (a Decide for a
/// profile with nothing live, without building the profile key).
struct ShardedDictionary<Key: ShardedKey, Value: Sendable>: Sendable {
    static var shardBits: Int { 10 }
    static var shardCount: Int { 1 << shardBits }
    static var leafBits: Int { 3 }
    static var leafCount: Int { 1 << leafBits }

    /// A key with its hash, computed once: it picks the shard and is all the shard's table hashes (a profile key
    /// is two strings; hashing them twice per lookup was a measurable part of the follower's time).
    struct HashedKey: Hashable, Sendable {
        let key: Key
        let hash: Int

        init(_ key: Key) {
            self.key = key
            hash = key.shardedHash
        }

        /// `key` with its ``ShardedKey/shardedHash`` computed by the caller.
        init(_ key: Key, hash: Int) {
            self.key = key
            self.hash = hash
        }

        static func == (lhs: Self, rhs: Self) -> Bool { lhs.hash == rhs.hash && lhs.key == rhs.key }
        func hash(into hasher: inout Hasher) { hasher.combine(hash) }
        /// The stored hash is already a seeded SipHash of the key: the table uses it as it is (mixed with the
        /// table's own seed) instead of hashing it once more, the one thing `Hasher` cannot skip.
        func _rawHashValue(seed: Int) -> Int { hash ^ seed }
        var shard: Int { ShardedDictionary.shard(of: hash) }
        var leaf: Int { ShardedDictionary.leaf(of: hash) }
    }

    /// From the top bits: a leaf's table picks buckets by the low bits, which then still differ.
    static func shard(of hash: Int) -> Int { Int(UInt(bitPattern: hash) >> UInt(Int.bitWidth - shardBits)) }
    static func leaf(of hash: Int) -> Int {
        Int(UInt(bitPattern: hash) >> UInt(Int.bitWidth - shardBits - leafBits)) & (leafCount - 1)
    }

    /// One leaf: its table, and a Bloom filter of its keys' hashes (two bits a key, 16 to 32 bits of filter a key
    /// after its last rebuild: about 1 miss in 70 to 1 in 270 passes it). A removed key's bits stay set until the
    /// filter is rebuilt (when the table outgrows it, and by ``compact(_:)``): the filter may claim a key that is
    /// absent, never the reverse.
    struct Leaf: Sendable {
        var table: [HashedKey: Value] = [:]
        var filter: [UInt64] = []

        /// Records a key just added to ``table``.
        mutating func noteInserted(_ hash: Int) {
            if table.count * 16 > filter.count * 64 {
                rebuildFilter()
            } else {
                Self.setBits(of: hash, in: &filter)
            }
        }

        mutating func rebuildFilter() {
            guard !table.isEmpty else {
                filter = []
                return
            }
            var words = 1
            while words * 64 < table.count * 32 { words *= 2 }
            var rebuilt = [UInt64](repeating: 0, count: words)
            for hashed in table.keys { Self.setBits(of: hashed.hash, in: &rebuilt) }
            filter = rebuilt
        }

        /// False when no key of this leaf has `hash`.
        @inline(__always)
        func mayContain(_ hash: Int) -> Bool {
            guard !filter.isEmpty else { return false }
            let (first, second) = Self.bits(of: hash, count: filter.count * 64)
            return filter[first >> 6] & (1 << (first & 63)) != 0 && filter[second >> 6] & (1 << (second & 63)) != 0
        }

        /// Two bit positions below `count` (a power of two), from bits of the hash that the shard and the leaf
        /// (its top bits) do not use.
        @inline(__always)
        private static func bits(of hash: Int, count: Int) -> (Int, Int) {
            let bits = UInt(bitPattern: hash)
            let mask = UInt(count - 1)
            return (Int(bits & mask), Int((bits >> 24) & mask))
        }

        private static func setBits(of hash: Int, in filter: inout [UInt64]) {
            let (first, second) = bits(of: hash, count: filter.count * 64)
            filter[first >> 6] |= 1 << (first & 63)
            filter[second >> 6] |= 1 << (second & 63)
        }
    }

    /// Per shard its leaves; empty until the shard's first key. No shards at all while loading: ``unsplit`` holds
    /// the keys then.
    private var shards: [[Leaf]]
    /// Every key while loading (see ``init(loading:)``); empty once split.
    private var unsplit: [HashedKey: Value] = [:]
    /// Keys in all shards.
    private(set) var count = 0

    /// An empty table; with `loading`, one that holds its keys in one plain dictionary until ``finishLoading()``.
    init(loading: Bool = false) {
        shards = loading ? [] : Array(repeating: [], count: Self.shardCount)
    }

    /// Whether the keys are still in one plain dictionary (``finishLoading()`` not called yet).
    var isLoading: Bool { shards.isEmpty }

    /// Splits a loading table into the two levels (nothing when it is split already). Every copy taken after it
    /// shares the leaves, as in a table split from the start.
    mutating func finishLoading() {
        guard isLoading else { return }
        // Each leaf's size first, so that every leaf is allocated once at its final capacity.
        var sizes = Array(repeating: 0, count: Self.shardCount * Self.leafCount)
        for hashed in unsplit.keys { sizes[hashed.shard << Self.leafBits | hashed.leaf] += 1 }
        var split: [[Leaf]] = Array(repeating: [], count: Self.shardCount)
        for shard in split.indices {
            let first = shard << Self.leafBits
            guard sizes[first..<first + Self.leafCount].contains(where: { $0 > 0 }) else { continue }
            split[shard] = (first..<first + Self.leafCount).map {
                Leaf(table: [HashedKey: Value](minimumCapacity: sizes[$0]))
            }
        }
        for (hashed, value) in unsplit { split[hashed.shard][hashed.leaf].table[hashed] = value }
        for shard in split.indices where !split[shard].isEmpty {
            for leaf in split[shard].indices { split[shard][leaf].rebuildFilter() }
        }
        unsplit = [:]
        shards = split
    }

    subscript(key: Key) -> Value? {
        // Inlined: RecordEvents' duplicate check and a Decide read through it, and out of line it ran unspecialized
        // (generic code; measured).
        @inline(__always) get { self[HashedKey(key)] }
        set {
            let hashed = HashedKey(key)
            if isLoading {
                if let newValue {
                    if unsplit.updateValue(newValue, forKey: hashed) == nil { count += 1 }
                } else if unsplit.removeValue(forKey: hashed) != nil {
                    count -= 1
                }
                return
            }
            let shard = hashed.shard
            if let newValue {
                if shards[shard].isEmpty { shards[shard] = Array(repeating: Leaf(), count: Self.leafCount) }
                if shards[shard][hashed.leaf].table.updateValue(newValue, forKey: hashed) == nil {
                    shards[shard][hashed.leaf].noteInserted(hashed.hash)
                    count += 1
                }
            } else if !shards[shard].isEmpty, shards[shard][hashed.leaf].table.removeValue(forKey: hashed) != nil {
                count -= 1
            }
        }
    }

    /// The value of `key` whose ``ShardedKey/shardedHash`` is `hash` (a Decide has it already: no second hash).
    @inline(__always)
    subscript(key: Key, hash hash: Int) -> Value? { self[HashedKey(key, hash: hash)] }

    @inline(__always)
    private subscript(hashed: HashedKey) -> Value? {
        if isLoading { return unsplit[hashed] }
        let shard = hashed.shard
        guard !shards[shard].isEmpty else { return nil }
        return shards[shard][hashed.leaf].table[hashed]
    }

    /// Changes the value of `key` in place (no copy of the value when the shard is uniquely held), inserting
    /// `defaultValue` first when the key is absent.
    mutating func modify<Result>(
        _ key: Key, default defaultValue: @autoclosure () -> Value, _ body: (inout Value) -> Result
    ) -> Result {
        let hashed = HashedKey(key)
        if isLoading {
            let countBefore = unsplit.count
            let result = body(&unsplit[hashed, default: defaultValue()])
            count += unsplit.count - countBefore
            return result
        }
        let shard = hashed.shard
        let leaf = hashed.leaf
        if shards[shard].isEmpty { shards[shard] = Array(repeating: Leaf(), count: Self.leafCount) }
        let countBefore = shards[shard][leaf].table.count
        // In place through both levels: each copies itself only when a published value still shares it.
        let result = body(&shards[shard][leaf].table[hashed, default: defaultValue()])
        if shards[shard][leaf].table.count > countBefore {
            shards[shard][leaf].noteInserted(hashed.hash)
            count += 1
        }
        return result
    }

    /// Keeps the entries for which `keep` returns a value (possibly changed) and drops the others.
    mutating func compact(_ keep: (Key, Value) -> Value?) {
        if isLoading {
            var kept: [HashedKey: Value] = [:]
            for (hashed, value) in unsplit {
                if let value = keep(hashed.key, value) { kept[hashed] = value }
            }
            unsplit = kept
            count = kept.count
            return
        }
        var newCount = 0
        for shard in shards.indices where !shards[shard].isEmpty {
            var leaves: [Leaf] = []
            leaves.reserveCapacity(Self.leafCount)
            var shardCount = 0
            for leaf in shards[shard] {
                var kept = Leaf()
                for (hashed, value) in leaf.table {
                    if let value = keep(hashed.key, value) { kept.table[hashed] = value }
                }
                kept.rebuildFilter()
                shardCount += kept.table.count
                leaves.append(kept)
            }
            newCount += shardCount
            shards[shard] = shardCount == 0 ? [] : leaves
        }
        count = newCount
    }

    /// The sum of `measure` over every value.
    func sum(_ measure: (Value) -> Int) -> Int {
        var total = 0
        for value in unsplit.values { total += measure(value) }
        for shard in shards { for leaf in shard { for value in leaf.table.values { total += measure(value) } } }
        return total
    }

    /// Every entry, in no particular order.
    func forEach(_ body: (Key, Value) -> Void) {
        for (hashed, value) in unsplit { body(hashed.key, value) }
        for shard in shards { for leaf in shard { for (hashed, value) in leaf.table { body(hashed.key, value) } } }
    }

    /// False when no key has `hash` (a key's ``ShardedKey/shardedHash``); true when one may (always while loading).
    @inline(__always)
    func mayContain(hash: Int) -> Bool {
        if isLoading { return !unsplit.isEmpty }
        let shard = Self.shard(of: hash)
        guard !shards[shard].isEmpty else { return false }
        return shards[shard][Self.leaf(of: hash)].mayContain(hash)
    }
}

/// A key of a ``ShardedDictionary``: its hash is computed once per lookup and picks the shard, the leaf and the
/// bucket.
protocol ShardedKey: Hashable, Sendable {
    /// A hash with the quality of `hashValue` (and equal for equal keys).
    var shardedHash: Int { get }
}

extension EventLogProfileKey: ShardedKey {
    /// ``LiveProfileKeyHash``: what a Decide computes from the request's or the snapshot's bytes.
    var shardedHash: Int { LiveProfileKeyHash(self).value }
}
