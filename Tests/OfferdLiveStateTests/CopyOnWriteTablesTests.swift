import OfferdEventLog
import Testing

@testable import OfferdLiveState

/// The overlay's two copy-on-write tables against a plain `Dictionary` doing the same, and copies taken along the
/// way (what a publication hands to readers) never changing afterwards.
@Suite("Copy-on-write tables of the overlay")
struct CopyOnWriteTablesTests {
    static let retention: Int64 = 100

    /// Random ids, some applied again (within the retention: duplicates; after it: recorded anew), with expiry now
    /// and then; every copy taken keeps answering as the model did when it was taken.
    @Test func eventIDTableAnswersAsADictionaryAndCopiesStayAsTheyWere() {
        var random = SplitMix64(state: 9)
        var table = EventIDTable()
        var model: [String: Int64] = [:]
        var copies: [(EventIDTable, [String: Int64])] = []
        var clock: Int64 = 0
        for step in 0..<3000 {
            clock += Int64.random(in: 0...2, using: &random)
            let id = "e\(Int.random(in: 0..<600, using: &random))"
            let expectedDuplicate = model[id].map { clock - $0 <= Self.retention } ?? false
            let duplicate = table.insert(id, time: clock, unlessWithin: Self.retention)
            #expect(duplicate == expectedDuplicate, "step \(step), \(id)")
            if !expectedDuplicate { model[id] = clock }
            if step % 97 == 0 { copies.append((table, model)) }
            if step % 1000 == 999 {
                let now = clock
                table.keep { now - $0 <= Self.retention }
                model = model.filter { now - $0.value <= Self.retention }
            }
        }
        #expect(table.all == model)
        for id in (0..<600).map({ "e\($0)" }) { #expect(table[id] == model[id]) }
        for (copy, expected) in copies {
            #expect(copy.all == expected)
            for id in ["e0", "e1", "e599", "e300", "never"] { #expect(copy[id] == expected[id]) }
        }
        #expect(EventIDTable().isEmpty)
        var emptied = table
        emptied.keep { _ in false }
        #expect(emptied.isEmpty)
        #expect(emptied == EventIDTable())
    }

    /// Many ids in one table stay in few parts: a new id copies at most the newest part and the part list.
    @Test func aTableOfManyIdsHoldsFewParts() {
        var table = EventIDTable()
        for index in 0..<10_000 { _ = table.insert("id\(index)", time: Int64(index), unlessWithin: 1) }
        #expect(table.partCount <= 1 + 10)
        #expect(table.all.count == 10_000)
        #expect(table["id0"] == 0)
        #expect(table["id9999"] == 9999)
    }

    @Test func shardedDictionaryAnswersAsADictionaryAndCopiesStayAsTheyWere() {
        var random = SplitMix64(state: 21)
        var table = ShardedDictionary<EventLogProfileKey, Int>()
        var model: [EventLogProfileKey: Int] = [:]
        var copies: [(ShardedDictionary<EventLogProfileKey, Int>, [EventLogProfileKey: Int])] = []
        func key() -> EventLogProfileKey {
            EventLogProfileKey(namespace: "ECID", id: "p\(Int.random(in: 0..<5000, using: &random))")
        }
        for step in 0..<20_000 {
            let chosen = key()
            switch Int.random(in: 0..<10, using: &random) {
            case 0:
                table[chosen] = nil
                model[chosen] = nil
            case 1:
                table[chosen] = step
                model[chosen] = step
            default:
                let old = table.modify(chosen, default: 0) { value -> Int in
                    defer { value += 1 }
                    return value
                }
                #expect(old == model[chosen] ?? 0)
                model[chosen, default: 0] += 1
            }
            if step % 1999 == 0 { copies.append((table, model)) }
            if step == 15_000 {
                table.compact { _, value in value % 3 == 0 ? nil : value }
                model = model.filter { $0.value % 3 != 0 }
            }
            #expect(table.count == model.count)
        }
        func contents(_ table: ShardedDictionary<EventLogProfileKey, Int>) -> [EventLogProfileKey: Int] {
            var result: [EventLogProfileKey: Int] = [:]
            func add(_ key: EventLogProfileKey, _ value: Int) { result[key] = value }
            table.forEach(add)
            return result
        }
        #expect(contents(table) == model)
        #expect(table.sum { $0 } == model.values.reduce(0, +))
        for (copy, expected) in copies {
            #expect(contents(copy) == expected)
            #expect(copy.count == expected.count)
            for (key, value) in expected.prefix(50) { #expect(copy[key] == value) }
        }
        var emptied = table
        emptied.compact { _, _ in nil }
        #expect(emptied.count == 0)
        #expect(emptied[model.first!.key] == nil)
    }
}
