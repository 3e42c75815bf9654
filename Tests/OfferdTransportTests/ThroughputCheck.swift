import Foundation
import NIOCore
import OfferdTransport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A manual throughput check, skipped unless `OFFERD_TRANSPORT_BENCH=1`. Run it pinned to core 0 (h2load is
/// pinned to core 1 by the test) in release mode:
///
///     OFFERD_TRANSPORT_BENCH=1 taskset -c 0 swift test -c release -Xswiftc -enable-testing \
///         --filter ThroughputCheck
///
/// It prints calls per second (from h2load) and the test process's CPU time per call (utime + stime from
/// /proc/self/stat, which is the server's event loop plus an idle test runner).
@Suite("throughput check", .enabled(if: ProcessInfo.processInfo.environment["OFFERD_TRANSPORT_BENCH"] != nil))
struct ThroughputCheck {
    private static func processCPUSeconds() throws -> Double {
        let stat = try String(contentsOfFile: "/proc/self/stat", encoding: .utf8)
        guard let closing = stat.lastIndex(of: ")") else {
            throw TestFailure("unexpected /proc/self/stat")
        }
        // After "pid (comm)": field 3 is the state; utime and stime are fields 14 and 15.
        let fields = stat[stat.index(after: closing)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else {
            throw TestFailure("unexpected /proc/self/stat")
        }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    @Test("echo calls per second and CPU microseconds per call", arguments: [100])
    func echoThroughput(payloadBytes: Int) async throws {
        let requests = Int(ProcessInfo.processInfo.environment["OFFERD_TRANSPORT_BENCH_REQUESTS"] ?? "") ?? 200_000
        try await withTestServer { _, port, service in
            let body = try temporaryFile(grpcFrame(Array(repeating: 0x2A, count: payloadBytes)))
            defer { try? FileManager.default.removeItem(atPath: body) }
            let cpuBefore = try Self.processCPUSeconds()
            let output = try await runProcess(
                "/usr/bin/taskset",
                [
                    "-c", "1", "/usr/bin/h2load", "-n", "\(requests)", "-c", "16", "-m", "32",
                    "-H", "content-type: application/grpc", "-d", body, "http://127.0.0.1:\(port)/test.Echo/Echo",
                ],
                timeout: 300
            )
            let cpuSeconds = try Self.processCPUSeconds() - cpuBefore
            let summary = output.standardOutput.split(separator: "\n").filter {
                $0.hasPrefix("finished in") || $0.hasPrefix("requests:") || $0.hasPrefix("status codes:")
                    || $0.contains("time for request:")
            }
            print("THROUGHPUT payload=\(payloadBytes)B calls=\(service.callCount)")
            for line in summary {
                print("THROUGHPUT \(line)")
            }
            let microsecondsPerCall = cpuSeconds * 1e6 / Double(max(service.callCount, 1))
            print("THROUGHPUT server CPU \(cpuSeconds) s = \(microsecondsPerCall) us/call")
            #expect(output.standardOutput.contains("\(requests) succeeded, 0 failed"))
            #expect(service.callCount == requests)
        }
    }
}
