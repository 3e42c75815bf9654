import OfferdCore

/// A decoded `offerd.v1.DecideResponse` as a client sees it: what ``DecideCodec/decodeResponse(_:)`` returns,
/// for tests, benchmarks and tools.
public struct DecideResponseMessage: Sendable, Equatable {
    public var requestID: String
    public var propositions: [PropositionMessage]
    public var profileFound: Bool
    public var catalogVersion: String
    public var snapshotVersion: String

    public init(
        requestID: String, propositions: [PropositionMessage], profileFound: Bool, catalogVersion: String,
        snapshotVersion: String
    ) {
        self.requestID = requestID
        self.propositions = propositions
        self.profileFound = profileFound
        self.catalogVersion = catalogVersion
        self.snapshotVersion = snapshotVersion
    }
}

/// A decoded `offerd.v1.Proposition`.
public struct PropositionMessage: Sendable, Equatable {
    public var propositionID: String
    public var decisionID: String
    public var placementID: String
    /// The `Outcome` enum number as sent (a newer server may send values this build does not know).
    public var outcomeNumber: Int
    /// The `Reason` enum number as sent.
    public var reasonNumber: Int
    public var items: [ItemMessage]
    public var trace: [TraceEntryMessage]

    public init(
        propositionID: String, decisionID: String, placementID: String, outcomeNumber: Int, reasonNumber: Int,
        items: [ItemMessage], trace: [TraceEntryMessage]
    ) {
        self.propositionID = propositionID
        self.decisionID = decisionID
        self.placementID = placementID
        self.outcomeNumber = outcomeNumber
        self.reasonNumber = reasonNumber
        self.items = items
        self.trace = trace
    }

    /// The outcome, when its number is one this build knows.
    public var outcome: Outcome? { Outcome(rawValue: outcomeNumber) }
    /// The reason, when its number is one this build knows.
    public var reason: Reason? { Reason(rawValue: reasonNumber) }
}

/// A decoded `offerd.v1.Item`; unset proto3 strings read as `""`.
public struct ItemMessage: Sendable, Equatable {
    public var id: String
    public var format: String
    public var content: String
    public var deliveryURL: String
    public var linkURL: String
    public var language: [String]
    public var name: String
    public var priority: Int
    /// In wire order.
    public var characteristics: [Characteristic]
    /// `nil` exactly when the field was absent on the wire (proto3 explicit presence).
    public var score: Double?

    public init(
        id: String, format: String = "", content: String = "", deliveryURL: String = "", linkURL: String = "",
        language: [String] = [], name: String = "", priority: Int = 0, characteristics: [Characteristic] = [],
        score: Double? = nil
    ) {
        self.id = id
        self.format = format
        self.content = content
        self.deliveryURL = deliveryURL
        self.linkURL = linkURL
        self.language = language
        self.name = name
        self.priority = priority
        self.characteristics = characteristics
        self.score = score
    }
}

/// A decoded `offerd.v1.TraceEntry`.
public struct TraceEntryMessage: Sendable, Equatable {
    public var offerID: String
    public var criterion: String
    public var verdict: String
    public var collectionID: String
    /// Present exactly when the entry carries a formula score.
    public var score: Double?
    public var detail: String

    public init(
        offerID: String, criterion: String, verdict: String, collectionID: String = "", score: Double? = nil,
        detail: String = ""
    ) {
        self.offerID = offerID
        self.criterion = criterion
        self.verdict = verdict
        self.collectionID = collectionID
        self.score = score
        self.detail = detail
    }
}
