import NIOCore

/// Limits and addresses of a `GRPCServer`. The defaults are offerd's (SPEC section 8).
public struct GRPCServerConfiguration: Sendable {
    /// Address to bind.
    public var host: String = "127.0.0.1"
    /// Port to bind; 0 binds any free port (read it back from `GRPCServer.localAddress`).
    public var port: Int = 50051
    /// Largest request message, in bytes, without the 5-byte prefix. A larger message is answered
    /// `RESOURCE_EXHAUSTED` as soon as its length prefix arrives, before any of it is buffered.
    public var maxMessageBytes: Int = 65536
    /// Advertised `SETTINGS_MAX_CONCURRENT_STREAMS`. nghttp2 refuses streams beyond it with `REFUSED_STREAM` until
    /// the client acknowledged our SETTINGS, and ends the connection with GOAWAY `PROTOCOL_ERROR` after that
    /// (RFC 9113 section 5.1.2 allows either; tests/hostile checks both).
    public var maxConcurrentStreams: UInt32 = 100
    /// Advertised `SETTINGS_MAX_HEADER_LIST_SIZE` and enforced per request: the sum over the request's header
    /// fields of name length + value length + 32 (RFC 9113 section 6.5.2). Over it the stream is answered
    /// `:status 431` with `grpc-status: 8` (RESOURCE_EXHAUSTED).
    public var maxHeaderListBytes: Int = 16384
    /// Most header fields (pseudo-headers included) accepted in one request header block; over it the stream is
    /// answered like an oversized header list (431 / RESOURCE_EXHAUSTED). 64 is far more than any gRPC client
    /// sends (about 10) and small enough that a field flood costs little.
    public var maxHeaderCount: Int = 64
    /// A connection with no open stream and no bytes received for this long is sent GOAWAY (NO_ERROR) and closed.
    /// Five minutes matches common load-balancer idle timeouts, so the server, not the middlebox, ends first.
    public var idleTimeout: TimeAmount = .seconds(300)

    /// Browser origins allowed to call with gRPC-Web or Connect (CORS): their preflights are answered 204 and
    /// their responses carry `access-control-allow-origin`. Exact origins (`https://app.example.com`); `*`
    /// allows any. Empty by default: no cross-origin browser call.
    public var corsAllowedOrigins: [String] = []
    /// HTTP/1.1: how long one request may take to arrive, head and body, from its first byte. A client slower
    /// than that (slowloris) gets 408 and the connection is closed.
    public var http1RequestTimeout: TimeAmount = .seconds(10)

    /// TLS (and mTLS) on the port; `nil` serves cleartext (HTTP/2 with prior knowledge and HTTP/1.1).
    public var tls: GRPCTLSConfiguration?

    /// Creates the default configuration.
    public init() {}

    /// Checks the values that would make the server misbehave, with a message naming the field.
    func validate() throws(GRPCServerConfigurationError) {
        if port < 0 || port > 65535 {
            throw GRPCServerConfigurationError("port \(port) is outside 0...65535")
        }
        // The length prefix is a UInt32 and nghttp2 windows are at most 2^31-1: keep well inside both.
        if maxMessageBytes < 0 || maxMessageBytes > 1 << 30 {
            throw GRPCServerConfigurationError("maxMessageBytes \(maxMessageBytes) is outside 0...\(1 << 30)")
        }
        if maxConcurrentStreams == 0 {
            throw GRPCServerConfigurationError("maxConcurrentStreams must be at least 1")
        }
        if maxHeaderListBytes < 1024 || maxHeaderListBytes > 1 << 20 {
            throw GRPCServerConfigurationError(
                "maxHeaderListBytes \(maxHeaderListBytes) is outside 1024...\(1 << 20)"
            )
        }
        if maxHeaderCount < 8 {
            throw GRPCServerConfigurationError("maxHeaderCount \(maxHeaderCount) is below 8")
        }
        if idleTimeout <= .zero {
            throw GRPCServerConfigurationError("idleTimeout must be positive")
        }
    }
}

/// A `GRPCServerConfiguration` value that cannot work; `message` names the field and the problem.
public struct GRPCServerConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What is wrong, naming the field.
    public var message: String

    init(_ message: String) {
        self.message = message
    }

    public var description: String { "invalid gRPC server configuration: \(message)" }
}
