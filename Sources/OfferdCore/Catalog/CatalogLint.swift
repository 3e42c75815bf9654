/// One likely mistake in a catalog that loads: where (a JSON path, as catalog errors give) and why.
public struct CatalogWarning: Sendable, Hashable, CustomStringConvertible {
    /// JSON path, e.g. `decisions[0].scopes[0].criteria[1].ranking.formula`.
    public var path: String
    public var message: String

    public init(path: String, message: String) {
        self.path = path
        self.message = message
    }

    public var description: String { "\(path): \(message)" }
}

/// Finds the silent mistakes of a valid catalog: what loads and serves, but cannot do what its author meant
/// (`offerd catalog check`, docs/cli.md).
///
/// Without profiles it reports formula terms that are strings or booleans (arithmetic on them gives null, so the
/// score falls to 0), `number(offer.characteristics.K)` of offers whose `K` is missing or not a number,
/// characteristic keys no offer has, rules nothing uses, collections no criterion uses or that hold no offer, and
/// offers no criterion can reach. With a ``ProfileCensus`` of a snapshot, ``profileWarnings(census:snapshotName:)``
/// adds profile paths and audiences no profile has, and formula terms that are strings or missing in profiles.
///
/// The lint reads the catalog's JSON again rather than the compiled ``Catalog``, which keeps no JSON paths; it
/// compiles each expression with the loader's own ``RuleParser`` and walks the ``RuleNode`` trees. Call it only on
/// a catalog that loaded: on anything else it reports what it can and skips the rest.
public struct CatalogLint: Sendable {
    /// The warnings that need no profiles, in catalog order.
    public private(set) var warnings: [CatalogWarning] = []

    /// A profile attribute a rule reads, where, and whether arithmetic reads it.
    struct AttributeUse: Sendable {
        var path: AttributePath
        var location: String
        /// How the expression uses the value as a number, if it does.
        var numericRole: NumericRole?
        /// Inside `number(...)`: strings are fine there, other kinds still give null.
        var underNumber: Bool
        /// Guarded by `exists(...)` (or `!= null`) in an enclosing `if`: a missing value takes the other branch.
        var guarded: Bool
        var expressionKind: RuleKind
    }

    /// An audience a rule or an eligibility tests, and where.
    struct AudienceUse: Sendable {
        var name: String
        var location: String
        /// The text quoted in the warning: `inAudience("x")`, or nothing for an `anyAudiences` item.
        var term: String?
    }

    /// Where a value is used as a number.
    enum NumericRole: Sendable {
        /// A ranking formula's own value (its score).
        case formulaValue
        /// An operand of `+ - * /`, unary `-`, `min` or `max`: a null operand makes the whole result null.
        case arithmeticOperand
        /// Compared with `<`, `<=`, `>`, `>=` to something that gives a number.
        case comparedWithNumber
    }

    private(set) var attributeUses: [AttributeUse] = []
    private(set) var audienceUses: [AudienceUse] = []

    /// The profile attribute paths the catalog's rules read, each once, in order of first use.
    public var attributePaths: [AttributePath] {
        var seen = Set<AttributePath>()
        return attributeUses.map(\.path).filter { seen.insert($0).inserted }
    }

    /// The audiences the catalog tests, each once, in order of first use.
    public var audiences: [String] {
        var seen = Set<String>()
        return audienceUses.map(\.name).filter { seen.insert($0).inserted }
    }

    /// The same warning twice (one rule text at one path analysed twice) is reported once.
    private var reported: Set<CatalogWarning> = []
    private var symbols = RuleSymbols()
    private var offers: [OfferFacts] = []
    /// Every characteristic key any offer has (fallback offers are never read by rules).
    private var characteristicKeys: Set<String> = []

    private struct OfferFacts {
        var id: String
        var status: String
        var tags: [String]
        var characteristics: [String: String]
        var path: String
    }

    /// Analyses `bytes`, a catalog that ``Catalog/load(bytes:fileName:)`` accepts.
    public init(bytes: [UInt8]) {
        guard let document = try? JSONParser.parse(bytes) else { return }
        analyze(document)
    }

    // MARK: - The catalog walk

    private mutating func analyze(_ document: JSONValue) {
        let offerValues = document["offers"]?.arrayItems ?? []
        for (index, value) in offerValues.enumerated() {
            var characteristics: [String: String] = [:]
            for member in value["characteristics"]?.objectMembers ?? [] {
                if case .string(let text) = member.value { characteristics[member.key] = text }
            }
            characteristicKeys.formUnion(characteristics.keys)
            offers.append(
                OfferFacts(
                    id: value["id"]?.stringValue ?? "",
                    status: value["status"]?.stringValue ?? "",
                    tags: (value["tags"]?.arrayItems ?? []).compactMap(\.stringValue),
                    characteristics: characteristics,
                    path: "offers[\(index)]"
                )
            )
        }
        var offerIndexByID: [String: Int] = [:]
        for (index, offer) in offers.enumerated() where offerIndexByID[offer.id] == nil {
            offerIndexByID[offer.id] = index
        }

        // Collections: which offers each holds.
        let collectionValues = document["collections"]?.arrayItems ?? []
        var collectionMembers: [String: [Int]] = [:]
        var collectionIDs: [String] = []
        for value in collectionValues {
            let id = value["id"]?.stringValue ?? ""
            collectionIDs.append(id)
            var members: [Int] = []
            if let listed = value["offers"]?.arrayItems {
                members = listed.compactMap { $0.stringValue.flatMap { offerIndexByID[$0] } }
            } else if let tags = value["anyTags"]?.arrayItems?.compactMap(\.stringValue) {
                members = offers.indices.filter { offers[$0].tags.contains { tags.contains($0) } }
            } else if let tags = value["allTags"]?.arrayItems?.compactMap(\.stringValue) {
                members = offers.indices.filter { offer in tags.allSatisfy { offers[offer].tags.contains($0) } }
            }
            if collectionMembers[id] == nil { collectionMembers[id] = members }
        }

        // Who refers to what: rules by offers and criteria, collections by criteria.
        let ruleValues = document["rules"]?.arrayItems ?? []
        var offersUsingRule: [String: [Int]] = [:]
        var rulesUsed: Set<String> = []
        var collectionsUsed: Set<String> = []
        for (index, value) in offerValues.enumerated() {
            if let rule = value["eligibility"]?["rule"]?.stringValue {
                rulesUsed.insert(rule)
                offersUsingRule[rule, default: []].append(index)
            }
        }
        let criteria = Self.criteria(of: document)
        for criterion in criteria {
            if let rule = criterion.value["eligibility"]?["rule"]?.stringValue { rulesUsed.insert(rule) }
            if let collection = criterion.value["collection"]?.stringValue { collectionsUsed.insert(collection) }
        }

        // Expressions, in catalog order: rules, offers' eligibility, then the decisions' criteria.
        for (index, value) in ruleValues.enumerated() {
            let id = value["id"]?.stringValue ?? ""
            let path = "rules[\(index)]"
            if !rulesUsed.contains(id) {
                warn(path, "rule \(quoted(id)) is used by no offer and no criterion")
            }
            if let source = value["condition"]?.stringValue {
                expression(
                    source, kind: .condition, at: path + ".condition",
                    offers: (offersUsingRule[id] ?? []).filter { offers[$0].status == "approved" })
            }
        }
        for (index, value) in offerValues.enumerated() {
            if let eligibility = value["eligibility"] {
                self.eligibility(eligibility, at: "offers[\(index)].eligibility", offers: [index])
            }
        }
        for criterion in criteria {
            if let eligibility = criterion.value["eligibility"] {
                self.eligibility(eligibility, at: criterion.path + ".eligibility", offers: [])
            }
            if let formula = criterion.value["ranking"]?["formula"]?.stringValue {
                let members = criterion.value["collection"]?.stringValue.flatMap { collectionMembers[$0] } ?? []
                expression(
                    formula, kind: .formula, at: criterion.path + ".ranking.formula",
                    offers: members.filter { offers[$0].status == "approved" })
            }
        }

        // Collections and offers that decide nothing.
        var reachableOffers: Set<Int> = []
        for (index, id) in collectionIDs.enumerated() {
            let members = collectionMembers[id] ?? []
            let path = "collections[\(index)]"
            if !collectionsUsed.contains(id) {
                warn(path, "collection \(quoted(id)) is used by no criterion")
            } else {
                reachableOffers.formUnion(members)
            }
            if members.isEmpty {
                let value = collectionValues[index]
                if let tags = value["anyTags"]?.arrayItems?.compactMap(\.stringValue) {
                    warn(path + ".anyTags", "no offer has any of the tags \(list(tags)), so the collection is empty")
                } else if let tags = value["allTags"]?.arrayItems?.compactMap(\.stringValue) {
                    warn(path + ".allTags", "no offer has all of the tags \(list(tags)), so the collection is empty")
                } else {
                    warn(path, "collection \(quoted(id)) holds no offer")
                }
            }
        }
        for (index, offer) in offers.enumerated() where offer.status != "archived" && !reachableOffers.contains(index) {
            let holders = collectionIDs.filter { collectionMembers[$0]?.contains(index) == true }
            if holders.isEmpty {
                warn(offer.path, "offer \(quoted(offer.id)) is in no collection, so no decision can propose it")
            } else {
                warn(
                    offer.path,
                    "offer \(quoted(offer.id)) is only in collections no criterion uses (\(list(holders))), "
                        + "so no decision can propose it")
            }
        }
    }

    /// Every criterion of every decision, with its JSON path.
    private static func criteria(of document: JSONValue) -> [(path: String, value: JSONValue)] {
        var found: [(String, JSONValue)] = []
        for (decisionIndex, decision) in (document["decisions"]?.arrayItems ?? []).enumerated() {
            for (scopeIndex, scope) in (decision["scopes"]?.arrayItems ?? []).enumerated() {
                for (criterionIndex, criterion) in (scope["criteria"]?.arrayItems ?? []).enumerated() {
                    found.append(
                        ("decisions[\(decisionIndex)].scopes[\(scopeIndex)].criteria[\(criterionIndex)]", criterion))
                }
            }
        }
        return found
    }

    /// An offer's or a criterion's `eligibility` object: an inline condition or audience lists (a `rule` is
    /// analysed once, at its own path).
    private mutating func eligibility(_ value: JSONValue, at path: String, offers: [Int]) {
        if let source = value["condition"]?.stringValue {
            expression(source, kind: .condition, at: path + ".condition", offers: offers)
        }
        for key in ["anyAudiences", "allAudiences"] {
            for (index, item) in (value[key]?.arrayItems ?? []).enumerated() {
                if let name = item.stringValue {
                    audienceUses.append(AudienceUse(name: name, location: "\(path).\(key)[\(index)]", term: nil))
                }
            }
        }
    }

    private mutating func warn(_ path: String, _ message: String) {
        let warning = CatalogWarning(path: path, message: message)
        if reported.insert(warning).inserted { warnings.append(warning) }
    }

    // MARK: - Expressions

    /// Compiles one expression and analyses its tree. `offers` are the offers whose `offer.*` it reads when it
    /// runs (a formula's candidates, an offer's own eligibility), for `number(offer.characteristics.K)`.
    private mutating func expression(_ source: String, kind: RuleKind, at location: String, offers: [Int]) {
        guard
            let compiled = try? RuleParser.compile(source, kind: kind, allowOfferPaths: true, symbols: &symbols)
        else { return }
        var walk = ExpressionWalk()
        walk.visit(compiled.node, role: kind == .formula ? .formulaValue : nil, guards: [], underNumber: false)

        var reportedMissingKeys: Set<String> = []
        for slot in walk.characteristicSlots {
            let key = symbols.characteristicKeys[slot]
            guard !characteristicKeys.contains(key) else { continue }
            reportedMissingKeys.insert(key)
            var message = "\(RuleText.characteristic(key)): no offer has the characteristic \(quoted(key))"
            if let near = nearest(key, among: characteristicKeys) { message += " (did you mean \(quoted(near))?)" }
            warn(location, message + ", so it is always null")
        }
        for finding in walk.findings {
            switch finding {
            case .notANumber(let node, let role, let what):
                let term = RuleText.render(node, symbols)
                let fix: String
                switch what {
                case "a string":
                    fix = ": write number(\(term))"
                case "a boolean":
                    if case .literal = node {
                        fix = ": write a number (1 or 0)"
                    } else {
                        fix = ": write if(\(term), 1, 0)"
                    }
                default:
                    fix = ""
                }
                warn(location, "\(term) gives \(what)\(Self.why(role: role, kind: kind, what: what))\(fix)")
            case .characteristicAsString(let slot, let role):
                let key = symbols.characteristicKeys[slot]
                guard !reportedMissingKeys.contains(key) else { continue }
                let term = RuleText.characteristic(key)
                warn(
                    location,
                    "\(term) is a string (offer characteristics always are)"
                        + Self.why(role: role, kind: kind, what: "a string") + ": write number(\(term))")
            case .characteristicNumber(let slot, let role, let guarded):
                let key = symbols.characteristicKeys[slot]
                guard !reportedMissingKeys.contains(key) else { continue }
                var problems: [String] = []
                for index in offers {
                    let offer = self.offers[index]
                    if let value = offer.characteristics[key] {
                        if UnicodeText.strictNumber(value) == nil {
                            problems.append("offer \(quoted(offer.id)) (\(quoted(value)) is not a number)")
                        }
                    } else if !guarded {
                        problems.append("offer \(quoted(offer.id)) (it has no \(quoted(key)))")
                    }
                }
                guard !problems.isEmpty else { continue }
                let shown = problems.prefix(3).joined(separator: ", ")
                let more = problems.count > 3 ? " and \(problems.count - 3) more" : ""
                let its = problems.count == 1 ? "its" : "their"
                let consequence: String
                switch (kind, role) {
                case (.formula, .arithmeticOperand?):
                    consequence = "so the whole formula gives null and \(its) score is 0"
                case (.formula, _):
                    consequence = "so \(its) score is 0"
                default:
                    consequence = "so it gives null there"
                }
                warn(location, "number(\(RuleText.characteristic(key))) is null for \(shown)\(more), \(consequence)")
            }
        }
        for use in walk.attributeUses {
            attributeUses.append(
                AttributeUse(
                    path: symbols.attributePaths[use.slot], location: location, numericRole: use.role,
                    underNumber: use.underNumber, guarded: use.guarded, expressionKind: kind))
        }
        for audience in walk.audiences {
            audienceUses.append(
                AudienceUse(name: audience, location: location, term: "inAudience(\(RuleText.string(audience)))"))
        }
    }

    /// Why a value that is not a number goes wrong where it is.
    fileprivate static func why(role: NumericRole?, kind: RuleKind, what: String) -> String {
        switch role {
        case .formulaValue?:
            return "; a formula's score is its number, and 0 when it gives none"
        case .arithmeticOperand?:
            return kind == .formula
                ? "; arithmetic takes numbers only, so the formula gives null and the score is 0"
                : "; arithmetic takes numbers only, so it gives null"
        case .comparedWithNumber?:
            return "; \(what) is never less or greater than a number, so the comparison is false"
        case nil:
            return ""
        }
    }

    // MARK: - With profiles

    /// The warnings that need the snapshot's profiles: paths and audiences no profile has, and formula terms that
    /// are not numbers, or are missing, in some profiles. `snapshotName` names the snapshot in the messages.
    public func profileWarnings(census: ProfileCensus, snapshotName: String) -> [CatalogWarning] {
        var result: [CatalogWarning] = []
        var reported: Set<CatalogWarning> = []
        func warn(_ path: String, _ message: String) {
            let warning = CatalogWarning(path: path, message: message)
            if reported.insert(warning).inserted { result.append(warning) }
        }
        let total = census.profileCount
        for use in attributeUses {
            let term = RuleText.attribute(use.path.segments)
            let facts = census.paths[use.path] ?? ProfileCensus.PathFacts()
            if facts.present == 0 {
                var message = "\(term): no profile in \(snapshotName) has this attribute"
                if let near = nearestPath(use.path.segments, among: census.knownPaths) {
                    message += " (did you mean \(RuleText.attribute(near))?)"
                }
                warn(use.location, message + ", so it is always null")
                continue
            }
            guard let role = use.numericRole else { continue }
            let kinds: [(count: Int, what: String)] = [
                (use.underNumber ? 0 : facts.strings, "a string"), (facts.booleans, "a boolean"),
                (facts.lists, "a list"), (facts.objects, "an object"),
            ]
            for (count, what) in kinds where count > 0 {
                var message = "\(term) is \(what) in \(count) of the \(facts.present) profiles of \(snapshotName) "
                message += "that have it"
                if use.underNumber {
                    message += ", and number() of \(what) is null"
                    message += Self.why(role: role, kind: use.expressionKind, what: "null")
                } else {
                    message += Self.why(role: role, kind: use.expressionKind, what: what)
                    if what == "a string" { message += ": write number(\(term))" }
                }
                warn(use.location, message)
            }
            if role == .arithmeticOperand && !use.guarded && facts.present < total {
                let consequence =
                    use.expressionKind == .formula
                    ? "the formula gives null and the score is 0 whatever its other terms"
                    : "the arithmetic gives null"
                warn(
                    use.location,
                    "\(term) is missing in \(total - facts.present) of the \(total) profiles of \(snapshotName); "
                        + "for them \(consequence): write if(exists(\(term)), ..., 0)")
            }
        }
        for use in audienceUses where (census.audienceMembers[use.name] ?? 0) == 0 {
            var message = (use.term.map { "\($0): " } ?? "") + "no profile in \(snapshotName) is in audience "
            message += quoted(use.name)
            if let near = nearest(use.name, among: census.knownAudiences) {
                message += " (did you mean \(quoted(near))?)"
            }
            warn(use.location, message)
        }
        return result
    }
}

// MARK: - The walk of one expression

/// One pass over a compiled expression: what it reads, and where a value that cannot be a number is used as one.
private struct ExpressionWalk {
    enum Finding {
        /// A subexpression whose value is never a number (`what`: "a string", "a boolean", "a list", "null").
        case notANumber(RuleNode, CatalogLint.NumericRole, what: String)
        /// `offer.characteristics.K` used as a number without `number(...)`.
        case characteristicAsString(slot: Int, CatalogLint.NumericRole)
        /// `number(offer.characteristics.K)` used as a number: null for offers whose `K` is missing or not numeric.
        case characteristicNumber(slot: Int, CatalogLint.NumericRole?, guarded: Bool)
    }

    /// A path an `if(exists(p), ...)` (or `p != null`) guards.
    enum Guard: Hashable {
        case attribute(Int)
        case characteristic(Int)
        case context(Int)
    }

    var findings: [Finding] = []
    var characteristicSlots: [Int] = []
    var attributeUses: [(slot: Int, role: CatalogLint.NumericRole?, underNumber: Bool, guarded: Bool)] = []
    var audiences: [String] = []

    static func guardKey(_ node: RuleNode) -> Guard? {
        switch node {
        case .attribute(_, let slot): .attribute(slot)
        case .offerCharacteristic(let slot): .characteristic(slot)
        case .context(let slot): .context(slot)
        default: nil
        }
    }

    /// The paths `condition` being true proves non-null (`exists(p)`, `p != null`, and `and`s of them).
    static func provenPresent(_ condition: RuleNode) -> Set<Guard> {
        switch condition {
        case .isNull(let operand, negated: true):
            return guardKey(operand).map { [$0] } ?? []
        case .and(let lhs, let rhs):
            return provenPresent(lhs).union(provenPresent(rhs))
        default:
            return []
        }
    }

    /// The paths `condition` being false proves non-null (`p = null`, `not exists(p)`).
    static func provenPresentWhenFalse(_ condition: RuleNode) -> Set<Guard> {
        switch condition {
        case .isNull(let operand, negated: false):
            return guardKey(operand).map { [$0] } ?? []
        case .not(let inner):
            return provenPresent(inner)
        case .or(let lhs, let rhs):
            return provenPresentWhenFalse(lhs).union(provenPresentWhenFalse(rhs))
        default:
            return []
        }
    }

    /// Whether the node always gives a number or null (so what it is compared with is meant to be a number).
    static func givesNumber(_ node: RuleNode) -> Bool {
        switch node {
        case .literal(.number), .offerPriority, .now, .arithmetic, .negate, .toNumber, .length, .minimum, .maximum:
            return true
        default:
            return false
        }
    }

    /// What a node gives when that is never a number: its description, or nil when it may be a number.
    static func neverANumber(_ node: RuleNode) -> String? {
        switch node {
        case .literal(.string), .lower, .upper:
            return "a string"
        case .literal(.bool), .not, .and, .or, .equal, .isNull, .order, .member, .inAudience, .stringTest:
            return "a boolean"
        case .literal(.list):
            return "a list"
        case .literal(.null):
            return "null"
        default:
            return nil
        }
    }

    /// Visits `node`; `role` says how the enclosing expression uses its value as a number (nil: not as one).
    mutating func visit(_ node: RuleNode, role: CatalogLint.NumericRole?, guards: Set<Guard>, underNumber: Bool) {
        if let role {
            if let what = Self.neverANumber(node) {
                findings.append(.notANumber(node, role, what: what))
            } else if case .offerCharacteristic(let slot) = node {
                findings.append(.characteristicAsString(slot: slot, role))
            } else if case .toNumber(.offerCharacteristic(let slot)) = node {
                findings.append(
                    .characteristicNumber(slot: slot, role, guarded: guards.contains(.characteristic(slot))))
            }
        }
        switch node {
        case .attribute(_, let slot):
            attributeUses.append(
                (slot: slot, role: role, underNumber: underNumber, guarded: guards.contains(.attribute(slot))))
        case .offerCharacteristic(let slot):
            characteristicSlots.append(slot)
        case .inAudience(let name):
            audiences.append(name.name)
        case .literal, .context, .offerPriority, .now:
            break
        case .arithmetic(_, let lhs, let rhs), .minimum(let lhs, let rhs), .maximum(let lhs, let rhs):
            visit(lhs, role: .arithmeticOperand, guards: guards, underNumber: false)
            visit(rhs, role: .arithmeticOperand, guards: guards, underNumber: false)
        case .negate(let operand):
            visit(operand, role: .arithmeticOperand, guards: guards, underNumber: false)
        case .order(_, let lhs, let rhs):
            visit(lhs, role: Self.givesNumber(rhs) ? .comparedWithNumber : nil, guards: guards, underNumber: false)
            visit(rhs, role: Self.givesNumber(lhs) ? .comparedWithNumber : nil, guards: guards, underNumber: false)
        case .toNumber(let operand):
            // Strings are what number() is for; the operand is a number wherever this is.
            if case .offerCharacteristic(let slot) = operand {
                characteristicSlots.append(slot)
            } else if case .attribute(_, let slot) = operand {
                attributeUses.append(
                    (slot: slot, role: role, underNumber: true, guarded: guards.contains(.attribute(slot))))
            } else {
                visit(operand, role: nil, guards: guards, underNumber: true)
            }
        case .conditional(let condition, let then, let otherwise):
            visit(condition, role: nil, guards: guards, underNumber: false)
            // The branches are the `if`'s value: used as the `if` is.
            visit(then, role: role, guards: guards.union(Self.provenPresent(condition)), underNumber: false)
            visit(
                otherwise, role: role, guards: guards.union(Self.provenPresentWhenFalse(condition)),
                underNumber: false)
        case .not(let operand):
            visit(operand, role: nil, guards: guards, underNumber: false)
        case .and(let lhs, let rhs):
            visit(lhs, role: nil, guards: guards, underNumber: false)
            // `exists(p) and p > 3`: the right side runs only when the left is true.
            visit(rhs, role: nil, guards: guards.union(Self.provenPresent(lhs)), underNumber: false)
        case .or(let lhs, let rhs):
            visit(lhs, role: nil, guards: guards, underNumber: false)
            visit(rhs, role: nil, guards: guards.union(Self.provenPresentWhenFalse(lhs)), underNumber: false)
        case .equal(let lhs, let rhs, _), .member(let lhs, let rhs), .stringTest(_, let lhs, let rhs):
            visit(lhs, role: nil, guards: guards, underNumber: false)
            visit(rhs, role: nil, guards: guards, underNumber: false)
        case .isNull(let operand, _), .lower(let operand), .upper(let operand), .length(let operand):
            visit(operand, role: nil, guards: guards, underNumber: false)
        }
    }
}

// MARK: - Profiles

/// What the profiles of a snapshot hold of the attribute paths and audiences a catalog reads
/// (``CatalogLint/attributePaths``, ``CatalogLint/audiences``).
public struct ProfileCensus: Sendable {
    /// How many profiles have a path, and of which kind its value is.
    public struct PathFacts: Sendable, Equatable {
        /// Profiles where the path is not null.
        public var present = 0
        public var strings = 0
        public var numbers = 0
        public var booleans = 0
        public var lists = 0
        public var objects = 0

        public init() {}
    }

    public private(set) var profileCount = 0
    public private(set) var paths: [AttributePath: PathFacts] = [:]
    /// Members per audience asked about.
    public private(set) var audienceMembers: [String: Int] = [:]
    /// Every attribute path and audience of the first profiles (``sampleSize``), for "did you mean" hints.
    public private(set) var knownPaths: Set<[String]> = []
    public private(set) var knownAudiences: Set<String> = []

    /// How many profiles are read whole for the hints.
    public static let sampleSize = 1000

    public init() {}

    /// Reads every profile of `profiles` for the paths and audiences `lint` asks about. `whole` gives a profile's
    /// plain form for the hints (the first ``sampleSize`` profiles only; nil skips the hints).
    public static func take<Profiles: Sequence>(
        of profiles: Profiles,
        for lint: CatalogLint,
        whole: ((Profiles.Element) -> InMemoryProfile)?
    ) -> ProfileCensus where Profiles.Element: ProfileView {
        var census = ProfileCensus()
        let paths = lint.attributePaths
        let audiences = lint.audiences.map(InternedName.init)
        var facts = [PathFacts](repeating: PathFacts(), count: paths.count)
        var members = [Int](repeating: 0, count: audiences.count)
        for profile in profiles {
            census.profileCount += 1
            for (index, path) in paths.enumerated() {
                switch profile.attribute(at: path) {
                case .null: continue
                case .string: facts[index].strings += 1
                case .number: facts[index].numbers += 1
                case .bool: facts[index].booleans += 1
                case .list: facts[index].lists += 1
                case .object: facts[index].objects += 1
                }
                facts[index].present += 1
            }
            for (index, audience) in audiences.enumerated() where profile.isMember(of: audience) {
                members[index] += 1
            }
            if let whole, census.profileCount <= sampleSize {
                let plain = whole(profile)
                census.knownAudiences.formUnion(plain.audiences)
                Self.collectPaths(plain.attributes, prefix: [], into: &census.knownPaths)
            }
        }
        for (path, pathFacts) in zip(paths, facts) { census.paths[path] = pathFacts }
        for (audience, count) in zip(audiences, members) { census.audienceMembers[audience.name] = count }
        return census
    }

    private static func collectPaths(_ value: JSONValue, prefix: [String], into paths: inout Set<[String]>) {
        guard case .object(let members) = value else { return }
        for member in members {
            let path = prefix + [member.key]
            paths.insert(path)
            collectPaths(member.value, prefix: path, into: &paths)
        }
    }
}

// MARK: - Text

/// Rule expressions written back as text, for warnings.
enum RuleText {
    /// Whether `text` can be written as a plain path segment (`[A-Za-z_][A-Za-z0-9_]*`).
    static func isIdentifier(_ text: String) -> Bool {
        func isLetter(_ byte: UInt8) -> Bool {
            (byte | 0x20) >= UInt8(ascii: "a") && (byte | 0x20) <= UInt8(ascii: "z")
        }
        func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }
        guard let first = text.utf8.first, first == UInt8(ascii: "_") || isLetter(first) else { return false }
        return text.utf8.allSatisfy { $0 == UInt8(ascii: "_") || isLetter($0) || isDigit($0) }
    }

    static func string(_ text: String) -> String {
        var escaped = "\""
        for character in text {
            switch character {
            case "\"": escaped += "\\\""
            case "\\": escaped += "\\\\"
            case "\n": escaped += "\\n"
            case "\t": escaped += "\\t"
            default: escaped.append(character)
            }
        }
        return escaped + "\""
    }

    static func segment(_ name: String) -> String { isIdentifier(name) ? ".\(name)" : "[\(string(name))]" }

    static func attribute(_ segments: [String]) -> String { "profile" + segments.map(segment).joined() }

    static func characteristic(_ key: String) -> String { "offer.characteristics" + segment(key) }

    static func number(_ value: Double) -> String {
        value == value.rounded() && value.magnitude < 1e15 ? String(Int64(value)) : String(value)
    }

    static func literal(_ value: RuleValue) -> String {
        switch value {
        case .null: "null"
        case .bool(let flag): flag ? "true" : "false"
        case .number(let number): Self.number(number)
        case .string(let text): string(text)
        case .list(let items): "[" + items.map(literal).joined(separator: ", ") + "]"
        case .object: "{}"
        }
    }

    /// `node` as source text; operands that are themselves operators are parenthesized.
    static func render(_ node: RuleNode, _ symbols: RuleSymbols) -> String {
        func operand(_ node: RuleNode) -> String {
            switch node {
            case .and, .or, .not, .equal, .order, .member, .arithmetic, .isNull(_, negated: false):
                return "(" + render(node, symbols) + ")"
            default:
                return render(node, symbols)
            }
        }
        switch node {
        case .literal(let value): return literal(value)
        case .attribute(let path, _): return attribute(path.segments)
        case .context(let slot): return "context" + segment(symbols.contextKeys[slot])
        case .offerPriority: return "offer.priority"
        case .offerCharacteristic(let slot): return characteristic(symbols.characteristicKeys[slot])
        case .now: return "now"
        case .not(let operand_): return "not " + operand(operand_)
        case .and(let lhs, let rhs): return operand(lhs) + " and " + operand(rhs)
        case .or(let lhs, let rhs): return operand(lhs) + " or " + operand(rhs)
        case .equal(let lhs, let rhs, let negated): return operand(lhs) + (negated ? " != " : " = ") + operand(rhs)
        case .isNull(let operand_, let negated):
            return negated ? "exists(\(render(operand_, symbols)))" : operand(operand_) + " = null"
        case .order(let ordering, let lhs, let rhs):
            let symbol =
                switch ordering {
                case .less: " < "
                case .lessEqual: " <= "
                case .greater: " > "
                case .greaterEqual: " >= "
                }
            return operand(lhs) + symbol + operand(rhs)
        case .member(let lhs, let rhs): return operand(lhs) + " in " + operand(rhs)
        case .arithmetic(let operation, let lhs, let rhs):
            let symbol =
                switch operation {
                case .add: " + "
                case .subtract: " - "
                case .multiply: " * "
                case .divide: " / "
                }
            return operand(lhs) + symbol + operand(rhs)
        case .negate(let operand_): return "-" + operand(operand_)
        case .inAudience(let name): return "inAudience(\(string(name.name)))"
        case .stringTest(let test, let lhs, let rhs):
            let name =
                switch test {
                case .contains: "contains"
                case .startsWith: "startsWith"
                case .endsWith: "endsWith"
                }
            return "\(name)(\(render(lhs, symbols)), \(render(rhs, symbols)))"
        case .lower(let operand_): return "lower(\(render(operand_, symbols)))"
        case .upper(let operand_): return "upper(\(render(operand_, symbols)))"
        case .length(let operand_): return "len(\(render(operand_, symbols)))"
        case .toNumber(let operand_): return "number(\(render(operand_, symbols)))"
        case .conditional(let condition, let then, let otherwise):
            return "if(\(render(condition, symbols)), \(render(then, symbols)), \(render(otherwise, symbols)))"
        case .minimum(let lhs, let rhs): return "min(\(render(lhs, symbols)), \(render(rhs, symbols)))"
        case .maximum(let lhs, let rhs): return "max(\(render(lhs, symbols)), \(render(rhs, symbols)))"
        }
    }
}

// MARK: - Helpers

private func quoted(_ text: String) -> String { "\"\(text)\"" }

private func list(_ items: [String]) -> String { items.map(quoted).joined(separator: ", ") }

/// Edit distance in characters (insertions, deletions, substitutions, and swaps of neighbours).
func editDistance(_ lhs: String, _ rhs: String) -> Int {
    let a = Array(lhs)
    let b = Array(rhs)
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var before = [Int](repeating: 0, count: b.count + 1)
    var previous = Array(0...b.count)
    var current = [Int](repeating: 0, count: b.count + 1)
    for i in 1...a.count {
        current[0] = i
        for j in 1...b.count {
            let cost = a[i - 1] == b[j - 1] ? 0 : 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                current[j] = min(current[j], before[j - 2] + 1)
            }
        }
        (before, previous, current) = (previous, current, before)
    }
    return previous[b.count]
}

/// The closest of `candidates` to `name`, when it is close enough to be a typo (ties: the smallest).
func nearest(_ name: String, among candidates: some Collection<String>) -> String? {
    let limit = max(1, min(3, name.count / 3))
    var best: (distance: Int, candidate: String)?
    for candidate in candidates where candidate != name {
        let distance = editDistance(name, candidate)
        guard distance <= limit else { continue }
        if best == nil || distance < best!.distance || (distance == best!.distance && candidate < best!.candidate) {
            best = (distance, candidate)
        }
    }
    return best?.candidate
}

/// The closest known path to `segments`: same length, all segments but one equal, that one a near miss.
func nearestPath(_ segments: [String], among known: Set<[String]>) -> [String]? {
    var best: [String]?
    var bestText = ""
    for candidate in known where candidate.count == segments.count && candidate != segments {
        let differing = zip(candidate, segments).filter { $0 != $1 }
        guard differing.count == 1, nearest(differing[0].1, among: [differing[0].0]) != nil else { continue }
        let text = candidate.joined(separator: ".")
        if best == nil || text < bestText {
            best = candidate
            bestText = text
        }
    }
    return best
}

extension JSONValue {
    fileprivate var stringValue: String? {
        if case .string(let text) = self { return text }
        return nil
    }

    fileprivate var arrayItems: [JSONValue]? {
        if case .array(let items) = self { return items }
        return nil
    }

    fileprivate var objectMembers: [JSONMember]? {
        if case .object(let members) = self { return members }
        return nil
    }
}
