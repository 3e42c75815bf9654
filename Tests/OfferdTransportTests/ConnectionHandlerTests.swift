import Logging
import NIOCore
import NIOEmbedded
import Testing

@testable import OfferdTransport

/// Counts the `read` requests that reach it (it sits between the handler under test and the channel head).
private final class ReadCounter: ChannelOutboundHandler {
    typealias OutboundIn = ByteBuffer
    var reads = 0

    func read(context: ChannelHandlerContext) {
        reads += 1
        context.read()
    }
}

@Suite("connection handler without sockets")
struct ConnectionHandlerTests {
    private static func makeChannel(counter: ReadCounter) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(counter)
        try channel.pipeline.syncOperations.addHandler(
            GRPCServerConnectionHandler(
                configuration: GRPCServerConfiguration(),
                service: EchoService(),
                callCounter: GRPCActiveCallCounter(),
                logger: Logger(label: "test")
            )
        )
        return channel
    }

    @Test("reads are held back while the channel is not writable and resumed when it drains")
    func backpressure() throws {
        let counter = ReadCounter()
        let channel = try Self.makeChannel(counter: counter)
        defer { _ = try? channel.finish() }
        channel.isWritable = true
        channel.read()
        #expect(counter.reads == 1)

        channel.isWritable = false
        channel.pipeline.fireChannelWritabilityChanged()
        channel.read()
        channel.read()
        #expect(counter.reads == 1)

        channel.isWritable = true
        channel.pipeline.fireChannelWritabilityChanged()
        #expect(counter.reads == 2)
    }

    @Test("the server preface (SETTINGS) is written as soon as the channel is active")
    func serverPreface() throws {
        let channel = try Self.makeChannel(counter: ReadCounter())
        defer { _ = try? channel.finish() }
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        let output = try #require(try channel.readOutbound(as: ByteBuffer.self))
        // Frame header: 3-byte length, type 4 (SETTINGS), flags 0, stream 0.
        let header = try #require(output.getBytes(at: output.readerIndex, length: 9))
        #expect(header[3] == 4 && header[4] == 0)
        #expect(Int(header[0]) << 16 | Int(header[1]) << 8 | Int(header[2]) == 4 * 6)
    }

    @Test("bytes that are not HTTP/2 produce GOAWAY and close the channel")
    func garbage() throws {
        let channel = try Self.makeChannel(counter: ReadCounter())
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        _ = try channel.readOutbound(as: ByteBuffer.self)
        try channel.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\n\r\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"))
        channel.embeddedEventLoop.run()
        var written = ByteBuffer()
        while var chunk = try channel.readOutbound(as: ByteBuffer.self) {
            written.writeBuffer(&chunk)
        }
        var bytes = Array(written.readableBytesView)
        var frames: [RawFrame] = []
        while let frame = RawFrame.parse(&bytes) {
            frames.append(frame)
        }
        #expect(bytes.isEmpty, "the output ends inside a frame")
        // RFC 9113 section 3.4: an invalid connection preface is a connection error of type PROTOCOL_ERROR;
        // last-stream-id 0, no stream was processed.
        let goAway = try #require(frames.first { $0.type == RawFrame.goAway }?.goAwayFields)
        #expect(goAway.errorCode == 0x1)
        #expect(goAway.lastStreamID == 0)
        #expect(!channel.isActive)
    }
}
