/// The members of one JSON object, with its path, after unknown keys were reported.
private struct ObjectFields {
    let path: String
    let members: [JSONMember]

    subscript(key: String) -> JSONValue? {
        for member in members where member.key == key { return member.value }
        return nil
    }

    func path(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }
}

private func indexPath(_ path: String, _ index: Int) -> String { "\(path)[\(index)]" }

private func quoted(_ text: String) -> String { "\"\(text)\"" }

/// Where an id was first declared, for duplicate and reference errors.
private struct Declaration {
    let index: Int
    let path: String
}

private struct OfferDraft {
    var id: String
    var name: String?
    var status: OfferStatus
    var priority: Int
    var startDate: Double
    var endDate: Double
    var tags: [String]
    var characteristics: [Characteristic]
    var eligibility: Eligibility?
    var cappingRules: [CappingRule]
    var representations: [Representation]
    var representationByPlacement: [Int?]
}

private struct CriterionDraft {
    var collectionIndex: Int
    var eligibility: Eligibility?
    var ranking: Ranking
}

private struct ScopeDraft {
    var placementIndex: Int
    var criteria: [CriterionDraft]
}

private struct DecisionDraft {
    var id: String
    var name: String?
    var status: DecisionStatus
    var startDate: Double
    var endDate: Double
    var fallbackIndex: Int?
    var scopes: [ScopeDraft]
}

private enum CollectionDraft {
    case offers([Int])
    case anyTags([String])
    case allTags([String])
}

/// Validates a catalog document and compiles it, collecting every issue.
///
/// Sections are read in dependency order (placements, rules, offers,
/// fallback offers, collections, decisions) whatever their order in the file,
/// so references can be checked in one pass. A problem never stops the
/// walk: the loader reports it, substitutes a harmless value and goes on, and
/// ``load()`` returns nil when anything was reported.
struct CatalogLoader {
    private let bytes: [UInt8]
    private(set) var issues: [CatalogIssue] = []
    private var symbols = RuleSymbols()

    private var placements: [Placement] = []
    private var placementIDs: [String: Declaration] = [:]
    private var rules: [String: CompiledExpression] = [:]
    /// One ``CompiledRule`` per named rule and per distinct inline condition text, so that offers sharing a
    /// condition share its memo slot (see ``ConditionMemo``).
    private var sharedConditions: [String: CompiledRule] = [:]
    private var memoSlotsUsed = 0
    private var ruleDeclarations: [String: Declaration] = [:]
    private var offers: [OfferDraft] = []
    private var offerIDs: [String: Declaration] = [:]
    private var fallbacks: [FallbackOfferDefinition] = []
    private var fallbackIDs: [String: Declaration] = [:]
    private var collections: [CollectionDraft] = []
    private var collectionIDs: [String: Declaration] = [:]
    private var decisions: [DecisionDraft] = []
    private var decisionIDs: [String: Declaration] = [:]
    private var ruleCount = 0

    init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    // MARK: - Reporting and typed reads

    private mutating func report(_ path: String, _ message: String) {
        issues.append(CatalogIssue(path: path, message: message))
    }

    private mutating func report(_ path: String, _ error: RuleCompileError, prefix: String = "") {
        issues.append(CatalogIssue(path: path, message: prefix + error.message, line: error.line, column: error.column))
    }

    /// Reads an object, reporting a wrong type, unknown keys and missing required keys.
    private mutating func object(
        _ value: JSONValue,
        at path: String,
        allowed: [String],
        required: [String] = []
    ) -> ObjectFields? {
        guard case .object(let members) = value else {
            report(path, "must be an object, not \(value.typeDescription)")
            return nil
        }
        let fields = ObjectFields(path: path, members: members)
        for member in members where !allowed.contains(member.key) {
            report(fields.path(member.key), "unknown key (allowed: \(allowed.joined(separator: ", ")))")
        }
        for key in required where fields[key] == nil {
            report(fields.path(key), "is required")
        }
        return fields
    }

    private mutating func array(_ value: JSONValue, at path: String) -> [JSONValue]? {
        guard case .array(let items) = value else {
            report(path, "must be an array, not \(value.typeDescription)")
            return nil
        }
        return items
    }

    private mutating func string(_ fields: ObjectFields, _ key: String, nonEmpty: Bool = false) -> String? {
        guard let value = fields[key] else { return nil }
        guard case .string(let text) = value else {
            report(fields.path(key), "must be a string, not \(value.typeDescription)")
            return nil
        }
        if nonEmpty && text.isEmpty {
            report(fields.path(key), "must not be empty")
            return nil
        }
        return text
    }

    private mutating func integer(_ fields: ObjectFields, _ key: String, in range: ClosedRange<Int>) -> Int? {
        guard let value = fields[key] else { return nil }
        guard case .number(let number) = value else {
            report(fields.path(key), "must be an integer, not \(value.typeDescription)")
            return nil
        }
        guard number.rounded(.towardZero) == number, number.magnitude < 9.0e15 else {
            report(fields.path(key), "must be an integer, not \(number)")
            return nil
        }
        let integer = Int(number)
        guard range.contains(integer) else {
            let upper = range.upperBound == Int.max ? "" : " and at most \(range.upperBound)"
            report(fields.path(key), "must be at least \(range.lowerBound)\(upper), not \(integer)")
            return nil
        }
        return integer
    }

    private mutating func enumeration<Value: RawRepresentable & CaseIterable>(
        _ fields: ObjectFields,
        _ key: String,
        as type: Value.Type
    ) -> Value? where Value.RawValue == String {
        guard let text = string(fields, key) else { return nil }
        guard let value = Value(rawValue: text) else {
            let allowed = Value.allCases.map { quoted($0.rawValue) }.joined(separator: ", ")
            report(fields.path(key), "\(quoted(text)) is not one of \(allowed)")
            return nil
        }
        return value
    }

    private mutating func timestamp(_ fields: ObjectFields, _ key: String) -> Double? {
        guard let text = string(fields, key) else { return nil }
        do {
            return try Timestamp.parse(text)
        } catch {
            report(fields.path(key), error.message)
            return nil
        }
    }

    /// Reads `startDate` / `endDate`, checking that the end is after the start.
    private mutating func dateWindow(_ fields: ObjectFields) -> (start: Double, end: Double) {
        let start = timestamp(fields, "startDate")
        let end = timestamp(fields, "endDate")
        if let start, let end, end <= start {
            report(fields.path("endDate"), "must be after startDate")
        }
        return (start ?? -.infinity, end ?? .infinity)
    }

    private mutating func stringList(
        _ fields: ObjectFields,
        _ key: String,
        nonEmptyList: Bool,
        itemsNonEmpty: Bool = true
    ) -> [String]? {
        guard let value = fields[key], let items = array(value, at: fields.path(key)) else { return nil }
        if nonEmptyList && items.isEmpty {
            report(fields.path(key), "must not be empty")
            return nil
        }
        var strings: [String] = []
        for (index, item) in items.enumerated() {
            let path = indexPath(fields.path(key), index)
            guard case .string(let text) = item else {
                report(path, "must be a string, not \(item.typeDescription)")
                continue
            }
            if itemsNonEmpty && text.isEmpty {
                report(path, "must not be empty")
                continue
            }
            strings.append(text)
        }
        return strings
    }

    private mutating func characteristics(_ fields: ObjectFields) -> [Characteristic] {
        guard let value = fields["characteristics"] else { return [] }
        guard case .object(let members) = value else {
            report(fields.path("characteristics"), "must be an object of strings, not \(value.typeDescription)")
            return []
        }
        var result: [Characteristic] = []
        for member in members {
            guard case .string(let text) = member.value else {
                report(
                    fields.path("characteristics") + "[\(quoted(member.key))]",
                    "must be a string, not \(member.value.typeDescription)"
                )
                continue
            }
            result.append(Characteristic(key: member.key, value: text))
        }
        return result
    }

    /// Reads a non-empty `id` and registers it in `table`, reporting duplicates.
    private mutating func declare(
        _ fields: ObjectFields,
        kind: String,
        index: Int,
        in table: WritableKeyPath<CatalogLoader, [String: Declaration]>,
        alsoUnique others: [String: Declaration] = [:]
    ) -> String? {
        guard let id = string(fields, "id", nonEmpty: true) else { return nil }
        let path = fields.path("id")
        if let first = self[keyPath: table][id] ?? others[id] {
            report(path, "duplicate \(kind) id \(quoted(id)) (first declared at \(first.path))")
            return id
        }
        self[keyPath: table][id] = Declaration(index: index, path: path)
        return id
    }

    // MARK: - Loading

    mutating func load() -> Catalog? {
        let document: JSONValue
        do {
            document = try JSONParser.parse(bytes)
        } catch {
            issues.append(
                CatalogIssue(
                    path: "",
                    message: "invalid JSON: \(error.message)",
                    line: error.line,
                    column: error.column
                )
            )
            return nil
        }
        let sections = ["version", "placements", "offers", "fallbackOffers", "collections", "rules", "decisions"]
        guard let root = object(document, at: "", allowed: sections) else { return nil }

        var version = ""
        if root["version"] != nil {
            version = string(root, "version", nonEmpty: true) ?? ""
        }
        if version.isEmpty {
            version = String(stableHash(bytes), radix: 16)
            version = String(repeating: "0", count: 16 - version.count) + version
        }

        func items(_ key: String, _ loader: inout CatalogLoader) -> [JSONValue] {
            guard let value = root[key] else { return [] }
            return loader.array(value, at: key) ?? []
        }

        for (index, value) in items("placements", &self).enumerated() {
            loadPlacement(value, index: index)
        }
        let ruleValues = items("rules", &self)
        ruleCount = ruleValues.count
        for (index, value) in ruleValues.enumerated() {
            loadRule(value, index: index)
        }
        for (index, value) in items("offers", &self).enumerated() {
            loadOffer(value, index: index)
        }
        for (index, value) in items("fallbackOffers", &self).enumerated() {
            loadFallback(value, index: index)
        }
        for (index, value) in items("collections", &self).enumerated() {
            loadCollection(value, index: index)
        }
        for (index, value) in items("decisions", &self).enumerated() {
            loadDecision(value, index: index)
        }
        guard issues.isEmpty else { return nil }
        return build(version: version)
    }

    private mutating func loadPlacement(_ value: JSONValue, index: Int) {
        let path = indexPath("placements", index)
        var placement = Placement(id: "", name: nil, channel: .web, contentType: .text)
        defer { placements.append(placement) }
        guard
            let fields = object(
                value,
                at: path,
                allowed: ["id", "name", "channel", "contentType"],
                required: ["id", "channel", "contentType"]
            )
        else { return }
        let id = declare(fields, kind: "placement", index: index, in: \.placementIDs)
        placement = Placement(
            id: id ?? "",
            name: string(fields, "name"),
            channel: enumeration(fields, "channel", as: Channel.self) ?? .web,
            contentType: enumeration(fields, "contentType", as: ContentType.self) ?? .text
        )
    }

    private mutating func loadRule(_ value: JSONValue, index: Int) {
        let path = indexPath("rules", index)
        guard let fields = object(value, at: path, allowed: ["id", "condition"], required: ["id", "condition"]) else {
            return
        }
        let id = declare(fields, kind: "rule", index: index, in: \.ruleDeclarations)
        guard let source = string(fields, "condition") else { return }
        do {
            let compiled = try RuleParser.compile(source, kind: .condition, allowOfferPaths: true, symbols: &symbols)
            if let id, rules[id] == nil { rules[id] = compiled }
        } catch {
            report(fields.path("condition"), error, prefix: id.map { "rule \(quoted($0)): " } ?? "")
        }
    }

    /// The condition compiled for `key`, made once. A condition that does not read `offer.*` gives the same result
    /// for every candidate of a request, so it gets a memo slot while slots remain (first come: a slot used by one
    /// offer only costs a little more than evaluating).
    private mutating func sharedCondition(key: String, _ compiled: CompiledExpression) -> CompiledRule {
        if let shared = sharedConditions[key] { return shared }
        var memoSlot: Int?
        if !compiled.usesOfferPaths && memoSlotsUsed < ConditionMemo.capacity {
            memoSlot = memoSlotsUsed
            memoSlotsUsed += 1
        }
        let rule = CompiledRule(compiled.node, kind: .condition, memoSlot: memoSlot)
        sharedConditions[key] = rule
        return rule
    }

    /// Reads an Eligibility object. `perOffer` is false for a criterion's own
    /// eligibility, which is evaluated once and so cannot read `offer.*`.
    private mutating func eligibility(_ value: JSONValue, at path: String, perOffer: Bool) -> Eligibility? {
        let kinds = ["rule", "condition", "anyAudiences", "allAudiences"]
        guard let fields = object(value, at: path, allowed: kinds) else { return nil }
        let present = kinds.filter { fields[$0] != nil }
        guard present.count == 1 else {
            report(path, "needs exactly one of rule, condition, anyAudiences, allAudiences")
            return nil
        }
        switch present[0] {
        case "rule":
            guard let ruleID = string(fields, "rule", nonEmpty: true) else { return nil }
            guard ruleDeclarations[ruleID] != nil else {
                report(fields.path("rule"), "unknown rule \(quoted(ruleID))")
                return nil
            }
            guard let rule = rules[ruleID] else { return nil } // its own error is already reported
            if !perOffer && rule.usesOfferPaths {
                report(
                    fields.path("rule"),
                    "rule \(quoted(ruleID)) uses offer.* paths; a criterion's eligibility is evaluated once, "
                        + "not per offer"
                )
                return nil
            }
            return .condition(sharedCondition(key: "rule:" + ruleID, rule))
        case "condition":
            guard let source = string(fields, "condition") else { return nil }
            do {
                let compiled = try RuleParser.compile(
                    source,
                    kind: .condition,
                    allowOfferPaths: true,
                    symbols: &symbols
                )
                if !perOffer, let position = compiled.firstOfferPathPosition {
                    report(
                        fields.path("condition"),
                        RuleCompileError(
                            "a criterion's eligibility cannot use offer.* paths: it is evaluated once, not per offer",
                            at: position
                        )
                    )
                    return nil
                }
                return .condition(sharedCondition(key: "condition:" + source, compiled))
            } catch {
                report(fields.path("condition"), error)
                return nil
            }
        default:
            let key = present[0]
            guard let audiences = stringList(fields, key, nonEmptyList: true) else { return nil }
            let names = audiences.map(InternedName.init)
            return key == "anyAudiences" ? .anyAudiences(names) : .allAudiences(names)
        }
    }

    /// Reads `representations` (offers and fallback offers alike): at least one, at most one per placement.
    private mutating func representations(_ fields: ObjectFields) -> ([Representation], [Int?]) {
        var byPlacement = [Int?](repeating: nil, count: placements.count)
        var result: [Representation] = []
        var sourceIndices: [Int] = []
        guard let value = fields["representations"], let items = array(value, at: fields.path("representations"))
        else { return (result, byPlacement) }
        if items.isEmpty {
            report(fields.path("representations"), "needs at least one representation")
        }
        for (index, item) in items.enumerated() {
            let path = indexPath(fields.path("representations"), index)
            guard
                let entry = object(
                    item,
                    at: path,
                    allowed: ["placement", "format", "language", "content", "deliveryUrl", "linkUrl"],
                    required: ["placement"]
                )
            else { continue }
            let placementID = string(entry, "placement", nonEmpty: true)
            let format = string(entry, "format")
            let language = stringList(entry, "language", nonEmptyList: false) ?? []
            let content = string(entry, "content")
            let deliveryURL = string(entry, "deliveryUrl")
            let linkURL = string(entry, "linkUrl")
            if entry["content"] == nil && entry["deliveryUrl"] == nil {
                report(path, "needs content or deliveryUrl")
            }
            guard let placementID else { continue }
            guard let placement = placementIDs[placementID] else {
                report(entry.path("placement"), "unknown placement \(quoted(placementID))")
                continue
            }
            if let existing = byPlacement[placement.index] {
                report(
                    entry.path("placement"),
                    "a second representation for placement \(quoted(placementID)) "
                        + "(first at \(indexPath(fields.path("representations"), sourceIndices[existing])))"
                )
                continue
            }
            byPlacement[placement.index] = result.count
            sourceIndices.append(index)
            result.append(
                Representation(
                    placementID: placementID,
                    format: format,
                    language: language,
                    content: content,
                    deliveryURL: deliveryURL,
                    linkURL: linkURL
                )
            )
        }
        return (result, byPlacement)
    }

    private mutating func loadOffer(_ value: JSONValue, index: Int) {
        let path = indexPath("offers", index)
        var draft = OfferDraft(
            id: "",
            name: nil,
            status: .draft,
            priority: 0,
            startDate: -.infinity,
            endDate: .infinity,
            tags: [],
            characteristics: [],
            eligibility: nil,
            cappingRules: [],
            representations: [],
            representationByPlacement: []
        )
        defer { offers.append(draft) }
        let allowed = [
            "id", "name", "status", "priority", "startDate", "endDate", "tags", "characteristics", "eligibility",
            "capping", "representations",
        ]
        guard let fields = object(value, at: path, allowed: allowed, required: ["id", "status", "representations"])
        else { return }
        draft.id = declare(fields, kind: "offer", index: index, in: \.offerIDs) ?? ""
        draft.name = string(fields, "name")
        draft.status = enumeration(fields, "status", as: OfferStatus.self) ?? .draft
        draft.priority = integer(fields, "priority", in: 0...1_000_000) ?? 0
        (draft.startDate, draft.endDate) = dateWindow(fields)
        draft.tags = stringList(fields, "tags", nonEmptyList: false) ?? []
        draft.characteristics = characteristics(fields)
        if let eligibilityValue = fields["eligibility"] {
            draft.eligibility = eligibility(eligibilityValue, at: fields.path("eligibility"), perOffer: true)
        }
        if let cappingValue = fields["capping"] {
            draft.cappingRules = cappingRules(cappingValue, at: fields.path("capping"))
        }
        (draft.representations, draft.representationByPlacement) = representations(fields)
    }

    /// An offer's `capping` list (SPEC 3): at most ``CappingRule/maximumPerOffer`` rules, each with a `limit` and
    /// optional `scope`, `event` and `period`. Rules with an error are left out (the catalog fails anyway).
    private mutating func cappingRules(_ value: JSONValue, at path: String) -> [CappingRule] {
        guard let caps = array(value, at: path) else { return [] }
        if caps.count > CappingRule.maximumPerOffer {
            report(path, "has \(caps.count) rules; at most \(CappingRule.maximumPerOffer) are allowed")
        }
        var rules: [CappingRule] = []
        for (capIndex, capValue) in caps.enumerated() {
            let capPath = indexPath(path, capIndex)
            guard
                let cap = object(
                    capValue, at: capPath, allowed: ["limit", "scope", "event", "period"], required: ["limit"])
            else { continue }
            let issuesBefore = issues.count
            let limit = integer(cap, "limit", in: 1...Int(Int32.max))
            let scope = enumeration(cap, "scope", as: CappingScope.self) ?? .profile
            let event = enumeration(cap, "event", as: CappingEvent.self) ?? .decision
            let period = enumeration(cap, "period", as: CappingPeriod.self) ?? .lifetime
            if let limit, issues.count == issuesBefore {
                rules.append(CappingRule(limit: limit, scope: scope, event: event, period: period))
            }
        }
        return rules
    }

    private mutating func loadFallback(_ value: JSONValue, index: Int) {
        let path = indexPath("fallbackOffers", index)
        guard
            let fields = object(
                value,
                at: path,
                allowed: ["id", "name", "status", "characteristics", "representations"],
                required: ["id", "representations"]
            )
        else {
            fallbacks.append(
                FallbackOfferDefinition(
                    id: "",
                    name: nil,
                    status: .draft,
                    characteristics: [],
                    representations: [],
                    representationByPlacement: []
                )
            )
            return
        }
        let id = declare(fields, kind: "offer", index: index, in: \.fallbackIDs, alsoUnique: offerIDs)
        let status = fields["status"] == nil ? .approved : enumeration(fields, "status", as: OfferStatus.self)
        let (representations, byPlacement) = representations(fields)
        fallbacks.append(
            FallbackOfferDefinition(
                id: id ?? "",
                name: string(fields, "name"),
                status: status ?? .draft,
                characteristics: characteristics(fields),
                representations: representations,
                representationByPlacement: byPlacement
            )
        )
    }

    private mutating func loadCollection(_ value: JSONValue, index: Int) {
        let path = indexPath("collections", index)
        var draft = CollectionDraft.offers([])
        defer { collections.append(draft) }
        let kinds = ["offers", "anyTags", "allTags"]
        guard let fields = object(value, at: path, allowed: ["id"] + kinds, required: ["id"]) else { return }
        _ = declare(fields, kind: "collection", index: index, in: \.collectionIDs)
        let present = kinds.filter { fields[$0] != nil }
        guard present.count == 1 else {
            report(path, "needs exactly one of offers, anyTags, allTags")
            return
        }
        switch present[0] {
        case "offers":
            guard let ids = stringList(fields, "offers", nonEmptyList: false) else { return }
            var indices: [Int] = []
            for (position, id) in ids.enumerated() {
                guard let offer = offerIDs[id] else {
                    let hint = fallbackIDs[id] != nil ? " (it is a fallback offer; collections hold offers)" : ""
                    report(indexPath(fields.path("offers"), position), "unknown offer \(quoted(id))\(hint)")
                    continue
                }
                if !indices.contains(offer.index) { indices.append(offer.index) }
            }
            draft = .offers(indices)
        case "anyTags":
            draft = .anyTags(stringList(fields, "anyTags", nonEmptyList: true) ?? [])
        default:
            draft = .allTags(stringList(fields, "allTags", nonEmptyList: true) ?? [])
        }
    }

    private mutating func loadDecision(_ value: JSONValue, index: Int) {
        let path = indexPath("decisions", index)
        let allowed = ["id", "name", "status", "startDate", "endDate", "fallback", "scopes"]
        guard let fields = object(value, at: path, allowed: allowed, required: ["id", "status", "scopes"]) else {
            return
        }
        let id = declare(fields, kind: "decision", index: index, in: \.decisionIDs) ?? ""
        let name = string(fields, "name")
        let status = enumeration(fields, "status", as: DecisionStatus.self) ?? .draft
        let (start, end) = dateWindow(fields)

        var scopes: [ScopeDraft] = []
        var scopePaths: [String] = []
        if let scopesValue = fields["scopes"], let scopeItems = array(scopesValue, at: fields.path("scopes")) {
            if scopeItems.isEmpty { report(fields.path("scopes"), "must not be empty") }
            for (scopeIndex, scopeValue) in scopeItems.enumerated() {
                let scopePath = indexPath(fields.path("scopes"), scopeIndex)
                if let scope = loadScope(scopeValue, at: scopePath, existing: scopes, existingPaths: scopePaths) {
                    scopes.append(scope)
                    scopePaths.append(scopePath)
                }
            }
        }

        var fallbackIndex: Int?
        if let fallbackID = string(fields, "fallback", nonEmpty: true) {
            let fallbackPath = fields.path("fallback")
            if let declaration = fallbackIDs[fallbackID] {
                fallbackIndex = declaration.index
                let fallback = fallbacks[declaration.index]
                for (scope, scopePath) in zip(scopes, scopePaths)
                where scope.placementIndex < fallback.representationByPlacement.count
                    && fallback.representationByPlacement[scope.placementIndex] == nil
                {
                    report(
                        fallbackPath,
                        "fallback offer \(quoted(fallbackID)) has no representation for placement "
                            + "\(quoted(placements[scope.placementIndex].id)) (used by \(scopePath))"
                    )
                }
                if status == .live && fallback.status != .approved {
                    report(
                        fallbackPath,
                        "fallback offer \(quoted(fallbackID)) is \(fallback.status.rawValue); "
                            + "a live decision's fallback must be approved"
                    )
                }
            } else if offerIDs[fallbackID] != nil {
                report(fallbackPath, "\(quoted(fallbackID)) is an offer, not a fallback offer")
            } else {
                report(fallbackPath, "unknown fallback offer \(quoted(fallbackID))")
            }
        }
        decisions.append(
            DecisionDraft(
                id: id,
                name: name,
                status: status,
                startDate: start,
                endDate: end,
                fallbackIndex: fallbackIndex,
                scopes: scopes
            )
        )
    }

    private mutating func loadScope(
        _ value: JSONValue,
        at path: String,
        existing: [ScopeDraft],
        existingPaths: [String]
    ) -> ScopeDraft? {
        guard
            let fields = object(
                value,
                at: path,
                allowed: ["placement", "criteria"],
                required: ["placement", "criteria"]
            )
        else { return nil }
        var placementIndex: Int?
        if let placementID = string(fields, "placement", nonEmpty: true) {
            if let declaration = placementIDs[placementID] {
                if let duplicate = existing.firstIndex(where: { $0.placementIndex == declaration.index }) {
                    report(
                        fields.path("placement"),
                        "the decision already has a scope for placement \(quoted(placementID)) "
                            + "(\(existingPaths[duplicate]))"
                    )
                } else {
                    placementIndex = declaration.index
                }
            } else {
                report(fields.path("placement"), "unknown placement \(quoted(placementID))")
            }
        }
        var criteria: [CriterionDraft] = []
        if let criteriaValue = fields["criteria"], let items = array(criteriaValue, at: fields.path("criteria")) {
            if items.isEmpty { report(fields.path("criteria"), "must not be empty") }
            for (criterionIndex, item) in items.enumerated() {
                if let criterion = loadCriterion(item, at: indexPath(fields.path("criteria"), criterionIndex)) {
                    criteria.append(criterion)
                }
            }
        }
        guard let placementIndex else { return nil }
        return ScopeDraft(placementIndex: placementIndex, criteria: criteria)
    }

    private mutating func loadCriterion(_ value: JSONValue, at path: String) -> CriterionDraft? {
        guard
            let fields = object(
                value,
                at: path,
                allowed: ["collection", "eligibility", "ranking"],
                required: ["collection"]
            )
        else { return nil }
        var collectionIndex: Int?
        if let collectionID = string(fields, "collection", nonEmpty: true) {
            if let declaration = collectionIDs[collectionID] {
                collectionIndex = declaration.index
            } else {
                report(fields.path("collection"), "unknown collection \(quoted(collectionID))")
            }
        }
        var criterionEligibility: Eligibility?
        if let eligibilityValue = fields["eligibility"] {
            criterionEligibility = eligibility(eligibilityValue, at: fields.path("eligibility"), perOffer: false)
        }
        var ranking = Ranking.priority
        if let rankingValue = fields["ranking"],
            let rankingFields = object(
                rankingValue,
                at: fields.path("ranking"),
                allowed: ["method", "formula"],
                required: ["method"]
            )
        {
            let method = string(rankingFields, "method")
            switch method {
            case "priority":
                if rankingFields["formula"] != nil {
                    report(rankingFields.path("formula"), "is only allowed with \"method\": \"formula\"")
                }
            case "formula":
                if rankingFields["formula"] == nil {
                    report(rankingFields.path("formula"), "is required with \"method\": \"formula\"")
                } else if let source = string(rankingFields, "formula") {
                    do {
                        let compiled = try RuleParser.compile(
                            source,
                            kind: .formula,
                            allowOfferPaths: true,
                            symbols: &symbols
                        )
                        ranking = .formula(CompiledRule(compiled.node, kind: .formula))
                    } catch {
                        report(rankingFields.path("formula"), error)
                    }
                }
            case let other?:
                report(rankingFields.path("method"), "\(quoted(other)) is not one of \"priority\", \"formula\"")
            case nil:
                break
            }
        }
        guard let collectionIndex else { return nil }
        return CriterionDraft(collectionIndex: collectionIndex, eligibility: criterionEligibility, ranking: ranking)
    }

    // MARK: - Building

    /// Turns the validated drafts into the immutable catalog (only called when no issue was found).
    private func build(version: String) -> Catalog {
        let characteristicKeys = symbols.characteristicKeys
        let idOrder = offers.indices.sorted { UnicodeText.less(offers[$0].id, offers[$1].id) }
        var orderOfOffer = [Int](repeating: 0, count: offers.count)
        for (rank, offerIndex) in idOrder.enumerated() { orderOfOffer[offerIndex] = rank }

        let definitions = offers.enumerated().map { index, draft in
            let values: [RuleValue] = characteristicKeys.map { key in
                for entry in draft.characteristics where entry.key == key { return .string(entry.value) }
                return .null
            }
            return OfferDefinition(
                index: index,
                id: draft.id,
                name: draft.name,
                status: draft.status,
                priority: draft.priority,
                startDate: draft.startDate,
                endDate: draft.endDate,
                tags: draft.tags,
                characteristics: draft.characteristics,
                characteristicValues: values,
                eligibility: draft.eligibility,
                cappingRules: draft.cappingRules,
                representations: draft.representations,
                representationByPlacement: draft.representationByPlacement,
                idOrder: orderOfOffer[index]
            )
        }

        let collectionOffers: [[OfferDefinition]] = collections.map { collection in
            switch collection {
            case .offers(let indices):
                return indices.map { definitions[$0] }
            case .anyTags(let tags):
                return definitions.filter { offer in offer.tags.contains { tags.contains($0) } }
            case .allTags(let tags):
                return definitions.filter { offer in tags.allSatisfy { offer.tags.contains($0) } }
            }
        }

        var collectionIDByIndex = [String](repeating: "", count: collections.count)
        for (id, declaration) in collectionIDs { collectionIDByIndex[declaration.index] = id }

        let decisionDefinitions = decisions.map { draft in
            var scopeByPlacement = [DecisionScopeDefinition?](repeating: nil, count: placements.count)
            for scope in draft.scopes {
                let criteria = scope.criteria.map { criterion in
                    let members = collectionOffers[criterion.collectionIndex]
                    let candidates: [CandidateOffer] = members.compactMap { offer in
                        guard offer.status == .approved,
                            let representation = offer.representationByPlacement[scope.placementIndex]
                        else { return nil }
                        return CandidateOffer(offer: offer, representationIndex: representation)
                    }
                    return CriterionDefinition(
                        eligibility: criterion.eligibility,
                        ranking: criterion.ranking,
                        collectionOffers: members,
                        candidates: candidates,
                        collectionID: collectionIDByIndex[criterion.collectionIndex]
                    )
                }
                scopeByPlacement[scope.placementIndex] = DecisionScopeDefinition(
                    placementIndex: scope.placementIndex,
                    criteria: criteria
                )
            }
            return DecisionDefinition(
                id: draft.id,
                name: draft.name,
                status: draft.status,
                startDate: draft.startDate,
                endDate: draft.endDate,
                fallbackIndex: draft.fallbackIndex,
                scopeByPlacement: scopeByPlacement
            )
        }

        return Catalog(
            version: version,
            placements: placements,
            offers: definitions,
            fallbackOffers: fallbacks,
            decisions: decisionDefinitions,
            contextKeys: symbols.contextKeys,
            attributePaths: symbols.attributePaths,
            collectionCount: collections.count,
            ruleCount: ruleCount
        )
    }
}
