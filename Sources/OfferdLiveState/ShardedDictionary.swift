/// A dictionary cut into a fixed number of shards, each an ordinary copy-on-write `Dictionary`.
///
/// Why: the overlay is published as an immutable value after every applied batch, and its writer then goes on
/// changing its own copy. With one dictionary that first change after a publish copies every key; with shards
/// it copies the outer array (a reference per shard) and the shards the batch touches: a batch of k keys costs
/// about `min(k, shardCount) / shardCount` of the table. Small batches (the steady state) stay cheap; a large
/// batch still copies most of the table, which is why the follower does not publish during its replay. A
/// seqlock table or a persistent map would make every publish O(batch); not needed at today's sizes.
struct ShardedDictionary<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    static var shardBits: Int { 10 }
    static var shardCount: Int { 1 << shardBits }

    /// A key with its hash, computed once: it picks the shard and is all the shard's table hashes (a profile key
    /// is two strings; hashing them twice per lookup was a measurable part of the follower's time).
    struct HashedKey: Hashable, Sendable {
        let key: Key
        let hash: Int

        init(_ key: Key) {
            self.key = key
            hash = key.hashValue
        }

        static func == (lhs: Self, rhs: Self) -> Bool { lhs.hash == rhs.hash && lhs.key == rhs.key }
        func hash(into hasher: inout Hasher) { hasher.combine(hash) }
        /// The stored hash is already a seeded SipHash of the key: the table uses it as it is (mixed with the
        /// table's own seed) instead of hashing it once more, the one thing `Hasher` cannot skip.
        func _rawHashValue(seed: Int) -> Int { hash ^ seed }
        /// From the top bits: a shard's table picks buckets by the low bits, which then still differ.
        var shard: Int { Int(UInt(bitPattern: hash) >> UInt(Int.bitWidth - ShardedDictionary.shardBits)) }
    }

    private var shards: [[HashedKey: Value]] = Array(repeating: [:], count: shardCount)
    /// Keys in all shards.
    private(set) var count = 0

    subscript(key: Key) -> Value? {
        get {
            let hashed = HashedKey(key)
            return shards[hashed.shard][hashed]
        }
        set {
            let hashed = HashedKey(key)
            if let newValue {
                if shards[hashed.shard].updateValue(newValue, forKey: hashed) == nil { count += 1 }
            } else if shards[hashed.shard].removeValue(forKey: hashed) != nil {
                count -= 1
            }
        }
    }

    /// Changes the value of `key` in place (no copy of the value when the shard is uniquely held), inserting
    /// `defaultValue` first when the key is absent.
    mutating func modify<Result>(
        _ key: Key, default defaultValue: @autoclosure () -> Value, _ body: (inout Value) -> Result
    ) -> Result {
        let hashed = HashedKey(key)
        let shard = hashed.shard
        let countBefore = shards[shard].count
        let result = body(&shards[shard][hashed, default: defaultValue()])
        count += shards[shard].count - countBefore
        return result
    }

    /// Keeps the entries for which `keep` returns a value (possibly changed) and drops the others.
    mutating func compact(_ keep: (Key, Value) -> Value?) {
        var newCount = 0
        for shard in shards.indices {
            var kept: [HashedKey: Value] = [:]
            for (hashed, value) in shards[shard] {
                if let value = keep(hashed.key, value) { kept[hashed] = value }
            }
            newCount += kept.count
            shards[shard] = kept
        }
        count = newCount
    }

    /// The sum of `measure` over every value.
    func sum(_ measure: (Value) -> Int) -> Int {
        var total = 0
        for shard in shards { for value in shard.values { total += measure(value) } }
        return total
    }

    /// Every entry, in no particular order.
    func forEach(_ body: (Key, Value) -> Void) {
        for shard in shards { for (hashed, value) in shard { body(hashed.key, value) } }
    }

}
