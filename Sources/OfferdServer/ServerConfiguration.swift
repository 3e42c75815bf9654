import NIOCore
import OfferdCore
import OfferdEventLog

/// Everything `offerd serve` can be told (SPEC section 7), with the spec's defaults.
public struct ServerConfiguration: Sendable {
    public var catalogPath: String
    public var snapshotPath: String
    /// The gRPC listener's address.
    public var host: String = "127.0.0.1"
    /// gRPC port; 0 picks a free one (tests).
    public var port: Int = 50051
    /// The admin listener's address: loopback by default whatever `host` is, so `/metrics` stays private while
    /// gRPC listens publicly.
    public var adminHost: String = "127.0.0.1"
    /// Admin HTTP/1.1 port; `nil` disables the admin endpoints, 0 picks a free one.
    public var adminPort: Int? = 9090
    public var threads: Int = System.coreCount
    public var maxMessageBytes: Int = 65536
    public var maxConcurrentStreams: UInt32 = 100
    public var consentDefault: ConsentDefault = .granted
    public var unknownProfile: UnknownProfilePolicy = .decide
    public var allowExplain: Bool = false
    public var shutdownGrace: Duration = .seconds(10)
    /// A connection with no open stream for this long gets GOAWAY and is closed (not in SPEC 7; see docs/server.md).
    public var idleTimeout: Duration = .seconds(300)
    /// TLS: the certificate chain and key (PEM), and the CA client certificates must be signed by (mTLS);
    /// cleartext when `tlsCertificatePath` is nil.
    public var tlsCertificatePath: String?
    public var tlsKeyPath: String?
    public var tlsClientCAPath: String?
    /// Browser origins allowed to call with gRPC-Web or Connect (CORS), from `--cors-origin`; none by default.
    public var corsOrigins: [String] = []
    /// How often the catalog and snapshot paths are checked for replacement.
    public var reloadPollInterval: Duration = .seconds(1)

    /// The event log (SPEC 9.1); `.none` (the library's default; the command line's is a file) reads no log.
    public var events: EventLogConfiguration = .none
    /// Decision events held in memory while the log is unreachable (`--events-buffer`).
    public var eventsBuffer: Int = 100_000

    /// Sets ``events`` from a value of `--events` (`file:PATH`, `redis://...` or `none`); the error's
    /// description says what is wrong.
    public mutating func setEvents(_ value: String) throws {
        events = try EventLogConfiguration(parsing: value)
    }

    public init(catalogPath: String, snapshotPath: String) {
        self.catalogPath = catalogPath
        self.snapshotPath = snapshotPath
    }

    var engineOptions: EngineOptions {
        EngineOptions(consentDefault: consentDefault, unknownProfile: unknownProfile)
    }
}
