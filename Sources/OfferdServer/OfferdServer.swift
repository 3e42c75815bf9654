import Logging
import NIOCore
import NIOPosix
import OfferdCore
import OfferdSnapshot
import OfferdTransport

/// A running offerd: the gRPC server, the admin endpoints and the reloaders,
/// wired to one catalog store and one snapshot store.
///
/// Lifecycle: ``start(configuration:logger:)`` loads the catalog and the
/// snapshot (refusing to start when either is missing or invalid) and starts
/// listening; ``reload()`` (SIGHUP) and the file watcher load new versions
/// beside the old ones and publish them only once valid; ``shutdown()``
/// (SIGTERM/SIGINT) turns readiness off, sends GOAWAY, lets in-flight calls
/// finish within the grace period and closes everything.
public final class OfferdServer: Sendable {
    public let configuration: ServerConfiguration
    public let service: DecisioningService
    public let metrics: ServerMetrics
    private let logger: Logger
    private let group: MultiThreadedEventLoopGroup
    private let grpcServer: GRPCServer
    private let adminServer: AdminServer?
    private let watcher: FileChangeWatcher

    private init(
        configuration: ServerConfiguration, service: DecisioningService, metrics: ServerMetrics, logger: Logger,
        group: MultiThreadedEventLoopGroup, grpcServer: GRPCServer, adminServer: AdminServer?,
        watcher: FileChangeWatcher
    ) {
        self.configuration = configuration
        self.service = service
        self.metrics = metrics
        self.logger = logger
        self.group = group
        self.grpcServer = grpcServer
        self.adminServer = adminServer
        self.watcher = watcher
    }

    /// The bound gRPC port (useful with port 0).
    public var grpcPort: Int? { grpcServer.localAddress?.port }
    /// The bound admin port, when the admin endpoints are enabled.
    public var adminPort: Int? { adminServer?.localPort }

    /// Loads the catalog and the snapshot, then starts serving.
    ///
    /// - Throws: ``LoadError`` naming the file when the catalog or the snapshot
    ///   is missing or invalid; the socket errors of binding otherwise.
    public static func start(configuration: ServerConfiguration, logger: Logger) async throws -> OfferdServer {
        let catalog = try loadCatalog(path: configuration.catalogPath, options: configuration.engineOptions)
        logger.info(
            "catalog loaded",
            metadata: ["path": "\(configuration.catalogPath)", "version": "\(catalog.version)"])
        let snapshot = try loadSnapshot(path: configuration.snapshotPath)
        logger.info(
            "snapshot loaded",
            metadata: [
                "path": "\(configuration.snapshotPath)", "version": "\(snapshot.version)",
                "profiles": "\(snapshot.profileCount)", "load": "\(snapshot.loadMethod)",
            ])

        let metrics = ServerMetrics()
        let service = DecisioningService(
            catalogs: AtomicReferenceStore(catalog), snapshots: AtomicReferenceStore(snapshot),
            allowExplain: configuration.allowExplain, metrics: metrics)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, configuration.threads))

        var grpcConfiguration = GRPCServerConfiguration()
        grpcConfiguration.host = configuration.host
        grpcConfiguration.port = configuration.port
        grpcConfiguration.maxMessageBytes = configuration.maxMessageBytes
        grpcConfiguration.maxConcurrentStreams = configuration.maxConcurrentStreams
        grpcConfiguration.idleTimeout = TimeAmount(configuration.idleTimeout)
        let grpcServer: GRPCServer
        do {
            grpcServer = try await GRPCServer.start(
                configuration: grpcConfiguration, service: service, group: group, logger: logger)
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }

        var adminServer: AdminServer?
        if let adminPort = configuration.adminPort {
            do {
                adminServer = try await AdminServer.start(
                    host: configuration.host, port: adminPort, group: group,
                    endpoints: .init(
                        metrics: { [metrics, service] in Self.metricsText(metrics: metrics, service: service) },
                        isReady: { [service] in service.isReady }))
            } catch {
                await grpcServer.shutdown(grace: .zero)
                try? await group.shutdownGracefully()
                throw error
            }
        }

        let reloadTarget = ReloadTarget(configuration: configuration, service: service, metrics: metrics, logger: logger)
        let watcher = FileChangeWatcher(
            paths: [configuration.catalogPath, configuration.snapshotPath],
            pollInterval: configuration.reloadPollInterval,
            onChange: { path in reloadTarget.reload(changedPath: path) })
        watcher.start()

        let server = OfferdServer(
            configuration: configuration, service: service, metrics: metrics, logger: logger, group: group,
            grpcServer: grpcServer, adminServer: adminServer, watcher: watcher)
        logger.info(
            "listening",
            metadata: [
                "grpc": "\(configuration.host):\(server.grpcPort ?? configuration.port)",
                "admin": "\(server.adminPort.map { "\(configuration.host):\($0)" } ?? "disabled")",
                "threads": "\(configuration.threads)",
            ])
        return server
    }

    /// Reloads the catalog and the snapshot now (SIGHUP); each keeps its old
    /// version when the new file does not load.
    public func reload() {
        let target = ReloadTarget(configuration: configuration, service: service, metrics: metrics, logger: logger)
        target.reload(changedPath: configuration.catalogPath)
        target.reload(changedPath: configuration.snapshotPath)
    }

    /// Graceful shutdown: readiness off, GOAWAY, in-flight calls finish within
    /// the configured grace, then everything closes.
    public func shutdown() async {
        logger.info("shutdown started", metadata: ["grace": "\(configuration.shutdownGrace)"])
        service.beginShutdown()
        watcher.stop()
        let grace = configuration.shutdownGrace.components
        let graceNanoseconds = grace.seconds * 1_000_000_000 + grace.attoseconds / 1_000_000_000
        await grpcServer.shutdown(grace: .nanoseconds(graceNanoseconds))
        await adminServer?.close()
        try? await group.shutdownGracefully()
        logger.info("shutdown complete")
    }

    static func metricsText(metrics: ServerMetrics, service: DecisioningService) -> [UInt8] {
        var text = metrics.registry.emitToBuffer()
        var extra = ""
        if let catalog = service.catalogs.load() {
            extra += "# TYPE offerd_catalog_info gauge\n"
            extra += "offerd_catalog_info{version=\"\(escapedForQuotes(catalog.version))\"} 1\n"
        }
        if let snapshot = service.snapshots.load() {
            extra += "# TYPE offerd_snapshot_info gauge\n"
            extra += "offerd_snapshot_info{version=\"\(escapedForQuotes(snapshot.version))\"} 1\n"
            extra += "# TYPE offerd_snapshot_profiles gauge\n"
            extra += "offerd_snapshot_profiles \(snapshot.profileCount)\n"
            extra += "# TYPE offerd_snapshot_age_seconds gauge\n"
            extra += "offerd_snapshot_age_seconds \(max(0, wallClockSeconds() - Double(snapshot.createdAt)))\n"
        }
        extra += "# TYPE offerd_ready gauge\n"
        extra += "offerd_ready \(service.isReady ? 1 : 0)\n"
        text.append(contentsOf: extra.utf8)
        return text
    }
}

/// Escapes backslash, double quote and newline, as both Prometheus label
/// values and logfmt quoted values require.
func escapedForQuotes(_ value: String) -> String {
    var escaped = ""
    for character in value {
        switch character {
        case "\\": escaped += "\\\\"
        case "\"": escaped += "\\\""
        case "\n": escaped += "\\n"
        default: escaped.append(character)
        }
    }
    return escaped
}

/// Loads a changed file beside the serving version and publishes it only when valid.
struct ReloadTarget: Sendable {
    let configuration: ServerConfiguration
    let service: DecisioningService
    let metrics: ServerMetrics
    let logger: Logger

    func reload(changedPath path: String) {
        if path == configuration.catalogPath {
            do {
                let catalog = try loadCatalog(path: path, options: configuration.engineOptions)
                service.catalogs.publish(catalog)
                metrics.recordReload(.catalog, succeeded: true)
                logger.info("catalog reloaded", metadata: ["path": "\(path)", "version": "\(catalog.version)"])
            } catch {
                metrics.recordReload(.catalog, succeeded: false)
                logger.error(
                    "catalog reload failed; keeping the previous version",
                    metadata: ["path": "\(path)", "error": "\(error.message)"])
            }
        }
        if path == configuration.snapshotPath {
            do {
                let snapshot = try loadSnapshot(path: path)
                service.snapshots.publish(snapshot)
                metrics.recordReload(.snapshot, succeeded: true)
                logger.info(
                    "snapshot reloaded",
                    metadata: [
                        "path": "\(path)", "version": "\(snapshot.version)", "profiles": "\(snapshot.profileCount)",
                        "load": "\(snapshot.loadMethod)",
                    ])
            } catch {
                metrics.recordReload(.snapshot, succeeded: false)
                logger.error(
                    "snapshot reload failed; keeping the previous version",
                    metadata: ["path": "\(path)", "error": "\(error.message)"])
            }
        }
    }
}
