/// Whose events a capping rule counts (SPEC 3). Raw values are the catalog spellings.
public enum CappingScope: String, Sendable, CaseIterable {
    /// The deciding profile's events.
    case profile
    /// Every profile's events.
    case total
}

/// Which events a capping rule counts (SPEC 3, 9.2). Raw values are the catalog spellings.
public enum CappingEvent: String, Sendable, CaseIterable {
    /// The offer was proposed in an OFFERS proposition.
    case decision
    /// A `display` feedback event named the offer.
    case display
    /// An `interact` feedback event named the offer.
    case interact
}

/// The calendar period whose events a capping rule counts (SPEC 3). Raw values are the catalog spellings.
public enum CappingPeriod: String, Sendable, CaseIterable {
    /// Every event ever counted.
    case lifetime
    /// Events since 00:00 UTC today.
    case day
    /// Events since the last Sunday 00:00 UTC.
    case week
    /// Events since the 1st of this month 00:00 UTC.
    case month
}

/// One capping rule of an offer: the offer is capped when the rule's count reaches `limit` (SPEC 3, 9.3).
public struct CappingRule: Hashable, Sendable {
    public var limit: Int
    public var scope: CappingScope
    public var event: CappingEvent
    public var period: CappingPeriod

    public init(
        limit: Int, scope: CappingScope = .profile, event: CappingEvent = .decision, period: CappingPeriod = .lifetime
    ) {
        self.limit = limit
        self.scope = scope
        self.event = event
        self.period = period
    }

    /// True for the one kind of rule a snapshot's per-profile counts feed (SPEC 5.1, 9.3): `profile` and
    /// `lifetime`. Every other rule counts events of the event log only.
    public var readsProfileCounts: Bool { scope == .profile && period == .lifetime }

    /// The most rules an offer may have (SPEC 3).
    public static let maximumPerOffer = 10
}

/// A profile's lifetime counts for one offer, per event type (SPEC 5.1): the source's integer form sets
/// `decision` alone, its object form any of the three.
public struct CappingCounts: Hashable, Sendable, ExpressibleByIntegerLiteral {
    public var decision: Int
    public var display: Int
    public var interact: Int

    public init(decision: Int = 0, display: Int = 0, interact: Int = 0) {
        self.decision = decision
        self.display = display
        self.interact = interact
    }

    /// The integer form of SPEC 5.1: decision events only.
    public init(integerLiteral value: Int) {
        self.init(decision: value)
    }

    /// The count of `event`.
    public subscript(event: CappingEvent) -> Int {
        get {
            switch event {
            case .decision: decision
            case .display: display
            case .interact: interact
            }
        }
        set {
            switch event {
            case .decision: decision = newValue
            case .display: display = newValue
            case .interact: interact = newValue
            }
        }
    }

    /// True when the source's integer form says the same (only decision events counted).
    public var isDecisionOnly: Bool { display == 0 && interact == 0 }
}
