import OfferdCore
import OfferdEventLog
import OfferdSnapshot
import PropertyBased
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
    /// The filter a Decide asks before it builds a profile key: every key a table holds passes it, in the table
    /// and in every copy taken along the way, built split or loaded then split, through inserts, removals, in-place
    /// changes and compactions; most keys it does not hold do not.
    @Test func everyKeyHeldPassesTheFilterAndMostOthersDoNot() {
        var random = SplitMix64(state: 45)
        var split = ShardedDictionary<EventLogProfileKey, Int>()
        var loaded = ShardedDictionary<EventLogProfileKey, Int>(loading: true)
        var model: [EventLogProfileKey: Int] = [:]
        var copies: [(ShardedDictionary<EventLogProfileKey, Int>, [EventLogProfileKey])] = []
        func passes(_ table: ShardedDictionary<EventLogProfileKey, Int>, _ key: EventLogProfileKey) -> Bool {
            table.mayContain(hash: LiveProfileKeyHash(key).value)
        }
        #expect(!passes(split, EventLogProfileKey(namespace: "ecid", id: "p0")))
        #expect(!passes(loaded, EventLogProfileKey(namespace: "ecid", id: "p0")))
        for step in 0..<30_000 {
            let chosen = EventLogProfileKey(namespace: "ECID", id: "p\(Int.random(in: 0..<20_000, using: &random))")
            switch Int.random(in: 0..<10, using: &random) {
            case 0:
                split[chosen] = nil
                loaded[chosen] = nil
                model[chosen] = nil
            case 1:
                split[chosen] = step
                loaded[chosen] = step
                model[chosen] = step
            default:
                split.modify(chosen, default: 0) { $0 += 1 }
                loaded.modify(chosen, default: 0) { $0 += 1 }
                model[chosen, default: 0] += 1
            }
            if step % 4999 == 0 { copies.append((split, Array(model.keys))) }
            if step == 20_000 {
                split.compact { _, value in value % 2 == 0 ? nil : value }
                loaded.compact { _, value in value % 2 == 0 ? nil : value }
                model = model.filter { $0.value % 2 != 0 }
            }
            if step == 25_000 { loaded.finishLoading() }
            if step > 25_000 && step % 997 == 0 { copies.append((loaded, Array(model.keys))) }
        }
        copies += [(split, Array(model.keys)), (loaded, Array(model.keys))]
        for (copy, keys) in copies {
            #expect(!keys.isEmpty)
            #expect(keys.filter { !passes(copy, $0) }.isEmpty)
        }
        // About 1 % expected (two bits a key, 16 to 32 bits of filter a key).
        let absent = (0..<10_000).map { EventLogProfileKey(namespace: "ECID", id: "q\($0)") }
        #expect(absent.filter { passes(split, $0) }.count < 500)
        #expect(absent.filter { passes(loaded, $0) }.count < 500)
        split.compact { _, _ in nil }
        #expect(!passes(split, model.first!.key))
    }

    /// A Decide hashes the identity's bytes as the request or the snapshot holds them; the overlay hashes the key
    /// it stored: both must agree for every spelling of the namespace, and only for the same key.
    @Test func aKeyHashesAlikeFromItsStringsAndFromTheBytesOfEveryIdentityNamingIt() {
        func hash(_ namespace: String, _ id: String) -> LiveProfileKeyHash {
            Identity(namespace: namespace, id: id).withUTF8 { LiveProfileKeyHash(namespace: $0, id: $1) }
        }
        let key = EventLogProfileKey(namespace: "ECID", id: "Ana@Example.com-0123456789")
        for namespace in ["ECID", "ecid", "eCiD"] {
            #expect(hash(namespace, "Ana@Example.com-0123456789") == LiveProfileKeyHash(key))
        }
        // Only ASCII letters fold, as in the key.
        #expect(hash("CRMÏD", "x") == LiveProfileKeyHash(EventLogProfileKey(namespace: "crmÏd", id: "x")))
        #expect(hash("CRMÏD", "x") != LiveProfileKeyHash(EventLogProfileKey(namespace: "crmïd", id: "x")))
        // The id is taken as given, and the two parts do not run together.
        #expect(hash("ECID", "ana@example.com-0123456789") != LiveProfileKeyHash(key))
        #expect(hash("ab", "c") != hash("a", "bc"))
    }

    /// What the server asks before it builds a profile key: every key the overlay holds anything for (counters,
    /// consents, event ids, folded state) says it may have state, and any pending event makes every key say so.
    @Test func anOverlayMayHaveStateForEveryKeyItHoldsAndForEveryKeyWhilePending() {
        var log = LogBuilder()
        var keys: [EventLogProfileKey] = []
        for number in 0..<600 {
            let key = EventLogProfileKey(namespace: "ECID", id: "k\(number)")
            keys.append(key)
            switch number % 3 {
            case 0: log.add(key, .display, offers: ["o\(number % 7)"], eventID: "d\(number)")
            case 1: log.add(key, .consent, eventID: "c\(number)", consents: ["personalize.content": "n"])
            default: log.add(key, .dismiss, offers: ["o1"], eventID: "x\(number)")
            }
        }
        var folded = FoldedState()
        let foldedKey = EventLogProfileKey(namespace: "ecid", id: "folded")
        folded.profiles[FoldedKey(namespace: "ecid", id: "folded")] = FoldedProfile(
            counts: ["o1": FoldedCounts(decision: 2)], consents: [:])
        for replaying in [false, true] {
            var overlay = LiveOverlay(folded: folded, watermark: nil, replaying: replaying)
            overlay.apply(log.records)
            overlay.finishReplay()
            let published = overlay.published()
            for key in keys + [foldedKey] {
                #expect(published.mayHaveState(LiveProfileKeyHash(key)), "\(key)")
                #expect(published.state(for: key) != nil, "\(key)")
            }
            let strangers = (0..<1_000).map { LiveProfileKeyHash(EventLogProfileKey(namespace: "ECID", id: "s\($0)")) }
            #expect(strangers.filter { published.mayHaveState($0) }.count < 100)
            var pending = PendingCounts()
            pending.add(
                EventLogEntry(
                    key: keys[0], type: .decision, timeMs: noon, offerIDs: ["o1"], serverID: "me", batchNumber: 0))
            let withPending = published.with(pending: pending)
            #expect(withPending.mayHaveState(LiveProfileKeyHash(keys[0])))
            // A key with something pending passes; the others as often as without it (the pending chunks'
            // filters claim about 1 in 250).
            #expect(strangers.filter { withPending.mayHaveState($0) }.count < 110)
        }
    }

    static func contents(_ table: ShardedDictionary<EventLogProfileKey, Int>) -> [EventLogProfileKey: Int] {
        var result: [EventLogProfileKey: Int] = [:]
        func add(_ key: EventLogProfileKey, _ value: Int) { result[key] = value }
        table.forEach(add)
        return result
    }

    /// The start-up replay's table: one built in loading mode and then split answers as one built split from the
    /// start, through the same changes (inserts, removals, in-place changes, compaction) before and after the
    /// split; copies taken before the split or after it keep their contents while the table goes on changing.
    @Test func aTableLoadedThenSplitAnswersAsOneSplitFromTheStart() {
        var random = SplitMix64(state: 33)
        var loaded = ShardedDictionary<EventLogProfileKey, Int>(loading: true)
        var split = ShardedDictionary<EventLogProfileKey, Int>()
        var model: [EventLogProfileKey: Int] = [:]
        var copies: [(ShardedDictionary<EventLogProfileKey, Int>, [EventLogProfileKey: Int])] = []
        #expect(loaded.isLoading)
        #expect(!split.isLoading)
        func change(_ step: Int) {
            let chosen = EventLogProfileKey(namespace: "ECID", id: "p\(Int.random(in: 0..<5000, using: &random))")
            switch Int.random(in: 0..<10, using: &random) {
            case 0:
                loaded[chosen] = nil
                split[chosen] = nil
                model[chosen] = nil
            case 1:
                loaded[chosen] = step
                split[chosen] = step
                model[chosen] = step
            default:
                func increment(_ value: inout Int) -> Int {
                    defer { value += 1 }
                    return value
                }
                #expect(loaded.modify(chosen, default: 0, increment) == model[chosen] ?? 0)
                #expect(split.modify(chosen, default: 0, increment) == model[chosen] ?? 0)
                model[chosen, default: 0] += 1
            }
            if step % 5000 == 4999 {
                let modulus = step / 5000 + 2
                loaded.compact { _, value in value % modulus == 0 ? nil : value }
                split.compact { _, value in value % modulus == 0 ? nil : value }
                model = model.filter { $0.value % modulus != 0 }
            }
            #expect(loaded.count == model.count)
            #expect(split.count == model.count)
        }
        for step in 0..<12_000 {
            change(step)
            if step % 1999 == 0 { copies.append((loaded, model)) }
        }
        #expect(loaded.isLoading)
        #expect(Self.contents(loaded) == model)
        loaded.finishLoading()
        #expect(!loaded.isLoading)
        #expect(Self.contents(loaded) == model)
        #expect(Self.contents(split) == model)
        #expect(loaded.count == model.count)
        for step in 12_000..<24_000 {
            change(step)
            if step % 997 == 0 { copies.append((loaded, model)) }
        }
        split.finishLoading()
        #expect(!split.isLoading, "splitting a split table changes nothing")
        #expect(Self.contents(loaded) == model)
        #expect(Self.contents(split) == model)
        #expect(loaded.sum { $0 } == model.values.reduce(0, +))
        for key in (0..<5000).map({ EventLogProfileKey(namespace: "ECID", id: "p\($0)") }) {
            #expect(loaded[key] == model[key])
        }
        for (copy, expected) in copies {
            #expect(Self.contents(copy) == expected)
            #expect(copy.count == expected.count)
            for (key, value) in expected.prefix(50) { #expect(copy[key] == value) }
        }
    }

    /// The follower's start-up replay: an overlay made with `replaying: true` on a folded snapshot, expired now
    /// and then, and split by `finishReplay()`, answers as one applied and published read by read; so it does as
    /// both go on; and what it publishes after the split keeps its answers while it goes on.
    @Test func anOverlayReplayedThenSplitAnswersAsOneAppliedIncrementally() async {
        typealias Props = LiveOverlayPropertyTests
        await propertyCheck(count: 200, input: Gen.int(in: 0...Int(Int32.max))) { seed in
            var random = SplitMix64(state: UInt64(seed))
            let records = Props.randomLog(&random)
            let foldedCut = Int.random(in: 0...records.count, using: &random)
            let replayEnd = Int.random(in: 0...records.count, using: &random)
            let folded: FoldedState
            do {
                folded = try FoldingTests.fold(records[..<foldedCut])
            } catch {
                Issue.record("fold failed: \(error)")
                return
            }
            let watermark = FoldingTests.watermark(folded)
            var replayed = LiveOverlay(folded: folded, watermark: watermark, replaying: true)
            var incremental = LiveOverlay(folded: folded, watermark: watermark)
            #expect(replayed.isReplaying)
            #expect(!incremental.isReplaying)
            var start = 0
            func applyToBoth(upTo end: Int, publishing: inout [(LiveOverlaySnapshot, [Int])]) {
                while start < end {
                    let next = min(end, start + Int.random(in: 1...7, using: &random))
                    replayed.apply(records[start..<next])
                    incremental.apply(records[start..<next])
                    if Int.random(in: 0..<4, using: &random) == 0 {
                        replayed.expire()
                        incremental.expire()
                    }
                    if !replayed.isReplaying {
                        let view = replayed.published()
                        publishing.append((view, Props.answers(view, now: noon)))
                    }
                    _ = incremental.published()
                    start = next
                }
            }
            var published: [(LiveOverlaySnapshot, [Int])] = []
            applyToBoth(upTo: replayEnd, publishing: &published)
            #expect(replayed.isReplaying)
            replayed.finishReplay()
            #expect(!replayed.isReplaying)
            func expectSame(_ note: String) {
                FoldingTests.expectSameAnswers(replayed, incremental, "\(note), seed \(seed)")
                #expect(replayed.keyCount == incremental.keyCount, "\(note), seed \(seed)")
                #expect(replayed.counterCount == incremental.counterCount, "\(note), seed \(seed)")
                for key in Props.keys {
                    #expect(
                        replayed.published().state(for: key) == incremental.published().state(for: key),
                        "\(note), seed \(seed)")
                }
            }
            expectSame("at the replay's end")
            let atSplit = replayed.published()
            published.append((atSplit, Props.answers(atSplit, now: noon)))
            applyToBoth(upTo: records.count, publishing: &published)
            expectSame("after following")
            for (view, answers) in published { #expect(Props.answers(view, now: noon) == answers, "seed \(seed)") }
        }
    }
}
