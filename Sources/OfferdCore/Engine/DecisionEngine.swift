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
    ///   - live: the event log's counts for this profile (see ``LiveCappingCounts``); nil counts the snapshot's
    ///     alone.
    ///   - consents: the consents to decide with in place of the profile's (an unknown profile's are empty): the
    ///     snapshot's with the event log's updates applied (SPEC 9.5); nil uses the profile's.
    ///   - now: the request time, epoch seconds.
    public func decide<Profile: ProfileView>(
        _ request: DecisionRequest,
        profile: consuming Profile?,
        live: (any LiveCappingCounts)? = nil,
        consents: ConsentRecord? = nil,
        now: Double
    ) -> DecisionResult {
        // The walker takes a non-optional profile (see `RuleInputs`): an unknown one is an `AbsentProfile`.
        // Consumed all the way into the walker, so that deciding copies the profile value (a retain per
        // reference it holds) only where the caller keeps its own.
        if let profile = consume profile {
            return decide(request, profile: consume profile, found: true, live: live, consents: consents, now: now)
        }
        return decide(request, profile: AbsentProfile(), found: false, live: live, consents: consents, now: now)
    }

    /// Decides `request` for an identity that is not in the snapshot.
    public func decide(
        _ request: DecisionRequest, live: (any LiveCappingCounts)? = nil, consents: ConsentRecord? = nil, now: Double
    ) -> DecisionResult {
        decide(request, profile: AbsentProfile(), found: false, live: live, consents: consents, now: now)
    }

    private func decide<Profile: ProfileView>(
        _ request: DecisionRequest,
        profile: consuming Profile,
        found: Bool,
        live: (any LiveCappingCounts)?,
        consents: ConsentRecord?,
        now: Double
    ) -> DecisionResult {
        // A local passed down the walk by reference: a stored copy was copied again (a retain per slot value) by
        // every walk function that read it into a local.
        var filled = RuleInputs(
            context: RuleValueSlots(), attributes: RuleValueSlots(), attributesResolved: false, now: now, offer: nil)
        ScopeWalker.fillRuleInputs(&filled, catalog: catalog, request: request, profile: profile)
        let inputs = consume filled
        let walker = ScopeWalker(
            catalog: catalog,
            options: options,
            request: request,
            profile: consume profile,
            profileFound: found,
            live: live,
            consents: consents,
            now: now
        )
        var propositions: [Proposition] = []
        propositions.reserveCapacity(request.scopes.count)
        var state = WalkState(
            typedRequest: TypedRequest(
                inputs, contextSlots: catalog.inlineContextSlots, attributeSlots: catalog.inlineAttributeSlots))
        for scope in request.scopes {
            propositions.append(walker.decide(scope, inputs: inputs, state: &state))
        }
        return DecisionResult(propositions: propositions, profileFound: found, catalogVersion: catalog.version)
    }
}

/// What changes while one request is decided: the offers already proposed, the top-k buffer and the memo.
///
/// Kept apart from ``ScopeWalker`` so that the walker's methods are non-mutating: Swift then reads the profile and
/// the rule inputs in place, where a mutating method copied them (a retain per reference they hold) first.
/// Holds no heap storage in the common case (see `InlineBuffers.swift`).
private struct WalkState {
    /// The offers proposed earlier in this response (with `allowDuplicates`, earlier in this scope only).
    var chosen = ChosenOffers()
    var best = TopCandidates()
    /// Results of the offer-independent conditions evaluated so far in this request.
    var memo = ConditionMemo()
    /// The rule inputs' context and attribute slots as plain values, for the candidates' inline conditions. Fixed
    /// for the request, but kept here: read through the state's address, where a copy of the walker's own (640
    /// bytes) was made per candidate (measured).
    var typedRequest: TypedRequest
    /// Candidates screened in this request, and how many of them failed: when most fail (every offer capped for
    /// this person, say), a tie group is screened member by member and only the members that pass are hashed.
    var screened = 0
    var screenedOut = 0

    /// Whether most screens so far failed (at least 8 of them, and more than three in four).
    var mostScreensFail: Bool { screenedOut >= 8 && screenedOut * 4 > screened * 3 }
}

/// A ranking's per-candidate arrays, lent as buffer pointers by `ScopeWalker.withScreens` (valid inside its body only,
/// at every position below the ranking's candidate count), and the request's key for the ranking's
/// ``ThresholdGate``.
@unsafe
private struct ScreenedCandidates {
    let screens: UnsafeBufferPointer<CandidateScreen>
    let offerIDs: UnsafeBufferPointer<InternedName>
    let gateBounds: UnsafeBufferPointer<Double>
    /// ``StaticRanking/offerIDBytes``.
    let offerIDBytes: UnsafeBufferPointer<UInt8>
    let gateKey: Double
    /// The request's tie hash prefix continued over ``StaticRanking/sharedIDPrefix``.
    let idPrefixHash: FNV1a64

    /// False when the candidate at `position` misses its ``ThresholdGate`` bound: its eligibility is then false.
    @inline(__always)
    func passesGate(_ position: Int) -> Bool {
        unsafe gateKey >= gateBounds[position]
    }

    /// The SPEC 6 step 6 tie-break hash of the candidate at `position` for this request's profile.
    @inline(__always)
    func tieHash(_ position: Int) -> UInt64 {
        var hasher = unsafe idPrefixHash
        let packedCount = unsafe screens[position].packedIDSuffixCount
        if packedCount >= 0 {
            var packed = unsafe screens[position].packedIDSuffix
            for _ in 0..<packedCount {
                hasher.combine(UInt8(truncatingIfNeeded: packed))
                packed &>>= 8
            }
        } else {
            for byte in unsafe screens[position].idSuffix { unsafe hasher.combine(offerIDBytes[byte]) }
        }
        return fmix64(hasher.value)
    }
}

/// A tied candidate's tie-break hash and its position in its ranking.
private struct TieKey {
    let hash: UInt64
    let position: Int
}

/// What stays fixed while one request is decided: the profile and the tie-break hash prefix. The rule inputs are
/// fixed too, but passed to each method (see ``ruleInputs(catalog:request:profile:now:)``).
///
/// One scope costs exactly the result's proposition array and its item array.
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
    /// FNV-1a state after `lower(namespace) 0x1F id 0x1F`; each offer id continues it.
    let tieHashPrefix: FNV1a64
    /// The profile's ``ProfileView/cappingSummary`` (0 when it was not found): without `live`, only offers with
    /// their bit set can be capped.
    let cappingSummary: UInt64
    /// The event log's counts (SPEC 9.3); ``NoLiveCounts`` when there are none, and then only the snapshot's
    /// counts cap. Not optional: unwrapping an optional existential (`if let live`) copies it, and the counts are
    /// asked once per capped candidate and rule (a copy and destroy each, with the three references a
    /// `LiveCounts` holds: about 1,500 of the 6,000 instructions 20 live counters cost a Decide, measured); a
    /// call on this stored one opens it in place.
    let live: any LiveCappingCounts
    /// True when `live` can make a count non-zero: there is one, and the profile has live counters or the catalog
    /// has `total` rules.
    let hasLiveCounts: Bool

    init(
        catalog: Catalog,
        options: EngineOptions,
        request: DecisionRequest,
        profile: consuming Profile,
        profileFound: Bool,
        live: (any LiveCappingCounts)?,
        consents: ConsentRecord?,
        now: Double
    ) {
        if let live {
            hasLiveCounts = live.hasProfileCounts || catalog.hasTotalScopeCaps
            self.live = live
        } else {
            hasLiveCounts = false
            self.live = NoLiveCounts()
        }
        self.catalog = catalog
        self.options = options
        allowDuplicates = request.allowDuplicates
        explain = request.explain
        self.now = now
        self.profile = consume profile
        self.profileFound = profileFound
        self.consents = consents ?? (profileFound ? self.profile.consents : .empty)
        self.cappingSummary = profileFound ? self.profile.cappingSummary : 0
        func tieHashPrefix(namespace: Span<UInt8>, id: Span<UInt8>) -> FNV1a64 {
            var hasher = FNV1a64()
            for position in namespace.indices {
                let byte = namespace[position]
                hasher.combine(byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte + 32 : byte)
            }
            hasher.combine(0x1F)
            for position in id.indices { hasher.combine(id[position]) }
            hasher.combine(0x1F)
            return hasher
        }
        let hasher =
            profileFound
            ? self.profile.withPrimaryIdentityUTF8(tieHashPrefix) : request.identity.withUTF8(tieHashPrefix)
        self.tieHashPrefix = hasher
    }

    /// Fills `inputs` (empty) with the request's rule inputs, fixed for the whole request (their `offer` stays nil):
    /// rules get the candidate as a separate argument, so that the loop never copies the inputs per candidate.
    /// Filled in place: returning them made the compiler build them in a temporary, copy it through the type's
    /// value witness, destroy the temporary and copy the result again (about 800 instructions a request).
    static func fillRuleInputs(
        _ inputs: inout RuleInputs, catalog: Catalog, request: DecisionRequest, profile: borrowing Profile
    ) {
        if !request.context.isEmpty {
            // Few keys on both sides (the usual case): compared in turn, with the dictionary's own key equality,
            // where a lookup hashed each key (about 300 instructions a key).
            let compareInTurn = request.context.count * catalog.contextKeys.count <= 16
            for key in catalog.contextKeys {
                let value: ContextValue?
                if compareInTurn {
                    value = request.context.first { $0.key == key }?.value
                } else {
                    value = request.context[key]
                }
                inputs.context.append(value.map(RuleValue.init(context:)) ?? .null)
            }
        }
        // A few paths are read once here instead of once per candidate; more would spill to the heap, so then
        // every use asks the profile.
        if catalog.attributePaths.count <= RuleValueSlots.inlineCapacity {
            // A path only unreferenced named rules read is never evaluated: not asked of the profile.
            for (slot, path) in catalog.attributePaths.enumerated() {
                inputs.appendAttribute(catalog.attributeSlotsRead[slot] ? profile.attribute(at: path) : .null)
            }
            inputs.markAttributesResolved()
        }
    }

    /// The SPEC 6 step 6 tie-break hash of `offer` for this request's profile.
    private func tieHash(_ offer: OfferDefinition) -> UInt64 {
        let prefix = tieHashPrefix
        // Over the contiguous UTF-8 (always there, for native strings): walking `UTF8View` indices costs several
        // times more per byte.
        return offer.id.withUTF8Span { bytes in
            var hasher = prefix
            for position in bytes.indices { hasher.combine(bytes[position]) }
            return fmix64(hasher.value)
        }
    }

    func decide(_ request: ScopeRequest, inputs: RuleInputs, state: inout WalkState) -> Proposition {
        func answer(_ outcome: Outcome, _ reason: Reason) -> Proposition {
            Proposition(
                decisionID: request.decisionID,
                placementID: request.placementID,
                outcome: outcome,
                reason: reason
            )
        }
        // Step 1: the decision and its scope for the placement.
        guard let decisionIndex = catalog.decisionIndex(of: request.decisionID) else {
            return answer(.error, .decisionNotFound)
        }
        let decision = catalog.decisions[decisionIndex]
        guard decision.isActive(at: now) else { return answer(.error, .decisionInactive) }
        guard let placementIndex = catalog.placementIndex(of: request.placementID),
            let scope = decision.scopeByPlacement[placementIndex]
        else { return answer(.error, .placementNotInDecision) }
        let placement = catalog.placements[placementIndex]

        // Step 2: marketing consent; no fallback for someone who opted out.
        if placement.channel.isMarketing
            && !ConsentResolver.marketingGranted(consents, channel: placement.channel, default: options.consentDefault)
        {
            var proposition = answer(.suppressed, .marketingDenied)
            if explain { proposition.trace = [ExplainDetail.marketingDenied(consents, placement.channel, options)] }
            return proposition
        }
        // Step 3: unknown profile under `--unknown-profile fallback`.
        if !profileFound && options.unknownProfile == .fallback {
            var proposition = fallback(
                decision, placementIndex: placementIndex, reason: .unknownProfile, request: request)
            if explain { proposition.trace = [ExplainDetail.unknownProfile] }
            return proposition
        }
        // Step 4: personalization consent; no profile data is used past this point when denied.
        if !ConsentResolver.personalizationGranted(consents, default: options.consentDefault) {
            var proposition = fallback(
                decision, placementIndex: placementIndex, reason: .personalizationDenied, request: request)
            if explain { proposition.trace = [ExplainDetail.personalizationDenied(consents, options)] }
            return proposition
        }
        // Steps 5 to 7.
        var trace: [TraceEntry] = []
        let items = walk(scope, wanted: request.effectiveItemCount, inputs: inputs, trace: &trace, state: &state)
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
        let item = DecidedItem(
            content: catalog.fallbackOffers[fallbackIndex].itemContents[representationIndex],
            priority: 0,
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
    private func walk(
        _ scope: DecisionScopeDefinition,
        wanted: Int,
        inputs: RuleInputs,
        trace: inout [TraceEntry],
        state: inout WalkState
    ) -> [DecidedItem] {
        var items: [DecidedItem] = []
        let chosenBeforeScope = state.chosen.count
        for (criterionIndex, criterion) in scope.criteria.enumerated() {
            let remaining = wanted - items.count
            if remaining == 0 && !explain { break }
            var criterionEligible = true
            if let inline = criterion.inlineEligibility.isTrue(&state.typedRequest) {
                criterionEligible = inline
            } else if let eligibility = criterion.eligibility {
                criterionEligible = eligibility.isEligible(
                    profile: profile, inputs: inputs, offer: nil, memo: &state.memo)
            }
            state.best.removeAll()
            var traceStart = trace.count
            if explain {
                traceStart = trace.count
                traceCriterion(
                    criterion,
                    index: criterionIndex,
                    inputs: inputs,
                    eligible: criterionEligible,
                    placementIndex: scope.placementIndex,
                    remaining: remaining,
                    trace: &trace,
                    state: &state
                )
            } else if criterionEligible && remaining > 0, let staticRanking = criterion.staticRanking {
                considerByGroups(staticRanking, remaining: remaining, inputs: inputs, state: &state)
            } else if criterionEligible && remaining > 0, let formulaRanking = criterion.formulaRanking {
                considerByFormula(formulaRanking, remaining: remaining, inputs: inputs, state: &state)
            } else if criterionEligible && remaining > 0 {
                considerAll(criterion, remaining: remaining, inputs: inputs, state: &state)
            }
            state.best.sortBestFirst()
            if state.best.count > 0 && items.isEmpty { items.reserveCapacity(wanted) }
            for position in 0..<state.best.count {
                let ranked = state.best[position]
                let offer = catalog.offers[ranked.offerIndex]
                state.chosen.append(ranked.offerIndex)
                var score: Double?
                if case .formula = criterion.ranking { score = ranked.rank }
                items.append(
                    DecidedItem(
                        content: offer.itemContents[ranked.representationIndex],
                        priority: offer.priority,
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
            state.chosen.truncate(to: chosenBeforeScope)
        }
        return items
    }

    /// Filters every candidate through dates, capping, de-duplication and eligibility (all must pass, so the
    /// cheapest run first) and offers the survivors to the ranking.
    private func considerAll(
        _ criterion: CriterionDefinition, remaining: Int, inputs: RuleInputs, state: inout WalkState
    ) {
        for candidate in criterion.candidates {
            let offer = candidate.offer
            guard offer.isInsideDates(now), !state.chosen.contains(offer.index),
                !isCapped(offer)
            else { continue }
            if let eligibility = offer.eligibility,
                !eligibility.isEligible(profile: profile, inputs: inputs, offer: offer, memo: &state.memo)
            {
                continue
            }
            rank(
                offer,
                representationIndex: candidate.representationIndex,
                ranking: criterion.ranking,
                remaining: remaining,
                inputs: inputs,
                best: &state.best
            )
        }
    }

    /// The fast path of a statically ranked criterion: tests candidates one tie group at a time, best group
    /// first, and stops once `remaining` candidates are kept. No later candidate could enter then (every later
    /// group ranks strictly lower), so this keeps exactly what testing and ranking every candidate would.
    private func considerByGroups(
        _ ranking: StaticRanking, remaining: Int, inputs: RuleInputs, state: inout WalkState
    ) {
        let gateKey = ranking.gate.requestKey(&state.typedRequest)
        unsafe withScreens(of: ranking, gateKey: gateKey) { candidates in
            unsafe considerByGroups(
                ranking, candidates: candidates, remaining: remaining, inputs: inputs, state: &state)
        }
    }

    private func considerByGroups(
        _ ranking: StaticRanking, candidates: ScreenedCandidates, remaining: Int, inputs: RuleInputs,
        state: inout WalkState
    ) {
        // Read into a local once: passing the walker's own stored property to a call copies it first (a retain per
        // reference it holds, per candidate, measured).
        let profile = profile
        var groupStart = 0
        for groupEnd in ranking.groupEnds {
            unsafe offerRun(
                groupStart..<groupEnd, separableRank: nil, of: ranking, candidates: candidates, remaining: remaining,
                profile: profile, inputs: inputs, state: &state)
            if state.best.count == remaining { return }
            groupStart = groupEnd
        }
    }

    /// The fast path of a criterion ranked by a formula that reads the request: the formula's request parts are
    /// evaluated once, then every candidate that passes the screens is scored by the folded program and offered to
    /// the bounded top-k (a separable formula walks in score order and stops early, see ``SeparableScore``). Nothing
    /// is copied or allocated per candidate.
    private func considerByFormula(
        _ formula: FormulaRanking, remaining: Int, inputs: RuleInputs, state: inout WalkState
    ) {
        let gateKey = formula.candidates.gate.requestKey(&state.typedRequest)
        unsafe withScreens(of: formula.candidates, gateKey: gateKey) { candidates in
            unsafe considerByFormula(
                formula, candidates: candidates, remaining: remaining, inputs: inputs, state: &state)
        }
    }

    private func considerByFormula(
        _ formula: FormulaRanking, candidates: ScreenedCandidates, remaining: Int, inputs: RuleInputs,
        state: inout WalkState
    ) {
        // Read into a local once, as in `considerByGroups`.
        let profile = profile
        let ranking = formula.candidates
        let program = formula.program
        let partsPerCandidate = formula.partsPerCandidate
        // A separable formula scores the candidates whose offer part is not a number here, then walks the others
        // in score order; any other formula, or a request the early stop is not sound for, scores them all here.
        var scoredByProgram = 0..<ranking.candidates.count
        // Plain values only: a local holding the `SeparableScore` (an array reference) cost a generic outlined
        // destroy per criterion (measured).
        var walkInScoreOrder: (request: Double, direction: SeparableScore.Direction)?
        if let separable = formula.separable,
            case .number(let request) = separable.requestValue(
                of: formula.requestParts, profile: profile, inputs: inputs),
            let direction = separable.direction(for: .number(request))
        {
            scoredByProgram = 0..<separable.numericStart
            walkInScoreOrder = (request, direction)
        }
        // Made only when the program scores a candidate: the separable walk reads its one request part above.
        let parts = scoredByProgram.isEmpty ? nil : FoldedParts(formula, profile: profile, inputs: inputs)
        for position in scoredByProgram {
            // Screened before it is scored: the folded program costs more than the screens.
            guard
                unsafe candidates.passesGate(position),
                unsafe passesScreen(
                    position, of: ranking, candidates: candidates, profile: profile, inputs: inputs, state: &state)
            else { continue }
            parts?.offerBase = position * partsPerCandidate
            let rank = program.score(profile: profile, inputs: inputs, offer: nil, parts: parts)
            unsafe offer(
                position, rank: rank, screened: true, of: ranking, candidates: candidates, remaining: remaining,
                profile: profile, inputs: inputs, state: &state)
        }
        if let walk = walkInScoreOrder, let separable = formula.separable {
            unsafe considerInScoreOrder(
                separable, request: walk.request, direction: walk.direction, ranking: ranking,
                candidates: candidates, remaining: remaining, profile: profile, inputs: inputs, state: &state)
        }
    }

    /// The early-stopping walk of a separable formula (see ``SeparableScore``): candidates in the order of their
    /// scores, best first, each scored before it is screened; the first whose score is strictly below the worst of
    /// a full top-k ends the walk, since no later one scores more. Equal scores go on to the tie-break.
    private func considerInScoreOrder(
        _ separable: SeparableScore, request: Double, direction: SeparableScore.Direction, ranking: StaticRanking,
        candidates: ScreenedCandidates, remaining: Int, profile: Profile, inputs: RuleInputs, state: inout WalkState
    ) {
        let start = separable.numericStart
        let count = ranking.candidates.count
        // Candidates with the same offer part (bit for bit: -0 and 0 can score apart) score the same: a run of
        // them (a tie group, often tens of candidates) is scored and tested for the stop once, at its first.
        // The next run starts here (walking forward) or ends here (walking back).
        var boundary = direction == .largestFirst ? start : count
        while direction == .largestFirst ? boundary < count : boundary > start {
            let run: Range<Int>
            if direction == .largestFirst {
                run = boundary..<separable.runEnds[boundary]
                boundary = run.upperBound
            } else {
                run = separable.runStarts[boundary - 1]..<boundary
                boundary = run.lowerBound
            }
            let rank = separable.score(at: run.lowerBound, request: request)
            if let worst = state.best.worstRank(capacity: remaining), rank < worst { return }
            unsafe offerRun(
                run, separableRank: rank, of: ranking, candidates: candidates, remaining: remaining,
                profile: profile, inputs: inputs, state: &state)
        }
    }

    /// The longest run of tied candidates ``offerRun(_:separableRank:of:candidates:remaining:profile:inputs:state:)``
    /// orders on the stack; a longer one is offered member by member. With the `orderedAtOnce` best keys beside
    /// them, 16 bytes each: 1 KiB, which `withUnsafeTemporaryAllocation` never takes from the heap.
    private static var longestOrderedRun: Int { 56 }
    private static var orderedAtOnce: Int { 8 }

    /// Offers a run of candidates of one rank (a tie group: `separableRank` for all of them, or each screen's own
    /// rank, which differ at most in the sign of zero) to the top-k.
    ///
    /// The members that pass their gate are hashed first, then offered in the tie-break's order (ascending hash,
    /// then id order), each screened just before it is offered; the first that a full top-k would not keep ends
    /// the run, since every later one ranks below it. This keeps exactly what offering them in candidate order
    /// keeps (the best `remaining` of a strict total order do not depend on the order they arrive in), but screens
    /// only the members that enter or fail their screens, where offering in candidate order screened, kept and
    /// then replaced every member that beat the worst kept so far. The hashing pass keeps the best few keys in
    /// order as it goes (one comparison for most members); the others are searched for only when those run out.
    @inline(__always)
    private func offerRun(
        _ run: Range<Int>, separableRank: Double?, of ranking: StaticRanking, candidates: ScreenedCandidates,
        remaining: Int, profile: Profile, inputs: RuleInputs, state: inout WalkState
    ) {
        // Ordering pays when members pass their screens (it screens only those that enter); when most fail, every
        // member is screened anyway, and hashing them all first only adds to that.
        guard run.count > 1 && run.count <= Self.longestOrderedRun && !state.mostScreensFail else {
            for position in run {
                unsafe offer(
                    position, rank: separableRank ?? candidates.screens[position].rank, screened: false, of: ranking,
                    candidates: candidates, remaining: remaining, profile: profile, inputs: inputs, state: &state)
            }
            return
        }
        /// Whether `key` comes before `other` in the tie-break's order.
        func precedes(_ key: TieKey, _ other: TieKey) -> Bool {
            guard key.hash == other.hash else { return key.hash < other.hash }
            return unsafe candidates.screens[key.position].idOrder < candidates.screens[other.position].idOrder
        }
        // `keys`: every member's key at 0..<keyCount; from `orderedStart`, the best `wanted` of them (or of those
        // after the last offered) in order.
        unsafe withUnsafeTemporaryAllocation(of: TieKey.self, capacity: run.count + Self.orderedAtOnce) { keys in
            let wanted = min(remaining, Self.orderedAtOnce)
            let orderedStart = run.count
            var orderedCount = 0
            /// Puts `key` among the ordered keys if it is one of the best `wanted` seen.
            func order(_ key: TieKey) {
                if orderedCount < wanted {
                    orderedCount += 1
                } else if unsafe !precedes(key, keys[orderedStart + wanted - 1]) {
                    return
                }
                var at = orderedStart + orderedCount - 1
                while unsafe at > orderedStart && precedes(key, keys[at - 1]) {
                    unsafe keys[at] = keys[at - 1]
                    at -= 1
                }
                unsafe keys[at] = key
            }
            // Members already chosen by earlier scopes would fail their screens: left out before they are hashed
            // (a request of many scopes chooses most of a large group that way).
            let anyChosen = state.chosen.count > 0
            var keyCount = 0
            for position in run where unsafe candidates.passesGate(position) {
                if unsafe anyChosen && state.chosen.contains(candidates.screens[position].offerIndex) { continue }
                let key = unsafe TieKey(hash: candidates.tieHash(position), position: position)
                unsafe keys.initializeElement(at: keyCount, to: key)
                keyCount += 1
                order(key)
            }
            var offered = 0
            var last = TieKey(hash: 0, position: 0)
            var screenedOut = false
            while true {
                if offered == orderedCount {
                    // The ordered keys are used up. More are needed only when some member was screened out or more
                    // are wanted than were ordered, and exist only when the ordered keys were as many as wanted:
                    // the next best `wanted` after the last offered, in one pass (a run of members already chosen
                    // by earlier scopes then costs a pass per `wanted` of them, not one per member).
                    guard orderedCount == wanted && (screenedOut || wanted < remaining) else { return }
                    orderedCount = 0
                    for at in 0..<keyCount where unsafe precedes(last, keys[at]) { unsafe order(keys[at]) }
                    guard orderedCount > 0 else { return }
                    offered = 0
                }
                let key = unsafe keys[orderedStart + offered]
                offered += 1
                last = key
                let position = key.position
                let candidate = unsafe RankedCandidate(
                    offerIndex: candidates.screens[position].offerIndex,
                    representationIndex: candidates.screens[position].representationIndex,
                    rank: separableRank ?? candidates.screens[position].rank,
                    tieHash: key.hash,
                    idOrder: candidates.screens[position].idOrder
                )
                guard state.best.wouldKeep(candidate, capacity: remaining) else { return }
                guard
                    unsafe passesScreen(
                        position, of: ranking, candidates: candidates, profile: profile, inputs: inputs, state: &state)
                else {
                    screenedOut = true
                    continue
                }
                state.best.offer(candidate, capacity: remaining)
            }
        }
    }

    /// Offers the candidate at `position`, ranked `rank`, to the top-k, screening it first unless the caller did
    /// (`screened`). Once the top-k is full, a candidate is screened only if it would enter: its rank and tie hash
    /// are compared with the worst kept first (the screens decide only whether it may enter, and have no effect but
    /// the memo's), which passes over most of a large tie group without testing its eligibility.
    @inline(__always)
    private func offer(
        _ position: Int, rank: Double, screened: Bool, of ranking: StaticRanking, candidates: ScreenedCandidates,
        remaining: Int, profile: Profile, inputs: RuleInputs, state: inout WalkState
    ) {
        // Strictly worse than the worst kept: no need for the tie hash.
        if let worst = state.best.worstRank(capacity: remaining), rank < worst { return }
        guard unsafe screened || candidates.passesGate(position) else { return }
        // Once the top-k is full, a candidate that would not enter is passed over before it is screened. One call
        // site of `passesScreen`, so that it is inlined.
        let full = state.best.count == remaining
        var candidate = unsafe RankedCandidate(
            offerIndex: candidates.screens[position].offerIndex,
            representationIndex: candidates.screens[position].representationIndex,
            rank: rank,
            tieHash: full ? candidates.tieHash(position) : 0,
            idOrder: candidates.screens[position].idOrder
        )
        if full && !state.best.wouldKeep(candidate, capacity: remaining) { return }
        if !screened {
            guard
                unsafe passesScreen(
                    position, of: ranking, candidates: candidates, profile: profile, inputs: inputs, state: &state)
            else { return }
        }
        if !full { candidate.tieHash = unsafe candidates.tieHash(position) }
        state.best.offer(candidate, capacity: remaining)
    }

    /// Lends `ranking`'s per-candidate arrays to `body` as buffer pointers, valid at every position below
    /// `ranking.candidates.count` (checked), with the request's gate key and the tie hash continued over the ids'
    /// shared prefix (every screen's `idSuffix` lies inside `offerIDBytes`, checked at load). Screens are read in
    /// place: copying a screen out of its array costs a retain and a release per candidate for the references it
    /// holds (the inline condition's operands). Not spans: their bounds checks, in these loops, cost 2 to 3% of a
    /// Decide call's instructions (see Support/ContiguousSpans.swift). This function, its callers' loops and that
    /// file hold all of OfferdCore's unsafe code.
    private func withScreens(
        of ranking: StaticRanking,
        gateKey: Double,
        _ body: (ScreenedCandidates) -> Void
    ) {
        precondition(
            ranking.screens.count == ranking.candidates.count && ranking.offerIDs.count == ranking.candidates.count
                && ranking.gate.bounds.count == ranking.candidates.count
                && (ranking.groupEnds.last ?? 0) <= ranking.candidates.count)
        var idPrefixHash = tieHashPrefix
        for position in ranking.sharedIDPrefix { idPrefixHash.combine(ranking.offerIDBytes[position]) }
        // safe: the pointers are used inside these closures only, at positions checked above.
        unsafe ranking.screens.withUnsafeBufferPointer { screens in
            unsafe ranking.offerIDs.withUnsafeBufferPointer { offerIDs in
                unsafe ranking.gate.bounds.withUnsafeBufferPointer { gateBounds in
                    unsafe ranking.offerIDBytes.withUnsafeBufferPointer { offerIDBytes in
                        unsafe body(
                            ScreenedCandidates(
                                screens: screens, offerIDs: offerIDs, gateBounds: gateBounds,
                                offerIDBytes: offerIDBytes, gateKey: gateKey, idPrefixHash: idPrefixHash))
                    }
                }
            }
        }
    }

    /// ``screen(_:of:candidates:profile:inputs:state:)``, counted in `state` (``WalkState/mostScreensFail``).
    @inline(__always)
    private func passesScreen(
        _ position: Int, of ranking: StaticRanking, candidates: ScreenedCandidates, profile: Profile,
        inputs: RuleInputs, state: inout WalkState
    ) -> Bool {
        state.screened += 1
        let passed = unsafe screen(
            position, of: ranking, candidates: candidates, profile: profile, inputs: inputs, state: &state)
        if !passed { state.screenedOut += 1 }
        return passed
    }

    /// Whether the candidate at `position` passes dates, de-duplication, eligibility and capping. Every test must
    /// pass, so the cheap ones on plain values run first and the offer object is loaded only for an eligibility
    /// neither the memo nor an inline condition settles, or for a capping lookup.
    @inline(__always)
    private func screen(
        _ position: Int, of ranking: StaticRanking, candidates: ScreenedCandidates, profile: Profile,
        inputs: RuleInputs, state: inout WalkState
    ) -> Bool {
        // unsafe: `position` is below `candidates.count`, which `withScreens` checked against every array's count.
        let screens = unsafe candidates.screens
        var eligible = unsafe screens[position].alwaysEligible
        let memoSlot = unsafe screens[position].eligibilityMemoSlot
        if memoSlot >= 0, let known = state.memo[memoSlot] {
            guard known else { return false }
            eligible = true
        }
        guard unsafe screens[position].isInsideDates(now),
            unsafe !state.chosen.contains(screens[position].offerIndex)
        else { return false }
        if !eligible, let value = unsafe screens[position].inlineEligibility.isTrue(&state.typedRequest) {
            if memoSlot >= 0 { state.memo[memoSlot] = value }
            guard value else { return false }
            eligible = true
        }
        // Without live counts an offer whose summary bit is clear has only zero counts: its offer object is not
        // loaded.
        if unsafe screens[position].hasCappingRules
            && (hasLiveCounts || cappingSummary & cappingSummaryBit(candidates.offerIDs[position].hash) != 0)
            && isCapped(ranking.candidates[position].offer)
        {
            return false
        }
        if !eligible {
            let offer = ranking.candidates[position].offer
            // Called through the optional in place: binding it would copy the rule (a retain per reference).
            if offer.eligibility?.isEligible(profile: profile, inputs: inputs, offer: offer, memo: &state.memo)
                == false
            {
                return false
            }
        }
        return true
    }

    /// True when any of the offer's capping rules has reached its limit (SPEC 3, 9.3): a `profile`/`lifetime` rule
    /// counts the snapshot's count plus the live one, every other rule the live count alone (zero without `live`).
    private func isCapped(_ offer: OfferDefinition) -> Bool {
        if offer.cappingRules.isEmpty { return false }
        let snapshotCounts = cappingSummary & cappingSummaryBit(offer.internedID.hash) != 0
        if !hasLiveCounts && !snapshotCounts { return false }
        for rule in offer.cappingRules {
            var count = 0
            if rule.readsProfileCounts && snapshotCounts {
                count = profile.cappingCount(for: offer.internedID, event: rule.event)
            }
            if hasLiveCounts {
                let liveCount = live.count(
                    offer: offer.internedID, event: rule.event, period: rule.period, scope: rule.scope, now: now)
                let (sum, overflow) = count.addingReportingOverflow(liveCount)
                count = overflow ? Int.max : sum
            }
            if count >= rule.limit { return true }
        }
        return false
    }

    /// Offers `offer` to `best`, which keeps the `remaining` best candidates without sorting them all.
    private func rank(
        _ offer: OfferDefinition,
        representationIndex: Int,
        ranking: Ranking,
        remaining: Int,
        inputs: RuleInputs,
        best: inout TopCandidates
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
                tieHash: tieHash(offer),
                idOrder: offer.idOrder
            ),
            capacity: remaining
        )
    }

    /// The explain path: every offer of the collection gets a verdict, in
    /// SPEC 2.2 order; the survivors are ranked and provisionally `ranked-out`
    /// (the caller marks the chosen ones).
    private func traceCriterion(
        _ criterion: CriterionDefinition,
        index: Int,
        inputs: RuleInputs,
        eligible: Bool,
        placementIndex: Int,
        remaining: Int,
        trace: inout [TraceEntry],
        state: inout WalkState
    ) {
        let label = String(index)
        for offer in criterion.collectionOffers {
            let verdict: TraceVerdict
            var score: Double?
            if !eligible {
                verdict = .criterionIneligible
            } else if offer.status != .approved {
                verdict = .notApproved
            } else if !offer.isInsideDates(now) {
                verdict = .outsideDates
            } else if offer.representationByPlacement[placementIndex] == nil {
                verdict = .noRepresentation
            } else if let eligibility = offer.eligibility,
                !eligibility.isEligible(profile: profile, inputs: inputs, offer: offer, memo: &state.memo)
            {
                verdict = .ineligible
            } else if isCapped(offer) {
                verdict = .capped
            } else if state.chosen.contains(offer.index) {
                verdict = .duplicate
            } else {
                verdict = .rankedOut
                if let representationIndex = offer.representationByPlacement[placementIndex] {
                    rank(
                        offer,
                        representationIndex: representationIndex,
                        ranking: criterion.ranking,
                        remaining: remaining,
                        inputs: inputs,
                        best: &state.best
                    )
                }
                // The score `rank` ranked by (evaluated again: explain only, and `rank` keeps none it drops).
                if case .formula(let formula) = criterion.ranking {
                    score = formula.score(profile: profile, inputs: inputs, offer: offer)
                }
            }
            trace.append(
                TraceEntry(
                    offerID: offer.id, criterion: label, verdict: verdict, collectionID: criterion.collectionID,
                    score: score))
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
