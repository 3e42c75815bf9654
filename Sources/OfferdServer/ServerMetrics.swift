import Atomics
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
    private let durations: CallDurationHistogram
    private let decisionCounters: [[CoreMetrics.Counter]] // [outcome][reason]
    private let reloadSuccesses: [CoreMetrics.Counter] // [ReloadKind index]
    private let reloadFailures: [CoreMetrics.Counter]

    public init() {
        let registry = PrometheusCollectorRegistry()
        let factory = PrometheusMetricsFactory(registry: registry)
        self.registry = registry
        self.callCounters = Method.allCases.map { method in
            (0...16).map { code in
                CoreMetrics.Counter(
                    label: "offerd_grpc_calls_total",
                    dimensions: [("method", method.label), ("status", String(code))],
                    factory: factory)
            }
        }
        self.durations = CallDurationHistogram(
            name: "offerd_grpc_call_duration_seconds", methods: Method.allCases.map(\.label))
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
        durations.record(method: method.rawValue, nanoseconds: nanoseconds)
    }

    /// Every metric in the Prometheus text format: the registry's, then the call durations.
    public func emitToBuffer() -> [UInt8] {
        var text = registry.emitToBuffer()
        durations.emit(into: &text)
        return text
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
    private let methods: [String]
    private let bounds: [Int64]
    /// Per method: a count per bucket (not cumulative; the last one is +Inf), then the sum of nanoseconds.
    private let cells: [ManagedAtomic<Int>]
    private let stride: Int

    init(name: String, methods: [String]) {
        self.name = name
        self.methods = methods
        self.bounds = Self.bounds
        self.stride = Self.bounds.count + 2
        self.cells = (0..<(methods.count * self.stride)).map { _ in ManagedAtomic(0) }
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
        var out = "# TYPE \(name) histogram\n"
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
