import Logging
import NIOCore
import NIOEmbedded

@testable import OfferdTransport

/// The transport's clock in tests: the manual time of an `EmbeddedEventLoop`, which is also what the loop's
/// timers fire against. Time moves only when the test calls `advanceTime`, and the timers due then run.
struct EmbeddedLoopClock: GRPCClock {
    let loop: EmbeddedEventLoop

    func now() -> NIODeadline {
        loop.now
    }
}

/// A client talking HTTP/2 to a `GRPCServerConnectionHandler` in an `EmbeddedChannel`: no socket, no thread,
/// and time that moves only when the test says so (``advanceTime(by:)``).
final class EmbeddedHTTP2Peer {
    let channel: EmbeddedChannel
    /// Calls whose stream is open, as the server counts them.
    let callCounter = GRPCActiveCallCounter()
    private let hpack: HPACKCodec
    private var inbound: [UInt8] = []

    /// Creates the channel with the handler under test, connects it, sends the client preface and an empty
    /// SETTINGS, and drops the server's preface.
    init(
        channel: EmbeddedChannel = EmbeddedChannel(),
        configure: (inout GRPCServerConfiguration) -> Void = { _ in },
        service: any GRPCUnaryService = EchoService()
    ) throws {
        var configuration = GRPCServerConfiguration()
        configure(&configuration)
        try channel.pipeline.syncOperations.addHandler(
            GRPCServerConnectionHandler(
                configuration: configuration,
                service: service,
                callCounter: callCounter,
                logger: Logger(label: "test"),
                clock: EmbeddedLoopClock(loop: channel.embeddedEventLoop)
            )
        )
        self.channel = channel
        hpack = try HPACKCodec()
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try send(RawHTTP2Client.connectionPreface())
        _ = try frames()
    }

    deinit {
        _ = try? channel.finish()
    }

    /// Delivers bytes to the server as one read burst.
    func send(_ bytes: [UInt8]) throws {
        var buffer = channel.allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        try channel.writeInbound(buffer)
        channel.pipeline.fireChannelReadComplete()
    }

    /// A request HEADERS frame for a gRPC call to `path`.
    func request(
        streamID: Int32, path: String = "/test.Echo/Echo", extra: [(String, String)] = [], endStream: Bool = false
    )
        -> [UInt8]
    {
        hpack.headersFrame(
            streamID: streamID,
            fields: RawHTTP2Client.grpcRequestFields(path: path, extra: extra),
            endStream: endStream
        )
    }

    /// Moves the event loop's clock; timers due by then run.
    func advanceTime(by amount: TimeAmount) {
        channel.embeddedEventLoop.advanceTime(by: amount)
    }

    /// Every whole frame the server has written since the last call, header blocks decoded in order.
    func frames() throws -> [(frame: RawFrame, fields: [(name: String, value: String)])] {
        while let chunk = try channel.readOutbound(as: ByteBuffer.self) {
            inbound += chunk.readableBytesView
        }
        var frames: [(RawFrame, [(name: String, value: String)])] = []
        while let frame = RawFrame.parse(&inbound) {
            frames.append((frame, frame.type == RawFrame.headers ? try hpack.decodeHeaders(frame) : []))
        }
        return frames
    }
}
