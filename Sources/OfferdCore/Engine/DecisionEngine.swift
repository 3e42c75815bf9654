/// What to do with an identity that is not in the snapshot (`--unknown-profile`).
/// Raw values are the CLI spellings.
public enum UnknownProfilePolicy: String, Sendable, CaseIterable {
    /// Decide as for a profile with no attributes, no audiences and empty consents.
    case decide
    /// Answer with the decision's fallback (REASON_UNKNOWN_PROFILE).
    case fallback
}

/// The server options that change decisions.
public struct EngineOptions: Sendable, Equatable {
    public var consentDefault: ConsentDefault
    public var unknownProfile: UnknownProfilePolicy

    public init(consentDefault: ConsentDefault = .granted, unknownProfile: UnknownProfilePolicy = .decide) {
        self.consentDefault = consentDefault
        self.unknownProfile = unknownProfile
    }
}

/// Decides requests against one catalog (SPEC section 6).
///
/// Deterministic and transport-free: the same request, profile, catalog,
/// options and time always give the same result. Deciding never throws: every
/// per-scope problem is an outcome and a reason in the proposition.
public struct DecisionEngine: Sendable {
    public let catalog: Catalog
    public let options: EngineOptions

    public init(catalog: Catalog, options: EngineOptions = EngineOptions()) {
        self.catalog = catalog
        self.options = options
    }

    /// Decides every scope of `request`, in request order.
    ///
    /// - Parameters:
    ///   - request: a request that passed ``DecisionRequest/validationError()``.
    ///   - profile: the profile of `request.identity`; nil when it is not in the snapshot.
    ///   - now: the request time, epoch seconds.
    public func decide<Profile: ProfileView>(
        _ request: DecisionRequest,
        profile: Profile?,
        now: Double
    ) -> DecisionResult {
        // The walker takes a non-optional profile (see `RuleInputs`): an unknown one is an `AbsentProfile`.
        if let profile {
            return decide(request, profile: profile, found: true, now: now)
        }
        return decide(request, profile: AbsentProfile(), found: false, now: now)
    }

    /// Decides `request` for an identity that is not in the snapshot.
    public func decide(_ request: DecisionRequest, now: Double) -> DecisionResult {
        decide(request, profile: AbsentProfile(), found: false, now: now)
    }

    private func decide<Profile: ProfileView>(
        _ request: DecisionRequest,
        profile: Profile,
        found: Bool,
        now: Double
    ) -> DecisionResult {
        var walk = ScopeWalker(
            catalog: catalog,
            options: options,
            request: request,
            profile: profile,
            profileFound: found,
            now: now
        )
        var propositions: [Proposition] = []
        propositions.reserveCapacity(request.scopes.count)
        for scope in request.scopes {
            propositions.append(walk.decide(scope))
        }
        return DecisionResult(propositions: propositions, profileFound: found, catalogVersion: catalog.version)
    }
}

/// The state of deciding one request: the rule inputs, the offers already
/// proposed, the tie-break hash prefix and the top-k buffer.
///
/// Holds no heap storage of its own in the common case (see `InlineBuffers.swift`): one scope costs exactly the
/// result's proposition array and its item array.
private struct ScopeWalker<Profile: ProfileView> {
    let catalog: Catalog
    let options: EngineOptions
    let allowDuplicates: Bool
    let explain: Bool
    let now: Double
    let profile: Profile
    /// False for an identity that is not in the snapshot (`profile` is then an `AbsentProfile`).
    let profileFound: Bool
    let consents: ConsentRecord
    /// Fixed for the whole request (its `offer` stays nil): rules get the candidate as a separate argument, so
    /// that the loop never copies the inputs per candidate.
    let inputs: RuleInputs
    /// The offers proposed earlier in this response (with `allowDuplicates`, earlier in this scope only).
    var chosen = ChosenOffers()
    /// FNV-1a state after `lower(namespace) 0x1F id 0x1F`; each offer id continues it.
    let tieHashPrefix: FNV1a64
    var best = TopCandidates()
    /// Results of the offer-independent conditions evaluated so far in this request.
    var memo = ConditionMemo()

    init(
        catalog: Catalog,
        options: EngineOptions,
        request: DecisionRequest,
        profile: Profile,
        profileFound: Bool,
        now: Double
    ) {
        self.catalog = catalog
        self.options = options
        self.allowDuplicates = request.allowDuplicates
        self.explain = request.explain
        self.now = now
        self.profile = profile
        self.profileFound = profileFound
        self.consents = profileFound ? profile.consents : .empty
        var context = RuleValueSlots()
        if !request.context.isEmpty {
            for key in catalog.contextKeys {
                context.append(request.context[key].map(RuleValue.init(context:)) ?? .null)
            }
        }
        // A few paths are read once here instead of once per candidate; more would spill to the heap, so then
        // every use asks the profile.
        var attributes: RuleValueSlots?
        if catalog.attributePaths.count <= RuleValueSlots.inlineCapacity {
            var values = RuleValueSlots()
            for path in catalog.attributePaths { values.append(profile.attribute(at: path)) }
            attributes = values
        }
        self.inputs = RuleInputs(context: context, attributes: attributes, now: now, offer: nil)
        let identity = profileFound ? profile.primaryIdentity : request.identity
        var hasher = FNV1a64()
        for byte in identity.namespace.utf8 {
            hasher.combine(byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte + 32 : byte)
        }
        hasher.combine(0x1F)
        // Contiguous UTF-8 when there is some: iterating `UTF8View` costs a runtime call per byte.
        let idHasher = identity.id.utf8.withContiguousStorageIfAvailable { bytes in
            var copy = hasher
            for byte in bytes { copy.combine(byte) }
            return copy
        }
        if let idHasher { hasher = idHasher } else { hasher.combine(contentsOf: identity.id.utf8) }
        hasher.combine(0x1F)
        self.tieHashPrefix = hasher
    }

    private func tieHash(_ offer: OfferDefinition) -> UInt64 {
        Self.tieHash(offer, prefix: tieHashPrefix)
    }

    /// Static, like ``isCapped(_:profile:found:)``: the hot loop is a mutating method, and calling a
    /// non-mutating method of `self` there made Swift copy the whole walker (about 1 KB) at every call.
    private static func tieHash(_ offer: OfferDefinition, prefix: FNV1a64) -> UInt64 {
        // Over the contiguous UTF-8 when there is some (always, for native strings): walking `UTF8View`
        // indices costs several times more per byte.
        let contiguous = offer.id.utf8.withContiguousStorageIfAvailable { bytes in
            var hasher = prefix
            for byte in bytes { hasher.combine(byte) }
            return hasher.value
        }
        if let contiguous { return fmix64(contiguous) }
        var hasher = prefix
        hasher.combine(contentsOf: offer.id.utf8)
        return fmix64(hasher.value)
    }

    mutating func decide(_ request: ScopeRequest) -> Proposition {
        func answer(_ outcome: Outcome, _ reason: Reason) -> Proposition {
            Proposition(
                decisionID: request.decisionID,
                placementID: request.placementID,
                outcome: outcome,
                reason: reason
            )
        }
        // Step 1: the decision and its scope for the placement.
        guard let decisionIndex = catalog.decisionIndexByID[request.decisionID] else {
            return answer(.error, .decisionNotFound)
        }
        let decision = catalog.decisions[decisionIndex]
        guard decision.isActive(at: now) else { return answer(.error, .decisionInactive) }
        guard let placementIndex = catalog.placementIndexByID[request.placementID],
            let scope = decision.scopeByPlacement[placementIndex]
        else { return answer(.error, .placementNotInDecision) }
        let placement = catalog.placements[placementIndex]

        // Step 2: marketing consent; no fallback for someone who opted out.
        if placement.channel.isMarketing
            && !ConsentResolver.marketingGranted(consents, channel: placement.channel, default: options.consentDefault)
        {
            return answer(.suppressed, .marketingDenied)
        }
        // Step 3: unknown profile under `--unknown-profile fallback`.
        if !profileFound && options.unknownProfile == .fallback {
            return fallback(decision, placementIndex: placementIndex, reason: .unknownProfile, request: request)
        }
        // Step 4: personalization consent; no profile data is used past this point when denied.
        if !ConsentResolver.personalizationGranted(consents, default: options.consentDefault) {
            return fallback(decision, placementIndex: placementIndex, reason: .personalizationDenied, request: request)
        }
        // Steps 5 to 7.
        var trace: [TraceEntry] = []
        let items = walk(scope, wanted: request.effectiveItemCount, trace: &trace)
        if items.isEmpty {
            var proposition = fallback(
                decision,
                placementIndex: placementIndex,
                reason: .noEligibleOffers,
                request: request
            )
            proposition.trace = trace
            return proposition
        }
        return Proposition(
            decisionID: request.decisionID,
            placementID: request.placementID,
            outcome: .offers,
            reason: .unspecified,
            items: items,
            trace: trace
        )
    }

    /// The decision's fallback (FALLBACK), or SUPPRESSED with the same reason when it has none.
    private func fallback(
        _ decision: DecisionDefinition,
        placementIndex: Int,
        reason: Reason,
        request: ScopeRequest
    ) -> Proposition {
        guard let fallbackIndex = decision.fallbackIndex,
            let representationIndex = catalog.fallbackOffers[fallbackIndex].representationByPlacement[placementIndex]
        else {
            return Proposition(
                decisionID: request.decisionID,
                placementID: request.placementID,
                outcome: .suppressed,
                reason: reason
            )
        }
        let offer = catalog.fallbackOffers[fallbackIndex]
        let item = DecidedItem(
            id: offer.id,
            name: offer.name,
            priority: 0,
            characteristics: offer.characteristics,
            representation: offer.representations[representationIndex],
            score: nil,
            isFallback: true
        )
        return Proposition(
            decisionID: request.decisionID,
            placementID: request.placementID,
            outcome: .fallback,
            reason: reason,
            items: [item]
        )
    }

    /// Walks the scope's criteria (SPEC 6 step 5) and returns the chosen offers, best first.
    private mutating func walk(
        _ scope: DecisionScopeDefinition,
        wanted: Int,
        trace: inout [TraceEntry]
    ) -> [DecidedItem] {
        var items: [DecidedItem] = []
        let chosenBeforeScope = chosen.count
        for (criterionIndex, criterion) in scope.criteria.enumerated() {
            let remaining = wanted - items.count
            if remaining == 0 && !explain { break }
            var criterionEligible = true
            if let eligibility = criterion.eligibility {
                criterionEligible = eligibility.isEligible(profile: profile, inputs: inputs, offer: nil, memo: &memo)
            }
            best.removeAll()
            var traceStart = trace.count
            if explain {
                traceStart = trace.count
                traceCriterion(
                    criterion,
                    index: criterionIndex,
                    eligible: criterionEligible,
                    placementIndex: scope.placementIndex,
                    remaining: remaining,
                    trace: &trace
                )
            } else if criterionEligible && remaining > 0, let staticRanking = criterion.staticRanking {
                considerByGroups(staticRanking, remaining: remaining)
            } else if criterionEligible && remaining > 0 {
                considerAll(criterion, remaining: remaining)
            }
            if best.count > 0 && items.isEmpty { items.reserveCapacity(wanted) }
            for position in 0..<best.count {
                let ranked = best[position]
                let offer = catalog.offers[ranked.offerIndex]
                chosen.append(ranked.offerIndex)
                var score: Double?
                if case .formula = criterion.ranking { score = ranked.rank }
                items.append(
                    DecidedItem(
                        id: offer.id,
                        name: offer.name,
                        priority: offer.priority,
                        characteristics: offer.characteristics,
                        representation: offer.representations[ranked.representationIndex],
                        score: score,
                        isFallback: false
                    )
                )
                if explain {
                    let label = String(criterionIndex)
                    for position in traceStart..<trace.count
                    where trace[position].offerID == offer.id && trace[position].criterion == label {
                        trace[position].verdict = .chosen
                    }
                }
            }
        }
        if allowDuplicates {
            // Only this scope may not repeat an offer; the next scope ranks independently.
            chosen.truncate(to: chosenBeforeScope)
        }
        return items
    }

    /// Filters every candidate through dates, capping, de-duplication and eligibility (all must pass, so the
    /// cheapest run first) and offers the survivors to the ranking.
    private mutating func considerAll(_ criterion: CriterionDefinition, remaining: Int) {
        // Local copies, as in `considerByGroups`.
        let inputs = self.inputs
        let profile = self.profile
        let profileFound = self.profileFound
        let now = self.now
        for candidate in criterion.candidates {
            let offer = candidate.offer
            guard offer.isInsideDates(now), !chosen.contains(offer.index),
                !Self.isCapped(offer, profile: profile, found: profileFound)
            else { continue }
            if let eligibility = offer.eligibility,
                !eligibility.isEligible(profile: profile, inputs: inputs, offer: offer, memo: &memo)
            {
                continue
            }
            rank(
                offer,
                representationIndex: candidate.representationIndex,
                ranking: criterion.ranking,
                remaining: remaining,
                profile: profile,
                inputs: inputs
            )
        }
    }

    /// The fast path of a statically ranked criterion: tests candidates one tie group at a time, best group
    /// first, and stops once `remaining` candidates are kept. No later candidate could enter then (every later
    /// group ranks strictly lower), so this keeps exactly what testing and ranking every candidate would.
    private mutating func considerByGroups(_ ranking: StaticRanking, remaining: Int) {
        // Local copies, once per criterion: passing a stored property of `self` (inout here) to a call makes Swift
        // copy it at every call, and `inputs` is a few hundred bytes.
        let inputs = self.inputs
        let profile = self.profile
        let profileFound = self.profileFound
        let tieHashPrefix = self.tieHashPrefix
        let now = self.now
        var groupStart = 0
        for groupEnd in ranking.groupEnds {
            for position in groupStart..<groupEnd {
                let candidate = ranking.candidates[position]
                // Eligibility is one of the tests every candidate must pass, so a shared condition this request
                // already found false settles it before the offer itself is read.
                if let slot = candidate.eligibilityMemoSlot, memo[slot] == false { continue }
                let offer = candidate.offer
                guard offer.isInsideDates(now), !chosen.contains(offer.index),
                    !Self.isCapped(offer, profile: profile, found: profileFound)
                else { continue }
                if let eligibility = offer.eligibility {
                    guard eligibility.isEligible(profile: profile, inputs: inputs, offer: offer, memo: &memo) else {
                        continue
                    }
                }
                best.offer(
                    RankedCandidate(
                        offerIndex: offer.index,
                        representationIndex: candidate.representationIndex,
                        rank: candidate.rank,
                        tieHash: Self.tieHash(offer, prefix: tieHashPrefix),
                        idOrder: offer.idOrder
                    ),
                    capacity: remaining
                )
            }
            if best.count == remaining { return }
            groupStart = groupEnd
        }
    }

    private func isCapped(_ offer: OfferDefinition) -> Bool {
        Self.isCapped(offer, profile: profile, found: profileFound)
    }

    private static func isCapped(_ offer: OfferDefinition, profile: Profile, found: Bool) -> Bool {
        guard let limit = offer.cappingLimit, found else { return false }
        return profile.cappingCount(for: offer.internedID) >= limit
    }

    /// Keeps the `remaining` best candidates in `best`, best first, without sorting them all.
    private mutating func rank(
        _ offer: OfferDefinition,
        representationIndex: Int,
        ranking: Ranking,
        remaining: Int,
        profile: Profile,
        inputs: RuleInputs
    ) {
        guard remaining > 0 else { return }
        let rank: Double
        switch ranking {
        case .priority:
            rank = Double(offer.priority)
        case .formula(let formula):
            rank = formula.score(profile: profile, inputs: inputs, offer: offer)
        }
        // Strictly worse than the worst kept: no need for the tie hash.
        if let worst = best.worstRank(capacity: remaining), rank < worst { return }
        best.offer(
            RankedCandidate(
                offerIndex: offer.index,
                representationIndex: representationIndex,
                rank: rank,
                tieHash: Self.tieHash(offer, prefix: tieHashPrefix),
                idOrder: offer.idOrder
            ),
            capacity: remaining
        )
    }

    /// The explain path: every offer of the collection gets a verdict, in
    /// SPEC 2.2 order; the survivors are ranked and provisionally `ranked-out`
    /// (the caller marks the chosen ones).
    private mutating func traceCriterion(
        _ criterion: CriterionDefinition,
        index: Int,
        eligible: Bool,
        placementIndex: Int,
        remaining: Int,
        trace: inout [TraceEntry]
    ) {
        let label = String(index)
        for offer in criterion.collectionOffers {
            let verdict: TraceVerdict
            if !eligible {
                verdict = .criterionIneligible
            } else if offer.status != .approved {
                verdict = .notApproved
            } else if !offer.isInsideDates(now) {
                verdict = .outsideDates
            } else if offer.representationByPlacement[placementIndex] == nil {
                verdict = .noRepresentation
            } else if let eligibility = offer.eligibility,
                !eligibility.isEligible(profile: profile, inputs: inputs, offer: offer, memo: &memo)
            {
                verdict = .ineligible
            } else if isCapped(offer) {
                verdict = .capped
            } else if chosen.contains(offer.index) {
                verdict = .duplicate
            } else {
                verdict = .rankedOut
                if let representationIndex = offer.representationByPlacement[placementIndex] {
                    rank(
                        offer,
                        representationIndex: representationIndex,
                        ranking: criterion.ranking,
                        remaining: remaining,
                        profile: profile,
                        inputs: inputs
                    )
                }
            }
            trace.append(TraceEntry(offerID: offer.id, criterion: label, verdict: verdict))
        }
    }
}

extension RuleValue {
    /// A request context value as rules see it.
    init(context value: ContextValue) {
        switch value {
        case .null: self = .null
        case .string(let text): self = .string(text)
        case .number(let number): self = .number(number)
        case .bool(let flag): self = .bool(flag)
        }
    }
}
