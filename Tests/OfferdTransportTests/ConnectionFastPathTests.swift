import NIOCore
import Testing

@testable import OfferdTransport

/// The per-call shortcuts of `GRPCServerConnection` and the pieces under it: a request message taken as a slice of
/// the bytes received instead of copied, and a `:path` string reused from the connection's previous call. Each
/// test is built so that a shortcut taking the wrong bytes, or the previous call's, gives a wrong answer.
@Suite("connection fast paths")
struct ConnectionFastPathTests {
    private typealias Frames = [(frame: RawFrame, fields: [(name: String, value: String)])]

    private static func status(of streamID: Int32, in frames: Frames) -> String? {
        frames.last { $0.frame.streamID == streamID && $0.frame.type == RawFrame.headers }?.fields.value("grpc-status")
    }

    private static func message(of streamID: Int32, in frames: Frames) -> String? {
        frames.last { $0.frame.streamID == streamID && $0.frame.type == RawFrame.headers }?.fields.value(
            "grpc-message")
    }

    private static func body(of streamID: Int32, in frames: Frames) -> [UInt8] {
        frames.filter { $0.frame.streamID == streamID && $0.frame.type == RawFrame.data }.flatMap(\.frame.payload)
    }

    /// A distinct payload per stream, so that one stream answered with another's bytes shows.
    private static func payload(_ streamID: Int32, count: Int = 40) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: Int(streamID) &* 37 &+ $0 &* 11) }
    }

    @Test("whole messages in one read, each in the frame ending its stream, are each echoed with their own bytes")
    func wholeMessagesInOneRead() throws {
        let peer = try EmbeddedHTTP2Peer()
        var burst: [UInt8] = []
        let streams: [Int32] = [1, 3, 5, 7, 9]
        for streamID in streams {
            // Messages of different lengths, so a slice taken at the wrong offset or length cannot pass.
            let payload = Self.payload(streamID, count: 20 + Int(streamID))
            burst += peer.request(streamID: streamID)
            burst += RawHTTP2Client.dataFrame(streamID: streamID, grpcFrame(payload), endStream: true)
        }
        try peer.send(burst)
        let frames = try peer.frames()
        for streamID in streams {
            #expect(Self.status(of: streamID, in: frames) == "0")
            #expect(Self.body(of: streamID, in: frames) == grpcFrame(Self.payload(streamID, count: 20 + Int(streamID))))
        }
    }

    @Test("a message whose frame does not end the stream, or that is split across frames or reads, is still whole")
    func messagesNotTakenInPlace() throws {
        let peer = try EmbeddedHTTP2Peer()
        // Whole in a frame without END_STREAM, then an empty frame ending the stream.
        try peer.send(
            peer.request(streamID: 1) + RawHTTP2Client.dataFrame(streamID: 1, grpcFrame(Self.payload(1)))
                + RawHTTP2Client.dataFrame(streamID: 1, [], endStream: true))
        // Split across two frames of one read.
        let wire3 = grpcFrame(Self.payload(3))
        try peer.send(
            peer.request(streamID: 3) + RawHTTP2Client.dataFrame(streamID: 3, Array(wire3[..<9]))
                + RawHTTP2Client.dataFrame(streamID: 3, Array(wire3[9...]), endStream: true))
        // One frame ending the stream, split across two reads.
        let frame5 = RawHTTP2Client.dataFrame(streamID: 5, grpcFrame(Self.payload(5)), endStream: true)
        try peer.send(peer.request(streamID: 5) + Array(frame5[..<20]))
        try peer.send(Array(frame5[20...]))
        let frames = try peer.frames()
        for streamID: Int32 in [1, 3, 5] {
            #expect(Self.status(of: streamID, in: frames) == "0")
            #expect(Self.body(of: streamID, in: frames) == grpcFrame(Self.payload(streamID)))
        }
    }

    @Test("a whole message the prefix refuses (compressed, too large, a second message) is refused as before")
    func refusalsInOneFrame() throws {
        let peer = try EmbeddedHTTP2Peer(configure: { $0.maxMessageBytes = 64 })
        try peer.send(
            peer.request(streamID: 1)
                + RawHTTP2Client.dataFrame(streamID: 1, grpcFrame([1, 2, 3], compressed: true), endStream: true)
                + peer.request(streamID: 3)
                + RawHTTP2Client.dataFrame(streamID: 3, grpcFrame(Self.payload(3, count: 65)), endStream: true)
                + peer.request(streamID: 5)
                + RawHTTP2Client.dataFrame(streamID: 5, grpcFrame([1]) + grpcFrame([2]), endStream: true)
                + peer.request(streamID: 7)
                + RawHTTP2Client.dataFrame(streamID: 7, Array(grpcFrame([1, 2, 3]).dropLast()), endStream: true))
        let frames = try peer.frames()
        #expect(Self.status(of: 1, in: frames) == "12") // UNIMPLEMENTED: compression
        #expect(Self.status(of: 3, in: frames) == "8") // RESOURCE_EXHAUSTED
        #expect(Self.status(of: 5, in: frames) == "3") // INVALID_ARGUMENT: two messages
        #expect(Self.status(of: 7, in: frames) == "3") // INVALID_ARGUMENT: short message
    }

    @Test("each call gets its own :path, also when it has the length of the connection's previous one")
    func pathsOnOneConnection() throws {
        let peer = try EmbeddedHTTP2Peer()
        // Echo and Fail have the same length: a reused path must be the same bytes, not merely as long.
        let paths = ["/test.Echo/Echo", "/test.Echo/Fail", "/test.Echo/Fail", "/test.Echo/Echo", "/test.Echo/Ech", "/"]
        var streamID: Int32 = 1
        for (index, path) in paths.enumerated() {
            let payload = Array("call \(index)".utf8)
            let request =
                peer.request(streamID: streamID, path: path)
                + RawHTTP2Client.dataFrame(streamID: streamID, grpcFrame(payload), endStream: true)
            try peer.send(request)
            let frames = try peer.frames()
            switch path {
            case "/test.Echo/Echo":
                #expect(Self.status(of: streamID, in: frames) == "0", "\(path)")
                #expect(Self.body(of: streamID, in: frames) == grpcFrame(payload))
            case "/test.Echo/Fail":
                #expect(Self.status(of: streamID, in: frames) == "3", "\(path)")
                #expect(Self.message(of: streamID, in: frames) == "call \(index)")
            default:
                #expect(Self.status(of: streamID, in: frames) == "12", "\(path)")
                #expect(Self.message(of: streamID, in: frames) == "unknown method \(path)")
            }
            streamID += 2
        }
    }

    @Test("a request head reuses the known path only for the same bytes")
    func requestHeadKnownPath() throws {
        let known = "/offerd.v1.Decisioning/Decide"
        for (received, reused) in [
            (known, true), ("/offerd.v1.Decisioning/Decidf", false), ("/offerd.v1.Decisioning/Decid", false),
            ("/offerd.v1.Decisioning/Decide/", false), ("", false),
        ] {
            var head = GRPCRequestHead(maxHeaderCount: 16, maxHeaderListBytes: 8192, knownPath: known)
            head.add(":path", received)
            #expect(head.receivedPath == received)
            var bytes = received
            let same = bytes.withUTF8 { GRPCRequestHead.utf8(of: known, equals: UnsafeRawBufferPointer($0)) }
            #expect(same == reused, "\(received)")
        }
        // Invalid UTF-8 is repaired into a string whose bytes differ, so it is never taken as the known path.
        let invalid: [UInt8] = [0x2F, 0xFF, 0x61]
        let repaired = String(decoding: invalid, as: UTF8.self)
        let same = invalid.withUnsafeBytes { GRPCRequestHead.utf8(of: repaired, equals: $0) }
        #expect(!same)
    }

    @Test("the message reader takes a whole message in place only when the bytes are exactly one acceptable message")
    func readerTakesWholeMessage() throws {
        let allocator = ByteBufferAllocator()
        func take(_ wire: [UInt8], maxMessageBytes: Int = 64, consumedBefore: [UInt8] = []) -> ByteBuffer? {
            var reader = GRPCMessageReader(maxMessageBytes: maxMessageBytes)
            if !consumedBefore.isEmpty {
                _ = reader.consume(consumedBefore, allocator: allocator)
            }
            let received = ByteBuffer(bytes: wire)
            let taken = wire.withUnsafeBytes { bytes in
                reader.takeWholeMessage(bytes) { received.getSlice(at: $0, length: wire.count - $0) }
            }
            guard taken else {
                return nil
            }
            return try? reader.finish().get()
        }
        let payload = Self.payload(1)
        #expect(take(grpcFrame(payload)).map { Array($0.readableBytesView) } == payload)
        #expect(take(grpcFrame([])).map { Array($0.readableBytesView) } == [])
        #expect(take(grpcFrame(payload, compressed: true)) == nil)
        #expect(take(grpcFrame(payload), maxMessageBytes: payload.count - 1) == nil)
        #expect(take(Array(grpcFrame(payload).dropLast())) == nil)
        #expect(take(grpcFrame(payload) + [0]) == nil)
        #expect(take([0, 0, 0, 0]) == nil)
        // Bytes already read: the message is not the start of the body any more.
        #expect(take(grpcFrame(payload), consumedBefore: [0]) == nil)
    }
}
