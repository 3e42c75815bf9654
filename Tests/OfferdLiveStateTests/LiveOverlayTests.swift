import OfferdCore
import OfferdEventLog
import OfferdSnapshot
import PropertyBased
import Testing

@testable import OfferdLiveState

let ana = EventLogProfileKey(namespace: "ECID", id: "ana")
let bob = EventLogProfileKey(namespace: "ECID", id: "bob")
let noon = ms("2026-12-07T12:00:00.000Z")
let noonSeconds = Double(noon) / 1000

/// Builds records with growing file positions.
struct LogBuilder {
    var next: UInt64 = 1
    var records: [EventLogRecord] = []
    var server = "s1"
    var batch: UInt64 = 1

    mutating func add(
        _ key: EventLogProfileKey, _ type: EventLogEventType, offers: [String] = [], at timeMs: Int64 = noon,
        eventID: String = "", consents: [String: String] = [:]
    ) {
        let entry = EventLogEntry(
            key: key, type: type, timeMs: timeMs, eventID: eventID, offerIDs: offers, consents: consents,
            serverID: server, batchNumber: batch)
        records.append(EventLogRecord(position: .sequence(next), entry: entry))
        next += 1
        batch += 1
    }
}

extension LiveOverlaySnapshot {
    func count(
        _ key: EventLogProfileKey, _ offer: String, _ event: CappingEvent = .decision,
        _ period: CappingPeriod = .lifetime, scope: CappingScope = .profile, now: Double = noonSeconds
    ) -> Int {
        counts(for: key).count(offer: InternedName(offer), event: event, period: period, scope: scope, now: now)
    }
}

@Suite("Live overlay")
struct LiveOverlayTests {
    @Test func countsEachOfferOncePerEventInEveryPeriod() {
        var log = LogBuilder()
        log.add(ana, .decision, offers: ["a", "b", "a"])
        log.add(ana, .display, offers: ["a"])
        log.add(ana, .interact, offers: ["a"], eventID: "e1")
        log.add(ana, .dismiss, offers: ["a"], eventID: "e2")
        log.add(bob, .decision, offers: ["a"])
        // Yesterday: counts for the lifetime, the week and the month, not today.
        log.add(ana, .decision, offers: ["a"], at: noon - CalendarBuckets.millisecondsPerDay)
        var overlay = LiveOverlay()
        #expect(overlay.apply(log.records) == (applied: 6, duplicates: 0))
        let view = overlay.published()
        #expect(view.count(ana, "a") == 2)
        #expect(view.count(ana, "a", .decision, .day) == 1)
        #expect(view.count(ana, "a", .decision, .week) == 2)
        #expect(view.count(ana, "a", .decision, .month) == 2)
        #expect(view.count(ana, "b") == 1)
        #expect(view.count(ana, "a", .display) == 1)
        #expect(view.count(ana, "a", .interact, .day) == 1)
        #expect(view.count(bob, "a") == 1)
        #expect(view.count(bob, "b") == 0)
        #expect(view.count(ana, "a", scope: .total) == 3)
        #expect(view.count(bob, "a", .decision, .day, scope: .total) == 2)
        #expect(view.count(ana, "a", .display, scope: .total) == 1)
        // A day later the day counts are empty, the lifetime ones are not.
        let tomorrow = noonSeconds + 86_400
        #expect(view.count(ana, "a", .decision, .day, now: tomorrow) == 0)
        #expect(view.count(ana, "a", .decision, .lifetime, now: tomorrow) == 2)
        #expect(view.count(EventLogProfileKey(namespace: "ecid", id: "ANA"), "a") == 0, "ids are case-sensitive")
        #expect(view.count(EventLogProfileKey(namespace: "ECID", id: "ana"), "a") == 2)
    }

    @Test func duplicatesByEventIDArePerKeyAndLast31DaysOfTheLog() {
        var log = LogBuilder()
        log.add(ana, .display, offers: ["a"], eventID: "e1")
        log.add(ana, .display, offers: ["a"], eventID: "e1") // duplicate
        log.add(bob, .display, offers: ["a"], eventID: "e1") // another key: counts
        log.add(ana, .consent, eventID: "e1", consents: ["personalize.content": "n"]) // shares the id space
        // 31 days later by the log's clock the id is still known; a millisecond more and it is not.
        log.add(ana, .display, offers: ["a"], at: noon + LiveOverlay.eventIDRetentionMs, eventID: "e1")
        log.add(bob, .display, offers: ["b"], at: noon + LiveOverlay.eventIDRetentionMs + 1, eventID: "other")
        log.add(ana, .display, offers: ["a"], at: noon, eventID: "e1")
        var overlay = LiveOverlay()
        let outcomes = log.records.map { overlay.apply($0) }
        #expect(
            outcomes == [.applied, .duplicateEvent, .applied, .duplicateEvent, .duplicateEvent, .applied, .applied])
        let view = overlay.published()
        #expect(view.count(ana, "a", .display) == 2)
        #expect(view.count(ana, "a", .display, scope: .total) == 3)
        #expect(
            view.consents(for: ana, snapshotConsents: ConsentRecord(personalizeContent: .y)).personalizeContent == .y)
        #expect(view.knows(eventID: "e1", for: ana))
        #expect(!view.knows(eventID: "e1", for: EventLogProfileKey(namespace: "ECID", id: "carl")))
    }

    @Test func recordsAtOrBeforeTheLastAppliedAreIgnored() {
        var log = LogBuilder()
        for _ in 0..<5 { log.add(ana, .decision, offers: ["a"]) }
        var overlay = LiveOverlay()
        overlay.apply(log.records.prefix(3))
        #expect(overlay.lastApplied == .sequence(3))
        // A re-read after a reconnect delivers 2 and 3 again.
        #expect(overlay.apply(log.records[1...]) == (applied: 2, duplicates: 0))
        #expect(overlay.published().count(ana, "a") == 5)
    }

    @Test func aSecondCopyOfABatchIsSkipped() {
        func entry(_ server: String, _ batch: UInt64) -> EventLogEntry {
            EventLogEntry(
                key: ana, type: .decision, timeMs: noon, offerIDs: ["a"], serverID: server, batchNumber: batch)
        }
        // s1 batch 1 (two entries), s2 batch 1, s1 batch 1 again (a retried append), s1 batch 2, s3 batch 1.
        let entries = [
            entry("s1", 1), entry("s1", 1), entry("s2", 1), entry("s1", 1), entry("s1", 1), entry("s1", 2),
            entry("s3", 1),
        ]
        var overlay = LiveOverlay()
        let outcomes = entries.enumerated().map {
            overlay.apply(EventLogRecord(position: .sequence(UInt64($0.offset + 1)), entry: $0.element))
        }
        #expect(
            outcomes == [.applied, .applied, .applied, .duplicateBatch, .duplicateBatch, .applied, .applied])
        #expect(overlay.published().count(ana, "a") == 5)
    }

    /// SPEC 9.5: updates replace the snapshot's values for the keys they name, later updates win key by key,
    /// and unknown identities (empty consents) take them too.
    @Test func consentOverridesTakePrecedenceKeyByKey() {
        var log = LogBuilder()
        log.add(ana, .consent, eventID: "c1", consents: ["personalize.content": "n", "marketing.email": "n"])
        log.add(ana, .consent, eventID: "c2", consents: ["marketing.email": "y"])
        log.add(
            bob, .consent, eventID: "c3",
            consents: ["marketing.any": "dn", "marketing.fax": "y", "marketing.sms": "maybe"])
        var overlay = LiveOverlay()
        overlay.apply(log.records)
        let view = overlay.published()
        let snapshot = ConsentRecord(personalizeContent: .y, marketingAny: .y, marketingEmail: .y, marketingSMS: .y)
        let anas = view.consents(for: ana, snapshotConsents: snapshot)
        #expect(anas == ConsentRecord(personalizeContent: .n, marketingAny: .y, marketingEmail: .y, marketingSMS: .y))
        let bobs = view.consents(for: bob, snapshotConsents: .empty)
        #expect(bobs == ConsentRecord(marketingAny: .dn))
        #expect(!ConsentResolver.personalizationGranted(anas, default: .granted))
        #expect(!ConsentResolver.marketingGranted(bobs, channel: .sms, default: .granted))
        // The one-lookup form Decide uses answers the same.
        for key in [ana, bob, EventLogProfileKey(namespace: "ECID", id: "x")] {
            let inputs = view.decideInputs(for: key, snapshotConsents: snapshot)
            #expect(inputs.consents == view.consents(for: key, snapshotConsents: snapshot))
            #expect(inputs.counts.counters == view.counts(for: key).counters)
        }
        let nobody = EventLogProfileKey(namespace: "ECID", id: "nobody")
        #expect(view.consents(for: nobody, snapshotConsents: snapshot) == snapshot)
        // A later grant wins over the earlier denial.
        var more = log
        more.add(ana, .consent, eventID: "c4", consents: ["personalize.content": "y"])
        overlay.apply(more.records)
        #expect(overlay.published().consents(for: ana, snapshotConsents: .empty).personalizeContent == .y)
        #expect(
            view.consents(for: ana, snapshotConsents: .empty).personalizeContent == .n,
            "a published value never changes")
    }

    @Test func aPublishedValueNeverChanges() {
        var log = LogBuilder()
        log.add(ana, .decision, offers: ["a"])
        var overlay = LiveOverlay()
        overlay.apply(log.records)
        let first = overlay.published()
        for _ in 0..<300 {
            log.add(ana, .decision, offers: ["a"])
            log.add(.init(namespace: "x", id: "\(log.next)"), .decision, offers: ["a"])
        }
        overlay.apply(log.records)
        #expect(first.count(ana, "a") == 1)
        #expect(first.keyCount == 1)
        #expect(first.lastApplied == .sequence(1))
        #expect(overlay.published().count(ana, "a") == 301)
        #expect(overlay.keyCount == 301)
    }

    /// A published value keeps a key's consents and event ids while the overlay goes on changing that same key
    /// (a later opt-in, a new event id) and rebases it onto a snapshot (which clears the key's consents): a Decide
    /// holding it never sees an opt-out undone under it.
    @Test func aPublishedValueKeepsConsentsAndEventIDs() {
        var log = LogBuilder()
        log.add(ana, .consent, eventID: "c1", consents: ["personalize.content": "n"])
        var overlay = LiveOverlay()
        overlay.apply(log.records)
        let first = overlay.published()
        // Each change the first of its part since a publish: the event ids (a display), then the consents (no id).
        log.add(ana, .display, offers: ["a"], eventID: "e2")
        overlay.apply(log.records)
        let second = overlay.published()
        log.add(ana, .consent, consents: ["personalize.content": "y"])
        overlay.apply(log.records)
        let third = overlay.published()
        overlay.rebase(onto: FoldedState(), watermark: nil)
        #expect(first.state(for: ana)?.consents.personalizeContent == .n)
        #expect(first.knows(eventID: "c1", for: ana) && !first.knows(eventID: "e2", for: ana))
        #expect(second.state(for: ana)?.consents.personalizeContent == .n)
        #expect(second.knows(eventID: "e2", for: ana))
        #expect(third.state(for: ana)?.consents.personalizeContent == .y)
        #expect(overlay.published().state(for: ana)?.consents.personalizeContent == nil, "the rebase cleared them")
    }

    @Test func expiryDropsOldBucketsAndIdsButNoCurrentAnswer() {
        var log = LogBuilder()
        let day = CalendarBuckets.millisecondsPerDay
        log.add(ana, .decision, offers: ["a"], at: noon - 40 * day)
        log.add(ana, .display, offers: ["a"], at: noon - 40 * day, eventID: "old")
        log.add(bob, .display, offers: ["a"], at: noon - 40 * day, eventID: "gone")
        log.add(ana, .decision, offers: ["a"], at: noon - day)
        log.add(ana, .decision, offers: ["a"], at: noon, eventID: "new")
        var overlay = LiveOverlay()
        overlay.apply(log.records)
        let before = overlay.published()
        overlay.expire()
        let after = overlay.published()
        for period in CappingPeriod.allCases {
            for scope in CappingScope.allCases {
                #expect(
                    before.count(ana, "a", .decision, period, scope: scope)
                        == after.count(ana, "a", .decision, period, scope: scope))
            }
        }
        #expect(after.count(ana, "a") == 3)
        #expect(after.count(ana, "a", .display) == 1)
        #expect(!after.knows(eventID: "old", for: ana))
        #expect(after.knows(eventID: "new", for: ana))
        // Bob had only a display 40 days ago: lifetime counters stay (they are folded away by snapshots, not time).
        #expect(after.state(for: bob)?.eventIDs.isEmpty == true)
        #expect(after.count(bob, "a", .display) == 1)
        #expect(
            after.counters(for: ana).keys.allSatisfy {
                $0.period == .lifetime || $0.bucket >= CalendarBuckets.bucket($0.period, timeMs: noon) - 1
            } == true)
    }

    /// The engine reads the overlay as its live counts: a cap reached in the log holds at once.
    @Test func theEngineIsCappedByLiveCounts() throws {
        let catalog = try Catalog.load(
            bytes: Array(
                #"""
                {"placements": [{"id": "web", "channel": "web", "contentType": "text"}],
                 "offers": [
                   {"id": "a", "status": "approved", "priority": 9, "tags": ["t"],
                    "capping": [{"limit": 2, "period": "day"}, {"limit": 3, "scope": "total"}],
                    "representations": [{"placement": "web", "content": "a"}]},
                   {"id": "b", "status": "approved", "priority": 1, "tags": ["t"],
                    "representations": [{"placement": "web", "content": "b"}]}],
                 "collections": [{"id": "all", "anyTags": ["t"]}],
                 "decisions": [{"id": "d", "status": "live",
                   "scopes": [{"placement": "web", "criteria": [{"collection": "all"}]}]}]}
                """#.utf8),
            fileName: "c.json")
        let engine = DecisionEngine(catalog: catalog)
        var log = LogBuilder()
        var overlay = LiveOverlay()
        func first(_ key: EventLogProfileKey) -> String? {
            let request = DecisionRequest(
                identity: Identity(namespace: key.namespace, id: key.id),
                scopes: [ScopeRequest(decisionID: "d", placementID: "web")])
            return engine.decide(request, live: overlay.published().counts(for: key), now: noonSeconds)
                .propositions[0].items.first?.id
        }
        #expect(first(ana) == "a")
        log.add(ana, .decision, offers: ["a"])
        overlay.apply(log.records)
        #expect(first(ana) == "a")
        log.add(ana, .decision, offers: ["a"])
        overlay.apply(log.records)
        #expect(first(ana) == "b", "the day cap of 2")
        #expect(first(bob) == "a")
        log.add(bob, .decision, offers: ["a"])
        overlay.apply(log.records)
        #expect(first(bob) == "b", "the total cap of 3")
        #expect(first(EventLogProfileKey(namespace: "ECID", id: "carl")) == "b")
    }
}

/// SplitMix64, seeded by the property test's input.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var mixed = state
        mixed = (mixed ^ (mixed >> 30)) &* 0xbf58_476d_1ce4_e5b9
        mixed = (mixed ^ (mixed >> 27)) &* 0x94d0_49bb_1331_11eb
        return mixed ^ (mixed >> 31)
    }
}

/// Counts a whole log the plain way (the reference the overlay must equal): a list of events kept, then sums.
struct ReferenceCounts {
    var kept: [EventLogEntry] = []
    var consents: [EventLogProfileKey: ConsentOverride] = [:]

    init(_ records: [EventLogRecord]) {
        var seenBatches: [String: UInt64] = [:]
        var previous: (String, UInt64, Bool)?
        var clock = Int64.min
        var ids: [EventLogProfileKey: [String: Int64]] = [:]
        for record in records {
            let entry = record.entry
            if let previous, previous.0 == entry.serverID, previous.1 == entry.batchNumber {
                if previous.2 { continue }
            } else {
                let copy = (seenBatches[entry.serverID] ?? 0) >= entry.batchNumber && seenBatches[entry.serverID] != nil
                previous = (entry.serverID, entry.batchNumber, copy)
                if copy { continue }
                seenBatches[entry.serverID] = entry.batchNumber
            }
            clock = max(clock, entry.timeMs)
            if !entry.eventID.isEmpty {
                if let seen = ids[entry.key]?[entry.eventID], clock - seen <= LiveOverlay.eventIDRetentionMs {
                    continue
                }
                ids[entry.key, default: [:]][entry.eventID] = clock
            }
            if entry.type == .consent {
                for (key, value) in entry.consents {
                    consents[entry.key, default: ConsentOverride()].set(key, xdmValue: value)
                }
            }
            kept.append(entry)
        }
    }

    func count(
        _ key: EventLogProfileKey?, _ offer: String, _ type: EventLogEventType, _ period: CappingPeriod, now: Int64
    ) -> Int {
        kept.filter { entry in
            (key == nil || entry.key == key) && entry.type == type && entry.offerIDs.contains(offer)
                && CalendarBuckets.bucket(period, timeMs: entry.timeMs) == CalendarBuckets.bucket(period, timeMs: now)
        }.count
    }
}

@Suite("Live overlay properties")
struct LiveOverlayPropertyTests {
    static let keys = [ana, bob, EventLogProfileKey(namespace: "Email", id: "c@example.com")]
    static let offers = ["a", "b", "c"]

    /// A random log: decisions and feedback over a few keys and offers, times spread over 70 days around noon,
    /// event ids drawn from a small set (many duplicates), consent updates, and retried batch copies.
    static func randomLog(_ random: inout SplitMix64) -> [EventLogRecord] {
        var records: [EventLogRecord] = []
        var position: UInt64 = 1
        var batches: [String: UInt64] = ["s1": 0, "s2": 0]
        var lastBatch: [EventLogEntry] = []
        for _ in 0..<Int.random(in: 0...120, using: &random) {
            if !lastBatch.isEmpty && Int.random(in: 0..<10, using: &random) == 0 {
                // The last batch again, as after a lost acknowledgement.
                for entry in lastBatch {
                    records.append(EventLogRecord(position: .sequence(position), entry: entry))
                    position += 1
                }
                continue
            }
            let server = Bool.random(using: &random) ? "s1" : "s2"
            batches[server, default: 0] += 1
            lastBatch = []
            for _ in 0..<Int.random(in: 1...3, using: &random) {
                let type = [EventLogEventType.decision, .decision, .display, .interact, .dismiss, .consent]
                    .randomElement(using: &random)!
                let time = noon + Int64.random(in: -35 * 86_400_000...35 * 86_400_000, using: &random)
                // Now and then an entry naming many offers, most of them repeated (the overlay's other way of
                // finding distinct offers).
                let offerCount =
                    Int.random(in: 0..<10, using: &random) == 0
                    ? Int.random(in: 17...40, using: &random) : Int.random(in: 1...3, using: &random)
                var offerIDs = (0..<offerCount).map { _ in
                    offers.randomElement(using: &random)!
                }
                var consents: [String: String] = [:]
                if type == .consent {
                    offerIDs = []
                    consents[ConsentOverride.keys.randomElement(using: &random)!] = ["y", "n", "dn", "p"].randomElement(
                        using: &random)!
                }
                let entry = EventLogEntry(
                    key: keys.randomElement(using: &random)!, type: type, timeMs: time,
                    eventID: type == .decision ? "" : "e\(Int.random(in: 0..<15, using: &random))",
                    offerIDs: offerIDs, consents: consents, serverID: server, batchNumber: batches[server]!)
                lastBatch.append(entry)
                records.append(EventLogRecord(position: .sequence(position), entry: entry))
                position += 1
            }
        }
        return records
    }

    static func answers(_ view: LiveOverlaySnapshot, now: Int64) -> [Int] {
        var result: [Int] = []
        for key in keys {
            // Once per key, as a Decide reads them.
            let counts = view.counts(for: key)
            for offer in offers {
                for event in CappingEvent.allCases {
                    for period in CappingPeriod.allCases {
                        for scope in CappingScope.allCases {
                            result.append(
                                counts.count(
                                    offer: InternedName(offer), event: event, period: period, scope: scope,
                                    now: Double(now) / 1000))
                        }
                    }
                }
            }
        }
        return result
    }

    /// Random event sequences cut at a random watermark: applying up to the cut, publishing, then applying the
    /// rest in random chunks (each re-delivering some records before it, as a re-read does) gives the same counts
    /// and consents as applying the whole sequence at once, and both equal counting the sequence the plain way.
    @Test func aCutAnywhereGivesTheCountsOfTheWholeSequence() async {
        await propertyCheck(count: 300, input: Gen.int(in: 0...Int(Int32.max))) { seed in
            var random = SplitMix64(state: UInt64(seed))
            let records = Self.randomLog(&random)
            var whole = LiveOverlay()
            whole.apply(records)

            let cut = Int.random(in: 0...records.count, using: &random)
            var split = LiveOverlay()
            split.apply(records[..<cut])
            let atCut = split.published()
            var start = cut
            while start < records.count {
                let end = min(records.count, start + Int.random(in: 1...7, using: &random))
                let replay = max(0, start - Int.random(in: 0...3, using: &random))
                split.apply(records[replay..<end])
                start = end
            }
            let reference = ReferenceCounts(records)
            for now in [noon, noon - 3 * 86_400_000, noon + 20 * 86_400_000] {
                let expected = Self.answers(whole.published(), now: now)
                #expect(Self.answers(split.published(), now: now) == expected, "seed \(seed), cut \(cut)")
                var plain: [Int] = []
                for key in Self.keys {
                    for offer in Self.offers {
                        for event in CappingEvent.allCases {
                            let type: EventLogEventType =
                                event == .decision ? .decision : event == .display ? .display : .interact
                            for period in CappingPeriod.allCases {
                                plain.append(reference.count(key, offer, type, period, now: now))
                                plain.append(reference.count(nil, offer, type, period, now: now))
                            }
                        }
                    }
                }
                #expect(plain == expected, "seed \(seed)")
            }
            for key in Self.keys {
                #expect(split.published().state(for: key)?.consents == whole.published().state(for: key)?.consents)
                #expect(
                    (whole.published().state(for: key)?.consents ?? ConsentOverride())
                        == (reference.consents[key] ?? ConsentOverride()))
            }
            // What was published at the cut still answers for the prefix alone.
            var prefix = LiveOverlay()
            prefix.apply(records[..<cut])
            #expect(Self.answers(atCut, now: noon) == Self.answers(prefix.published(), now: noon))
        }
    }
}

@Suite("Pending counts")
struct PendingCountsTests {
    /// Pending entries count exactly as applied ones: the same answers for every key, offer, event, period and
    /// scope; and removing them all leaves nothing.
    /// Counted entries of a random log, without event ids or batch copies: what the queue holds.
    static func randomPendingRecords(_ random: inout SplitMix64) -> [EventLogRecord] {
        LiveOverlayPropertyTests.randomLog(&random).filter {
            $0.entry.type == .decision || $0.entry.type == .display || $0.entry.type == .interact
        }.map { record -> EventLogRecord in
            var record = record
            record.entry.eventID = ""
            // A writer of its own per record: no record is a batch copy.
            record.entry.serverID = "\(record.position)"
            record.entry.batchNumber = 1
            return record
        }
    }

    @Test func pendingEntriesCountLikeAppliedOnes() async {
        await propertyCheck(count: 200, input: Gen.int(in: 0...Int(Int32.max))) { seed in
            var random = SplitMix64(state: UInt64(seed))
            let records = Self.randomPendingRecords(&random)
            var overlay = LiveOverlay()
            overlay.apply(records)
            var pending = PendingCounts()
            for record in records { pending.add(record.entry) }
            let viaPending = LiveOverlaySnapshot.empty.with(pending: pending)
            for now in [noon, noon - 3 * 86_400_000] {
                #expect(
                    LiveOverlayPropertyTests.answers(viaPending, now: now)
                        == LiveOverlayPropertyTests.answers(overlay.published(), now: now), "seed \(seed)")
            }
            for record in records.shuffled(using: &random) { pending.remove(record.entry) }
            #expect(pending.isEmpty)
        }
    }

    /// Entries added in groups and taken back in groups, in any order (as the writer and the follower do), count
    /// after every change as an overlay of the entries still pending counts them; a view published at any step
    /// keeps its answers while the table goes on changing; every key with an entry pending passes the filter; and
    /// once everything is taken back nothing is pending.
    @Test func groupsAddedAndTakenBackCountAsWhatRemains() async {
        await propertyCheck(count: 60, input: Gen.int(in: 0...Int(Int32.max))) { seed in
            var random = SplitMix64(state: UInt64(seed))
            var toAdd = Self.randomPendingRecords(&random)[...]
            var remaining: [EventLogRecord] = []
            var pending = PendingCounts()
            var views: [(LiveOverlaySnapshot, [Int])] = []
            while !toAdd.isEmpty || !remaining.isEmpty {
                if !toAdd.isEmpty && (remaining.isEmpty || Bool.random(using: &random)) {
                    let group = toAdd.prefix(Int.random(in: 1...8, using: &random))
                    pending.add(group.map(\.entry))
                    remaining += group
                    toAdd = toAdd.dropFirst(group.count)
                } else {
                    remaining.shuffle(using: &random)
                    let group = remaining.suffix(Int.random(in: 1...8, using: &random))
                    pending.remove(group.map(\.entry))
                    remaining.removeLast(group.count)
                }
                var overlay = LiveOverlay()
                overlay.apply(remaining.sorted { $0.position < $1.position })
                let view = LiveOverlaySnapshot.empty.with(pending: pending)
                let expected = LiveOverlayPropertyTests.answers(overlay.published(), now: noon)
                #expect(LiveOverlayPropertyTests.answers(view, now: noon) == expected, "seed \(seed)")
                for record in remaining {
                    #expect(view.mayHaveState(LiveProfileKeyHash(record.entry.key)), "seed \(seed)")
                }
                views.append((view, expected))
            }
            #expect(pending.isEmpty, "seed \(seed)")
            for (view, expected) in views {
                #expect(LiveOverlayPropertyTests.answers(view, now: noon) == expected, "seed \(seed)")
            }
        }
    }

    /// Entries added without `countingTotals` (a catalog without `total` rules) count for their profile keys and
    /// not in the totals, and taking them back leaves the totals of the others as they were.
    @Test func totalsCountOnlyEntriesAddedCountingThem() {
        let counted = EventLogEntry(
            key: ana, type: .decision, timeMs: noon, offerIDs: ["a"], serverID: "", batchNumber: 0)
        let uncounted = EventLogEntry(
            key: bob, type: .decision, timeMs: noon, offerIDs: ["a"], serverID: "", batchNumber: 0)
        var pending = PendingCounts()
        pending.add(counted)
        pending.add([uncounted, uncounted], countingTotals: false)
        var view = LiveOverlaySnapshot.empty.with(pending: pending)
        #expect(view.count(ana, "a") == 1)
        #expect(view.count(bob, "a") == 2)
        #expect(view.count(bob, "a", .decision, .day, scope: .total) == 1)
        pending.remove([uncounted])
        view = LiveOverlaySnapshot.empty.with(pending: pending)
        #expect(view.count(bob, "a") == 1)
        #expect(view.count(ana, "a", .decision, .day, scope: .total) == 1)
        pending.remove([uncounted, counted])
        #expect(pending.isEmpty)
    }

    /// Pending entries never hide an opt-out (SPEC 9.5): with this server's decision events pending for other keys
    /// only, the opted-out key still takes the live path and reads its denied consent.
    @Test func pendingEntriesNeverHideAnOptOut() {
        var log = LogBuilder()
        log.add(ana, .consent, consents: ["personalize.content": "n"])
        var overlay = LiveOverlay()
        overlay.apply(log.records)
        var pending = PendingCounts()
        for key in [bob] + (0..<200).map({ EventLogProfileKey(namespace: "ECID", id: "p\($0)") }) {
            pending.add(
                EventLogEntry(key: key, type: .decision, timeMs: noon, offerIDs: ["a"], serverID: "", batchNumber: 0))
        }
        let view = overlay.published().with(pending: pending)
        #expect(view.mayHaveState(LiveProfileKeyHash(ana)))
        let inputs = view.decideInputs(for: ana, snapshotConsents: .empty)
        #expect(inputs.consents.personalizeContent == .n)
    }

    @Test func overlayAndPendingAddUp() {
        var log = LogBuilder()
        log.add(ana, .decision, offers: ["a"])
        var overlay = LiveOverlay()
        overlay.apply(log.records)
        var pending = PendingCounts()
        pending.add(
            EventLogEntry(key: ana, type: .decision, timeMs: noon, offerIDs: ["a"], serverID: "me", batchNumber: 1))
        pending.add(
            EventLogEntry(key: bob, type: .decision, timeMs: noon, offerIDs: ["a"], serverID: "me", batchNumber: 1))
        pending.add(
            EventLogEntry(
                key: bob, type: .consent, timeMs: noon, consents: ["marketing.any": "n"], serverID: "me", batchNumber: 1
            ))
        let view = overlay.published().with(pending: pending)
        #expect(view.count(ana, "a") == 2)
        #expect(view.count(bob, "a") == 1)
        #expect(view.count(ana, "a", .decision, .day, scope: .total) == 3)
        #expect(view.decideInputs(for: bob, snapshotConsents: .empty).consents == .empty, "consents are never pending")
        #expect(overlay.published().count(ana, "a") == 1, "the overlay itself is unchanged")
    }
}
