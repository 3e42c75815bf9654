/// A dictionary cut into a fixed number of shards, each an ordinary copy-on-write `Dictionary`.
///
/// Why: the overlay is published as an immutable value after every applied batch, and its writer then goes on
/// changing its own copy. With one dictionary that first change after a publish copies every key; with shards
/// it copies the outer array (a reference per shard) and the shards the batch touches: a batch of k keys costs
/// about `min(k, shardCount) / shardCount` of the table. Small batches (the steady state) stay cheap; a large
/// batch still copies most of the table, which is why the follower does not publish during its replay. A
/// seqlock table or a persistent map would make every publish O(batch); not needed at today's sizes.
struct ShardedDictionary<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    static var shardCount: Int { 1024 }

    private var shards: [[Key: Value]] = Array(repeating: [:], count: shardCount)
    /// Keys in all shards.
    private(set) var count = 0

    private static func shard(of key: Key) -> Int { Int(UInt(bitPattern: key.hashValue) % UInt(shardCount)) }

    subscript(key: Key) -> Value? {
        get { shards[Self.shard(of: key)][key] }
        set {
            let shard = Self.shard(of: key)
            if let newValue {
                if shards[shard].updateValue(newValue, forKey: key) == nil { count += 1 }
            } else if shards[shard].removeValue(forKey: key) != nil {
                count -= 1
            }
        }
    }

    /// Changes the value of `key` in place (no copy of the value when the shard is uniquely held), inserting
    /// `defaultValue` first when the key is absent.
    mutating func modify<Result>(
        _ key: Key, default defaultValue: @autoclosure () -> Value, _ body: (inout Value) -> Result
    ) -> Result {
        let shard = Self.shard(of: key)
        if shards[shard][key] == nil { count += 1 }
        return body(&shards[shard][key, default: defaultValue()])
    }

    /// Keeps the entries for which `keep` returns a value (possibly changed) and drops the others.
    mutating func compact(_ keep: (Key, Value) -> Value?) {
        var newCount = 0
        for shard in shards.indices {
            var kept: [Key: Value] = [:]
            for (key, value) in shards[shard] {
                if let value = keep(key, value) { kept[key] = value }
            }
            newCount += kept.count
            shards[shard] = kept
        }
        count = newCount
    }

    /// Every entry, in no particular order.
    func forEach(_ body: (Key, Value) -> Void) {
        for shard in shards { for (key, value) in shard { body(key, value) } }
    }

}
