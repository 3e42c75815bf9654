import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// TLS for the gRPC port (SPEC section 10): where the certificate chain, its key and the optional client CA
/// are, all PEM files.
public struct GRPCTLSConfiguration: Sendable {
    /// The server's certificate chain (leaf first).
    public var certificatePath: String
    /// The private key of the leaf certificate.
    public var privateKeyPath: String
    /// When set, clients must present a certificate signed by one of these CAs (mTLS).
    public var clientCAPath: String?
    /// How often the files are read again to pick up a changed pair.
    public var reloadInterval: TimeAmount = .seconds(1)

    /// TLS with these files.
    public init(certificatePath: String, privateKeyPath: String, clientCAPath: String? = nil) {
        self.certificatePath = certificatePath
        self.privateKeyPath = privateKeyPath
        self.clientCAPath = clientCAPath
    }
}

/// A certificate, key or CA file that cannot serve, naming the file and the problem.
public struct GRPCTLSError: Error, Sendable, CustomStringConvertible {
    /// What is wrong, naming the file.
    public var message: String

    public var description: String { message }
}

/// The TLS context new connections use, and its reloading: validate, then swap; keep the last good.
///
/// The files are read again every `reloadInterval` (they are small) and compared with what was last tried; when
/// they changed, a new context is built from them. A pair that does not build (a key that does not match its
/// certificate, a half-written file, a bad CA) is logged once and ignored: the previous context keeps serving,
/// and the files are tried again as soon as they change again. Connections already open keep the context they
/// started with. TLS 1.2 and 1.3, ALPN `h2` and `http/1.1`.
///
/// Concurrency: ``context`` is read by every accept, from any event loop; the reload runs on one event loop's
/// timer; both go through one lock, held only to read or swap a reference.
final class GRPCTLSContextStore: Sendable {
    private struct State {
        var context: NIOSSLContext
        /// The bytes of the files the last attempt read (good or bad), so an unchanged bad pair is not retried.
        var lastTried: [[UInt8]]
    }

    private let configuration: GRPCTLSConfiguration
    private let logger: Logger
    private let state: NIOLockedValueBox<State>
    private let task = NIOLockedValueBox<RepeatedTask?>(nil)

    /// Loads the files; throws a message naming the file and the problem when they cannot serve.
    init(configuration: GRPCTLSConfiguration, logger: Logger) throws(GRPCTLSError) {
        self.configuration = configuration
        self.logger = logger
        let files = try Self.read(configuration)
        let context = try Self.makeContext(files, configuration: configuration)
        state = NIOLockedValueBox(State(context: context, lastTried: files))
    }

    /// The context for a new connection.
    var context: NIOSSLContext {
        state.withLockedValue { $0.context }
    }

    /// Starts checking the files every `reloadInterval` on `eventLoop`.
    func startReloading(on eventLoop: any EventLoop) {
        let task = eventLoop.scheduleRepeatedTask(
            initialDelay: configuration.reloadInterval, delay: configuration.reloadInterval
        ) { [self] _ in
            reloadIfChanged()
        }
        self.task.withLockedValue { $0 = task }
    }

    func stopReloading() {
        task.withLockedValue {
            $0?.cancel()
            $0 = nil
        }
    }

    /// Reads the files; when they differ from the last attempt, builds and publishes a new context, or logs why
    /// not. Returns whether a new context was published (tests call this directly).
    @discardableResult
    func reloadIfChanged() -> Bool {
        let files: [[UInt8]]
        do {
            files = try Self.read(configuration)
        } catch {
            // A file being replaced may be missing for a moment; the next check tries again.
            return false
        }
        let changed = state.withLockedValue { $0.lastTried != files }
        guard changed else {
            return false
        }
        state.withLockedValue { $0.lastTried = files }
        do {
            let context = try Self.makeContext(files, configuration: configuration)
            state.withLockedValue { $0.context = context }
            logger.info(
                "TLS certificate reloaded", metadata: ["certificate": "\(configuration.certificatePath)"]
            )
            return true
        } catch {
            logger.error(
                "TLS certificate reload failed; keeping the previous certificate",
                metadata: ["error": "\(error.message)"]
            )
            return false
        }
    }

    private static func read(_ configuration: GRPCTLSConfiguration) throws(GRPCTLSError) -> [[UInt8]] {
        var files = [
            try Self.readFile(configuration.certificatePath), try Self.readFile(configuration.privateKeyPath),
        ]
        if let ca = configuration.clientCAPath {
            files.append(try Self.readFile(ca))
        }
        return files
    }

    /// A whole small file; PEM files of a few KiB, refused past 1 MiB.
    private static func readFile(_ path: String) throws(GRPCTLSError) -> [UInt8] {
        guard let file = fopen(path, "rb") else {
            throw GRPCTLSError(message: "\(path): \(String(cString: strerror(errno)))")
        }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16384)
        while true {
            let count = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, file) }
            if count == 0 { break }
            bytes += chunk[0..<count]
            if bytes.count > 1 << 20 {
                throw GRPCTLSError(message: "\(path): larger than 1 MiB, not a PEM file")
            }
        }
        if ferror(file) != 0 {
            throw GRPCTLSError(message: "\(path): read error")
        }
        return bytes
    }

    private static func makeContext(_ files: [[UInt8]], configuration: GRPCTLSConfiguration) throws(GRPCTLSError)
        -> NIOSSLContext
    {
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMBytes(files[0])
        } catch {
            throw GRPCTLSError(message: "\(configuration.certificatePath): not a PEM certificate (\(error))")
        }
        guard !chain.isEmpty else {
            throw GRPCTLSError(message: "\(configuration.certificatePath): no certificate in the file")
        }
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(bytes: files[1], format: .pem)
        } catch {
            throw GRPCTLSError(message: "\(configuration.privateKeyPath): not a PEM private key (\(error))")
        }
        var tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key)
        )
        tls.minimumTLSVersion = .tlsv12
        tls.maximumTLSVersion = .tlsv13
        tls.applicationProtocols = ["h2", "http/1.1"]
        if let caPath = configuration.clientCAPath {
            let roots: [NIOSSLCertificate]
            do {
                roots = try NIOSSLCertificate.fromPEMBytes(files[2])
            } catch {
                throw GRPCTLSError(message: "\(caPath): not a PEM CA certificate (\(error))")
            }
            guard !roots.isEmpty else {
                throw GRPCTLSError(message: "\(caPath): no certificate in the file")
            }
            tls.trustRoots = .certificates(roots)
            tls.certificateVerification = .noHostnameVerification
        }
        do {
            return try NIOSSLContext(configuration: tls)
        } catch {
            throw GRPCTLSError(
                message: "\(configuration.privateKeyPath) does not match \(configuration.certificatePath), "
                    + "or the pair cannot serve (\(error))"
            )
        }
    }
}
