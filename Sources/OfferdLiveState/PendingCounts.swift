import OfferdCore
import OfferdEventLog

/// A server's own decision events that count on it before its follower has read them back from the log (SPEC
/// 9.1: "decision events buffered meanwhile count on the server that made them at once"; the design sketch's
/// pending table).
///
/// Counted exactly as ``LiveOverlay`` counts them (one per distinct offer of an entry, in every period), so that
/// an entry moved from here to the overlay changes no answer. The runtime adds an entry when the writer takes
/// it and subtracts it when the follower applies it or the buffer drops it, publishing both tables together.
public struct PendingCounts: Hashable, Sendable {
    private var profiles: [EventLogProfileKey: [LiveCounterKey: Int]] = [:]
    private var totals: [LiveCounterKey: Int] = [:]

    public init() {}

    /// True when nothing is pending.
    public var isEmpty: Bool { profiles.isEmpty && totals.isEmpty }

    /// Counts a decision, display or interact entry (other types count nowhere).
    public mutating func add(_ entry: EventLogEntry) { change(entry, by: 1) }

    /// Takes back what ``add(_:)`` counted for `entry`.
    public mutating func remove(_ entry: EventLogEntry) { change(entry, by: -1) }

    private mutating func change(_ entry: EventLogEntry, by delta: Int) {
        guard entry.type == .decision || entry.type == .display || entry.type == .interact else { return }
        let event = LiveOverlay.cappingEvent(entry.type)
        var seen: Set<String> = []
        for offer in entry.offerIDs where seen.insert(offer).inserted {
            for period in CappingPeriod.allCases {
                let key = LiveCounterKey(
                    offer: offer, event: event, period: period,
                    bucket: CalendarBuckets.bucket(period, timeMs: entry.timeMs))
                Self.add(delta, at: key, in: &totals)
                var counters = profiles[entry.key] ?? [:]
                Self.add(delta, at: key, in: &counters)
                profiles[entry.key] = counters.isEmpty ? nil : counters
            }
        }
    }

    private static func add(_ delta: Int, at key: LiveCounterKey, in table: inout [LiveCounterKey: Int]) {
        let value = (table[key] ?? 0) + delta
        table[key] = value == 0 ? nil : value
    }

    func profileCount(_ key: EventLogProfileKey, _ counter: LiveCounterKey) -> Int { profiles[key]?[counter] ?? 0 }
    func totalCount(_ counter: LiveCounterKey) -> Int { totals[counter] ?? 0 }
    func counters(for key: EventLogProfileKey) -> [LiveCounterKey: Int]? { profiles[key] }
    var totalCounters: [LiveCounterKey: Int] { totals }
}
