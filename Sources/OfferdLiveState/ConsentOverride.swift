import OfferdCore

/// The consent values a profile key's updates set (SPEC 9.5): each of the six keys offerd reads is either set
/// (it replaces the snapshot's value) or not (the snapshot's value stands).
///
/// Updates merge key by key in log order, the later value winning; a key an update does not name keeps what
/// earlier updates set.
public struct ConsentOverride: Hashable, Sendable {
    public private(set) var personalizeContent: ConsentChoice?
    public private(set) var marketingAny: ConsentChoice?
    public private(set) var marketingEmail: ConsentChoice?
    public private(set) var marketingSMS: ConsentChoice?
    public private(set) var marketingPush: ConsentChoice?
    public private(set) var marketingCall: ConsentChoice?

    public init() {}

    /// The consent keys of SPEC 9.5, as `UpdateConsent` names them.
    public static let keys = [
        "personalize.content", "marketing.any", "marketing.email", "marketing.sms", "marketing.push",
        "marketing.call",
    ]

    /// True when no key is set.
    public var isEmpty: Bool { self == ConsentOverride() }

    /// Sets `key` (one of ``keys``) to the XDM choice `value`. Returns false, changing nothing, for an unknown key
    /// or a value that is not a choice value: the RPC layer refuses those, so a log entry that has one was written
    /// by something else, and an unknown key must not be guessed at.
    @discardableResult
    public mutating func set(_ key: String, xdmValue value: String) -> Bool {
        guard let choice = ConsentChoice(xdmValue: value) else { return false }
        switch key {
        case "personalize.content": personalizeContent = choice
        case "marketing.any": marketingAny = choice
        case "marketing.email": marketingEmail = choice
        case "marketing.sms": marketingSMS = choice
        case "marketing.push": marketingPush = choice
        case "marketing.call": marketingCall = choice
        default: return false
        }
        return true
    }

    /// `record` with every key this override sets replaced (SPEC 9.5: the given values replace the snapshot's).
    public func applied(to record: ConsentRecord) -> ConsentRecord {
        var result = record
        if let personalizeContent { result.personalizeContent = personalizeContent }
        if let marketingAny { result.marketingAny = marketingAny }
        if let marketingEmail { result.marketingEmail = marketingEmail }
        if let marketingSMS { result.marketingSMS = marketingSMS }
        if let marketingPush { result.marketingPush = marketingPush }
        if let marketingCall { result.marketingCall = marketingCall }
        return result
    }
}
