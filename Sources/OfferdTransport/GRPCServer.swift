import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOTLS
import Synchronization

/// A unary gRPC server over HTTP/2 (prior knowledge, or TLS with ALPN `h2`), built on SwiftNIO and nghttp2, that
/// also answers Connect unary and gRPC-Web over HTTP/1.1 (NIOHTTP1) and HTTP/2 on the same port.
///
/// A cleartext connection's protocol is chosen by its first bytes (``ProtocolDetector``), a TLS connection's by
/// ALPN (``configureTLS(_:context:configuration:service:callCounter:logger:)``). Every request, whatever its
/// protocol, runs through one ``GRPCServerStreamStateMachine`` and reaches the same ``GRPCUnaryService``; only
/// the rendering of answers differs (``GRPCResponseRendering`` for gRPC, ``RPCResponseRendering`` for the rest).
///
/// Each accepted connection gets its own nghttp2 session on its channel's event loop; the service is called on
/// that loop. The server knows nothing of protobuf: it hands the service the raw request message and sends back
/// the raw response message or a status.
///
/// ## What the transport answers by itself
/// | request | answer |
/// |---|---|
/// | `:method` not POST | `:status 405`, `allow: POST` |
/// | `content-type` not `application/grpc[+x][;x]` | `:status 415` |
/// | more than `maxHeaderCount` fields or `maxHeaderListBytes` | `:status 431` + `grpc-status 8` |
/// | `grpc-encoding` other than `identity`, or a compressed message | 12 UNIMPLEMENTED + `grpc-accept-encoding: identity` |
/// | malformed `grpc-timeout` | 3 INVALID_ARGUMENT |
/// | length prefix over `maxMessageBytes` (decided from the prefix) | 8 RESOURCE_EXHAUSTED |
/// | no message, a truncated message, a second message, a flag byte > 1 | 3 INVALID_ARGUMENT |
/// | deadline passed before the reply was ready (timer or after `handle`) | 4 DEADLINE_EXCEEDED |
///
/// The same table holds for Connect and gRPC-Web, each in its own form (Connect error JSON with its HTTP status;
/// gRPC-Web trailers in the body); an `OPTIONS` request is a CORS preflight.
///
/// Errors use the Trailers-Only form. An answer sent while the client is still uploading is followed by
/// `RST_STREAM(NO_ERROR)`. Connection errors (bad preface, protocol errors, floods caught by nghttp2) end the
/// connection with GOAWAY and the right error code; other connections are unaffected.
public final class GRPCServer: Sendable {
    private let serverChannel: any Channel
    private let registry: ConnectionRegistry
    private let callCounter: GRPCActiveCallCounter
    private let logger: Logger
    private let tlsStore: GRPCTLSContextStore?

    private init(
        serverChannel: any Channel,
        registry: ConnectionRegistry,
        callCounter: GRPCActiveCallCounter,
        logger: Logger,
        tlsStore: GRPCTLSContextStore?
    ) {
        self.serverChannel = serverChannel
        self.registry = registry
        self.callCounter = callCounter
        self.logger = logger
        self.tlsStore = tlsStore
    }

    /// Binds `configuration.host:port` and starts serving `service`.
    ///
    /// - Throws: `GRPCServerConfigurationError` for an unusable configuration, or the bind error.
    public static func start(
        configuration: GRPCServerConfiguration,
        service: any GRPCUnaryService,
        group: any EventLoopGroup,
        logger: Logger
    ) async throws -> GRPCServer {
        try configuration.validate()
        let registry = ConnectionRegistry()
        let callCounter = GRPCActiveCallCounter()
        // A bad or mismatched pair is a start-up error naming the file, before anything is bound.
        let tlsStore = try configuration.tls.map { tls throws(GRPCTLSError) in
            try GRPCTLSContextStore(configuration: tls, logger: logger)
        }
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                guard registry.register(channel) else {
                    // Accepted while shutting down: refuse rather than serve.
                    return channel.close()
                }
                return channel.eventLoop.makeCompletedFuture {
                    if let tlsStore {
                        try Self.configureTLS(
                            channel, context: tlsStore.context, configuration: configuration, service: service,
                            callCounter: callCounter, logger: logger
                        )
                    } else {
                        try channel.pipeline.syncOperations.addHandler(
                            Self.protocolDetector(
                                configuration: configuration, service: service, callCounter: callCounter,
                                logger: logger
                            )
                        )
                    }
                }
            }
            .bind(host: configuration.host, port: configuration.port)
            .get()
        let server = GRPCServer(
            serverChannel: channel, registry: registry, callCounter: callCounter, logger: logger, tlsStore: tlsStore
        )
        tlsStore?.startReloading(on: group.next())
        // Debug only: the lifecycle lines (listen, shutdown) are the server module's to log, once.
        logger.debug(
            "gRPC server listening",
            metadata: ["address": "\(channel.localAddress.map { "\($0)" } ?? "?")"]
        )
        return server
    }

    /// The handler a new cleartext connection starts with: HTTP/2 (nghttp2) or HTTP/1.1 (NIOHTTP1), chosen by
    /// the first bytes.
    static func protocolDetector(
        configuration: GRPCServerConfiguration,
        service: any GRPCUnaryService,
        callCounter: GRPCActiveCallCounter,
        logger: Logger
    ) -> ProtocolDetector {
        ProtocolDetector(
            timeout: configuration.http1RequestTimeout,
            makeHTTP2: {
                GRPCServerConnectionHandler(
                    configuration: configuration, service: service, callCounter: callCounter, logger: logger
                )
            },
            makeHTTP1: { pipeline in
                try Self.configureHTTP1(pipeline, configuration: configuration, service: service, logger: logger)
            }
        )
    }

    /// The HTTP/1.1 pipeline: NIOHTTP1's codec with offerd's header limits (its decoder fed by
    /// ``HTTP1RequestDecoder`` for the request timer), pipelining assistance, then ``HTTP1ServerHandler`` (which
    /// also answers protocol errors with 400).
    static func configureHTTP1(
        _ pipeline: ChannelPipeline.SynchronousOperations,
        configuration: GRPCServerConfiguration,
        service: any GRPCUnaryService,
        logger: Logger
    ) throws {
        let handler = HTTP1ServerHandler(
            configuration: configuration, service: service, logger: logger, clock: GRPCSystemClock()
        )
        var limits = NIOHTTPDecoderLimitConfiguration()
        limits.maxHeaderListSize = configuration.maxHeaderListBytes
        limits.maxHeaderFieldSize = configuration.maxHeaderListBytes
        limits.maxHeaderFieldCount = configuration.maxHeaderCount
        // What `configureHTTPServerPipeline(withPipeliningAssistance: true)` sets up, with the request decoder
        // wrapped so that the connection timer sees where requests end in the bytes (``HTTP1RequestDecoder``),
        // no outbound header validator (the response fields are offerd's own, and the one echoed value, origin,
        // passed NIOHTTP1's request parser, which refuses CR and LF in values), and the protocol-error answer
        // (400) written by ``HTTP1ServerHandler`` rather than by a handler that every part of every request and
        // answer would pass through. Responses to HEAD carry no body because ``HTTP1ServerHandler`` writes none.
        try pipeline.addHandler(HTTPResponseEncoder())
        try pipeline.addHandler(ByteToMessageHandler(HTTP1RequestDecoder(limits: limits, timer: handler.timer)))
        try pipeline.addHandler(HTTPServerPipelineHandler())
        try pipeline.addHandler(handler)
    }

    /// A TLS connection: the handshake with the current context (a reloaded pair serves connections accepted
    /// after the reload), then ALPN picks the protocol: `h2` HTTP/2, `http/1.1` HTTP/1.1, none the first-bytes
    /// detector. A handshake not done within `http1RequestTimeout` (half-open TLS) closes the connection.
    static func configureTLS(
        _ channel: any Channel,
        context: NIOSSLContext,
        configuration: GRPCServerConfiguration,
        service: any GRPCUnaryService,
        callCounter: GRPCActiveCallCounter,
        logger: Logger
    ) throws {
        let pipeline = channel.pipeline.syncOperations
        let handshakeTimeout = channel.eventLoop.assumeIsolated().scheduleTask(in: configuration.http1RequestTimeout) {
            channel.close(promise: nil)
        }
        try pipeline.addHandler(NIOSSLServerHandler(context: context))
        try pipeline.addHandler(
            ApplicationProtocolNegotiationHandler { result, channel in
                handshakeTimeout.cancel()
                return channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    switch result {
                    case .negotiated("h2"):
                        try pipeline.addHandler(
                            GRPCServerConnectionHandler(
                                configuration: configuration, service: service, callCounter: callCounter,
                                logger: logger
                            )
                        )
                    case .negotiated("http/1.1"):
                        try Self.configureHTTP1(
                            pipeline, configuration: configuration, service: service, logger: logger)
                    default:
                        try pipeline.addHandler(
                            Self.protocolDetector(
                                configuration: configuration, service: service, callCounter: callCounter,
                                logger: logger
                            )
                        )
                    }
                }
            }
        )
    }

    /// The bound address; with port 0 it carries the port the system chose.
    public var localAddress: SocketAddress? {
        serverChannel.localAddress
    }

    /// Calls whose request headers have arrived and whose stream has not closed yet, over all connections.
    public var activeCalls: Int {
        callCounter.value
    }

    /// Number of open client connections.
    public var connectionCount: Int {
        registry.count
    }

    /// Stops accepting, sends GOAWAY on every connection (last-stream-id = highest stream processed), lets the
    /// calls in flight finish and closes each connection when it has none; after `grace`, closes whatever
    /// remains. Returns when every connection and the listening socket are closed.
    public func shutdown(grace: TimeAmount) async {
        registry.beginShutdown()
        tlsStore?.stopReloading()
        try? await serverChannel.close()
        let connections = registry.current()
        logger.debug("gRPC server shutting down", metadata: ["connections": "\(connections.count)"])
        for connection in connections {
            connection.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        }
        let registry = registry
        let forcedClose = serverChannel.eventLoop.scheduleTask(in: grace) {
            for connection in registry.current() {
                connection.close(promise: nil)
            }
        }
        for connection in connections {
            try? await connection.closeFuture.get()
        }
        forcedClose.cancel()
        logger.debug("gRPC server stopped")
    }
}

/// The open connections, so shutdown can reach them. Channels register when accepted and leave when closed.
final class ConnectionRegistry: Sendable {
    private struct State {
        var connections: [ObjectIdentifier: any Channel] = [:]
        var isShuttingDown = false
    }

    private let state = NIOLockedValueBox(State())

    /// Adds a new connection; `false` once shutdown has begun.
    func register(_ channel: any Channel) -> Bool {
        let key = ObjectIdentifier(channel)
        let accepted = state.withLockedValue { state in
            guard !state.isShuttingDown else {
                return false
            }
            state.connections[key] = channel
            return true
        }
        if accepted {
            channel.closeFuture.whenComplete { _ in
                self.state.withLockedValue { state in
                    _ = state.connections.removeValue(forKey: key)
                }
            }
        }
        return accepted
    }

    func beginShutdown() {
        state.withLockedValue { $0.isShuttingDown = true }
    }

    func current() -> [any Channel] {
        state.withLockedValue { Array($0.connections.values) }
    }

    var count: Int {
        state.withLockedValue { $0.connections.count }
    }
}

/// Counts calls in progress across all connections, for metrics.
///
/// An atomic rather than a lock: every call adds and subtracts once, and a lock and unlock each time cost twice
/// the atomic operations (and the closures) of one add.
final class GRPCActiveCallCounter: Sendable {
    private let count = Atomic<Int>(0)

    func add(_ amount: Int) {
        count.wrappingAdd(amount, ordering: .sequentiallyConsistent)
    }

    func subtract(_ amount: Int) {
        guard amount != 0 else {
            return
        }
        count.wrappingSubtract(amount, ordering: .sequentiallyConsistent)
    }

    var value: Int {
        count.load(ordering: .sequentiallyConsistent)
    }
}
