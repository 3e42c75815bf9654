import BenchmarkFixtures
import OfferdCore
import OfferdWire

// Usage: offerd-profile-loop [decide1|decide3|decode|encode] [iterations]
// Runs one hot path in a loop so that a sampling profiler sees nothing else.
let arguments = CommandLine.arguments
let path = arguments.count > 1 ? arguments[1] : "decide1"
let iterations = arguments.count > 2 ? Int(arguments[2]) ?? 100_000 : 100_000
let fixtures = Fixtures.shared
var sink = 0
let start = ContinuousClock.now
for _ in 0..<iterations {
    switch path {
    case "decide3":
        sink &+=
            fixtures.engine.decide(fixtures.threeScopeRequest, profile: fixtures.profile, now: Fixtures.now)
            .propositions.count
    case "decode":
        sink &+= (try? DecideCodec.decodeRequest(fixtures.threeScopeRequestBytes))?.scopes.count ?? 0
    case "encode":
        sink &+=
            DecideCodec.encodeResponse(
                fixtures.threeScopeResult, requestID: "r", snapshotVersion: "s", includeContent: true,
                includeMetadata: false
            ).count
    default:
        sink &+=
            fixtures.engine.decide(fixtures.oneScopeRequest, profile: fixtures.profile, now: Fixtures.now)
            .propositions.count
    }
}
let elapsed = ContinuousClock.now - start
// A run of 0 iterations is the baseline for instruction counts: nothing to divide.
let each = iterations > 0 ? "\(elapsed / iterations)" : "-"
print("\(path): \(iterations) iterations, \(each) each (sink \(sink))")
