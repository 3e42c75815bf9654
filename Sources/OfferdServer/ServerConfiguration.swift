import NIOCore
import OfferdCore

/// Everything `offerd serve` can be told (SPEC section 7), with the spec's defaults.
public struct ServerConfiguration: Sendable {
    public var catalogPath: String
    public var snapshotPath: String
    public var host: String = "127.0.0.1"
    /// gRPC port; 0 picks a free one (tests).
    public var port: Int = 50051
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

    public init(catalogPath: String, snapshotPath: String) {
        self.catalogPath = catalogPath
        self.snapshotPath = snapshotPath
    }

    var engineOptions: EngineOptions {
        EngineOptions(consentDefault: consentDefault, unknownProfile: unknownProfile)
    }
}
