import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import OfferdCore
import OfferdEventLog
import OfferdSnapshot
import OfferdTransport

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A running offerd: the gRPC server, the admin endpoints and the reloaders,
/// wired to one catalog store and one snapshot store.
///
/// Lifecycle: ``start(configuration:logger:)`` loads the catalog and the
/// snapshot (refusing to start when either is missing or invalid) and starts
/// listening; ``reload()`` (SIGHUP) and the file watchers load new versions
/// beside the old ones and publish them only once valid; ``shutdown()``
/// (SIGTERM/SIGINT) turns readiness off, sends GOAWAY, lets in-flight calls
/// finish within the grace period and closes everything.
///
/// Reloads: the catalog and the snapshot each have one ``FileReloader``, the
/// only code that loads or publishes them. The initial load, every
/// ``reload()`` and every change its watcher sees go through that reloader's
/// serial queue, so a file's versions are published in the order they were
/// read and never go back (see ``FileReloader`` for the whole contract).
/// Requests read both stores lock-free and decide on the versions they read
/// when they started.
public final class OfferdServer: Sendable {
    public let configuration: ServerConfiguration
    public let service: DecisioningService
    public let metrics: ServerMetrics
    private let logger: Logger
    private let group: MultiThreadedEventLoopGroup
    private let grpcServer: GRPCServer
    private let adminServer: AdminServer?
    private let catalogReloader: FileReloader<LoadedCatalog>
    private let snapshotReloader: FileReloader<ProfileSnapshot>

    private init(
        configuration: ServerConfiguration, service: DecisioningService, metrics: ServerMetrics, logger: Logger,
        group: MultiThreadedEventLoopGroup, grpcServer: GRPCServer, adminServer: AdminServer?,
        catalogReloader: FileReloader<LoadedCatalog>, snapshotReloader: FileReloader<ProfileSnapshot>
    ) {
        self.configuration = configuration
        self.service = service
        self.metrics = metrics
        self.logger = logger
        self.group = group
        self.grpcServer = grpcServer
        self.adminServer = adminServer
        self.catalogReloader = catalogReloader
        self.snapshotReloader = snapshotReloader
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
        let metrics = ServerMetrics()
        let catalogReloader = Self.catalogReloader(configuration: configuration, metrics: metrics, logger: logger)
        let catalog = try catalogReloader.loadInitial()
        logger.info(
            "catalog loaded",
            metadata: ["path": "\(configuration.catalogPath)", "version": "\(catalog.version)"])
        // With live state a loaded snapshot goes to the runtime, which publishes it with its overlay (SPEC 9.6).
        let swapTarget = NIOLockedValueBox<LiveStateRuntime?>(nil)
        let snapshotReloader = Self.snapshotReloader(
            configuration: configuration, metrics: metrics, logger: logger,
            onLoaded: { snapshot in swapTarget.withLockedValue { $0 }?.adopt(snapshot) })
        let snapshot = try snapshotReloader.loadInitial()
        logger.info(
            "snapshot loaded",
            metadata: [
                "path": "\(configuration.snapshotPath)", "version": "\(snapshot.version)",
                "profiles": "\(snapshot.profileCount)", "load": "\(snapshot.loadMethod)",
            ])

        // The event log: a file that cannot be opened (held by another server, not a log) stops the start; a
        // Redis log connects on first use, and readiness waits for its replay.
        var live: LiveStateRuntime?
        var servedSnapshots = snapshotReloader.store
        if let log = try configuration.events.open() {
            servedSnapshots = AtomicReferenceStore(snapshot)
            live = LiveStateRuntime(
                log: log, bufferLimit: configuration.eventsBuffer, logger: logger, snapshot: snapshot,
                snapshots: servedSnapshots)
            swapTarget.withLockedValue { $0 = live }
        }
        let service = DecisioningService(
            catalogs: catalogReloader.store, snapshots: servedSnapshots,
            allowExplain: configuration.allowExplain, metrics: metrics, live: live)
        live?.start()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, configuration.threads))

        var grpcConfiguration = GRPCServerConfiguration()
        grpcConfiguration.host = configuration.host
        grpcConfiguration.port = configuration.port
        grpcConfiguration.maxMessageBytes = configuration.maxMessageBytes
        grpcConfiguration.maxConcurrentStreams = configuration.maxConcurrentStreams
        grpcConfiguration.idleTimeout = TimeAmount(configuration.idleTimeout)
        grpcConfiguration.corsAllowedOrigins = configuration.corsOrigins
        if let certificate = configuration.tlsCertificatePath, let key = configuration.tlsKeyPath {
            grpcConfiguration.tls = GRPCTLSConfiguration(
                certificatePath: certificate, privateKeyPath: key, clientCAPath: configuration.tlsClientCAPath)
        }
        let grpcServer: GRPCServer
        do {
            grpcServer = try await GRPCServer.start(
                configuration: grpcConfiguration, service: service, group: group, logger: logger)
        } catch {
            try? await group.shutdownGracefully()
            live?.stop()
            throw ListenError(listener: "gRPC", host: configuration.host, port: configuration.port, error) ?? error
        }

        var adminServer: AdminServer?
        if let adminPort = configuration.adminPort {
            do {
                adminServer = try await AdminServer.start(
                    host: configuration.adminHost, port: adminPort, group: group,
                    endpoints: .init(
                        metrics: { [metrics, service] in Self.metricsText(metrics: metrics, service: service) },
                        isReady: { [service] in service.isReady }))
            } catch {
                await grpcServer.shutdown(grace: .zero)
                try? await group.shutdownGracefully()
                live?.stop()
                throw ListenError(listener: "admin", host: configuration.adminHost, port: adminPort, error) ?? error
            }
        }

        // Watching starts from each file's state just before its initial load: a file replaced while the
        // sockets were being bound is still reloaded.
        catalogReloader.start()
        snapshotReloader.start()

        let server = OfferdServer(
            configuration: configuration, service: service, metrics: metrics, logger: logger, group: group,
            grpcServer: grpcServer, adminServer: adminServer, catalogReloader: catalogReloader,
            snapshotReloader: snapshotReloader)
        logger.info(
            "listening",
            metadata: [
                "grpc": "\(hostAndPort(configuration.host, server.grpcPort ?? configuration.port))",
                "tls":
                    "\(configuration.tlsCertificatePath == nil ? "off" : configuration.tlsClientCAPath == nil ? "on" : "mtls")",
                "admin": "\(server.adminPort.map { hostAndPort(configuration.adminHost, $0) } ?? "disabled")",
                "threads": "\(configuration.threads)",
            ])
        return server
    }

    /// Asks for a reload of the catalog and of the snapshot (SIGHUP) and returns at once; each keeps its old
    /// version when the new file does not load. Callable from any thread; a storm of calls coalesces into at
    /// most one reload in progress and one queued per file, and the reload that serves a call starts after it,
    /// so it reads the files as they were at the call or newer.
    public func reload() {
        catalogReloader.requestReload()
        snapshotReloader.requestReload()
    }

    /// Reloads the catalog and the snapshot and waits for both (tests): after every reload requested
    /// before, each on its reloader's queue. Not from a reloader's queue.
    func reloadAndWait() {
        catalogReloader.reload()
        snapshotReloader.reload()
    }

    /// Graceful shutdown: readiness off, GOAWAY, in-flight calls finish within
    /// the configured grace, then everything closes.
    public func shutdown() async {
        logger.info("shutdown started", metadata: ["grace": "\(configuration.shutdownGrace)"])
        service.beginShutdown()
        catalogReloader.stop()
        snapshotReloader.stop()
        let grace = configuration.shutdownGrace.components
        let graceNanoseconds = grace.seconds * 1_000_000_000 + grace.attoseconds / 1_000_000_000
        await grpcServer.shutdown(grace: .nanoseconds(graceNanoseconds))
        await adminServer?.close()
        try? await group.shutdownGracefully()
        // After the last call: the writer gets the decision events of every answered Decide.
        service.live?.stop()
        logger.info("shutdown complete")
    }

    static func metricsText(metrics: ServerMetrics, service: DecisioningService) -> [UInt8] {
        var text = metrics.emitToBuffer()
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
        if let live = service.live { extra += live.metricsText() }
        extra += "# TYPE offerd_ready gauge\n"
        extra += "offerd_ready \(service.isReady ? 1 : 0)\n"
        text.append(contentsOf: MetricsHelp.addingHelp(to: extra).utf8)
        return text
    }
}

/// The `# HELP` lines of the metrics written by hand (the registry writes its own): one place for every text, so
/// the live-state lines (``LiveStateRuntime/metricsText()``) get theirs too.
enum MetricsHelp {
    static let texts: [String: String] = [
        "offerd_catalog_info": "The version of the catalog being served (always 1).",
        "offerd_snapshot_info": "The version of the profile snapshot being served (always 1).",
        "offerd_snapshot_profiles": "Profiles in the snapshot being served.",
        "offerd_snapshot_age_seconds": "Time since the snapshot being served was built.",
        "offerd_ready": "1 while /readyz answers 200.",
        "offerd_events_total": "Live-state events written by this server, and log entries applied or skipped as "
            + "duplicates, by type and result.",
        "offerd_event_log_up": "1 while the event log answers.",
        "offerd_event_log_lag_seconds": "Time between the last applied entry's write and its application here.",
        "offerd_overlay_keys": "Profiles with live state (counts or consents) in memory.",
        "offerd_events_dropped_total": "Decision events dropped because the buffer for an unreachable log was full.",
        "offerd_events_waiting": "RecordEvents and UpdateConsent events submitted here and not yet written and applied "
            + "(refused past 16,384).",
    ]

    /// `text` with a `# HELP` line before each `# TYPE` line that has none and whose metric has a text above.
    static func addingHelp(to text: String) -> String {
        var result = ""
        result.reserveCapacity(text.utf8.count + 1024)
        var previous: Substring = ""
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("# TYPE "), !previous.hasPrefix("# HELP ") {
                let name = line.dropFirst("# TYPE ".count).prefix { $0 != " " }
                if let help = texts[String(name)] { result += "# HELP \(name) \(help)\n" }
            }
            result += line
            result += "\n"
            previous = line
        }
        // split keeps an empty last piece after the final newline: drop the newline added for it.
        if text.hasSuffix("\n") || text.isEmpty { result.removeLast() }
        return result
    }
}

/// A listener that could not be opened: which one, on which address, and why in words (not NIO's raw error).
public struct ListenError: Error, Sendable, CustomStringConvertible {
    /// `gRPC` or `admin`.
    public var listener: String
    public var host: String
    public var port: Int
    public var reason: String

    /// Wraps the socket errors of binding `listener` to `host`:`port`; nil for any other error (TLS files,
    /// configuration), which already says what it is.
    init?(listener: String, host: String, port: Int, _ error: any Error) {
        self.listener = listener
        self.host = host
        self.port = port
        if let error = error as? IOError {
            var reason = String(cString: strerror(error.errnoCode)).lowercased()
            switch error.errnoCode {
            case EADDRINUSE: reason += " (another process listens there; choose another port)"
            case EACCES: reason += " (ports below 1024 need privileges)"
            case EADDRNOTAVAIL: reason += " (no interface of this machine has that address)"
            default: break
            }
            self.reason = reason
        } else if error is SocketAddressError {
            reason = "cannot resolve the address"
        } else {
            return nil
        }
    }

    public var description: String {
        "cannot listen for \(listener) on \(hostAndPort(host, port)): \(reason)"
    }
}

/// `host:port`, with an IPv6 address in brackets (`[::1]:9090`).
func hostAndPort(_ host: String, _ port: Int) -> String {
    host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
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

extension OfferdServer {
    /// The catalog's reloader: ``loadCatalog(path:options:)``, with the reload metrics and log lines.
    static func catalogReloader(
        configuration: ServerConfiguration, metrics: ServerMetrics, logger: Logger
    ) -> FileReloader<LoadedCatalog> {
        let path = configuration.catalogPath
        let options = configuration.engineOptions
        return FileReloader(
            path: path, pollInterval: configuration.reloadPollInterval,
            load: { path in try loadCatalog(path: path, options: options, metrics: metrics) },
            version: { $0.version },
            onEvent: { event in
                switch event {
                case .loaded(let version, _):
                    metrics.recordReload(.catalog, succeeded: true)
                    logger.info("catalog reloaded", metadata: ["path": "\(path)", "version": "\(version)"])
                case .failed(_, let message):
                    metrics.recordReload(.catalog, succeeded: false)
                    logger.error(
                        "catalog reload failed; keeping the previous version",
                        metadata: ["path": "\(path)", "error": "\(message)"])
                }
            })
    }

    /// The snapshot's reloader: ``loadSnapshot(path:)``, with the reload metrics and log lines.
    static func snapshotReloader(
        configuration: ServerConfiguration, metrics: ServerMetrics, logger: Logger,
        onLoaded: @escaping @Sendable (ProfileSnapshot) -> Void = { _ in }
    ) -> FileReloader<ProfileSnapshot> {
        let path = configuration.snapshotPath
        // Read by the events: `onEvent` runs right after the publish it reports, before the next load.
        let snapshots = AtomicReferenceStore<ProfileSnapshot>(nil)
        return FileReloader(
            path: path, store: snapshots, pollInterval: configuration.reloadPollInterval,
            load: { path in try loadSnapshot(path: path) },
            version: { $0.version },
            onEvent: { event in
                switch event {
                case .loaded(let version, _):
                    metrics.recordReload(.snapshot, succeeded: true)
                    let snapshot = snapshots.load()
                    if let snapshot { onLoaded(snapshot) }
                    logger.info(
                        "snapshot reloaded",
                        metadata: [
                            "path": "\(path)", "version": "\(version)",
                            "profiles": "\(snapshot.map { "\($0.profileCount)" } ?? "?")",
                            "load": "\(snapshot.map { "\($0.loadMethod)" } ?? "?")",
                        ])
                case .failed(_, let message):
                    metrics.recordReload(.snapshot, succeeded: false)
                    logger.error(
                        "snapshot reload failed; keeping the previous version",
                        metadata: ["path": "\(path)", "error": "\(message)"])
                }
            })
    }
}
