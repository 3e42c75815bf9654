import Foundation
import Logging
import OfferdSnapshot
import Testing

@testable import OfferdServer

/// The server's one reload path, in process: SIGHUP-style requests, blocking reloads and the server's
/// own file watcher, all at once, while the catalog is replaced with ever higher versions.
@Suite struct ServerReloadTests {
    /// The catalog of ``DecisioningServiceTests`` at version `svc-<number>`.
    static func catalog(version number: Int) -> String {
        DecisioningServiceTests.catalogJSON.replacingOccurrences(of: #""svc-1""#, with: "\"svc-\(number)\"")
    }

    static func number(of catalog: LoadedCatalog?) -> Int {
        guard let version = catalog?.version, version.hasPrefix("svc-") else { return -1 }
        return Int(version.dropFirst(4)) ?? -1
    }

    /// Waits until `condition` holds, checking every 10 ms, for at most `seconds` (a bound, not a verdict).
    static func eventually(seconds: Double = 60, _ condition: () -> Bool) async -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return condition()
    }

    static func startServer(_ directory: URL) async throws -> OfferdServer {
        var configuration = ServerConfiguration(
            catalogPath: directory.appendingPathComponent("catalog.json").path,
            snapshotPath: directory.appendingPathComponent("profiles.snap").path)
        configuration.port = 0
        configuration.adminPort = nil
        configuration.threads = 1
        configuration.reloadPollInterval = .milliseconds(10)
        configuration.shutdownGrace = .zero
        let logger = Logger(label: "offerd-test", factory: { _ in SwiftLogNoOpLogHandler() })
        return try await OfferdServer.start(configuration: configuration, logger: logger)
    }

    @Test func reloadStormWhileTheCatalogIsReplacedNeverGoesBack() async throws {
        // Leaves `profiles.snap` (version snap-1) in the directory.
        let directory = try DecisioningServiceTests.makeService().directory
        defer { try? FileManager.default.removeItem(at: directory) }
        let catalogPath = directory.appendingPathComponent("catalog.json").path
        try Self.catalog(version: 0).write(toFile: catalogPath, atomically: true, encoding: .utf8)
        let server = try await Self.startServer(directory)
        #expect(Self.number(of: server.service.catalogs.load()) == 0)

        let lastVersion = 300
        let writing = ManagedFlag()
        let regressions = Regressions()
        let finished = DispatchGroup()
        func spawn(_ body: @escaping @Sendable () -> Void) {
            finished.enter()
            Thread {
                body()
                finished.leave()
            }.start()
        }
        let stagingPrefix = directory.appendingPathComponent("staging-").path
        spawn {
            for version in 1...lastVersion {
                let staging = stagingPrefix + "\(version)"
                try? Self.catalog(version: version).write(toFile: staging, atomically: false, encoding: .utf8)
                _ = rename(staging, catalogPath)
            }
            writing.clear()
        }
        for _ in 0..<2 {
            spawn { while writing.isSet { server.reload() } }
        }
        spawn { while writing.isSet { server.reloadAndWait() } }
        for _ in 0..<2 {
            spawn {
                var last = 0
                var keepReading = true
                while keepReading {
                    keepReading = writing.isSet
                    let number = Self.number(of: server.service.catalogs.load())
                    if number < last { regressions.record("\(last) -> \(number)") }
                    last = number
                }
            }
        }
        await withCheckedContinuation { continuation in
            finished.notify(queue: .global()) { continuation.resume() }
        }

        server.reload()
        #expect(await Self.eventually { Self.number(of: server.service.catalogs.load()) == lastVersion })
        #expect(regressions.all.isEmpty, "readers saw the catalog version go back: \(regressions.all.prefix(5))")
        #expect(server.service.snapshots.load()?.version == "snap-1")
        await server.shutdown()
    }

    @Test func aBrokenReplacementKeepsTheOldVersionAndCountsAFailure() async throws {
        let directory = try DecisioningServiceTests.makeService().directory
        defer { try? FileManager.default.removeItem(at: directory) }
        let catalogPath = directory.appendingPathComponent("catalog.json").path
        try Self.catalog(version: 1).write(toFile: catalogPath, atomically: true, encoding: .utf8)
        let server = try await Self.startServer(directory)
        let held = server.service.catalogs.load()

        try "{ not json".write(toFile: catalogPath, atomically: true, encoding: .utf8)
        server.reloadAndWait()
        #expect(server.service.catalogs.load() === held)
        let text = String(
            decoding: OfferdServer.metricsText(metrics: server.metrics, service: server.service), as: UTF8.self)
        #expect(text.contains(#"offerd_reloads_total{kind="catalog",result="failure"} "#))
        #expect(!text.contains(#"offerd_reloads_total{kind="catalog",result="failure"} 0"#))

        try Self.catalog(version: 2).write(toFile: catalogPath, atomically: true, encoding: .utf8)
        server.reloadAndWait()
        #expect(Self.number(of: server.service.catalogs.load()) == 2)
        await server.shutdown()
    }
}

/// A flag set at creation and cleared once, read from many threads.
private final class ManagedFlag: @unchecked Sendable { // `value` is only touched under `lock`
    private let lock = NSLock()
    private var value = true

    var isSet: Bool { lock.withLock { value } }
    func clear() { lock.withLock { value = false } }
}

/// Steps back seen by readers.
private final class Regressions: @unchecked Sendable { // `steps` is only touched under `lock`
    private let lock = NSLock()
    private var steps: [String] = []

    func record(_ step: String) { lock.withLock { steps.append(step) } }
    var all: [String] { lock.withLock { steps } }
}
