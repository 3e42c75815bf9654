/// The request limits of SPEC section 8.
public enum DecisionLimits {
    public static let maximumScopes = 30
    public static let maximumItemCount = 30
    public static let maximumTotalItems = 100
    public static let maximumContextEntries = 64
}

extension DecisionRequest {
    /// nil when the request is valid, else the INVALID_ARGUMENT message of SPEC 2.3
    /// (e.g. `scopes[2].item_count 31 exceeds 30`).
    ///
    /// UTF-8 and NUL checks belong to the wire layer, which sees the bytes.
    public func validationError() -> String? {
        if identity.namespace.isEmpty { return "identity.namespace is empty" }
        if identity.id.isEmpty { return "identity.id is empty" }
        if scopes.isEmpty { return "scopes is empty; at least 1 is required" }
        if scopes.count > DecisionLimits.maximumScopes {
            return "scopes has \(scopes.count) entries; at most \(DecisionLimits.maximumScopes)"
        }
        var totalItems = 0
        for (index, scope) in scopes.enumerated() {
            if scope.decisionID.isEmpty { return "scopes[\(index)].decision_id is empty" }
            if scope.placementID.isEmpty { return "scopes[\(index)].placement_id is empty" }
            if scope.itemCount > UInt32(DecisionLimits.maximumItemCount) {
                return "scopes[\(index)].item_count \(scope.itemCount) exceeds \(DecisionLimits.maximumItemCount)"
            }
            totalItems += scope.effectiveItemCount
        }
        if totalItems > DecisionLimits.maximumTotalItems {
            return "scopes ask for \(totalItems) items in total; at most \(DecisionLimits.maximumTotalItems)"
        }
        if context.count > DecisionLimits.maximumContextEntries {
            return "context has \(context.count) entries; at most \(DecisionLimits.maximumContextEntries)"
        }
        if context.keys.contains("") { return "context key is empty" }
        // The dictionary's order is random; report the smallest bad key so the message is stable.
        var badKey: String?
        for (key, value) in context {
            guard case .number(let number) = value, !number.isFinite else { continue }
            if badKey.map({ UnicodeText.less(key, $0) }) ?? true { badKey = key }
        }
        if let badKey { return "context[\"\(badKey)\"] is not a finite number" }
        return nil
    }
}
