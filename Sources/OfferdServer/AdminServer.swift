import NIOCore
import NIOHTTP1
import NIOPosix

/// The admin HTTP/1.1 endpoints: `/metrics` (Prometheus text), `/healthz`, `/readyz`.
///
/// Kept on its own port and its own tiny pipeline so scrapes and probes never
/// compete with gRPC traffic for stream slots or share its hardening limits.
final class AdminServer: Sendable {
    /// What the endpoints report; called on an event loop, must not block.
    struct Endpoints: Sendable {
        var metrics: @Sendable () -> [UInt8]
        var isReady: @Sendable () -> Bool
    }

    private let channel: any Channel

    private init(channel: any Channel) {
        self.channel = channel
    }

    static func start(host: String, port: Int, group: any EventLoopGroup, endpoints: Endpoints) async throws
        -> AdminServer
    {
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(AdminHandler(endpoints: endpoints))
                }
            }
            .bind(host: host, port: port)
            .get()
        return AdminServer(channel: channel)
    }

    var localPort: Int? { channel.localAddress?.port }

    func close() async {
        try? await channel.close()
    }
}

private final class AdminHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let endpoints: AdminServer.Endpoints
    private var requestHead: HTTPRequestHead?

    init(endpoints: AdminServer.Endpoints) {
        self.endpoints = endpoints
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            requestHead = head
        case .body:
            break // no endpoint takes a body
        case .end:
            guard let head = requestHead else { return }
            requestHead = nil
            respond(to: head, context: context)
        }
    }

    private func respond(to head: HTTPRequestHead, context: ChannelHandlerContext) {
        let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
        let status: HTTPResponseStatus
        let body: [UInt8]
        var contentType = "text/plain; charset=utf-8"
        if head.method != .GET && head.method != .HEAD {
            status = .methodNotAllowed
            body = Array("method not allowed\n".utf8)
        } else {
            switch path {
            case "/metrics":
                status = .ok
                body = endpoints.metrics()
                contentType = "text/plain; version=0.0.4; charset=utf-8"
            case "/healthz":
                status = .ok
                body = Array("ok\n".utf8)
            case "/readyz":
                let ready = endpoints.isReady()
                status = ready ? .ok : .serviceUnavailable
                body = Array((ready ? "ready\n" : "not ready\n").utf8)
            default:
                status = .notFound
                body = Array("not found\n".utf8)
            }
        }
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: contentType)
        headers.add(name: "content-length", value: String(body.count))
        if !head.isKeepAlive { headers.add(name: "connection", value: "close") }
        context.write(
            wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))),
            promise: nil)
        if head.method != .HEAD {
            var buffer = context.channel.allocator.buffer(capacity: body.count)
            buffer.writeBytes(body)
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        }
        let keepAlive = head.isKeepAlive
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
            if !keepAlive { context.close(promise: nil) }
        }
    }
}
