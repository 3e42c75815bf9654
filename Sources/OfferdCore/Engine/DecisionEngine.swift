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
        var walk = ScopeWalker(
            catalog: catalog,
            options: options,
            request: request,
            profile: profile,
            now: now
        )
        var propositions: [Proposition] = []
        propositions.reserveCapacity(request.scopes.count)
        for scope in request.scopes {
            propositions.append(walk.decide(scope))
        }
        return DecisionResult(propositions: propositions, profileFound: profile != nil, catalogVersion: catalog.version)
    }

    /// Decides `request` for an identity that is not in the snapshot.
    public func decide(_ request: DecisionRequest, now: Double) -> DecisionResult {
        decide(request, profile: nil as InMemoryProfile?, now: now)
    }
}

/// One candidate kept by the top-k selection.
private struct RankedCandidate {
    var offerIndex: Int
    var representationIndex: Int
    var rank: Double
    var tieHash: UInt64
    var idOrder: Int

    /// Higher rank first; equal ranks by ascending tie hash, then by offer id.
    func isBetter(than other: RankedCandidate) -> Bool {
        if rank != other.rank { return rank > other.rank }
        if tieHash != other.tieHash { return tieHash < other.tieHash }
        return idOrder < other.idOrder
    }
}

/// The state of deciding one request: the rule environment, the offers
/// already proposed, the tie-break hash prefix and a reusable candidate buffer.
private struct ScopeWalker<Profile: ProfileView> {
    let catalog: Catalog
    let options: EngineOptions
    let allowDuplicates: Bool
    let explain: Bool
    let now: Double
    let consents: ConsentRecord
    var environment: RuleEnvironment<Profile>
    /// One bit per catalog offer: proposed earlier in this response (or, with
    /// `allowDuplicates`, earlier in this scope).
    var taken: [UInt64]
    /// FNV-1a state after `lower(namespace) 0x1F id 0x1F`; each offer id continues it.
    let tieHashPrefix: FNV1a64
    var best: [RankedCandidate] = []

    init(catalog: Catalog, options: EngineOptions, request: DecisionRequest, profile: Profile?, now: Double) {
        self.catalog = catalog
        self.options = options
        self.allowDuplicates = request.allowDuplicates
        self.explain = request.explain
        self.now = now
        self.consents = profile?.consents ?? .empty
        var contextValues: [RuleValue] = []
        if !catalog.contextKeys.isEmpty {
            contextValues.reserveCapacity(catalog.contextKeys.count)
            for key in catalog.contextKeys {
                contextValues.append(request.context[key].map(RuleValue.init(context:)) ?? .null)
            }
        }
        self.environment = RuleEnvironment(profile: profile, context: contextValues, now: now, offer: nil)
        self.taken = [UInt64](repeating: 0, count: (catalog.offers.count + 63) / 64)
        let identity = profile?.primaryIdentity ?? request.identity
        var hasher = FNV1a64()
        for byte in identity.namespace.utf8 {
            hasher.combine(byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte + 32 : byte)
        }
        hasher.combine(0x1F)
        hasher.combine(contentsOf: identity.id.utf8)
        hasher.combine(0x1F)
        self.tieHashPrefix = hasher
    }

    private func isTaken(_ offerIndex: Int) -> Bool {
        taken[offerIndex >> 6] & (1 << UInt64(offerIndex & 63)) != 0
    }

    private mutating func setTaken(_ offerIndex: Int, _ value: Bool) {
        if value {
            taken[offerIndex >> 6] |= 1 << UInt64(offerIndex & 63)
        } else {
            taken[offerIndex >> 6] &= ~(1 << UInt64(offerIndex & 63))
        }
    }

    private func tieHash(_ offer: OfferDefinition) -> UInt64 {
        var hasher = tieHashPrefix
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
        if environment.profile == nil && options.unknownProfile == .fallback {
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
        var chosenThisScope: [Int] = []
        for (criterionIndex, criterion) in scope.criteria.enumerated() {
            let remaining = wanted - items.count
            if remaining == 0 && !explain { break }
            let criterionEligible = criterion.eligibility.map { $0.isEligible(in: environment) } ?? true
            best.removeAll(keepingCapacity: true)
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
            } else if criterionEligible {
                for candidate in criterion.candidates {
                    consider(
                        candidate.offer,
                        representationIndex: candidate.representationIndex,
                        ranking: criterion.ranking,
                        remaining: remaining
                    )
                }
            }
            environment.offer = nil
            for ranked in best {
                let offer = catalog.offers[ranked.offerIndex]
                setTaken(ranked.offerIndex, true)
                chosenThisScope.append(ranked.offerIndex)
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
            for offerIndex in chosenThisScope { setTaken(offerIndex, false) }
        }
        return items
    }

    /// Filters one offer through dates, capping, de-duplication and eligibility
    /// (all must pass, so the cheapest run first) and offers it to the ranking.
    private mutating func consider(
        _ offer: OfferDefinition,
        representationIndex: Int,
        ranking: Ranking,
        remaining: Int
    ) {
        guard !isTaken(offer.index), offer.isInsideDates(now), !isCapped(offer) else { return }
        environment.offer = offer
        if let eligibility = offer.eligibility, !eligibility.isEligible(in: environment) { return }
        rank(offer, representationIndex: representationIndex, ranking: ranking, remaining: remaining)
    }

    private func isCapped(_ offer: OfferDefinition) -> Bool {
        guard let limit = offer.cappingLimit, let profile = environment.profile else { return false }
        return profile.cappingCount(for: offer.internedID) >= limit
    }

    /// Keeps the `remaining` best candidates in `best`, best first, without sorting them all.
    private mutating func rank(_ offer: OfferDefinition, representationIndex: Int, ranking: Ranking, remaining: Int) {
        guard remaining > 0 else { return }
        let rank: Double
        switch ranking {
        case .priority:
            rank = Double(offer.priority)
        case .formula(let formula):
            environment.offer = offer
            rank = formula.score(in: environment)
        }
        if best.count == remaining, let worst = best.last, rank < worst.rank { return }
        let candidate = RankedCandidate(
            offerIndex: offer.index,
            representationIndex: representationIndex,
            rank: rank,
            tieHash: tieHash(offer),
            idOrder: offer.idOrder
        )
        if best.count == remaining {
            guard let worst = best.last, candidate.isBetter(than: worst) else { return }
            best.removeLast()
        }
        var position = best.count
        while position > 0 && candidate.isBetter(than: best[position - 1]) { position -= 1 }
        best.insert(candidate, at: position)
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
                !eligibility.isEligible(
                    in: RuleEnvironment(
                        profile: environment.profile,
                        context: environment.context,
                        now: now,
                        offer: offer
                    )
                )
            {
                verdict = .ineligible
            } else if isCapped(offer) {
                verdict = .capped
            } else if isTaken(offer.index) {
                verdict = .duplicate
            } else {
                verdict = .rankedOut
                if let representationIndex = offer.representationByPlacement[placementIndex] {
                    rank(
                        offer,
                        representationIndex: representationIndex,
                        ranking: criterion.ranking,
                        remaining: remaining
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
