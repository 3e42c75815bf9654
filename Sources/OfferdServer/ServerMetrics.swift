import Atomics
import OfferdCore
import OfferdTransport
import Prometheus

/// The server's Prometheus metrics (docs/server.md lists them).
///
/// Every series a request can touch is made up front or, for rare label values, once on first use (a lazy
/// reference per slot), so a request never looks a metric up by name or takes the registry's lock after that.
/// Only series that can happen are shown: an outcome with each reason it can have (SPEC 2.2), and the gRPC
/// statuses a method has answered (OK and the common ones from the start).
public final class ServerMetrics: Sendable {
    /// The gRPC methods offerd serves, as metric label values.
    public enum Method: Int, Sendable, CaseIterable {
        case decide, healthCheck, unknown, recordEvents, updateConsent

        var label: String {
            switch self {
            case .decide: "offerd.v1.Decisioning/Decide"
            case .recordEvents: "offerd.v1.Decisioning/RecordEvents"
            case .updateConsent: "offerd.v1.Decisioning/UpdateConsent"
            case .healthCheck: "grpc.health.v1.Health/Check"
            case .unknown: "unknown"
            }
        }

        /// The statuses shown at 0 before any call: what the method answers in normal operation.
        var expectedStatuses: [GRPCStatus.Code] {
            switch self {
            case .unknown: [.unimplemented]
            case .healthCheck: [.ok, .notFound]
            case .decide, .recordEvents, .updateConsent: [.ok, .invalidArgument, .unavailable, .deadlineExceeded]
            }
        }
    }

    /// Reload targets, as metric label values.
    public enum ReloadKind: String, Sendable, CaseIterable {
        case catalog, snapshot
    }

    /// The (outcome, reason) pairs SPEC 2.2 allows; nothing else is ever answered.
    static let possibleDecisionPairs: [(Outcome, Reason)] = [
        (.offers, .unspecified),
        (.fallback, .noEligibleOffers), (.suppressed, .noEligibleOffers),
        (.fallback, .personalizationDenied), (.suppressed, .personalizationDenied),
        (.suppressed, .marketingDenied),
        (.fallback, .unknownProfile), (.suppressed, .unknownProfile),
        (.error, .decisionNotFound), (.error, .placementNotInDecision), (.error, .decisionInactive),
    ]

    /// The outcomes a decision of the catalog can have, in `offerd_decision_outcomes_total`.
    static let decisionOutcomes: [Outcome] = [.offers, .fallback, .suppressed, .error]

    static var calls: MetricNameDescriptor {
        MetricNameDescriptor(
            metricName: "offerd_grpc_calls", unitName: "total",
            helpText: "gRPC calls answered, by method and gRPC status (by name, e.g. OK, INVALID_ARGUMENT).")
    }
    static var callDuration: MetricNameDescriptor {
        MetricNameDescriptor(
            metricName: "offerd_grpc_call_duration", unitName: "seconds",
            helpText: "Time spent handling a call, from its decoded request to its encoded answer.")
    }
    static var decisions: MetricNameDescriptor {
        MetricNameDescriptor(
            metricName: "offerd_decisions", unitName: "total",
            helpText: "Propositions answered, by outcome and reason (only the pairs that can happen are shown).")
    }
    static var decisionOutcomesByDecision: MetricNameDescriptor {
        MetricNameDescriptor(
            metricName: "offerd_decision_outcomes", unitName: "total",
            helpText: "Propositions answered for each decision of the catalog, by outcome.")
    }
    static var reloads: MetricNameDescriptor {
        MetricNameDescriptor(
            metricName: "offerd_reloads", unitName: "total",
            helpText: "Catalog and snapshot loads after start-up, by kind and result.")
    }

    public let registry: PrometheusCollectorRegistry
    /// [method][status code]: made on first use (the expected statuses at init).
    private let callCounters: [[ManagedAtomicLazyReference<Prometheus.Counter>]]
    /// Lock-free: two relaxed atomic adds per call (a registry histogram took a lock per observation).
    private let durations: CallDurationHistogram
    /// [outcome][reason]: made at init for the possible pairs; any other pair (a bug) on first use.
    private let decisionCounters: [[ManagedAtomicLazyReference<Prometheus.Counter>]]
    private let reloadSuccesses: [Prometheus.Counter] // [ReloadKind index]
    private let reloadFailures: [Prometheus.Counter]

    public init() {
        let registry = PrometheusCollectorRegistry()
        self.registry = registry
        callCounters = Method.allCases.map { _ in (0...16).map { _ in ManagedAtomicLazyReference() } }
        durations = CallDurationHistogram(
            name: "offerd_grpc_call_duration_seconds", help: Self.callDuration.helpText ?? "",
            methods: Method.allCases.map(\.label))
        decisionCounters = Outcome.allCases.map { _ in Reason.allCases.map { _ in ManagedAtomicLazyReference() } }
        reloadSuccesses = ReloadKind.allCases.map { kind in
            registry.makeCounter(descriptor: Self.reloads, labels: [("kind", kind.rawValue), ("result", "success")])
        }
        reloadFailures = ReloadKind.allCases.map { kind in
            registry.makeCounter(descriptor: Self.reloads, labels: [("kind", kind.rawValue), ("result", "failure")])
        }
        for method in Method.allCases {
            for code in method.expectedStatuses { _ = callCounter(method, code) }
        }
        for (outcome, reason) in Self.possibleDecisionPairs { _ = decisionCounter(outcome, reason) }
    }

    private func callCounter(_ method: Method, _ code: GRPCStatus.Code) -> Prometheus.Counter {
        let slot = callCounters[method.rawValue][code.rawValue]
        if let counter = slot.load() { return counter }
        return slot.storeIfNilThenLoad(
            registry.makeCounter(
                descriptor: Self.calls, labels: [("method", method.label), ("status", code.metricLabel)]))
    }

    private func decisionCounter(_ outcome: Outcome, _ reason: Reason) -> Prometheus.Counter {
        let slot = decisionCounters[outcome.rawValue][reason.rawValue]
        if let counter = slot.load() { return counter }
        return slot.storeIfNilThenLoad(
            registry.makeCounter(
                descriptor: Self.decisions,
                labels: [("outcome", outcome.metricLabel), ("reason", reason.metricLabel)]))
    }

    func recordCall(_ method: Method, status: GRPCStatus.Code, nanoseconds: Int64) {
        callCounter(method, status).increment()
        durations.record(method: method.rawValue, nanoseconds: nanoseconds)
    }

    /// Every metric in the Prometheus text format: the registry's, then the call durations.
    public func emitToBuffer() -> [UInt8] {
        var text = registry.emitToBuffer()
        durations.emit(into: &text)
        return text
    }

    /// Counts each proposition by outcome and reason, and, for decisions of `catalog`, by decision and outcome.
    func recordDecisions(_ result: DecisionResult, catalog: LoadedCatalog? = nil) {
        for proposition in result.propositions {
            decisionCounter(proposition.outcome, proposition.reason).increment()
            if let byDecision = catalog?.decisionOutcomeCounters,
                let index = catalog?.engine.catalog.decisionIndex(ofDecision: proposition.decisionID),
                let outcome = Self.decisionOutcomes.firstIndex(of: proposition.outcome)
            {
                byDecision[index][outcome].increment()
            }
        }
    }

    /// One counter per outcome for each decision of `catalog`, in catalog order: what a ``LoadedCatalog`` keeps.
    /// Only the catalog's own decision ids become label values, never a request's.
    public func decisionOutcomeCounters(for catalog: Catalog) -> [[Prometheus.Counter]] {
        catalog.decisionIdentifiers.map { id in
            Self.decisionOutcomes.map { outcome in
                registry.makeCounter(
                    descriptor: Self.decisionOutcomesByDecision,
                    labels: [("decision", id), ("outcome", outcome.metricLabel)])
            }
        }
    }

    func recordReload(_ kind: ReloadKind, succeeded: Bool) {
        let index = ReloadKind.allCases.firstIndex(of: kind)! // every case is in allCases
        (succeeded ? reloadSuccesses : reloadFailures)[index].increment()
    }
}

extension GRPCStatus.Code {
    /// The status's canonical name (`OK`, `INVALID_ARGUMENT`), as gRPC's own tools print it.
    var metricLabel: String {
        switch self {
        case .ok: "OK"
        case .cancelled: "CANCELLED"
        case .unknown: "UNKNOWN"
        case .invalidArgument: "INVALID_ARGUMENT"
        case .deadlineExceeded: "DEADLINE_EXCEEDED"
        case .notFound: "NOT_FOUND"
        case .alreadyExists: "ALREADY_EXISTS"
        case .permissionDenied: "PERMISSION_DENIED"
        case .resourceExhausted: "RESOURCE_EXHAUSTED"
        case .failedPrecondition: "FAILED_PRECONDITION"
        case .aborted: "ABORTED"
        case .outOfRange: "OUT_OF_RANGE"
        case .unimplemented: "UNIMPLEMENTED"
        case .internalError: "INTERNAL"
        case .unavailable: "UNAVAILABLE"
        case .dataLoss: "DATA_LOSS"
        case .unauthenticated: "UNAUTHENTICATED"
        }
    }
}

extension Outcome {
    var metricLabel: String {
        switch self {
        case .unspecified: "unspecified"
        case .offers: "offers"
        case .fallback: "fallback"
        case .suppressed: "suppressed"
        case .error: "error"
        }
    }
}

extension Reason {
    var metricLabel: String {
        switch self {
        case .unspecified: "unspecified"
        case .noEligibleOffers: "no_eligible_offers"
        case .personalizationDenied: "personalization_denied"
        case .marketingDenied: "marketing_denied"
        case .unknownProfile: "unknown_profile"
        case .decisionNotFound: "decision_not_found"
        case .placementNotInDecision: "placement_not_in_decision"
        case .decisionInactive: "decision_inactive"
        }
    }
}

/// The per-method histogram of call durations, recorded without a lock: one relaxed atomic increment of the
/// bucket and one of the sum per call. swift-prometheus's histogram takes a lock and walks every bucket per
/// record, a measurable share of a health check's CPU (benchmarks/README.md, transport pass). Rendered like it:
/// cumulative `_bucket` lines with `le` in seconds, then `_sum` and `_count`, under one `# TYPE` line.
final class CallDurationHistogram: Sendable {
    /// Upper bounds of the buckets, in nanoseconds. Decisions take microseconds, so the usual millisecond buckets
    /// would put everything in the first one.
    static let bounds: [Int64] = [
        10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000,
        25_000_000, 100_000_000, 1_000_000_000,
    ]

    private let name: String
    private let help: String
    private let methods: [String]
    private let bounds: [Int64]
    /// Per method: a count per bucket (not cumulative; the last one is +Inf), then the sum of nanoseconds.
    private let cells: [ManagedAtomic<Int>]
    private let stride: Int

    init(name: String, help: String, methods: [String]) {
        self.name = name
        self.help = help
        self.methods = methods
        bounds = Self.bounds
        stride = Self.bounds.count + 2
        cells = (0..<(methods.count * stride)).map { _ in ManagedAtomic(0) }
    }

    /// One call of `method` (an index into the method labels) that took `nanoseconds`.
    @inline(__always)
    func record(method: Int, nanoseconds: Int64) {
        var bucket = 0
        // Most calls end in the first bucket or two, so a linear search beats a binary one.
        while bucket < bounds.count && nanoseconds > bounds[bucket] {
            bucket += 1
        }
        let base = method * stride
        cells[base + bucket].wrappingIncrement(ordering: .relaxed)
        cells[base + stride - 1].wrappingIncrement(by: Int(max(0, nanoseconds)), ordering: .relaxed)
    }

    /// Appends the histogram in the Prometheus text format.
    func emit(into text: inout [UInt8]) {
        var out = "# HELP \(name) \(help)\n# TYPE \(name) histogram\n"
        for (index, method) in methods.enumerated() {
            let base = index * stride
            let labels = "method=\"\(method)\""
            var cumulative = 0
            for (bucket, bound) in bounds.enumerated() {
                cumulative += cells[base + bucket].load(ordering: .relaxed)
                out += "\(name)_bucket{\(labels),le=\"\(Self.seconds(bound))\"} \(cumulative)\n"
            }
            cumulative += cells[base + bounds.count].load(ordering: .relaxed)
            out += "\(name)_bucket{\(labels),le=\"+Inf\"} \(cumulative)\n"
            let sum = Int64(cells[base + stride - 1].load(ordering: .relaxed))
            out += "\(name)_sum{\(labels)} \(Self.seconds(sum))\n"
            out += "\(name)_count{\(labels)} \(cumulative)\n"
        }
        text.append(contentsOf: out.utf8)
    }

    /// Nanoseconds as decimal seconds with no trailing zeros past the first decimal (`0.000025`, `1.0`), as
    /// swift-prometheus writes durations.
    static func seconds(_ nanoseconds: Int64) -> String {
        let fraction = String(nanoseconds % 1_000_000_000)
        var digits = String(repeating: "0", count: 9 - fraction.count) + fraction
        while digits.count > 1 && digits.hasSuffix("0") {
            digits.removeLast()
        }
        return "\(nanoseconds / 1_000_000_000).\(digits)"
    }
}
