import Foundation
import OfferdCore
import OfferdSnapshotBuilder
import OfferdSnapshotTestSupport
import Testing

@testable import OfferdSnapshot

/// Throughput and latency figures, run by hand in release mode:
///
///     OFFERD_SNAPSHOT_BENCH=200000 swift test -c release -Xswiftc -enable-testing \
///         --filter SnapshotBenchmarks
///
/// The value is the profile count. Prints its figures; asserts only that the
/// work was done, since timings depend on the machine. Times are the calling
/// thread's CPU time (CLOCK_THREAD_CPUTIME_ID), so that a machine busy with
/// other work does not inflate them; the load is also reported as wall time.
@Suite("Snapshot benchmarks (manual)")
struct SnapshotBenchmarks {
    static let profileCount = Int(ProcessInfo.processInfo.environment["OFFERD_SNAPSHOT_BENCH"] ?? "") ?? 0

    @Test(.enabled(if: profileCount > 0))
    func buildLoadLookup() throws {
        let directory = try TemporaryDirectory()
        let source = directory.file("bench.jsonl")
        let output = directory.file("bench.snap")
        let count = Self.profileCount

        var started = cpuSeconds()
        try SyntheticProfiles.write(count: count, seed: 1, to: source)
        let sourceSize = (try FileManager.default.attributesOfItem(atPath: source)[.size] as? Int) ?? 0
        print("generate: \(count) profiles, \(sourceSize) bytes in \(format(cpuSeconds() - started)) s")

        started = cpuSeconds()
        let summary = try SnapshotBuilder.build(input: source, output: output, version: nil, progress: nil)
        let buildSeconds = cpuSeconds() - started
        print(
            "build: \(format(buildSeconds)) s, \(Int(Double(count) / buildSeconds)) profiles/s, "
                + "\(summary.fileSize) bytes (\(summary.fileSize / max(1, count)) bytes/profile)")

        let residentBefore = residentBytes()
        started = cpuSeconds()
        let wallStarted = monotonicSeconds()
        let snapshot = try ProfileSnapshot.load(path: output)
        let loadSeconds = cpuSeconds() - started
        print("load wall time: \(format(monotonicSeconds() - wallStarted)) s")
        let residentAfter = residentBytes()
        print(
            "load+verify: \(format(loadSeconds)) s (\(format(Double(snapshot.fileSize) / loadSeconds / 1e9)) GB/s); "
                + "resident growth \(residentAfter - residentBefore) bytes = "
                + "\(format(Double(residentAfter - residentBefore) / Double(snapshot.fileSize)))x file size")
        #expect(snapshot.profileCount == count)
        var bestLoad = Double.infinity
        for _ in 0..<5 {
            let again = cpuSeconds()
            _ = try ProfileSnapshot.load(path: output)
            bestLoad = min(bestLoad, cpuSeconds() - again)
        }
        print(
            "load+verify, best of 5: \(format(bestLoad)) s"
                + " (\(format(Double(snapshot.fileSize) / bestLoad / 1e9)) GB/s)")

        var random = SplitMix64(seed: 5)
        let identities = (0..<100_000).map { _ in
            Identity(namespace: "ECID", id: "ecid-\(random.next(below: count))")
        }
        var samples: [Double] = []
        var found = 0
        for batch in 0..<100 {
            let batchStart = cpuSeconds()
            for identity in identities[(batch * 1000)..<(batch * 1000 + 1000)] {
                if let profile = snapshot.profile(for: identity) { found += profile.consents == .empty ? 0 : 1 }
            }
            samples.append((cpuSeconds() - batchStart) / 1000 * 1e9)
        }
        samples.sort()
        print(
            "lookup: median \(format(samples[samples.count / 2])) ns, p99 \(format(samples[98])) ns"
                + " (1000-lookup batches)")

        // The same 1,000 identities again and again: records and index slots in cache.
        let hot = Array(identities[0..<1000])
        var hotSamples: [Double] = []
        for _ in 0..<200 {
            let batchStart = cpuSeconds()
            for identity in hot where snapshot.profile(for: identity) != nil { found += 1 }
            hotSamples.append((cpuSeconds() - batchStart) / 1000 * 1e9)
        }
        hotSamples.sort()
        print("lookup, cached: median \(format(hotSamples[hotSamples.count / 2])) ns")

        let tier = AttributePath(["loyalty", "tier"])
        let vip = InternedName("vip")
        let offer = InternedName("offer-7")
        let readStart = cpuSeconds()
        var touched = 0
        for identity in identities {
            guard let profile = snapshot.profile(for: identity) else { continue }
            if profile.attribute(at: tier) != .null { touched += 1 }
            if profile.isMember(of: vip) { touched += 1 }
            touched += profile.cappingCount(for: offer)
        }
        print("lookup + attribute + audience + capping: \(format((cpuSeconds() - readStart) / 1e5 * 1e9)) ns")
        #expect(found > 0 && touched > 0)
    }

    /// CPU time of the calling thread, in seconds.
    private func cpuSeconds() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
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

/// Lookups only, for profiling: `OFFERD_SNAPSHOT_LOOKUP_BENCH=1`.
@Suite("Snapshot lookup profile (manual)")
struct SnapshotLookupProfile {
    @Test(.enabled(if: ProcessInfo.processInfo.environment["OFFERD_SNAPSHOT_LOOKUP_BENCH"] != nil))
    func lookups() throws {
        let directory = try TemporaryDirectory()
        try SyntheticProfiles.write(count: 20_000, seed: 1, to: directory.file("s.jsonl"))
        _ = try SnapshotBuilder.build(
            input: directory.file("s.jsonl"), output: directory.file("s.snap"), version: nil, progress: nil)
        let snapshot = try ProfileSnapshot.load(path: directory.file("s.snap"))
        let identities = (0..<1000).map { Identity(namespace: "ECID", id: "ecid-\($0 * 7)") }
        var found = 0
        let started = monotonicSeconds()
        for _ in 0..<5000 {
            for identity in identities where snapshot.profile(for: identity) != nil { found += 1 }
        }
        print("hot lookup wall: \((monotonicSeconds() - started) / 5e6 * 1e9) ns")
        #expect(found == 5_000_000)
    }
}
