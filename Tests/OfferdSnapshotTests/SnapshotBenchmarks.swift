import Foundation
import OfferdCore
import Testing

@testable import OfferdSnapshot

/// Throughput and latency figures, run by hand in release mode:
///
///     OFFERD_SNAPSHOT_BENCH=200000 swift test -c release -Xswiftc -enable-testing \
///         --filter SnapshotBenchmarks
///
/// The value is the profile count. Prints its figures; asserts only that the
/// work was done, since timings depend on the machine.
@Suite("Snapshot benchmarks (manual)")
struct SnapshotBenchmarks {
    static let profileCount = Int(ProcessInfo.processInfo.environment["OFFERD_SNAPSHOT_BENCH"] ?? "") ?? 0

    @Test(.enabled(if: profileCount > 0))
    func buildLoadLookup() throws {
        let directory = try TemporaryDirectory()
        let source = directory.file("bench.jsonl")
        let output = directory.file("bench.snap")
        let count = Self.profileCount

        var started = monotonicSeconds()
        try SyntheticProfiles.write(count: count, seed: 1, to: source)
        let sourceSize = (try FileManager.default.attributesOfItem(atPath: source)[.size] as? Int) ?? 0
        print("generate: \(count) profiles, \(sourceSize) bytes in \(format(monotonicSeconds() - started)) s")

        started = monotonicSeconds()
        let summary = try SnapshotBuilder.build(input: source, output: output, version: nil, progress: nil)
        let buildSeconds = monotonicSeconds() - started
        print(
            "build: \(format(buildSeconds)) s, \(Int(Double(count) / buildSeconds)) profiles/s, "
                + "\(summary.fileSize) bytes (\(summary.fileSize / max(1, count)) bytes/profile)")

        let residentBefore = residentBytes()
        started = monotonicSeconds()
        let snapshot = try ProfileSnapshot.load(path: output)
        let loadSeconds = monotonicSeconds() - started
        let residentAfter = residentBytes()
        print(
            "load+verify: \(format(loadSeconds)) s (\(format(Double(snapshot.fileSize) / loadSeconds / 1e9)) GB/s); "
                + "resident growth \(residentAfter - residentBefore) bytes = "
                + "\(format(Double(residentAfter - residentBefore) / Double(snapshot.fileSize)))x file size")
        #expect(snapshot.profileCount == count)

        var random = SplitMix64(seed: 5)
        let identities = (0..<100_000).map { _ in
            Identity(namespace: "ECID", id: "ecid-\(random.next(below: count))")
        }
        var samples: [Double] = []
        var found = 0
        for batch in 0..<100 {
            let batchStart = monotonicSeconds()
            for identity in identities[(batch * 1000)..<(batch * 1000 + 1000)] {
                if let profile = snapshot.profile(for: identity) { found += profile.consents == .empty ? 0 : 1 }
            }
            samples.append((monotonicSeconds() - batchStart) / 1000 * 1e9)
        }
        samples.sort()
        print("lookup: median \(format(samples[samples.count / 2])) ns, p99 \(format(samples[98])) ns (1000-lookup batches)")

        let tier = AttributePath(["loyalty", "tier"])
        let vip = InternedName("vip")
        let offer = InternedName("offer-7")
        let readStart = monotonicSeconds()
        var touched = 0
        for identity in identities {
            guard let profile = snapshot.profile(for: identity) else { continue }
            if profile.attribute(at: tier) != .null { touched += 1 }
            if profile.isMember(of: vip) { touched += 1 }
            touched += profile.cappingCount(for: offer)
        }
        print("lookup + attribute + audience + capping: \(format((monotonicSeconds() - readStart) / 1e5 * 1e9)) ns")
        #expect(found > 0 && touched > 0)
    }

    private func format(_ value: Double) -> String { String(format: "%.3f", value) }

    /// VmRSS of this process, from /proc.
    private func residentBytes() -> Int {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let digits = line.filter(\.isNumber)
            return (Int(digits) ?? 0) * 1024
        }
        return 0
    }
}
