import OfferdCore
import OfferdEventLog
import OfferdSnapshot

/// One live counter: events of one type naming one offer, in one period bucket (``CalendarBuckets``).
public struct LiveCounterKey: Hashable, Sendable {
    public var offer: String
    public var event: CappingEvent
    public var period: CappingPeriod
    public var bucket: Int64

    public init(offer: String, event: CappingEvent, period: CappingPeriod, bucket: Int64) {
        self.offer = offer
        self.event = event
        self.period = period
        self.bucket = bucket
    }
}

/// What the overlay holds for one profile key (SPEC 9.2).
public struct LiveProfileState: Hashable, Sendable {
    /// Counters of this key's events, every period of every counted event type (offers by the overlay's numbers).
    var counters = CounterList()
    /// The consent values set by this key's updates.
    public internal(set) var consents = ConsentOverride()
    /// Event ids applied for this key, with the log clock (``LiveOverlay/logClockMs``) when each was.
    public internal(set) var eventIDs = EventIDTable()

    public init() {}

    /// How many live counters this key holds.
    public var counterCount: Int { counters.count }
}

/// The live state of SPEC 9: the event log applied, entry by entry in position order, on top of the snapshot.
///
/// ## The contract
/// - **One writer.** A `LiveOverlay` is a value owned by one thread, the follower, which reads the log and calls
///   ``apply(_:)`` for every record in position order. It is never shared: readers get ``published()``
///   values.
/// - **Exactly once, in order.** ``apply(_:)`` ignores a record at or before ``lastApplied`` (a re-read after a
///   reconnect), so applying a record twice counts it once. It does not check for gaps: positions are the log's.
/// - **Copies of a batch.** A writer whose append lost its acknowledgement may append the same batch again
///   (``EventLog``); both copies carry the writer's (server id, batch number). A batch is contiguous in the
///   log, so an entry whose pair differs from the previous entry's and whose batch number is not above the last
///   one applied for its server starts a copy: it and the rest of the copy are skipped. This needs a server id
///   that is new for every run of a writer, and batch numbers that grow within it.
/// - **Duplicates by event id** (SPEC 9.4): an entry whose event id was applied for the same profile key within
///   the last 31 days of the log's clock is skipped, whatever its type. The log's clock is the largest entry time
///   applied so far: it depends only on the log, so every server decides every duplicate the same way.
/// - **Counting** (SPEC 9.3): a decision, display or interact entry adds 1 per distinct offer it names to that
///   key's counter and to the total counter, for the lifetime and for the day, week and month holding the
///   entry's time. Dismiss entries count nowhere; consent entries set the key's consent values, later entries
///   winning key by key.
/// - **Readers never wait.** ``published()`` returns an immutable ``LiveOverlaySnapshot`` (a class, so that one
///   atomic reference publishes it: the server keeps it in an `AtomicReferenceStore`, as it keeps the snapshot).
///   A Decide loads it once and reads it for the whole call, without locks; the follower publishes after every
///   batch it applied once its start-up replay is done. What a reader holds never changes: the writer's next
///   change copies what it touches (copy-on-write, per leaf of the profile table, see ``ShardedDictionary``, and
///   per part of a key's event ids, see ``EventIDTable``).
/// - **The start-up replay.** An overlay made with `replaying: true` holds its profile table in one plain
///   dictionary (cheaper to fill, see ``ShardedDictionary``) until ``finishReplay()`` splits it; call that before
///   the first ``published()``. Before it a published value still reads right, but the next change copies every
///   key.
/// - **Bounded memory.** ``expire()`` drops event ids older than 31 days and period counters of buckets before
///   the previous one; the follower calls it when the log's clock enters a new day.
///
/// - **The snapshot's watermark** (SPEC 9.6). Lifetime counters and consents sit on top of the snapshot being
///   served: they hold that snapshot's folded state (``FoldedState``) plus the entries after its watermark
///   ``watermark``. An entry at or before the watermark changes period counters and event ids only (the
///   snapshot has folded its lifetime part). ``rebase(onto:watermark:)`` and ``reapplyAfterWatermark(_:)`` move
///   the overlay onto another snapshot: the follower resets lifetime counters and consents to the new folded
///   state, then re-reads the log from the new watermark up to ``lastApplied``. To make that re-read reach
///   the same verdicts as the first reading, the overlay remembers the positions it skipped as duplicates
///   (rare: retries), and the re-read skips exactly those.
public struct LiveOverlay: Sendable {
    /// How long an event id makes a later entry with the same id a duplicate (SPEC 9.4).
    public static let eventIDRetentionMs: Int64 = 31 * CalendarBuckets.millisecondsPerDay

    private var profiles = ShardedDictionary<EventLogProfileKey, LiveProfileState>()
    private var totals = CounterList()
    /// The offer ids met so far, by number: counters are keyed by the number (see ``OfferNumbers``).
    private var offers = OfferNumbers()
    /// The numbers of the offer ids met lately, found without hashing the id (writer only, not published).
    private var recentOffers = RecentOfferNumbers()
    /// The calendar buckets of the last entry's day (writer only).
    private var calendar = CalendarBucketCache()
    /// The counters one entry adds to, reused from entry to entry so that applying allocates nothing.
    private var entryCounters: [PackedCounterKey] = []
    /// The position of the last record applied (or skipped as a duplicate): the next read starts after it.
    public private(set) var lastApplied: EventLogPosition?
    /// The largest entry time applied so far (Unix ms); `Int64.min` before the first.
    public private(set) var logClockMs: Int64 = .min
    /// Per writing server, the last batch number applied.
    private var lastBatchByServer: [String: UInt64] = [:]
    /// The (server, batch) of the previous entry, and whether that batch is being skipped as a copy.
    private var currentBatch: (server: String, batch: UInt64, skipping: Bool)?
    /// The watermark of the snapshot the lifetime counters and consents sit on; nil: every entry is after it.
    public private(set) var watermark: EventLogPosition?
    /// Positions skipped as duplicates (event id or batch copy), ascending: a re-read skips them too.
    private var skippedPositions: [EventLogPosition] = []

    public init() {}

    /// An overlay whose lifetime counters and consents start from a snapshot's folded state, with its watermark
    /// (see ``rebase(onto:watermark:)``).
    /// With `replaying`, the overlay is filled before anyone reads it: see ``finishReplay()``.
    public init(folded: FoldedState, watermark: EventLogPosition?, replaying: Bool = false) {
        profiles = ShardedDictionary(loading: replaying)
        rebase(onto: folded, watermark: watermark)
    }

    /// Ends the start-up replay of an overlay made with `replaying: true`: splits its profile table into the form
    /// whose copies share most of it (nothing to do otherwise). Call it before the first ``published()``.
    public mutating func finishReplay() {
        profiles.finishLoading()
    }

    /// Lowers ``watermark`` to ``lastApplied`` (nil when nothing was applied) when the log ends before it, and
    /// says whether it did. Call it at the end of the start-up replay.
    ///
    /// Why: the snapshot folded entries up to its watermark from a log that held them; this one does not (a file
    /// log replaced by a new one, or a log of the other kind), so the entries it gets from now on were folded
    /// nowhere. Left at the watermark, the consents of those up to it would be skipped: an `UpdateConsent` answered
    /// OK, and then not applied (SPEC 9.5). Lowered, they apply in full, as entries after a watermark do.
    public mutating func lowerWatermarkToLogEnd() -> Bool {
        guard let watermark, lastApplied.map({ $0 < watermark }) ?? true else { return false }
        self.watermark = lastApplied
        return true
    }

    /// Whether the overlay is in its start-up replay (made with `replaying: true`, ``finishReplay()`` not called).
    public var isReplaying: Bool { profiles.isLoading }

    /// What ``apply(_:)`` did with a record.
    public enum Outcome: Hashable, Sendable {
        /// Counted, or its consents set.
        case applied
        /// Its event id was already applied for its profile key (SPEC 9.4).
        case duplicateEvent
        /// Part of a second copy of a batch already applied.
        case duplicateBatch
        /// At or before ``LiveOverlay/lastApplied``: applied before.
        case alreadyApplied
    }

    /// Applies one record; records must come in position order (see the contract).
    @discardableResult
    public mutating func apply(_ record: EventLogRecord) -> Outcome {
        if let lastApplied, record.position <= lastApplied { return .alreadyApplied }
        lastApplied = record.position
        if isCopyOfAppliedBatch(record.entry) {
            skippedPositions.append(record.position)
            return .duplicateBatch
        }
        logClockMs = max(logClockMs, record.entry.timeMs)
        let clock = logClockMs
        // At or before the watermark the snapshot holds the entry's lifetime part (SPEC 9.6).
        let lifetimeToo = watermark.map { record.position > $0 } ?? true
        let counted = record.entry.type == .decision || record.entry.type == .display || record.entry.type == .interact
        var counters = entryCounters
        entryCounters = []
        defer {
            counters.removeAll(keepingCapacity: true)
            entryCounters = counters
        }
        if counted {
            self.counters(
                of: record.entry, event: Self.cappingEvent(record.entry.type), periods: lifetimeToo ? .all : .calendar,
                into: &counters)
        }
        let duplicate = profiles.modify(record.entry.key, default: LiveProfileState()) { state -> Bool in
            if !record.entry.eventID.isEmpty {
                if state.eventIDs.insert(record.entry.eventID, time: clock, unlessWithin: Self.eventIDRetentionMs) {
                    return true
                }
            }
            switch record.entry.type {
            case .consent:
                if lifetimeToo {
                    for (key, value) in record.entry.consents { state.consents.set(key, xdmValue: value) }
                }
            case .dismiss:
                break
            case .decision, .display, .interact:
                state.counters.addOne(atEach: counters)
            }
            return false
        }
        if duplicate {
            skippedPositions.append(record.position)
            return .duplicateEvent
        }
        totals.addOne(atEach: counters)
        return .applied
    }

    /// Moves the lifetime counters and the consents onto a snapshot with `folded` state and `watermark`: they
    /// become the folded state alone, and entries up to `watermark` no longer change them. Period counters,
    /// event ids and ``lastApplied`` stay. The caller then hands every record after `watermark` up to
    /// ``lastApplied`` to ``reapplyAfterWatermark(_:)``, in order (none when `watermark` is at or after
    /// ``lastApplied``), before anyone reads the result.
    public mutating func rebase(onto folded: FoldedState, watermark: EventLogPosition?) {
        self.watermark = watermark
        profiles.compact { _, state in
            var state = state
            state.counters.keep { $0.period != .lifetime }
            state.consents = ConsentOverride()
            return state.counters.isEmpty && state.eventIDs.isEmpty ? nil : state
        }
        totals.keep { $0.period != .lifetime }
        for (foldedKey, profile) in folded.profiles {
            let key = EventLogProfileKey(namespace: foldedKey.namespace, id: foldedKey.id)
            let numbered = profile.counts.map { (offer, counts) in (offers.number(for: offer), counts) }
            profiles.modify(key, default: LiveProfileState()) { state in
                for (offer, counts) in numbered {
                    Self.addFolded(counts, offer: offer) { state.counters.add($1, at: $0) }
                }
                for (consentKey, value) in profile.consents { state.consents.set(consentKey, xdmValue: value) }
            }
        }
        for (offer, counts) in folded.totals {
            Self.addFolded(counts, offer: offers.number(for: offer)) { totals.add($1, at: $0) }
        }
    }

    /// The second half of ``rebase(onto:watermark:)``: counts the lifetime part of one record after the new
    /// watermark and at or before ``lastApplied`` again, unless the first reading skipped it as a duplicate.
    /// Records must come in position order; others are ignored.
    public mutating func reapplyAfterWatermark(_ record: EventLogRecord) {
        guard let lastApplied, record.position <= lastApplied,
            watermark.map({ record.position > $0 }) ?? true, !wasSkipped(record.position)
        else { return }
        let entry = record.entry
        switch entry.type {
        case .consent:
            profiles.modify(entry.key, default: LiveProfileState()) { state in
                for (key, value) in entry.consents { state.consents.set(key, xdmValue: value) }
            }
        case .dismiss:
            break
        case .decision, .display, .interact:
            var counters: [PackedCounterKey] = []
            self.counters(of: entry, event: Self.cappingEvent(entry.type), periods: .lifetime, into: &counters)
            profiles.modify(entry.key, default: LiveProfileState()) { state in
                for counter in counters { state.counters.add(1, at: counter) }
            }
            for counter in counters { totals.add(1, at: counter) }
        }
    }

    /// Forgets the skipped positions before `position` (the log no longer holds them: trimmed away).
    public mutating func forgetSkipped(before position: EventLogPosition) {
        skippedPositions.removeSubrange(0..<firstSkippedIndex(atOrAfter: position))
    }

    private func wasSkipped(_ position: EventLogPosition) -> Bool {
        let index = firstSkippedIndex(atOrAfter: position)
        return index < skippedPositions.count && skippedPositions[index] == position
    }

    private func firstSkippedIndex(atOrAfter position: EventLogPosition) -> Int {
        var low = 0
        var high = skippedPositions.count
        while low < high {
            let middle = (low + high) / 2
            if skippedPositions[middle] < position { low = middle + 1 } else { high = middle }
        }
        return low
    }

    /// Calls `body` with each lifetime counter of folded `counts` and the amount to add.
    private static func addFolded(
        _ counts: FoldedCounts, offer: UInt32, _ body: (PackedCounterKey, Int) -> Void
    ) {
        for (event, amount) in [
            (CappingEvent.decision, counts.decision), (.display, counts.display),
            (.interact, counts.interact),
        ] where amount > 0 {
            body(PackedCounterKey(offer: offer, event: event, period: .lifetime, bucket: 0), amount)
        }
    }

    /// Applies records in order; returns how many were applied and how many skipped as duplicates.
    @discardableResult
    public mutating func apply(_ records: some Sequence<EventLogRecord>) -> (applied: Int, duplicates: Int) {
        var applied = 0
        var duplicates = 0
        for record in records {
            switch apply(record) {
            case .applied: applied += 1
            case .duplicateEvent, .duplicateBatch: duplicates += 1
            case .alreadyApplied: break
            }
        }
        return (applied, duplicates)
    }

    /// Moves past a record that cannot be decoded (``EventLogError/malformedEntry(at:reason:resumeAfter:)``):
    /// every server skips it the same way, counting nothing.
    public mutating func skip(through position: EventLogPosition) {
        if let lastApplied, position <= lastApplied { return }
        lastApplied = position
    }

    /// The immutable value readers use; cheap (it shares storage with this overlay until the next change).
    ///
    /// `snapshot` is the profile snapshot the overlay sits on (its folded state and watermark, SPEC 9.6): a
    /// Decide reads both from this one value, so a swap publishes them together.
    public func published(snapshot: ProfileSnapshot? = nil) -> LiveOverlaySnapshot {
        LiveOverlaySnapshot(
            profiles: profiles, totals: totals, offers: offers, lastApplied: lastApplied, logClockMs: logClockMs,
            snapshot: snapshot)
    }

    /// Profile keys with live state (the `offerd_overlay_keys` metric).
    public var keyCount: Int { profiles.count }

    /// Live counters of every profile key, and total counters (memory measurements; walks every key).
    public var counterCount: (profiles: Int, totals: Int) {
        (profiles.sum { $0.counters.count }, totals.count)
    }

    /// Drops event ids older than ``eventIDRetentionMs`` and period counters before the previous bucket of the
    /// log's clock, and keys left with nothing. Changes no answer of a reader asking about `now` within a period
    /// of the log's clock, and no duplicate decision.
    public mutating func expire() {
        guard logClockMs != .min else { return }
        let clock = logClockMs
        // The current buckets as counters store them (clamped), so that comparing them is comparing periods.
        func current(_ period: CappingPeriod) -> Int64 {
            PackedCounterKey(
                offer: 0, event: .decision, period: period, bucket: CalendarBuckets.bucket(period, timeMs: clock)
            )
            .bucket
        }
        let day = current(.day)
        let week = current(.week)
        let month = current(.month)
        func keep(_ key: PackedCounterKey) -> Bool {
            switch key.period {
            case .lifetime: true
            case .day: key.bucket >= day - 1
            case .week: key.bucket >= week - 1
            case .month: key.bucket >= month - 1
            }
        }
        profiles.compact { _, state in
            var state = state
            state.counters.keep(where: keep)
            state.eventIDs.keep { clock - $0 <= Self.eventIDRetentionMs }
            return state.counters.isEmpty && state.eventIDs.isEmpty && state.consents.isEmpty ? nil : state
        }
        totals.keep(where: keep)
    }

    private mutating func isCopyOfAppliedBatch(_ entry: EventLogEntry) -> Bool {
        if let current = currentBatch, current.server == entry.serverID, current.batch == entry.batchNumber {
            return current.skipping
        }
        let skipping = lastBatchByServer[entry.serverID].map { entry.batchNumber <= $0 } ?? false
        currentBatch = (entry.serverID, entry.batchNumber, skipping)
        if !skipping { lastBatchByServer[entry.serverID] = entry.batchNumber }
        return skipping
    }

    static func cappingEvent(_ type: EventLogEventType) -> CappingEvent {
        switch type {
        case .display: .display
        case .interact: .interact
        default: .decision
        }
    }

    /// Which periods an entry counts in: every one, or (at or before the snapshot's watermark, SPEC 9.6) the
    /// calendar ones only, or (re-reading after a rebase) the lifetime alone.
    enum CountedPeriods {
        case all, calendar, lifetime
    }

    /// Appends to `counters` every counter `entry` adds 1 to: each distinct offer, in each of `periods`.
    private mutating func counters(
        of entry: EventLogEntry, event: CappingEvent, periods: CountedPeriods, into counters: inout [PackedCounterKey]
    ) {
        let firstOfOffer = counters.count
        let (day, week, month) = calendar.buckets(timeMs: entry.timeMs)
        // One counter per offer first (distinct offers), then the other periods of each.
        let firstPeriod: CappingPeriod = periods == .calendar ? .day : .lifetime
        let firstBucket = periods == .calendar ? day : 0
        for offer in entry.offerIDs {
            let key = PackedCounterKey(
                offer: recentOffers.number(for: offer, in: &offers), event: event, period: firstPeriod,
                bucket: firstBucket)
            // An entry names few offers; past 16 duplicates are removed by sorting instead (hostile entries).
            if counters.count - firstOfOffer >= 16 || !counters[firstOfOffer...].contains(key) {
                counters.append(key)
            }
        }
        if counters.count - firstOfOffer > 16 {
            counters[firstOfOffer...].sort()
            var kept = firstOfOffer
            for index in firstOfOffer..<counters.count
            where index == firstOfOffer || counters[index] != counters[kept - 1] {
                counters[kept] = counters[index]
                kept += 1
            }
            counters.removeSubrange(kept...)
        }
        guard periods != .lifetime else { return }
        for index in firstOfOffer..<counters.count {
            let offer = counters[index].offer
            if periods == .all {
                counters.append(PackedCounterKey(offer: offer, event: event, period: .day, bucket: day))
            }
            counters.append(PackedCounterKey(offer: offer, event: event, period: .week, bucket: week))
            counters.append(PackedCounterKey(offer: offer, event: event, period: .month, bucket: month))
        }
    }
}

/// The overlay as readers see it: immutable, read without locks from any thread (see ``LiveOverlay``).
public final class LiveOverlaySnapshot: Sendable {
    private let profiles: ShardedDictionary<EventLogProfileKey, LiveProfileState>
    let totals: CounterList
    let offers: OfferNumbers
    /// The last position this value reflects.
    public let lastApplied: EventLogPosition?
    /// The log's clock when it was published (``LiveOverlay/logClockMs``).
    public let logClockMs: Int64
    /// This server's own events not yet applied, counted on top (see ``PendingCounts``).
    public let pending: PendingCounts
    /// The profile snapshot this overlay's lifetime counters and consents sit on (nil in tests that need none).
    public let snapshot: ProfileSnapshot?

    init(
        profiles: ShardedDictionary<EventLogProfileKey, LiveProfileState>, totals: CounterList,
        offers: OfferNumbers, lastApplied: EventLogPosition?, logClockMs: Int64,
        pending: PendingCounts = PendingCounts(), snapshot: ProfileSnapshot? = nil
    ) {
        self.profiles = profiles
        self.totals = totals
        self.offers = offers
        self.lastApplied = lastApplied
        self.logClockMs = logClockMs
        self.pending = pending
        self.snapshot = snapshot
    }

    /// The same overlay with `pending` counted on top; shares the overlay's storage.
    public func with(pending: PendingCounts) -> LiveOverlaySnapshot {
        LiveOverlaySnapshot(
            profiles: profiles, totals: totals, offers: offers, lastApplied: lastApplied, logClockMs: logClockMs,
            pending: pending, snapshot: snapshot)
    }

    /// An empty overlay (nothing applied).
    public static let empty = LiveOverlay().published()

    /// The overlay of a snapshot's folded state alone (SPEC 9.6), for deciding without an event log
    /// (`--events none`, `offerd decide`): folded lifetime counts and totals, folded consents, no period counts.
    /// Nil when the snapshot folded nothing (then the snapshot's own values are the whole story).
    public static func foldedOnly(_ snapshot: ProfileSnapshot) -> LiveOverlaySnapshot? {
        guard snapshot.hasFoldedState else { return nil }
        return LiveOverlay(folded: snapshot.folded, watermark: nil).published(snapshot: snapshot)
    }

    /// Profile keys with live state.
    public var keyCount: Int { profiles.count }

    /// What the overlay holds for `key`; nil when nothing.
    public func state(for key: EventLogProfileKey) -> LiveProfileState? { profiles[key] }

    /// False when the profile key with this hash has nothing here and nothing is pending: a Decide for it then
    /// counts and consents exactly as without a log, unless the catalog has `total` rules (the totals count for
    /// every key). True for every key with live state, and for about 1 in 70 to 1 in 270 of the others (the
    /// profile table's filters, see ``ShardedDictionary``): those take
    /// ``decideInputs(for:keyHash:snapshotConsents:)``, which finds nothing.
    ///
    /// Why: building the key's strings, hashing them and probing the table, then handing the engine the counts,
    /// cost a profile with nothing live about 0.6 µs a Decide over a server without a log (benchmarks/README.md).
    public func mayHaveState(_ key: LiveProfileKeyHash) -> Bool {
        pending.mayContain(hash: key.value) || profiles.mayContain(hash: key.value)
    }

    /// The counts a Decide for `key` reads (the engine's ``LiveCappingCounts``).
    public func counts(for key: EventLogProfileKey) -> LiveCounts {
        liveCounts(profiles[key], key: key, hash: LiveProfileKeyHash(key))
    }

    private func liveCounts(_ state: LiveProfileState?, key: EventLogProfileKey, hash: LiveProfileKeyHash) -> LiveCounts
    {
        LiveCounts(
            overlay: self, counters: state.flatMap { $0.counters.isEmpty ? nil : $0.counters },
            pendingCounters: pending.isEmpty ? nil : pending.counters(for: key, hash: hash.value))
    }

    /// What a Decide for `key` reads, with one lookup: its counts and its consents (`snapshotConsents` with the
    /// key's updates applied, SPEC 9.5).
    /// `keyHash`, when given, is `key`'s ``LiveProfileKeyHash`` (the one ``mayHaveState(_:)`` was asked with).
    public func decideInputs(
        for key: EventLogProfileKey, keyHash: LiveProfileKeyHash? = nil, snapshotConsents: ConsentRecord
    ) -> (counts: LiveCounts, consents: ConsentRecord) {
        let hash = keyHash ?? LiveProfileKeyHash(key)
        let state = profiles[key, hash: hash.value]
        return (
            liveCounts(state, key: key, hash: hash),
            state?.consents.applied(to: snapshotConsents) ?? snapshotConsents
        )
    }

    /// The consents Decide uses for `key`: `snapshotConsents` with the key's updates applied (SPEC 9.5).
    public func consents(for key: EventLogProfileKey, snapshotConsents: ConsentRecord) -> ConsentRecord {
        guard let state = profiles[key] else { return snapshotConsents }
        return state.consents.applied(to: snapshotConsents)
    }

    /// True when `eventID` was applied for `key` within the retention (RecordEvents' `duplicates`).
    public func knows(eventID: String, for key: EventLogProfileKey) -> Bool {
        guard let seen = profiles[key]?.eventIDs[eventID] else { return false }
        return logClockMs - seen <= LiveOverlay.eventIDRetentionMs
    }

    /// The total counter of `offer`, `event`, `period` at the bucket holding `timeMs` (tests, metrics).
    public func total(offer: String, event: CappingEvent, period: CappingPeriod, timeMs: Int64) -> Int {
        guard let number = offers.existingNumber(offer) else { return 0 }
        return totals[
            PackedCounterKey(
                offer: number, event: event, period: period, bucket: CalendarBuckets.bucket(period, timeMs: timeMs))]
    }

    /// The counters of `key`, by offer id (tests, diagnostics).
    public func counters(for key: EventLogProfileKey) -> [LiveCounterKey: Int] {
        var result: [LiveCounterKey: Int] = [:]
        for counter in profiles[key]?.counters.counters ?? [] {
            let packed = counter.key
            result[
                LiveCounterKey(
                    offer: offers.names[Int(packed.offer)], event: packed.event, period: packed.period,
                    bucket: packed.bucket)] = counter.count
        }
        return result
    }

    /// Live counters of every profile key and total counters (the overlay's size, for memory measurements).
    public var counterCount: (profiles: Int, totals: Int) {
        (profiles.sum { $0.counters.count }, totals.count)
    }
}

/// One profile key's live counts and the totals, as the engine asks for them (SPEC 9.3).
///
/// Three references, so that the engine's `any LiveCappingCounts` holds it inline (no allocation per Decide).
public struct LiveCounts: LiveCappingCounts, Sendable {
    let overlay: LiveOverlaySnapshot
    /// The key's counters; nil when it has none.
    let counters: CounterList?
    /// The key's pending counters; nil when none (the common case: no second lookup).
    let pendingCounters: [LiveCounterKey: Int]?

    public var hasProfileCounts: Bool { counters != nil || pendingCounters != nil }

    public func count(
        offer: InternedName, event: CappingEvent, period: CappingPeriod, scope: CappingScope, now: Double
    ) -> Int {
        // Nothing for this key and nothing pending (most profiles): no lookup at all.
        if scope == .profile && counters == nil && pendingCounters == nil { return 0 }
        let bucket = CalendarBuckets.bucket(period, now: now)
        var count = 0
        if let number = overlay.offers.existingNumber(offer) {
            let key = PackedCounterKey(offer: number, event: event, period: period, bucket: bucket)
            switch scope {
            case .profile: count = counters?[key] ?? 0
            case .total: count = overlay.totals[key]
            }
        }
        switch scope {
        case .profile:
            if let pendingCounters {
                count +=
                    pendingCounters[LiveCounterKey(offer: offer.name, event: event, period: period, bucket: bucket)]
                    ?? 0
            }
        case .total:
            if !overlay.pending.isEmpty {
                count += overlay.pending.totalCount(
                    LiveCounterKey(offer: offer.name, event: event, period: period, bucket: bucket))
            }
        }
        return count
    }
}
