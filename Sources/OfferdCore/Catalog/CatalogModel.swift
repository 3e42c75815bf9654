/// The content type of a placement (SPEC 3). Raw values are the catalog spellings.
public enum ContentType: String, Sendable, CaseIterable {
    case text, html, image, json
}

/// An offer's lifecycle status (SPEC 3): only `approved` is ever proposed.
public enum OfferStatus: String, Sendable, CaseIterable {
    case draft, approved, archived
}

/// A decision's lifecycle status (SPEC 3): only `live` decides.
public enum DecisionStatus: String, Sendable, CaseIterable {
    case draft, live, completed, archived
}

/// Where an offer is shown.
public struct Placement: Sendable, Equatable {
    public let id: String
    public let name: String?
    public let channel: Channel
    public let contentType: ContentType
}

/// An eligibility test compiled at load: a rule (referenced or inline) or audiences.
enum Eligibility: Sendable {
    case condition(CompiledRule)
    case anyAudiences([InternedName])
    case allAudiences([InternedName])

    func isEligible<Profile: ProfileView>(in environment: RuleEnvironment<Profile>) -> Bool {
        environment.withInputs { profile, inputs in isEligible(profile: profile, inputs: inputs, offer: inputs.offer) }
    }

    /// The decision loop's form: see ``RuleInputs`` for why the profile is a separate generic argument. `offer`
    /// stands in for `inputs.offer`, so the loop passes the candidate without copying the inputs.
    /// An unknown profile is an ``AbsentProfile``, which belongs to no audience.
    func isEligible<Profile: ProfileView>(profile: Profile, inputs: RuleInputs, offer: OfferDefinition?) -> Bool {
        var memo = ConditionMemo()
        return isEligible(profile: profile, inputs: inputs, offer: offer, memo: &memo)
    }

    /// ``isEligible(profile:inputs:offer:)`` with the request's memo of offer-independent conditions.
    func isEligible<Profile: ProfileView>(
        profile: Profile,
        inputs: RuleInputs,
        offer: OfferDefinition?,
        memo: inout ConditionMemo
    ) -> Bool {
        switch self {
        case .condition(let rule):
            return rule.isTrue(profile: profile, inputs: inputs, offer: offer, memo: &memo)
        case .anyAudiences(let audiences):
            for audience in audiences where profile.isMember(of: audience) { return true }
            return false
        case .allAudiences(let audiences):
            for audience in audiences where !profile.isMember(of: audience) { return false }
            return true
        }
    }
}

/// A personalized offer, with everything the engine needs pre-computed.
///
/// A final class so that rule environments and candidate lists refer to it
/// without copying its arrays.
final class OfferDefinition: Sendable {
    /// Position in the catalog's `offers` (tag collections keep this order).
    let index: Int
    let id: String
    let internedID: InternedName
    let name: String?
    let status: OfferStatus
    let priority: Int
    /// Epoch seconds; `-infinity` when absent.
    let startDate: Double
    /// Epoch seconds; `+infinity` when absent.
    let endDate: Double
    let tags: [String]
    let characteristics: [Characteristic]
    /// Characteristic values by the catalog's characteristic slot (`.null` when the offer has none).
    let characteristicValues: [RuleValue]
    /// `number(...)` of each characteristic value, parsed once at load: formulas such as
    /// `number(offer.characteristics.margin) * 2` run per candidate, and `strtod` was a tenth of a decide.
    let characteristicNumbers: [RuleValue]
    let eligibility: Eligibility?
    /// The offer's capping rules in catalog order (at most ten): capped when any rule's count reaches its limit.
    let cappingRules: [CappingRule]
    /// True when a rule counts decision events: a Decide that proposes this offer records one (SPEC 9.2).
    let recordsDecisions: Bool
    let representations: [Representation]
    /// What an item of this offer carries, per representation (same indices), built once here.
    let itemContents: [DecidedItemContent]
    /// Representation index by placement index (nil: none for that placement).
    let representationByPlacement: [Int?]
    /// Rank of `id` in code-point order among all offers: the last tie-break.
    let idOrder: Int

    init(
        index: Int,
        id: String,
        name: String?,
        status: OfferStatus,
        priority: Int,
        startDate: Double,
        endDate: Double,
        tags: [String],
        characteristics: [Characteristic],
        characteristicValues: [RuleValue],
        eligibility: Eligibility?,
        cappingRules: [CappingRule],
        representations: [Representation],
        representationByPlacement: [Int?],
        idOrder: Int
    ) {
        self.index = index
        self.id = id
        internedID = InternedName(id)
        self.name = name
        self.status = status
        self.priority = priority
        self.startDate = startDate
        self.endDate = endDate
        self.tags = tags
        self.characteristics = characteristics
        self.characteristicValues = characteristicValues
        characteristicNumbers = characteristicValues.map { value in
            guard case .string(let text) = value else { return .null }
            return UnicodeText.strictNumber(text).map(RuleValue.number) ?? .null
        }
        self.eligibility = eligibility
        self.cappingRules = cappingRules
        recordsDecisions = cappingRules.contains { $0.event == .decision }
        self.representations = representations
        itemContents = DecidedItemContent.forEach(
            of: representations, id: id, name: name, characteristics: characteristics)
        self.representationByPlacement = representationByPlacement
        self.idOrder = idOrder
    }

    func isInsideDates(_ now: Double) -> Bool { startDate <= now && now < endDate }
}

/// A non-personalized offer shown when nothing else may be.
struct FallbackOfferDefinition: Sendable {
    let id: String
    let name: String?
    let status: OfferStatus
    let characteristics: [Characteristic]
    let representations: [Representation]
    let representationByPlacement: [Int?]
    /// What an item of this offer carries, per representation (same indices).
    let itemContents: [DecidedItemContent]

    init(
        id: String, name: String?, status: OfferStatus, characteristics: [Characteristic],
        representations: [Representation], representationByPlacement: [Int?]
    ) {
        self.id = id
        self.name = name
        self.status = status
        self.characteristics = characteristics
        self.representations = representations
        self.representationByPlacement = representationByPlacement
        itemContents = DecidedItemContent.forEach(
            of: representations, id: id, name: name, characteristics: characteristics)
    }
}

/// How a criterion orders its candidates.
enum Ranking: Sendable {
    case priority
    case formula(CompiledRule)
}

/// An offer of a criterion's collection that can ever be proposed for the
/// scope's placement (approved, with a representation there): the fast path
/// walks only these.
struct CandidateOffer: Sendable {
    let offer: OfferDefinition
    let representationIndex: Int
}

/// One evaluation criterion, bound to its decision scope's placement. A class so that the decision loop holds
/// it by one reference instead of copying its arrays.
final class CriterionDefinition: Sendable {
    /// The id of the criterion's collection (for the explain trace).
    let collectionID: String
    let eligibility: Eligibility?
    let ranking: Ranking
    /// Every offer of the collection, in collection order (for the explain trace).
    let collectionOffers: [OfferDefinition]
    /// The approved offers that have a representation for the placement, in collection order.
    let candidates: [CandidateOffer]
    /// The candidates by a rank known at load, when there is one (see ``StaticRanking``); nil when the ranking
    /// formula reads the request, so every candidate is scored per request.
    let staticRanking: StaticRanking?
    /// The formula folded for these candidates when it reads the request (see ``FormulaRanking``).
    let formulaRanking: FormulaRanking?
    /// The criterion's own eligibility when it is a few flat tests of request values (see ``InlineCondition``),
    /// answered from the request's typed values.
    let inlineEligibility: InlineCondition

    init(
        eligibility: Eligibility?,
        ranking: Ranking,
        collectionOffers: [OfferDefinition],
        candidates: [CandidateOffer],
        collectionID: String = ""
    ) {
        self.collectionID = collectionID
        self.eligibility = eligibility
        self.ranking = ranking
        self.collectionOffers = collectionOffers
        self.candidates = candidates
        if case .condition(let rule)? = eligibility, let program = rule.condition {
            inlineEligibility = InlineCondition(program)
        } else {
            inlineEligibility = .none
        }
        let staticRanking = StaticRanking(ranking: ranking, candidates: candidates)
        self.staticRanking = staticRanking
        if staticRanking == nil, case .formula(let formula) = ranking {
            formulaRanking = FormulaRanking(formula: formula.node, candidates: candidates)
        } else {
            formulaRanking = nil
        }
    }
}

/// A candidate with its rank folded at load.
struct StaticallyRankedCandidate: Sendable {
    let offer: OfferDefinition
    let representationIndex: Int
    /// The offer's priority, or its formula score (the value an item's `score` carries).
    let rank: Double
    /// The memo slot of the offer's eligibility condition when it has one. Kept here, beside the rank, so the
    /// decision loop can pass over a candidate whose shared condition already failed in this request without
    /// loading the offer (a cache miss and a retain per rejected candidate, measured under load).
    let eligibilityMemoSlot: Int?

    init(offer: OfferDefinition, representationIndex: Int, rank: Double) {
        self.offer = offer
        self.representationIndex = representationIndex
        self.rank = rank
        if case .condition(let rule)? = offer.eligibility {
            eligibilityMemoSlot = rule.memoSlot
        } else {
            eligibilityMemoSlot = nil
        }
    }
}

/// A criterion's candidates sorted by a rank that no request can change (the priority, or a formula of literals
/// and `offer.*` only), best first, cut into runs of equal rank.
///
/// Lets the decision loop test candidates one tie group at a time and stop once the scope's slots are full,
/// instead of testing the eligibility of every offer of the collection and then ranking. A class, so the loop holds
/// it by one reference.
final class StaticRanking: Sendable {
    /// Best rank first; equal ranks (`==`, so -0.0 ties 0.0) are contiguous.
    let candidates: [StaticallyRankedCandidate]
    /// What the decision loop tests of `candidates[i]`, at the same positions, as plain values: the loop reads
    /// these without loading the offer object (a retain, a release and a cache miss per candidate otherwise).
    let screens: [CandidateScreen]
    /// The UTF-8 of every candidate's offer id, back to back, for the tie hash.
    let offerIDBytes: [UInt8]
    /// Each candidate's offer id, interned, at the same positions: the capping lookup's key.
    let offerIDs: [InternedName]
    /// The bytes every candidate's offer id starts with (often a naming scheme's `offer-`), in `offerIDBytes`:
    /// the loop continues the tie hash over them once per request, then each candidate over the rest
    /// (``CandidateScreen/idSuffix``).
    let sharedIDPrefix: Range<Int>
    /// The end (exclusive) of each tie group in `candidates`, in order; the last is `candidates.count`.
    let groupEnds: [Int]
    /// A bound on one request value per candidate, which its eligibility needs: the loop passes over a candidate
    /// that misses it with one comparison.
    let gate: ThresholdGate

    /// Nil when `ranking` is a formula that reads the profile, the context, `now` or an audience.
    convenience init?(ranking: Ranking, candidates: [CandidateOffer]) {
        let ranks: [Double]
        switch ranking {
        case .priority:
            ranks = candidates.map { Double($0.offer.priority) }
        case .formula(let formula):
            guard formula.node.isRequestIndependent else { return nil }
            // The formula reads nothing of the request, so an empty one gives the score every request would.
            ranks = candidates.map { candidate in
                formula.node.score(
                    profile: AbsentProfile(),
                    inputs: RuleInputs(context: RuleValueSlots(), attributes: nil, now: 0, offer: candidate.offer)
                )
            }
        }
        self.init(candidates: candidates, ranks: ranks)
    }

    /// `candidates` by `ranks` (at the same positions), best first; equal ranks keep collection order.
    init(candidates: [CandidateOffer], ranks: [Double]) {
        // Stable by collection position (order inside a group does not matter: the tie-break is per person).
        let order = candidates.indices.sorted { lhs, rhs in
            ranks[lhs] != ranks[rhs] ? ranks[lhs] > ranks[rhs] : lhs < rhs
        }
        var sorted: [StaticallyRankedCandidate] = []
        sorted.reserveCapacity(candidates.count)
        var groupEnds: [Int] = []
        for position in order {
            if let last = sorted.last, last.rank != ranks[position] { groupEnds.append(sorted.count) }
            let candidate = candidates[position]
            sorted.append(
                StaticallyRankedCandidate(
                    offer: candidate.offer,
                    representationIndex: candidate.representationIndex,
                    rank: ranks[position]
                )
            )
        }
        if !sorted.isEmpty { groupEnds.append(sorted.count) }
        let ids = sorted.map { Array($0.offer.id.utf8) }
        var sharedLength = ids.first?.count ?? 0
        for id in ids.dropFirst() {
            sharedLength = min(sharedLength, zip(ids[0], id).prefix { $0 == $1 }.count)
        }
        var offerIDBytes: [UInt8] = []
        var screens: [CandidateScreen] = []
        for (candidate, id) in zip(sorted, ids) {
            let start = offerIDBytes.count
            offerIDBytes.append(contentsOf: id)
            let idSuffix = (start + sharedLength)..<offerIDBytes.count
            screens.append(CandidateScreen(candidate, idSuffix: idSuffix, idSuffixBytes: offerIDBytes[idSuffix]))
        }
        // The decision loop reads the ids' bytes through a pointer at these ranges.
        precondition(screens.allSatisfy { $0.idSuffix.upperBound <= offerIDBytes.count })
        self.screens = screens
        sharedIDPrefix = 0..<(ids.isEmpty ? 0 : sharedLength)
        self.offerIDBytes = offerIDBytes
        offerIDs = sorted.map(\.offer.internedID)
        self.candidates = sorted
        self.groupEnds = groupEnds
        gate = ThresholdGate(
            conditions: sorted.map { candidate in
                guard case .condition(let rule)? = candidate.offer.eligibility else { return nil }
                return rule.condition
            })
    }
}

/// The per-candidate facts the decision loop checks before it needs the offer itself, copied from the offer
/// at load. Only the inline condition holds references; the loop reads screens in place, so none is copied.
struct CandidateScreen: Sendable {
    let offerIndex: Int
    let representationIndex: Int
    let rank: Double
    /// Epoch seconds; `-infinity` when absent.
    let startDate: Double
    /// Epoch seconds; `+infinity` when absent.
    let endDate: Double
    /// True when the offer has capping rules (the loop then asks ``OfferDefinition/cappingRules``).
    let hasCappingRules: Bool
    /// The memo slot of the offer's eligibility condition; -1 when it has none (see
    /// ``StaticallyRankedCandidate/eligibilityMemoSlot``).
    let eligibilityMemoSlot: Int
    /// True when the offer has no eligibility at all.
    let alwaysEligible: Bool
    /// The offer's eligibility condition when it is a few flat tests of request values (see ``InlineCondition``).
    let inlineEligibility: InlineCondition
    let idOrder: Int
    /// Where the offer id's UTF-8 sits in ``StaticRanking/offerIDBytes``, past ``StaticRanking/sharedIDPrefix``.
    let idSuffix: Range<Int>
    /// The bytes at `idSuffix`, first byte lowest, when there are at most eight (``packedIDSuffixCount``): the tie
    /// hash of a tie group's candidates reads them from the screen, where the loop over `idSuffix` cost its range
    /// checks and an unrolled loop's set-up per candidate.
    let packedIDSuffix: UInt64
    /// How many bytes ``packedIDSuffix`` holds; -1 when the suffix is longer (the loop then reads `idSuffix`).
    let packedIDSuffixCount: Int

    init(_ candidate: StaticallyRankedCandidate, idSuffix: Range<Int>, idSuffixBytes: ArraySlice<UInt8>) {
        let offer = candidate.offer
        offerIndex = offer.index
        representationIndex = candidate.representationIndex
        rank = candidate.rank
        startDate = offer.startDate
        endDate = offer.endDate
        hasCappingRules = !offer.cappingRules.isEmpty
        eligibilityMemoSlot = candidate.eligibilityMemoSlot ?? -1
        alwaysEligible = offer.eligibility == nil
        if case .condition(let rule)? = offer.eligibility, let program = rule.condition {
            inlineEligibility = InlineCondition(program)
        } else {
            inlineEligibility = .none
        }
        idOrder = offer.idOrder
        self.idSuffix = idSuffix
        var packed: UInt64 = 0
        for (shift, byte) in idSuffixBytes.enumerated() where shift < 8 { packed |= UInt64(byte) << (8 * shift) }
        packedIDSuffix = packed
        packedIDSuffixCount = idSuffixBytes.count <= 8 ? idSuffixBytes.count : -1
    }

    func isInsideDates(_ now: Double) -> Bool { startDate <= now && now < endDate }
}

/// A decision's scope for one placement.
struct DecisionScopeDefinition: Sendable {
    let placementIndex: Int
    let criteria: [CriterionDefinition]
}

/// A decision: per placement, an ordered list of criteria and one fallback.
///
/// A class so that the decision path holds it by one reference instead of copying its fields.
final class DecisionDefinition: Sendable {
    let id: String
    let name: String?
    let status: DecisionStatus
    let startDate: Double
    let endDate: Double
    let fallbackIndex: Int?
    /// Indexed by placement index: the decision's scope for that placement, if any.
    let scopeByPlacement: [DecisionScopeDefinition?]

    init(
        id: String, name: String?, status: DecisionStatus, startDate: Double, endDate: Double, fallbackIndex: Int?,
        scopeByPlacement: [DecisionScopeDefinition?]
    ) {
        self.id = id
        self.name = name
        self.status = status
        self.startDate = startDate
        self.endDate = endDate
        self.fallbackIndex = fallbackIndex
        self.scopeByPlacement = scopeByPlacement
    }

    func isActive(at now: Double) -> Bool { status == .live && startDate <= now && now < endDate }
}

/// How many of each thing a catalog holds.
public struct CatalogSummary: Sendable, Equatable, CustomStringConvertible {
    public var placements: Int
    public var offers: Int
    public var fallbackOffers: Int
    public var collections: Int
    public var rules: Int
    public var decisions: Int

    public init(placements: Int, offers: Int, fallbackOffers: Int, collections: Int, rules: Int, decisions: Int) {
        self.placements = placements
        self.offers = offers
        self.fallbackOffers = fallbackOffers
        self.collections = collections
        self.rules = rules
        self.decisions = decisions
    }

    public var description: String {
        "\(placements) placements, \(offers) offers, \(fallbackOffers) fallback offers, \(collections) collections, "
            + "\(rules) rules, \(decisions) decisions"
    }
}

/// One problem found while loading a catalog.
public struct CatalogIssue: Sendable, Equatable, CustomStringConvertible {
    /// JSON path, e.g. `offers[2].eligibility.condition`; empty for a JSON syntax error.
    public var path: String
    public var message: String
    /// Inside a rule expression (or the JSON text for a syntax error), 1-based.
    public var line: Int?
    public var column: Int?

    public init(path: String, message: String, line: Int? = nil, column: Int? = nil) {
        self.path = path
        self.message = message
        self.line = line
        self.column = column
    }

    public var description: String {
        var text = path.isEmpty ? "" : "\(path): "
        if let line, let column { text += "line \(line), column \(column): " }
        return text + message
    }
}

/// Why a catalog could not be loaded: every issue found, not just the first.
public struct CatalogLoadError: Error, Sendable, CustomStringConvertible {
    public var fileName: String
    public var issues: [CatalogIssue]

    public init(fileName: String, issues: [CatalogIssue]) {
        self.fileName = fileName
        self.issues = issues
    }

    /// One line per issue: `FILE: PATH: MESSAGE`.
    public var description: String {
        issues.map { "\(fileName): \($0)" }.joined(separator: "\n")
    }
}

/// A validated, compiled offer catalog (SPEC section 3). Immutable and shared
/// by every request decided with it.
public final class Catalog: Sendable {
    /// The catalog's `version`, or 16 hex digits of a hash of the file's bytes.
    public let version: String
    public let placements: [Placement]
    let offers: [OfferDefinition]
    let fallbackOffers: [FallbackOfferDefinition]
    let decisions: [DecisionDefinition]
    let placementIndexByID: [String: Int]
    let decisionIndexByID: [String: Int]
    /// Byte-exact fast paths in front of the two dictionaries (see ``placementIndex(of:)``).
    private let placementIDs: [String]
    private let placementTable: HashPositionTable
    private let decisionIDs: [String]
    private let decisionTable: HashPositionTable
    /// The context keys rules read, by slot.
    let contextKeys: [String]
    /// The offers with a capping rule on `decision` events: a Decide that proposes one records a decision event
    /// (SPEC 9.2); other offers record nothing.
    public let decisionCountedOfferIDs: Set<String>
    /// True when an offer has a `total` capping rule: live counts are then read even for a profile with none.
    public let hasTotalScopeCaps: Bool
    /// The profile attribute paths rules read, by slot.
    let attributePaths: [AttributePath]
    /// At each slot of `attributePaths`: whether a rule a decision can evaluate reads it (an offer's or a criterion's
    /// eligibility, a ranking formula). A named rule nothing refers to still has slots; a request does not read
    /// them from the profile.
    let attributeSlotsRead: [Bool]
    /// The context slots and attribute slots (a bit each) the offers' and criteria's inline conditions and the
    /// threshold gates read: the values a request types for them (``TypedRequest``).
    let inlineContextSlots: UInt8
    let inlineAttributeSlots: UInt8
    private let counts: CatalogSummary

    init(
        version: String,
        placements: [Placement],
        offers: [OfferDefinition],
        fallbackOffers: [FallbackOfferDefinition],
        decisions: [DecisionDefinition],
        contextKeys: [String],
        attributePaths: [AttributePath],
        collectionCount: Int,
        ruleCount: Int
    ) {
        self.version = version
        self.placements = placements
        self.offers = offers
        self.fallbackOffers = fallbackOffers
        self.decisions = decisions
        self.contextKeys = contextKeys
        self.attributePaths = attributePaths
        var inlineContextSlots: UInt8 = 0
        var inlineAttributeSlots: UInt8 = 0
        let criteria = decisions.flatMap { $0.scopeByPlacement.compactMap { $0 }.flatMap(\.criteria) }
        var slotsRead = [Bool](repeating: false, count: attributePaths.count)
        var evaluated: [RuleNode] = (offers.map(\.eligibility) + criteria.map(\.eligibility)).compactMap {
            eligibility in
            if case .condition(let rule)? = eligibility { return rule.node }
            return nil
        }
        for criterion in criteria {
            if case .formula(let formula) = criterion.ranking { evaluated.append(formula.node) }
        }
        for node in evaluated {
            node.forEachAttributeSlot { slot in
                if slot >= 0 && slot < slotsRead.count { slotsRead[slot] = true }
            }
        }
        attributeSlotsRead = slotsRead
        for eligibility in offers.map(\.eligibility) + criteria.map(\.eligibility) {
            guard case .condition(let rule)? = eligibility, let program = rule.condition else { continue }
            let slots = InlineCondition(program).slotsRead
            inlineContextSlots |= slots.context
            inlineAttributeSlots |= slots.attributes
            // The slots a ranking's threshold gate may read (see `ThresholdGate`).
            for key in program.necessaryBounds().keys {
                switch key.source {
                case .context: inlineContextSlots |= 1 << UInt8(key.slot)
                case .attribute: inlineAttributeSlots |= 1 << UInt8(key.slot)
                case .now: break
                }
            }
        }
        self.inlineContextSlots = inlineContextSlots
        self.inlineAttributeSlots = inlineAttributeSlots
        decisionCountedOfferIDs = Set(offers.filter(\.recordsDecisions).map(\.id))
        hasTotalScopeCaps = offers.contains { offer in offer.cappingRules.contains { $0.scope == .total } }
        var placementIndex: [String: Int] = [:]
        for (index, placement) in placements.enumerated() where placementIndex[placement.id] == nil {
            placementIndex[placement.id] = index
        }
        placementIndexByID = placementIndex
        var decisionIndex: [String: Int] = [:]
        for (index, decision) in decisions.enumerated() where decisionIndex[decision.id] == nil {
            decisionIndex[decision.id] = index
        }
        decisionIndexByID = decisionIndex
        placementIDs = placements.map(\.id)
        placementTable = HashPositionTable(ids: placementIDs)
        decisionIDs = decisions.map(\.id)
        decisionTable = HashPositionTable(ids: decisionIDs)
        counts = CatalogSummary(
            placements: placements.count,
            offers: offers.count,
            fallbackOffers: fallbackOffers.count,
            collections: collectionCount,
            rules: ruleCount,
            decisions: decisions.count
        )
    }

    /// The index of the placement `id`. A request's id is almost always byte-for-byte the catalog's, which the
    /// table finds with a cheap hash; the dictionary (Swift string equality) answers the rest.
    func placementIndex(of id: String) -> Int? {
        placementTable.position(of: id, in: placementIDs) ?? placementIndexByID[id]
    }

    /// The index of the decision `id` (as ``placementIndex(of:)``).
    func decisionIndex(of id: String) -> Int? {
        decisionTable.position(of: id, in: decisionIDs) ?? decisionIndexByID[id]
    }

    /// The ids of the catalog's decisions, in catalog order (the positions ``decisionIndex(ofDecision:)`` gives).
    public var decisionIdentifiers: [String] { decisionIDs }

    /// The position of the decision `id` in ``decisionIdentifiers``, if the catalog has it (per-decision metrics).
    public func decisionIndex(ofDecision id: String) -> Int? { decisionIndex(of: id) }

    /// How many placements, offers, fallback offers, collections, rules and decisions it holds.
    public var summary: CatalogSummary { counts }

    /// Loads and validates a catalog, reporting every problem at once.
    public static func load(bytes: [UInt8], fileName: String) throws(CatalogLoadError) -> Catalog {
        var loader = CatalogLoader(bytes: bytes)
        if let catalog = loader.load() { return catalog }
        throw CatalogLoadError(fileName: fileName, issues: loader.issues)
    }
}
