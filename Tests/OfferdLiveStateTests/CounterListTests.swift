import OfferdCore
import Testing

@testable import OfferdLiveState

@Suite("Counter keys and lists")
struct CounterListTests {
    /// Every field comes back as it went in, and packed keys order exactly as (offer, event, period, bucket).
    @Test func packedKeysRoundTripAndOrderAsTheirFields() {
        var random = SplitMix64(state: 14)
        var keys: [(PackedCounterKey, (UInt32, Int, Int, Int64))] = []
        let events = CappingEvent.allCases
        let periods = CappingPeriod.allCases
        for _ in 0..<2000 {
            let offer = [0, 1, 2, UInt32.max, UInt32.random(in: 0...UInt32.max, using: &random)].randomElement(
                using: &random)!
            let event = Int.random(in: 0..<events.count, using: &random)
            let period = Int.random(in: 0..<periods.count, using: &random)
            let bucket: Int64 = [
                0, -1, 1, 20_794, -(1 << 27), (1 << 27) - 1, Int64.random(in: -1_000_000...1_000_000, using: &random),
            ]
            .randomElement(using: &random)!
            let key = PackedCounterKey(offer: offer, event: events[event], period: periods[period], bucket: bucket)
            #expect(key.offer == offer)
            #expect(key.event == events[event])
            #expect(key.period == periods[period])
            #expect(key.bucket == bucket)
            keys.append((key, (offer, event, period, bucket)))
        }
        for _ in 0..<2000 {
            let (left, leftFields) = keys.randomElement(using: &random)!
            let (right, rightFields) = keys.randomElement(using: &random)!
            #expect((left < right) == (leftFields < rightFields))
            #expect((left == right) == (leftFields == rightFields))
        }
    }

    /// Buckets past the packed range share its ends; readers clamp the same way, so such events still count.
    @Test func bucketsOutsideThePackedRangeAreClamped() {
        let far = PackedCounterKey(offer: 1, event: .display, period: .day, bucket: Int64.max / 4)
        #expect(far.bucket == (1 << 27) - 1)
        #expect(far == PackedCounterKey(offer: 1, event: .display, period: .day, bucket: 1 << 40))
        #expect(PackedCounterKey(offer: 1, event: .display, period: .day, bucket: Int64.min / 4).bucket == -(1 << 27))
    }

    /// The list against a dictionary, over random adds.
    @Test func aListCountsLikeADictionary() {
        var random = SplitMix64(state: 7)
        var list = CounterList()
        var reference: [PackedCounterKey: Int] = [:]
        for _ in 0..<3000 {
            let key = PackedCounterKey(
                offer: UInt32.random(in: 0..<20, using: &random),
                event: CappingEvent.allCases.randomElement(using: &random)!,
                period: CappingPeriod.allCases.randomElement(using: &random)!,
                bucket: Int64.random(in: 20_000...20_003, using: &random))
            let amount = Int.random(in: 1...3, using: &random)
            list.add(amount, at: key)
            reference[key, default: 0] += amount
        }
        #expect(list.count == reference.count)
        for (key, count) in reference { #expect(list[key] == count) }
        #expect(list.counters.map(\.key) == list.counters.map(\.key).sorted())
        list.keep { $0.period == .lifetime }
        #expect(list.count == reference.keys.filter { $0.period == .lifetime }.count)
    }

    /// An entry naming an offer many times counts it once, in each period, for the key and the totals.
    @Test func anEntryNamingManyOffersCountsEachOnce() {
        var log = LogBuilder()
        let offers = (0..<40).map { "o\($0 % 23)" }
        log.add(ana, .decision, offers: offers.shuffled())
        var overlay = LiveOverlay()
        overlay.apply(log.records)
        let view = overlay.published()
        for number in 0..<23 {
            for period in CappingPeriod.allCases {
                #expect(view.count(ana, "o\(number)", .decision, period) == 1)
                #expect(view.count(bob, "o\(number)", .decision, period, scope: .total) == 1)
            }
        }
        #expect(view.counters(for: ana).count == 23 * 4)
        #expect(view.counterCount == (profiles: 23 * 4, totals: 23 * 4))
    }

    /// Adding 1 at many keys at once counts as adding 1 at each in turn (keys repeated, present and new).
    @Test func addingOneAtEachKeyCountsAsSingleAdds() {
        var random = SplitMix64(state: 31)
        var bulk = CounterList()
        var single = CounterList()
        for _ in 0..<500 {
            let keys = (0..<Int.random(in: 0...9, using: &random)).map { _ in
                PackedCounterKey(
                    offer: UInt32.random(in: 0..<12, using: &random), event: .decision,
                    period: CappingPeriod.allCases.randomElement(using: &random)!,
                    bucket: Int64.random(in: 20_000...20_002, using: &random))
            }
            bulk.addOne(atEach: keys)
            for key in keys { single.add(1, at: key) }
        }
        #expect(bulk.count > 50)
        #expect(bulk == single)
    }

    /// The follower's cache of offer numbers gives every id the number ``OfferNumbers`` gives it, also for ids that
    /// fall into the same slot and replace each other there.
    @Test func recentOfferNumbersAgreeWithTheTableForCollidingIDs() {
        func slot(_ offer: String) -> Int {
            var hash: UInt32 = 2_166_136_261
            for byte in offer.utf8 { hash = (hash ^ UInt32(byte)) &* 16_777_619 }
            return Int(hash) & (RecentOfferNumbers.slotCount - 1)
        }
        let first = "offer-0"
        let colliding = (1...).lazy.map { "offer-\($0)" }.filter { slot($0) == slot(first) }.prefix(2)
        let ids = [first] + colliding + ["", "other", "ω"]
        var random = SplitMix64(state: 5)
        var offers = OfferNumbers()
        var recent = RecentOfferNumbers()
        for _ in 0..<300 {
            let id = ids.randomElement(using: &random)!
            let number = recent.number(for: id, in: &offers)
            #expect(offers.names[Int(number)] == id)
            #expect(offers.existingNumber(id) == number)
        }
        #expect(offers.names.count == ids.count)
    }

    /// The cached day, week and month buckets equal ``CalendarBuckets``' for times that move forward, back, across
    /// days, weeks, months and years, and before 1970.
    @Test func cachedCalendarBucketsEqualTheComputedOnes() {
        var random = SplitMix64(state: 12)
        var cache = CalendarBucketCache()
        let day = CalendarBuckets.millisecondsPerDay
        var time: Int64 = 1_735_603_200_000 - 3 * day // 2024-12-28, before a month's and a year's end
        for _ in 0..<5_000 {
            switch Int.random(in: 0..<10, using: &random) {
            case 0: time = Int64.random(in: -4_000_000_000_000...4_000_000_000_000, using: &random)
            case 1: time -= Int64.random(in: 0...(40 * day), using: &random)
            case 2...4: time += Int64.random(in: 0...(3 * day), using: &random)
            default: time += Int64.random(in: 0...60_000, using: &random)
            }
            let buckets = cache.buckets(timeMs: time)
            #expect(buckets.day == CalendarBuckets.bucket(.day, timeMs: time))
            #expect(buckets.week == CalendarBuckets.bucket(.week, timeMs: time))
            #expect(buckets.month == CalendarBuckets.bucket(.month, timeMs: time))
        }
    }
}
