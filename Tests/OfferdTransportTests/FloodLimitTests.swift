import Logging
import NIOCore
import NIOEmbedded
import Testing

@testable import OfferdTransport

/// Floods found by the hostile-peer suite (tests/hostile): the connection must end with GOAWAY
/// ENHANCE_YOUR_CALM, while the same frames in small numbers stay harmless.
@Suite("flood limits without sockets")
struct FloodLimitTests {
    private static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    private static func frame(type: UInt8, flags: UInt8, stream: UInt32, _ payload: [UInt8] = []) -> [UInt8] {
        let length = UInt32(payload.count)
        return [UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF), type, flags]
            + [UInt8(stream >> 24 & 0x7F), UInt8(stream >> 16 & 0xFF), UInt8(stream >> 8 & 0xFF), UInt8(stream & 0xFF)]
            + payload
    }

    private static func literal(_ text: String) -> [UInt8] {
        [UInt8(text.utf8.count)] + Array(text.utf8)
    }

    /// A request header block, HPACK-encoded by hand: static-table entries and literals without indexing.
    private static let requestHeaderBlock: [UInt8] =
        [0x83, 0x86] // :method POST, :scheme http
        + [0x04] + literal("/test.Echo/Echo") // :path
        + [0x01] + literal("localhost") // :authority
        + [0x0F, 0x10] + literal("application/grpc") // content-type (static index 31)
        + [0x00] + literal("te") + literal("trailers")

    private static let endStream: UInt8 = 0x1
    private static let endHeaders: UInt8 = 0x4

    /// Feeds `bytes` after the preface and an empty SETTINGS, and returns the GOAWAY error code the server sent
    /// (nil for none), whether the channel is still open, and whether stream 1 was answered with DATA.
    private static func exchange(_ bytes: [UInt8]) throws -> (goAway: UInt32?, open: Bool, answered: Bool) {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(
            GRPCServerConnectionHandler(
                configuration: GRPCServerConfiguration(),
                service: EchoService(),
                callCounter: GRPCActiveCallCounter(),
                logger: Logger(label: "test")
            )
        )
        defer { _ = try? channel.finish() }
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        var input = channel.allocator.buffer(capacity: bytes.count + 64)
        input.writeBytes(Self.preface + Self.frame(type: 4, flags: 0, stream: 0) + bytes)
        try channel.writeInbound(input)
        channel.embeddedEventLoop.run()
        var output: [UInt8] = []
        while let chunk = try channel.readOutbound(as: ByteBuffer.self) {
            output += chunk.readableBytesView
        }
        var goAway: UInt32?
        var answered = false
        var offset = 0
        while offset + 9 <= output.count {
            let length = Int(output[offset]) << 16 | Int(output[offset + 1]) << 8 | Int(output[offset + 2])
            let type = output[offset + 3]
            if type == 7, offset + 17 <= output.count {
                goAway = output[(offset + 13)..<(offset + 17)].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            } else if type == 0, length > 0 {
                answered = true
            }
            offset += 9 + length
        }
        return (goAway, channel.isActive, answered)
    }

    private static func request(emptyDataFrames: Int) -> [UInt8] {
        var bytes = Self.frame(type: 1, flags: Self.endHeaders, stream: 1, Self.requestHeaderBlock)
        for _ in 0..<emptyDataFrames {
            bytes += Self.frame(type: 0, flags: 0, stream: 1)
        }
        // A one-byte message, `0x2a`, then the end of the stream.
        bytes += Self.frame(type: 0, flags: Self.endStream, stream: 1, [0, 0, 0, 0, 1, 0x2A])
        return bytes
    }

    @Test("a few empty DATA frames before the message are harmless", arguments: [0, 1, 100])
    func fewEmptyDataFrames(count: Int) throws {
        let result = try Self.exchange(Self.request(emptyDataFrames: count))
        #expect(result.goAway == nil)
        #expect(result.open)
        #expect(result.answered)
    }

    @Test("an empty DATA frame flood ends the connection with ENHANCE_YOUR_CALM", arguments: [101, 10_000])
    func emptyDataFlood(count: Int) throws {
        let result = try Self.exchange(Self.request(emptyDataFrames: count))
        #expect(result.goAway == 0xB)
        #expect(!result.open)
        #expect(!result.answered)
    }

    @Test("a CONTINUATION flood ends the connection with ENHANCE_YOUR_CALM")
    func continuationFlood() throws {
        var bytes = Self.frame(type: 1, flags: 0, stream: 1, Self.requestHeaderBlock)
        for _ in 0..<100 {
            bytes += Self.frame(type: 9, flags: 0, stream: 1)
        }
        let result = try Self.exchange(bytes)
        #expect(result.goAway == 0xB)
        #expect(!result.open)
    }
}
