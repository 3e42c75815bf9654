import Benchmark
import BenchmarkFixtures
import OfferdCore
import OfferdWire

let benchmarks: @Sendable () -> Void = {
    // Each iteration runs `scaledIterations` (1,000) calls so that clock and counter reads stay small next to
    // a few-microsecond operation; every figure is reported per call.
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .cpuTotal, .mallocCountTotal, .throughput],
        timeUnits: .nanoseconds,
        warmupIterations: 3,
        scalingFactor: .kilo,
        maxDuration: .seconds(2),
        maxIterations: 1_000,
        thresholds: [
            // Allocations are deterministic; counts are per 1,000 calls, so 100 catches one extra malloc per call
            // while allowing for the runner's own few allocations.
            .mallocCountTotal: BenchmarkThresholds(absolute: [.p50: 100, .p90: 100])
        ]
    )
    // Fixtures are built in setup, never inside a measurement.
    func measure(_ name: String, _ body: @escaping (Benchmark) throws -> Void) {
        Benchmark(name, closure: body, setup: { _ = Fixtures.shared })
    }

    measure("Engine.decide/1-scope-3-items") { benchmark in
        let fixtures = Fixtures.shared
        for _ in benchmark.scaledIterations {
            blackHole(fixtures.engine.decide(fixtures.oneScopeRequest, profile: fixtures.profile, now: Fixtures.now))
        }
    }

    measure("Engine.decide/3-scopes") { benchmark in
        let fixtures = Fixtures.shared
        for _ in benchmark.scaledIterations {
            blackHole(fixtures.engine.decide(fixtures.threeScopeRequest, profile: fixtures.profile, now: Fixtures.now))
        }
    }

    // Issue 15's catalog: the formula reads the profile, so every candidate is scored per request.
    let realRequests: [(String, KeyPath<Fixtures, DecisionRequest>)] = [
        ("formula", \.realFormulaRequest), ("priority", \.realPriorityRequest),
        ("formula-3-scopes", \.realThreeScopeRequest), ("formula-30-scopes", \.realThirtyScopeRequest),
    ]
    for (name, request) in realRequests {
        measure("Engine.decide/real-\(name)") { benchmark in
            let fixtures = Fixtures.shared
            let request = fixtures[keyPath: request]
            for _ in benchmark.scaledIterations {
                blackHole(fixtures.realEngine.decide(request, profile: fixtures.profile, now: Fixtures.now))
            }
        }
    }

    measure("Wire.decodeRequest/1-scope") { benchmark in
        let bytes = Fixtures.shared.oneScopeRequestBytes
        for _ in benchmark.scaledIterations {
            blackHole(try DecideCodec.decodeRequest(bytes))
        }
    }

    measure("Wire.decodeRequest/3-scopes") { benchmark in
        let bytes = Fixtures.shared.threeScopeRequestBytes
        for _ in benchmark.scaledIterations {
            blackHole(try DecideCodec.decodeRequest(bytes))
        }
    }

    measure("Wire.encodeResponse/1-scope") { benchmark in
        let fixtures = Fixtures.shared
        for _ in benchmark.scaledIterations {
            blackHole(
                DecideCodec.encodeResponse(
                    fixtures.oneScopeResult, requestID: fixtures.oneScopeRequest.requestID,
                    snapshotVersion: "snapshot-bench-1", includeContent: true, includeMetadata: false))
        }
    }

    measure("Wire.encodeResponse/3-scopes") { benchmark in
        let fixtures = Fixtures.shared
        for _ in benchmark.scaledIterations {
            blackHole(
                DecideCodec.encodeResponse(
                    fixtures.threeScopeResult, requestID: fixtures.threeScopeRequest.requestID,
                    snapshotVersion: "snapshot-bench-1", includeContent: true, includeMetadata: false))
        }
    }
}
