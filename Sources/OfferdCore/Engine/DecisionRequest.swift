/// A value of the request context (SPEC 2.1 `ContextValue`).
public enum ContextValue: Sendable, Equatable {
    case null
    case string(String)
    case number(Double)
    case bool(Bool)
}

/// One requested decision scope: (decision id, placement id, item count).
public struct ScopeRequest: Sendable, Equatable {
    public var decisionID: String
    public var placementID: String
    /// As sent: 0 means 1 (see ``effectiveItemCount``).
    public var itemCount: UInt32

    public init(decisionID: String, placementID: String, itemCount: UInt32 = 1) {
        self.decisionID = decisionID
        self.placementID = placementID
        self.itemCount = itemCount
    }

    public var effectiveItemCount: Int { itemCount == 0 ? 1 : Int(itemCount) }
}

/// A decision request as the engine sees it: the transport-free form of
/// `offerd.v1.DecideRequest`.
public struct DecisionRequest: Sendable, Equatable {
    public var requestID: String
    public var identity: Identity
    public var scopes: [ScopeRequest]
    /// Context entries in wire order; keys are unique after validation.
    public var context: [String: ContextValue]
    public var allowDuplicates: Bool
    public var includeContent: Bool
    public var includeMetadata: Bool
    public var dryRun: Bool
    public var explain: Bool

    public init(
        requestID: String = "",
        identity: Identity,
        scopes: [ScopeRequest],
        context: [String: ContextValue] = [:],
        allowDuplicates: Bool = false,
        includeContent: Bool = false,
        includeMetadata: Bool = false,
        dryRun: Bool = false,
        explain: Bool = false
    ) {
        self.requestID = requestID
        self.identity = identity
        self.scopes = scopes
        self.context = context
        self.allowDuplicates = allowDuplicates
        self.includeContent = includeContent
        self.includeMetadata = includeMetadata
        self.dryRun = dryRun
        self.explain = explain
    }
}
