import ArgumentParser
import Dispatch
import Logging
import OfferdCore
import OfferdEventLog
import OfferdLiveState
import OfferdServer
import OfferdSnapshot
import OfferdSnapshotBuilder

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

@main
struct OfferdCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "offerd",
        abstract: "An offer-decisioning gRPC server for the edge.",
        subcommands: [
            Serve.self, CatalogCommand.self, SnapshotCommand.self, ProfilesCommand.self, DecideCommand.self,
            EventsCommand.self, ProtoCommand.self,
        ])
}

// MARK: - serve

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve decisions over gRPC (HTTP/2, cleartext or TLS), Connect and gRPC-Web.")

    @Option(help: "The catalog JSON file.") var catalog: String
    @Option(help: "The profile snapshot file (built by `offerd snapshot build`).") var snapshot: String
    @Option(help: "Address for gRPC (0.0.0.0 or :: for every interface).") var host = "127.0.0.1"
    @Option(help: "gRPC port (0 picks a free port).") var port = 50051
    @Option(help: "Address for the admin endpoints, apart from --host.") var adminHost = "127.0.0.1"
    @Option(help: "Admin HTTP port for /metrics, /healthz, /readyz; 0 disables.") var adminPort = 9090
    @Option(help: "Event loop threads (default: number of cores).") var threads: Int?
    @Option(help: "Largest request message in bytes.") var maxMessageBytes = 65536
    @Option(help: "Advertised SETTINGS_MAX_CONCURRENT_STREAMS.") var maxConcurrentStreams: UInt32 = 100
    @Option(help: "How empty and `u` consents resolve: granted or denied.") var consentDefault: ConsentDefault =
        .granted
    @Option(help: "Identities not in the snapshot: decide or fallback.") var unknownProfile: UnknownProfilePolicy =
        .decide
    @Flag(help: "Allow requests to ask for an explain trace.") var allowExplain = false
    @Option(help: "trace, debug, info, warning or error.") var logLevel: LogLevelArgument = .info
    @Option(help: "Time in-flight calls get to finish on SIGTERM/SIGINT (e.g. 10s, 500ms).")
    var shutdownGrace: DurationArgument = DurationArgument(.seconds(10), text: "10s")
    @Option(help: "Close a connection that has had no open stream for this long, after GOAWAY (e.g. 300s, 2m).")
    var idleTimeout: DurationArgument = DurationArgument(.seconds(300), text: "300s")
    @Option(help: "The event log of live state: file:PATH, redis://[USER:PASSWORD@]HOST:PORT[/DB][?key=KEY] or none.")
    var events = "file:offerd-events.log"
    @Option(help: "Decision events held in memory while the event log is unreachable.")
    var eventsBuffer = 100_000
    @Option(
        name: .customLong("cors-origin"),
        help:
            "A browser origin allowed to call with gRPC-Web or Connect (CORS), e.g. https://app.example.com; repeatable."
    )
    var corsOrigins: [String] = []
    @Option(help: "Serve TLS with this PEM certificate chain (needs --tls-key); reloaded when the file changes.")
    var tlsCert: String?
    @Option(help: "The PEM private key of --tls-cert.") var tlsKey: String?
    @Option(help: "Require client certificates signed by this PEM CA (mTLS; needs --tls-cert).") var tlsClientCa:
        String?

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0...65535") }
        guard (0...65535).contains(adminPort) else { throw ValidationError("--admin-port must be 0...65535") }
        guard maxMessageBytes >= 1 else { throw ValidationError("--max-message-bytes must be at least 1") }
        guard maxConcurrentStreams >= 1 else { throw ValidationError("--max-concurrent-streams must be at least 1") }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
        guard eventsBuffer >= 1 else { throw ValidationError("--events-buffer must be at least 1") }
        var probe = ServerConfiguration(catalogPath: "", snapshotPath: "")
        do { try probe.setEvents(events) } catch { throw ValidationError("\(error)") }
        if (tlsCert == nil) != (tlsKey == nil) { throw ValidationError("--tls-cert and --tls-key go together") }
        if tlsClientCa != nil && tlsCert == nil {
            throw ValidationError("--tls-client-ca needs --tls-cert and --tls-key")
        }
    }

    func run() async throws {
        let level = logLevel.level
        LoggingSystem.bootstrap { label in LogfmtLogHandler(label: label, level: level) }
        let logger = Logger(label: "offerd")

        var configuration = ServerConfiguration(catalogPath: catalog, snapshotPath: snapshot)
        configuration.host = host
        configuration.port = port
        configuration.adminHost = adminHost
        configuration.adminPort = adminPort == 0 ? nil : adminPort
        if let threads { configuration.threads = threads }
        configuration.maxMessageBytes = maxMessageBytes
        configuration.maxConcurrentStreams = maxConcurrentStreams
        configuration.consentDefault = consentDefault
        configuration.unknownProfile = unknownProfile
        configuration.allowExplain = allowExplain
        configuration.shutdownGrace = shutdownGrace.duration
        configuration.idleTimeout = idleTimeout.duration
        try configuration.setEvents(events)
        configuration.eventsBuffer = eventsBuffer
        configuration.corsOrigins = corsOrigins
        configuration.tlsCertificatePath = tlsCert
        configuration.tlsKeyPath = tlsKey
        configuration.tlsClientCAPath = tlsClientCa

        // Signals are taken over before anything starts, so an early SIGTERM is handled, not fatal.
        let signals = SignalStream(signals: [SIGTERM, SIGINT, SIGHUP])
        let server: OfferdServer
        do {
            server = try await OfferdServer.start(configuration: configuration, logger: logger)
        } catch let error as LoadError {
            logger.critical("cannot start", metadata: ["error": "\(error.message)"])
            throw ExitCode(1)
        } catch let error as ListenError {
            logger.critical("cannot start", metadata: ["error": "\(error)"])
            throw ExitCode(1)
        } catch {
            logger.critical("cannot start", metadata: ["error": "\(error)"])
            throw ExitCode(1)
        }
        for await signal in signals.stream {
            if signal == SIGHUP {
                logger.info("SIGHUP: reloading catalog and snapshot")
                server.reload()
                continue
            }
            logger.info("signal received", metadata: ["signal": "\(signal == SIGTERM ? "SIGTERM" : "SIGINT")"])
            break
        }
        await server.shutdown()
    }
}

/// Delivers POSIX signals as an async stream instead of running their default action.
final class SignalStream {
    let stream: AsyncStream<Int32>
    private let sources: [any DispatchSourceSignal]

    init(signals: [Int32]) {
        let (stream, continuation) = AsyncStream<Int32>.makeStream()
        let queue = DispatchQueue(label: "offerd.signals")
        self.stream = stream
        sources = signals.map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler { continuation.yield(number) }
            source.resume()
            return source
        }
    }
}

extension ConsentDefault: ExpressibleByArgument {}
extension UnknownProfilePolicy: ExpressibleByArgument {}

enum LogLevelArgument: String, ExpressibleByArgument, CaseIterable {
    case trace, debug, info, warning, error

    var level: Logger.Level {
        switch self {
        case .trace: .trace
        case .debug: .debug
        case .info: .info
        case .warning: .warning
        case .error: .error
        }
    }
}

/// A duration written as a number with a unit: `10s`, `500ms`, `2m`, `1h`.
struct DurationArgument: ExpressibleByArgument {
    let duration: Duration
    let text: String

    init(_ duration: Duration, text: String) {
        self.duration = duration
        self.text = text
    }

    init?(argument: String) {
        let units: [(suffix: String, seconds: Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
        for unit in units where argument.hasSuffix(unit.suffix) {
            guard let value = Double(argument.dropLast(unit.suffix.count)), value >= 0, value.isFinite else {
                return nil
            }
            self.init(.milliseconds(Int64((value * unit.seconds * 1000).rounded())), text: argument)
            return
        }
        return nil
    }

    var defaultValueDescription: String { text }
}

// MARK: - catalog

struct CatalogCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "catalog", abstract: "Work with catalog files.", subcommands: [Check.self])

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate a catalog: print a summary and any warnings, or every error (exit 1).",
            discussion: """
                Warnings name what loads but cannot work as meant: formula terms that are strings or booleans, \
                characteristic keys no offer has, unused rules and collections, offers no decision reaches; with \
                --snapshot also profile paths and audiences no profile has. Exit status: 0 valid (warnings \
                included), 1 invalid or unreadable, 2 valid with warnings under --strict.
                """)

        @Argument(help: "The catalog JSON file.") var file: String
        @Option(help: "A profile snapshot to check the catalog's profile paths and audiences against.")
        var snapshot: String?
        @Flag(help: "Exit 2 when there is any warning.") var strict = false

        func run() throws {
            let bytes: [UInt8]
            do {
                bytes = try readWholeFile(file)
            } catch {
                printError(error.message)
                throw ExitCode(1)
            }
            let catalog: Catalog
            do {
                catalog = try Catalog.load(bytes: bytes, fileName: file)
            } catch {
                printError(error.description)
                printError("\(file): \(error.issues.count) error\(error.issues.count == 1 ? "" : "s")")
                throw ExitCode(1)
            }
            let lint = CatalogLint(bytes: bytes)
            var warnings = lint.warnings
            if let snapshot {
                let profiles: ProfileSnapshot
                do {
                    profiles = try ProfileSnapshot.load(path: snapshot)
                } catch {
                    printError(error.description)
                    throw ExitCode(1)
                }
                let census = ProfileCensus.take(
                    of: profiles.profiles, for: lint, whole: { $0.toInMemoryProfile() })
                warnings += lint.profileWarnings(census: census, snapshotName: snapshot)
            }
            let summary = catalog.summary
            print("\(file): OK")
            print("version: \(catalog.version)")
            print("placements: \(summary.placements)")
            print("offers: \(summary.offers)")
            print("fallbackOffers: \(summary.fallbackOffers)")
            print("collections: \(summary.collections)")
            print("rules: \(summary.rules)")
            print("decisions: \(summary.decisions)")
            print("warnings: \(warnings.count)")
            for warning in warnings { printError("\(file): \(warning.path): warning: \(warning.message)") }
            if !warnings.isEmpty {
                printError("\(file): \(warnings.count) warning\(warnings.count == 1 ? "" : "s")")
            }
            if strict && !warnings.isEmpty { throw ExitCode(2) }
        }
    }
}

// MARK: - snapshot

struct SnapshotCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapshot", abstract: "Build and read profile snapshots.",
        subcommands: [Build.self, Inspect.self, Get.self])

    struct Build: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Build a snapshot from a JSON Lines profile source.")

        @Option(help: "The profile source (JSON Lines).") var input: String
        @Option(help: "The snapshot file to write (replaced atomically).") var output: String
        @Option(help: "The snapshot version string (default: a content hash).") var version: String?
        @Flag(inversion: .prefixedNo, help: ArgumentHelp(Self.mapInputHelp)) var mapInput = true
        @Option(help: ArgumentHelp(Self.eventsHelp)) var events: String?
        private static let eventsHelp =
            "Fold the event log into the snapshot: an export of `offerd events export` (JSON Lines), or the log "
            + "itself (file:PATH, redis://...)."
        @Option(help: "The previous snapshot: its folded state is kept and only entries after its watermark are added.")
        var base: String?
        private static let mapInputHelp =
            "Parse a regular source file through a memory mapping under a read lease (a writer or a truncation "
            + "elsewhere waits until the build has its own copy) instead of read(): less CPU. Where no lease can "
            + "be had, the source is read."

        func validate() throws {
            if base != nil && events == nil { throw ValidationError("--base needs --events (what to fold on top)") }
        }

        /// SPEC 9.6: the base's folded state plus the entries after its watermark.
        func foldedState() throws -> FoldedState {
            var baseState = FoldedState()
            if let base {
                do {
                    baseState = try ProfileSnapshot.load(path: base, loading: .copy).folded
                } catch {
                    printError("--base \(error)")
                    throw ExitCode(1)
                }
            }
            guard let events else { return baseState }
            var folder: LogFolder
            do {
                folder = try LogFolder(base: baseState)
            } catch {
                printError("--base \(base ?? ""): \(error)")
                throw ExitCode(1)
            }
            func add(_ record: EventLogRecord, at place: String) throws {
                do {
                    try folder.add(record)
                } catch {
                    printError("\(place): \(error)")
                    throw ExitCode(1)
                }
            }
            if events.hasPrefix("file:") || events.hasPrefix("redis://") || events.hasPrefix("rediss://") {
                let log = try openForReading(events)
                defer { log.close() }
                try forEachRecord(in: log, after: nil) { record in try add(record, at: events) }
            } else {
                try forEachExportedRecord(path: events) { record in try add(record, at: events) }
            }
            printError(
                "folded \(folder.foldedCount) events; watermark \(folder.state.watermark ?? "none"), "
                    + "\(folder.state.profiles.count) profile keys")
            return folder.state
        }

        func run() throws {
            var lastReported = 0
            let folded = try foldedState()
            do {
                let summary = try SnapshotBuilder.build(
                    input: input, output: output, version: version,
                    progress: { count in
                        if count - lastReported >= 1_000_000 {
                            lastReported = count
                            printError("\(count) profiles read")
                        }
                    }, mapInput: mapInput, folded: folded)
                print(
                    "\(output): version \(summary.version), \(summary.profileCount) profiles, "
                        + "\(summary.identityCount) identities, \(summary.fileSize) bytes"
                        + (folded.watermark.map { ", watermark \($0)" } ?? ""))
            } catch {
                printError("\(input): \(error)")
                throw ExitCode(1)
            }
        }
    }

    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print a snapshot's header and check its checksum.")

        @Argument(help: "The snapshot file.") var file: String

        func run() throws {
            do {
                let snapshot = try ProfileSnapshot.load(path: file)
                print("file: \(file)")
                print("version: \(snapshot.version)")
                print("created: \(Timestamp.format(epochSeconds: snapshot.createdAt))")
                print("profiles: \(snapshot.profileCount)")
                print("identities: \(snapshot.identityCount)")
                print("size: \(snapshot.fileSize)")
                print("checksum: ok")
                print("watermark: \(snapshot.watermark ?? "none")")
                if !snapshot.folded.isEmpty {
                    print("folded keys: \(snapshot.folded.profiles.count)")
                }
            } catch {
                printError(error.description)
                throw ExitCode(1)
            }
        }
    }

    struct Get: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print one profile of a snapshot as JSON.")

        @Argument(help: "The snapshot file.") var file: String
        @Argument(help: "Identity namespace (case-insensitive).") var namespace: String
        @Argument(help: "Identity id (exact).") var id: String

        func run() throws {
            let snapshot: ProfileSnapshot
            do {
                snapshot = try ProfileSnapshot.load(path: file)
            } catch {
                printError(error.description)
                throw ExitCode(1)
            }
            guard let profile = snapshot.profile(for: Identity(namespace: namespace, id: id)) else {
                printError("\(namespace):\(id) is not in \(file)")
                throw ExitCode(1)
            }
            print(ProfileSourceWriter.line(profile.toInMemoryProfile()))
        }
    }
}

// MARK: - profiles

struct ProfilesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "profiles", abstract: "Profile source utilities.", subcommands: [Generate.self])

    struct Generate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write N synthetic, realistic profiles as JSON Lines (tests and benchmarks).")

        @Option(help: "How many profiles.") var count: Int
        @Option(help: "Random seed (same seed, same file).") var seed: UInt64 = 1
        @Option(help: "The JSON Lines file to write.") var output: String

        func run() throws {
            guard count >= 0 else { throw ValidationError("--count must be >= 0") }
            try SyntheticProfiles.write(count: count, seed: seed, to: output)
        }
    }
}

// MARK: - proto

struct ProtoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "proto", abstract: "The API's protobuf definitions.", subcommands: [Descriptor.self])

    struct Descriptor: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write the FileDescriptorSet of the API (imports included), as served by server reflection.")

        @Option(help: "The file to write ('-' for standard output).") var output: String

        func run() throws {
            var bytes = APIDescriptorSet.bytes
            if output == "-" {
                let written = bytes.withUnsafeMutableBytes { write(STDOUT_FILENO, $0.baseAddress, $0.count) }
                guard written == bytes.count else {
                    printError("could not write the descriptor set to standard output")
                    throw ExitCode(1)
                }
                return
            }
            guard let file = fopen(output, "wb") else {
                printError("\(output): \(String(cString: strerror(errno)))")
                throw ExitCode(1)
            }
            let written = bytes.withUnsafeMutableBytes { fwrite($0.baseAddress, 1, $0.count, file) }
            let closed = fclose(file)
            guard written == bytes.count, closed == 0 else {
                printError("\(output): could not write \(bytes.count) bytes")
                throw ExitCode(1)
            }
        }
    }
}

func printError(_ message: String) {
    var bytes = Array((message + "\n").utf8)
    bytes.withUnsafeMutableBytes { buffer in
        _ = write(STDERR_FILENO, buffer.baseAddress, buffer.count)
    }
}
