import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import Testing

@testable import OfferdTransport

/// A service whose `/test.Hold/Hold` calls answer only when the test completes them (a write held back, as a
/// RecordEvents waits for its log); every other path is ``EchoService``'s.
final class HoldService: GRPCUnaryService {
    private let held = NIOLockedValueBox<[GRPCPendingReply]>([])
    private let echo = EchoService()

    var heldCount: Int { held.withLockedValue { $0.count } }

    /// Completes the oldest held call.
    func release(_ reply: GRPCUnaryReply) {
        let pending = held.withLockedValue { $0.removeFirst() }
        pending.complete(reply)
    }

    func handle(_ call: GRPCUnaryCall, allocator: ByteBufferAllocator) -> GRPCUnaryReply {
        guard call.path == "/test.Hold/Hold" else { return echo.handle(call, allocator: allocator) }
        let pending = GRPCPendingReply()
        held.withLockedValue { $0.append(pending) }
        return .deferred(pending)
    }
}

/// Deferred replies (``GRPCUnaryReply/deferred(_:)``): the event loop serves other calls while one waits, the
/// reply is answered when completed, and a call whose client went away (reset, closed connection, deadline)
/// drops its late reply without touching the stream.
@Suite("Deferred replies")
struct DeferredReplyTests {
    private static func status(
        of streamID: Int32, in frames: [(frame: RawFrame, fields: [(name: String, value: String)])]
    )
        -> String?
    {
        frames.last { $0.frame.streamID == streamID && $0.frame.type == RawFrame.headers }?.fields.value("grpc-status")
    }

    private static func call(_ peer: EmbeddedHTTP2Peer, _ streamID: Int32, path: String, _ payload: [UInt8]) throws {
        try peer.send(
            peer.request(streamID: streamID, path: path)
                + RawHTTP2Client.dataFrame(streamID: streamID, grpcFrame(payload), endStream: true))
    }

    @Test("HTTP/2: a held call does not stop the next calls on its connection; it is answered once completed")
    func heldCallDoesNotBlockTheConnection() throws {
        let service = HoldService()
        let peer = try EmbeddedHTTP2Peer(service: service)
        try Self.call(peer, 1, path: "/test.Hold/Hold", [1])
        #expect(service.heldCount == 1)
        for streamID: Int32 in [3, 5, 7] {
            try Self.call(peer, streamID, path: "/test.Echo/Echo", [UInt8(streamID)])
        }
        let meanwhile = try peer.frames()
        for streamID: Int32 in [3, 5, 7] {
            #expect(Self.status(of: streamID, in: meanwhile) == "0")
            #expect(
                meanwhile.contains { $0.frame.streamID == streamID && $0.frame.payload == grpcFrame([UInt8(streamID)]) }
            )
        }
        #expect(meanwhile.allSatisfy { $0.frame.streamID != 1 })
        #expect(peer.callCounter.value == 1)

        service.release(.message(ByteBuffer(bytes: [42])))
        let answer = try peer.frames()
        #expect(Self.status(of: 1, in: answer) == "0")
        #expect(answer.contains { $0.frame.streamID == 1 && $0.frame.payload == grpcFrame([42]) })
        #expect(peer.callCounter.value == 0)
    }

    @Test("HTTP/2: a failure completed later is a Trailers-Only answer")
    func heldFailure() throws {
        let service = HoldService()
        let peer = try EmbeddedHTTP2Peer(service: service)
        try Self.call(peer, 1, path: "/test.Hold/Hold", [1])
        service.release(.failure(GRPCStatus(.unavailable, "log down")))
        let answer = try peer.frames()
        #expect(Self.status(of: 1, in: answer) == "14")
        #expect(answer.allSatisfy { $0.frame.type != RawFrame.data })
    }

    @Test("HTTP/2: a held call reset by its client drops the late reply; the connection serves on")
    func resetWhileHeld() throws {
        let service = HoldService()
        let peer = try EmbeddedHTTP2Peer(service: service)
        try Self.call(peer, 1, path: "/test.Hold/Hold", [1])
        try peer.send(RawHTTP2Client.frame(type: RawFrame.rstStream, streamID: 1, payload: [0, 0, 0, 8]))
        #expect(peer.callCounter.value == 0)
        service.release(.message(ByteBuffer(bytes: [42])))
        #expect(try peer.frames().allSatisfy { $0.frame.streamID != 1 })
        try Self.call(peer, 3, path: "/test.Echo/Echo", [3])
        #expect(Self.status(of: 3, in: try peer.frames()) == "0")
        #expect(peer.channel.isActive)
    }

    @Test("HTTP/2: a held call whose deadline passes is DEADLINE_EXCEEDED; the late reply is dropped")
    func deadlineWhileHeld() throws {
        let service = HoldService()
        let peer = try EmbeddedHTTP2Peer(service: service)
        try peer.send(
            peer.request(streamID: 1, path: "/test.Hold/Hold", extra: [("grpc-timeout", "100m")])
                + RawHTTP2Client.dataFrame(streamID: 1, grpcFrame([1]), endStream: true))
        peer.advanceTime(by: .milliseconds(100))
        #expect(Self.status(of: 1, in: try peer.frames()) == "4")
        service.release(.message(ByteBuffer(bytes: [42])))
        #expect(try peer.frames().allSatisfy { $0.frame.streamID != 1 })
        #expect(peer.channel.isActive)
    }

    @Test("HTTP/2: a connection closed while calls are held: the late replies touch nothing")
    func connectionClosedWhileHeld() throws {
        let service = HoldService()
        var peer: EmbeddedHTTP2Peer? = try EmbeddedHTTP2Peer(service: service)
        try Self.call(peer!, 1, path: "/test.Hold/Hold", [1])
        try Self.call(peer!, 3, path: "/test.Hold/Hold", [3])
        let channel = peer!.channel
        try channel.close().wait()
        service.release(.message(ByteBuffer(bytes: [1])))
        peer = nil
        service.release(.message(ByteBuffer(bytes: [3])))
        #expect(!channel.isActive)
    }

    // MARK: - HTTP/1.1

    private static func http1Channel(_ service: HoldService) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try GRPCServer.configureHTTP1(
            channel.pipeline.syncOperations, configuration: GRPCServerConfiguration(), service: service,
            logger: Logger(label: "test"))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return channel
    }

    private static func output(_ channel: EmbeddedChannel) throws -> String {
        var text = ""
        while let part = try channel.readOutbound(as: ByteBuffer.self) {
            text += String(buffer: part)
        }
        return text
    }

    private static func connect(_ path: String, body: String) -> String {
        "POST \(path) HTTP/1.1\r\nhost: x\r\ncontent-type: application/proto\r\ncontent-length: \(body.utf8.count)"
            + "\r\n\r\n\(body)"
    }

    @Test("HTTP/1.1 (Connect): a held call is answered once completed, and the pipelined next request after it")
    func http1HeldThenPipelined() throws {
        let service = HoldService()
        let channel = try Self.http1Channel(service)
        try channel.writeInbound(
            ByteBuffer(
                string: Self.connect("/test.Hold/Hold", body: "a") + Self.connect("/test.Echo/Echo", body: "next")))
        #expect(service.heldCount == 1)
        #expect(try Self.output(channel) == "")
        service.release(.message(ByteBuffer(string: "held")))
        let answers = try Self.output(channel)
        #expect(answers.hasPrefix("HTTP/1.1 200 OK"))
        // In order: the held answer, then the pipelined request's.
        let held = try #require(answers.range(of: "\r\n\r\nheld"))
        let next = try #require(answers.range(of: "\r\n\r\nnext"))
        #expect(held.upperBound <= next.lowerBound)
        #expect(channel.isActive)
    }

    @Test("HTTP/1.1: a request pipelined behind a held call, its body cut short, is answered once the body ends")
    func http1HeldThenPipelinedPartial() throws {
        let service = HoldService()
        let channel = try Self.http1Channel(service)
        let next = Self.connect("/test.Echo/Echo", body: "next")
        try channel.writeInbound(ByteBuffer(string: Self.connect("/test.Hold/Hold", body: "a") + next.dropLast(2)))
        service.release(.message(ByteBuffer(string: "held")))
        #expect(try Self.output(channel).hasSuffix("\r\n\r\nheld"))
        // The held answer's end let the pipelining handler deliver the next request's head and first bytes,
        // from inside that write: the request they start must survive it.
        try channel.writeInbound(ByteBuffer(string: "xt"))
        #expect(try Self.output(channel).hasSuffix("\r\n\r\nnext"))
        #expect(channel.isActive)
    }

    @Test("HTTP/1.1: a connection closed while a call is held: the late reply touches nothing")
    func http1ClosedWhileHeld() throws {
        let service = HoldService()
        let channel = try Self.http1Channel(service)
        try channel.writeInbound(ByteBuffer(string: Self.connect("/test.Hold/Hold", body: "a")))
        #expect(service.heldCount == 1)
        try channel.close().wait()
        service.release(.message(ByteBuffer(string: "late")))
        #expect(!channel.isActive)
    }
}
