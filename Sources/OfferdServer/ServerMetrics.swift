import CoreMetrics
import OfferdCore
import OfferdTransport
import Prometheus

/// The server's Prometheus metrics.
///
/// Every counter the request path touches is created up front, so a request
/// never looks a metric up by name or takes the factory's lock.
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
    }

    /// Reload targets, as metric label values.
    public enum ReloadKind: String, Sendable, CaseIterable {
        case catalog, snapshot
    }

    public let registry: PrometheusCollectorRegistry
    private let callCounters: [[CoreMetrics.Counter]] // [method][status code]
    private let latency: [CoreMetrics.Timer] // [method]
    private let decisionCounters: [[CoreMetrics.Counter]] // [outcome][reason]
    private let reloadSuccesses: [CoreMetrics.Counter] // [ReloadKind index]
    private let reloadFailures: [CoreMetrics.Counter]

    public init() {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        // Decisions take microseconds, so the default millisecond buckets would put everything in the first one.
        factory.defaultDurationHistogramBuckets = [
            .microseconds(10), .microseconds(25), .microseconds(50), .microseconds(100), .microseconds(250),
            .microseconds(500), .milliseconds(1), .milliseconds(2.5), .milliseconds(5), .milliseconds(10),
            .milliseconds(25), .milliseconds(100), .seconds(1),
        ]
        self.registry = registry
        self.callCounters = Method.allCases.map { method in
            (0...16).map { code in
                CoreMetrics.Counter(
                    label: "offerd_grpc_calls_total",
                    dimensions: [("method", method.label), ("status", String(code))],
                    factory: factory)
            }
        }
        self.latency = Method.allCases.map { method in
            CoreMetrics.Timer(
                label: "offerd_grpc_call_duration_seconds", dimensions: [("method", method.label)],
                factory: factory)
        }
        self.decisionCounters = Outcome.allCases.map { outcome in
            Reason.allCases.map { reason in
                CoreMetrics.Counter(
                    label: "offerd_decisions_total",
                    dimensions: [("outcome", outcome.metricLabel), ("reason", reason.metricLabel)],
                    factory: factory)
            }
        }
        self.reloadSuccesses = ReloadKind.allCases.map { kind in
            CoreMetrics.Counter(
                label: "offerd_reloads_total", dimensions: [("kind", kind.rawValue), ("result", "success")],
                factory: factory)
        }
        self.reloadFailures = ReloadKind.allCases.map { kind in
            CoreMetrics.Counter(
                label: "offerd_reloads_total", dimensions: [("kind", kind.rawValue), ("result", "failure")],
                factory: factory)
        }
    }

    func recordCall(_ method: Method, status: GRPCStatus.Code, nanoseconds: Int64) {
        callCounters[method.rawValue][status.rawValue].increment()
        latency[method.rawValue].recordNanoseconds(nanoseconds)
    }

    func recordDecisions(_ result: DecisionResult) {
        for proposition in result.propositions {
            decisionCounters[proposition.outcome.rawValue][proposition.reason.rawValue].increment()
        }
    }

    func recordReload(_ kind: ReloadKind, succeeded: Bool) {
        let index = ReloadKind.allCases.firstIndex(of: kind)! // every case is in allCases
        (succeeded ? reloadSuccesses : reloadFailures)[index].increment()
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
