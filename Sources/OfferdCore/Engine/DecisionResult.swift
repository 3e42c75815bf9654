/// What a proposition holds (SPEC 2.2 `Outcome`). Raw values are the proto's.
public enum Outcome: Int, Sendable, CaseIterable {
    case unspecified = 0
    case offers = 1
    case fallback = 2
    case suppressed = 3
    case error = 4
}

/// Why a proposition is not plain offers (SPEC 2.2 `Reason`). Raw values are the proto's.
public enum Reason: Int, Sendable, CaseIterable {
    case unspecified = 0
    case noEligibleOffers = 1
    case personalizationDenied = 2
    case marketingDenied = 3
    case unknownProfile = 4
    case decisionNotFound = 5
    case placementNotInDecision = 6
    case decisionInactive = 7
}

/// An offer's content for one placement (a catalog `representations` entry).
public struct Representation: Sendable, Equatable {
    public var placementID: String
    public var format: String?
    public var language: [String]
    public var content: String?
    public var deliveryURL: String?
    public var linkURL: String?

    public init(
        placementID: String, format: String? = nil, language: [String] = [], content: String? = nil,
        deliveryURL: String? = nil, linkURL: String? = nil
    ) {
        self.placementID = placementID
        self.format = format
        self.language = language
        self.content = content
        self.deliveryURL = deliveryURL
        self.linkURL = linkURL
    }
}

/// One key/value pair of an offer's `characteristics`, in catalog order.
public struct Characteristic: Sendable, Equatable {
    public var key: String
    public var value: String

    public init(key: String, value: String) {
        self.key = key
        self.value = value
    }
}

/// One proposed item: an offer or a fallback offer, with its representation
/// for the proposition's placement.
public struct DecidedItem: Sendable, Equatable {
    /// The offer's part of the item, shared: the catalog builds one per offer and representation at load, so an
    /// item costs one reference to copy instead of one per string it carries.
    private var content: DecidedItemContent
    /// The offer's priority; 0 for a fallback offer.
    public var priority: Int
    /// Present exactly when the offer was ranked by a formula.
    public var score: Double?
    /// Whether this is the decision's fallback offer (never personalized).
    public var isFallback: Bool

    // `_read` lends the shared content's fields to readers (the wire encoder) without copying them.
    public var id: String {
        _read { yield content.id }
        set { content = content.with { $0.id = newValue } }
    }

    public var name: String? {
        _read { yield content.name }
        set { content = content.with { $0.name = newValue } }
    }

    public var characteristics: [Characteristic] {
        _read { yield content.characteristics }
        set { content = content.with { $0.characteristics = newValue } }
    }

    public var representation: Representation {
        _read { yield content.representation }
        set { content = content.with { $0.representation = newValue } }
    }

    public init(
        id: String, name: String?, priority: Int, characteristics: [Characteristic],
        representation: Representation, score: Double?, isFallback: Bool
    ) {
        self.init(
            content: DecidedItemContent(
                id: id, name: name, characteristics: characteristics, representation: representation),
            priority: priority,
            score: score,
            isFallback: isFallback
        )
    }

    init(content: DecidedItemContent, priority: Int, score: Double?, isFallback: Bool) {
        self.content = content
        self.priority = priority
        self.score = score
        self.isFallback = isFallback
    }

    public static func == (lhs: DecidedItem, rhs: DecidedItem) -> Bool {
        lhs.priority == rhs.priority && lhs.score == rhs.score && lhs.isFallback == rhs.isFallback
            && (lhs.content === rhs.content || lhs.content.hasSameValues(as: rhs.content))
    }
}

/// The offer-given fields of a ``DecidedItem``: immutable, so items share it.
final class DecidedItemContent: Sendable {
    let id: String
    let name: String?
    let characteristics: [Characteristic]
    let representation: Representation

    init(id: String, name: String?, characteristics: [Characteristic], representation: Representation) {
        self.id = id
        self.name = name
        self.characteristics = characteristics
        self.representation = representation
    }

    /// One content per representation of an offer, in the same order (built at catalog load).
    static func forEach(
        of representations: [Representation], id: String, name: String?, characteristics: [Characteristic]
    ) -> [DecidedItemContent] {
        representations.map { representation in
            DecidedItemContent(id: id, name: name, characteristics: characteristics, representation: representation)
        }
    }

    /// A copy with one field changed (the setters of ``DecidedItem``).
    func with(_ change: (inout Fields) -> Void) -> DecidedItemContent {
        var fields = Fields(id: id, name: name, characteristics: characteristics, representation: representation)
        change(&fields)
        return DecidedItemContent(
            id: fields.id, name: fields.name, characteristics: fields.characteristics,
            representation: fields.representation)
    }

    func hasSameValues(as other: DecidedItemContent) -> Bool {
        id == other.id && name == other.name && characteristics == other.characteristics
            && representation == other.representation
    }

    struct Fields {
        var id: String
        var name: String?
        var characteristics: [Characteristic]
        var representation: Representation
    }
}

/// Why a candidate offer was or was not chosen (SPEC 2.2 `TraceEntry.verdict`).
public enum TraceVerdict: String, Sendable, CaseIterable {
    case chosen
    case notApproved = "not-approved"
    case outsideDates = "outside-dates"
    case noRepresentation = "no-representation"
    case ineligible
    case criterionIneligible = "criterion-ineligible"
    case capped
    case duplicate
    case rankedOut = "ranked-out"
    /// Proposition-level: the placement's marketing channel is denied (SUPPRESSED before any criterion).
    case marketingDenied = "marketing-denied"
    /// Proposition-level: personalization is denied, so only the fallback is shown.
    case personalizationDenied = "personalization-denied"
    /// Proposition-level: the identity is not in the snapshot and the server answers those with the fallback.
    case unknownProfile = "unknown-profile"
}

/// One line of an explain trace: a candidate offer of one criterion, or the one line of a proposition decided before
/// any criterion (by consent or the unknown-profile policy; ``offerID`` and ``criterion`` are then empty).
public struct TraceEntry: Sendable, Equatable {
    public var offerID: String
    /// The criterion's 0-based index as a decimal string.
    public var criterion: String
    public var verdict: TraceVerdict
    /// The id of the criterion's collection.
    public var collectionID: String
    /// The offer's formula score, when the criterion ranks by formula and the offer reached the ranking (`chosen`,
    /// `ranked-out`).
    public var score: Double?
    /// Why, in words, for a proposition-level entry.
    public var detail: String

    public init(
        offerID: String, criterion: String, verdict: TraceVerdict, collectionID: String = "", score: Double? = nil,
        detail: String = ""
    ) {
        self.offerID = offerID
        self.criterion = criterion
        self.verdict = verdict
        self.collectionID = collectionID
        self.score = score
        self.detail = detail
    }

    /// The one entry of a proposition decided before any criterion.
    public static func proposition(_ verdict: TraceVerdict, detail: String) -> TraceEntry {
        TraceEntry(offerID: "", criterion: "", verdict: verdict, detail: detail)
    }
}

/// The answer for one scope.
public struct Proposition: Sendable, Equatable {
    public var decisionID: String
    public var placementID: String
    public var outcome: Outcome
    public var reason: Reason
    public var items: [DecidedItem]
    /// Only filled when the request asked for `explain`.
    public var trace: [TraceEntry]

    public init(
        decisionID: String, placementID: String, outcome: Outcome, reason: Reason, items: [DecidedItem] = [],
        trace: [TraceEntry] = []
    ) {
        self.decisionID = decisionID
        self.placementID = placementID
        self.outcome = outcome
        self.reason = reason
        self.items = items
        self.trace = trace
    }
}

/// The engine's answer to a ``DecisionRequest``: one proposition per scope,
/// in request order. Request ids, proposition ids and the snapshot version are
/// added by the caller (the engine is deterministic and knows no snapshot).
public struct DecisionResult: Sendable, Equatable {
    public var propositions: [Proposition]
    public var profileFound: Bool
    public var catalogVersion: String

    public init(propositions: [Proposition], profileFound: Bool, catalogVersion: String) {
        self.propositions = propositions
        self.profileFound = profileFound
        self.catalogVersion = catalogVersion
    }
}
