/// The counts an event log adds to a snapshot's (SPEC 9.3), as one Decide call sees them: bound to the deciding
/// profile's key for `profile` rules, shared by every profile for `total` rules.
///
/// Without one (`--events none`, or no live state built yet) a rule counts what the snapshot holds: a `profile`
/// and `lifetime` rule the profile's count for the offer and event type (SPEC 5.1), every other rule zero, so a
/// `total` or `day`/`week`/`month` rule never caps without a log. With one, a `profile`/`lifetime` rule counts the
/// snapshot's count plus ``count(offer:event:period:scope:now:)``, every other rule that alone.
///
/// The engine asks only about offers that have rules, once per rule and candidate; an implementation answers
/// from memory without blocking (the overlay's published value).
public protocol LiveCappingCounts {
    /// False when this profile's key has no live counter at all, so that every `.profile` count is zero: the
    /// engine then asks only about `total` rules, and a catalog without them asks nothing (most profiles of a
    /// running server have nothing live; asking per candidate and rule cost them about 0.8 µs a Decide).
    var hasProfileCounts: Bool { get }

    /// Events of type `event` naming `offer` whose time falls in the UTC calendar `period` that holds `now`
    /// (epoch seconds), counted for this profile's key (`.profile`) or for every key (`.total`).
    func count(offer: InternedName, event: CappingEvent, period: CappingPeriod, scope: CappingScope, now: Double)
        -> Int
}

extension LiveCappingCounts {
    /// An implementation that cannot tell is asked every time.
    public var hasProfileCounts: Bool { true }
}

/// No live counts: what the engine holds without an event log (it never asks it: see `hasLiveCounts`).
struct NoLiveCounts: LiveCappingCounts {
    var hasProfileCounts: Bool { false }

    func count(offer: InternedName, event: CappingEvent, period: CappingPeriod, scope: CappingScope, now: Double)
        -> Int
    { 0 }
}
