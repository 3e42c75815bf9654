import Foundation
import NIOCore
import OfferdTransport
import Testing

/// End-to-end behaviour that needs frame-level control: partial uploads, garbage, connection lifecycle.
@Suite("end to end at the frame level", .serialized)
struct EndToEndRawHTTP2Tests {
    /// Connects, exchanges prefaces and returns the client.
    private static func connect(port: Int) throws -> RawHTTP2Client {
        let client = try RawHTTP2Client(port: port)
        try client.send(RawHTTP2Client.connectionPreface())
        return client
    }

    /// Sends a PING and reads until its ACK: everything sent before it has then been processed.
    private static func pingRoundTrip(_ client: RawHTTP2Client) throws {
        let opaque: [UInt8] = [0x6F, 0x66, 0x66, 0x65, 0x72, 0x64, 0, 1]
        try client.send(RawHTTP2Client.frame(type: RawFrame.ping, streamID: 0, payload: opaque))
        let frames = try client.readFrames { $0.type == RawFrame.ping && $0.flags & 0x1 != 0 && $0.payload == opaque }
        guard frames.contains(where: { $0.type == RawFrame.ping && $0.flags & 0x1 != 0 }) else {
            throw TestFailure("no PING ACK")
        }
    }

    @Test(
        "the preface followed by something other than SETTINGS: GOAWAY(PROTOCOL_ERROR), close, and the next client is served"
    )
    func garbagePreface() async throws {
        try await withTestServer { _, port, _ in
            let client = try RawHTTP2Client(port: port)
            // A preface goes to HTTP/2 (anything else is HTTP/1.1 since the port speaks both); nghttp2 then
            // wants SETTINGS first.
            try client.send(
                RawHTTP2Client.connectionPreface().prefix(24)
                    + RawHTTP2Client.frame(type: 6, streamID: 0, payload: [0, 0, 0, 0, 0, 0, 0, 0])
            )
            let frames = try client.readUntilClosed()
            #expect(client.isClosedByPeer)
            let goAway = frames.first { $0.type == RawFrame.goAway }?.goAwayFields
            #expect(goAway?.errorCode == 1, "PROTOCOL_ERROR expected, frames: \(frames.map(\.type))")

            // An HTTP/1.1 request that is none of the port's protocols: answered (405) and closed.
            let http1 = try RawHTTP2Client(port: port)
            try http1.send(Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
            _ = try http1.readUntilClosed()
            #expect(http1.isClosedByPeer)

            let call = try await NGHTTPCall.run(port: port, path: "/test.Echo/Echo", body: grpcFrame([1, 2, 3]))
            #expect(call.value("grpc-status") == "0")
        }
    }

    @Test("a protocol error after the preface (DATA on stream 0) ends the connection with GOAWAY")
    func protocolError() async throws {
        try await withTestServer { _, port, _ in
            let client = try Self.connect(port: port)
            try client.send(RawHTTP2Client.dataFrame(streamID: 0, [1, 2, 3]))
            let frames = try client.readUntilClosed()
            #expect(client.isClosedByPeer)
            #expect(frames.contains { $0.type == RawFrame.goAway && $0.goAwayFields?.errorCode == 1 })
        }
    }

    @Test("an oversized prefix is answered at once, before the body, followed by RST_STREAM(NO_ERROR)")
    func oversizedPrefixAnsweredEarly() async throws {
        let configure: (inout GRPCServerConfiguration) -> Void = { $0.maxMessageBytes = 1000 }
        try await withTestServer(configure: configure) { _, port, service in
            let client = try Self.connect(port: port)
            try client.send(
                client.headersFrame(streamID: 1, fields: RawHTTP2Client.grpcRequestFields(path: "/test.Echo/Echo"))
            )
            // Announce 1 MiB but send only the prefix, without ending the stream.
            try client.send(RawHTTP2Client.dataFrame(streamID: 1, [0, 0, 0x10, 0, 0]))
            let frames = try client.readFrames { $0.streamID == 1 && $0.type == RawFrame.rstStream }
            let answer = try #require(frames.first { $0.streamID == 1 && $0.type == RawFrame.headers })
            #expect(answer.endStream)
            let fields = try client.decodeHeaders(answer)
            #expect(fields.value(":status") == "200")
            #expect(fields.value("grpc-status") == "8")
            let reset = frames.first { $0.streamID == 1 && $0.type == RawFrame.rstStream }
            #expect(reset?.resetCode == 0)
            #expect(service.callCount == 0)
        }
    }

    /// A gRPC-Web head with a content type the port does not speak, declaring `contentLength` body bytes.
    private static func unsupportedTypeFields(contentLength: Int) -> [(String, String)] {
        [
            (":method", "POST"), (":scheme", "http"), (":path", "/test.Echo/Echo"), (":authority", "127.0.0.1"),
            ("content-type", "text/plain"), ("content-length", String(contentLength)),
        ]
    }

    /// Reads the answer on stream 1, which must end the stream before the body is sent, and returns its status.
    private static func earlyAnswerStatus(_ client: RawHTTP2Client) throws -> String? {
        let frames = try client.readFrames { $0.streamID == 1 && $0.type == RawFrame.headers }
        let answer = try #require(frames.last { $0.streamID == 1 && $0.type == RawFrame.headers })
        #expect(answer.endStream)
        return try client.decodeHeaders(answer).value(":status")
    }

    @Test("an answer before a small declared body lets the client finish the upload: no RST_STREAM")
    func earlyAnswerLetsSmallBodyFinish() async throws {
        try await withTestServer { _, port, service in
            let client = try Self.connect(port: port)
            try client.send(client.headersFrame(streamID: 1, fields: Self.unsupportedTypeFields(contentLength: 3)))
            #expect(try Self.earlyAnswerStatus(client) == "415")
            // The body after the answer, in two frames, then a PING: every frame the server writes because of
            // the answer or the body comes before the PING's ACK.
            try client.send(RawHTTP2Client.dataFrame(streamID: 1, [0x61]))
            try client.send(RawHTTP2Client.dataFrame(streamID: 1, [0x62, 0x63], endStream: true))
            let opaque: [UInt8] = [1, 2, 3, 4, 5, 6, 7, 8]
            try client.send(RawHTTP2Client.frame(type: RawFrame.ping, streamID: 0, payload: opaque))
            let frames = try client.readFrames { $0.type == RawFrame.ping && $0.payload == opaque }
            #expect(frames.contains { $0.type == RawFrame.ping && $0.payload == opaque })
            #expect(!frames.contains { $0.type == RawFrame.rstStream || $0.type == RawFrame.goAway })
            // The connection goes on serving.
            try client.send(
                client.headersFrame(streamID: 3, fields: RawHTTP2Client.grpcRequestFields(path: "/test.Echo/Echo"))
                    + RawHTTP2Client.dataFrame(streamID: 3, [0, 0, 0, 0, 0], endStream: true)
            )
            let next = try client.readFrames { $0.streamID == 3 && $0.endStream }
            let trailers = try #require(next.last { $0.streamID == 3 && $0.type == RawFrame.headers })
            #expect(try client.decodeHeaders(trailers).value("grpc-status") == "0")
            #expect(service.callCount == 1)
        }
    }

    @Test("an answer before a large declared body stops the upload with RST_STREAM(NO_ERROR)")
    func earlyAnswerStopsLargeBody() async throws {
        try await withTestServer { _, port, _ in
            let client = try Self.connect(port: port)
            let declared = GRPCServerConfiguration().maxMessageBytes
            try client.send(
                client.headersFrame(streamID: 1, fields: Self.unsupportedTypeFields(contentLength: declared))
            )
            #expect(try Self.earlyAnswerStatus(client) == "415")
            let frames = try client.readFrames { $0.streamID == 1 && $0.type == RawFrame.rstStream }
            #expect(frames.last { $0.streamID == 1 && $0.type == RawFrame.rstStream }?.resetCode == 0)
        }
    }

    @Test("many concurrent streams on one connection are all answered", arguments: [1, 99])
    func manyStreams(streamCount: Int) async throws {
        try await withTestServer { _, port, service in
            let client = try Self.connect(port: port)
            var burst: [UInt8] = []
            for index in 0..<streamCount {
                let streamID = Int32(2 * index + 1)
                burst += client.headersFrame(
                    streamID: streamID,
                    fields: RawHTTP2Client.grpcRequestFields(path: "/test.Echo/Echo")
                )
                burst += RawHTTP2Client.dataFrame(streamID: streamID, grpcFrame([UInt8(index)]), endStream: true)
            }
            // One write: the server sees all the streams in a single read burst.
            try client.send(burst)
            var finished = Set<Int32>()
            var statuses: [Int32: String] = [:]
            var echoed: [Int32: [UInt8]] = [:]
            _ = try client.readFrames(timeout: 10) { frame in
                if frame.type == RawFrame.headers, let fields = try? client.decodeHeaders(frame),
                    let status = fields.value("grpc-status")
                {
                    statuses[frame.streamID] = status
                }
                if frame.type == RawFrame.data {
                    echoed[frame.streamID, default: []] += frame.payload
                }
                if frame.streamID != 0 && frame.endStream {
                    finished.insert(frame.streamID)
                }
                return finished.count == streamCount
            }
            #expect(finished.count == streamCount)
            #expect(statuses.values.allSatisfy { $0 == "0" } && statuses.count == streamCount)
            for index in 0..<streamCount {
                #expect(echoed[Int32(2 * index + 1)] == grpcFrame([UInt8(index)]))
            }
            #expect(service.callCount == streamCount)
        }
    }

    @Test("streams beyond SETTINGS_MAX_CONCURRENT_STREAMS are refused, the others served")
    func concurrencyLimit() async throws {
        let configure: (inout GRPCServerConfiguration) -> Void = { $0.maxConcurrentStreams = 2 }
        try await withTestServer(configure: configure) { _, port, _ in
            let client = try Self.connect(port: port)
            // Sent before the server's SETTINGS is acknowledged: nghttp2 refuses the excess stream with
            // REFUSED_STREAM (after the acknowledgement, exceeding it is a connection error, PROTOCOL_ERROR).
            for streamID: Int32 in [1, 3, 5] {
                try client.send(
                    client.headersFrame(
                        streamID: streamID,
                        fields: RawHTTP2Client.grpcRequestFields(path: "/test.Echo/Echo")
                    )
                )
            }
            let frames = try client.readFrames { $0.streamID == 5 && $0.type == RawFrame.rstStream }
            #expect(
                frames.first { $0.streamID == 5 && $0.type == RawFrame.rstStream }?.resetCode == 7,
                "\(frames.map { ($0.type, $0.streamID, $0.payload) })"
            )
            // Streams 1 and 3 are still open and complete normally.
            for streamID: Int32 in [1, 3] {
                try client.send(RawHTTP2Client.dataFrame(streamID: streamID, grpcFrame([1]), endStream: true))
            }
            var ended = Set<Int32>()
            _ = try client.readFrames { frame in
                if frame.type == RawFrame.headers {
                    _ = try? client.decodeHeaders(frame)
                    if frame.endStream {
                        ended.insert(frame.streamID)
                    }
                }
                return ended.count == 2
            }
            #expect(ended == [1, 3])
        }
    }

    @Test("rapid reset (HEADERS + RST_STREAM flood) ends the connection; the server keeps serving others")
    func rapidReset() async throws {
        try await withTestServer { _, port, service in
            let client = try Self.connect(port: port)
            var flood: [UInt8] = []
            for index in 0..<1500 {
                let streamID = Int32(2 * index + 1)
                flood += client.headersFrame(
                    streamID: streamID,
                    fields: RawHTTP2Client.grpcRequestFields(path: "/test.Echo/Echo")
                )
                flood += RawHTTP2Client.frame(type: RawFrame.rstStream, streamID: streamID, payload: [0, 0, 0, 8])
            }
            try? client.send(flood)
            let frames = try client.readUntilClosed(timeout: 5)
            #expect(client.isClosedByPeer)
            #expect(frames.contains { $0.type == RawFrame.goAway && $0.goAwayFields?.errorCode != 0 })
            #expect(service.callCount == 0)
            let call = try await NGHTTPCall.run(port: port, path: "/test.Echo/Echo", body: grpcFrame([5]))
            #expect(call.value("grpc-status") == "0")
        }
    }

    @Test("shutdown: GOAWAY names the last stream, the in-flight call finishes, then everything closes")
    func gracefulShutdown() async throws {
        try await withTestServer { server, port, _ in
            let client = try Self.connect(port: port)
            try client.send(
                client.headersFrame(streamID: 1, fields: RawHTTP2Client.grpcRequestFields(path: "/test.Echo/Echo"))
            )
            try client.send(RawHTTP2Client.dataFrame(streamID: 1, [0, 0, 0, 0, 2, 7]))
            // The server has processed stream 1 once it answers a PING sent after it (frames are read in order).
            try Self.pingRoundTrip(client)
            let shutdown = Task { await server.shutdown(grace: .seconds(10)) }
            let goAwayFrames = try await offCooperativePool { try client.readFrames { $0.type == RawFrame.goAway } }
            let goAway = try #require(goAwayFrames.last?.goAwayFields)
            #expect(goAway.lastStreamID == 1)
            #expect(goAway.errorCode == 0)
            // A stream opened after the GOAWAY is not served.
            try client.send(
                client.headersFrame(
                    streamID: 3,
                    fields: RawHTTP2Client.grpcRequestFields(path: "/test.Echo/Echo"),
                    endStream: true
                )
            )
            // Finish stream 1: it is answered, then the server closes the connection.
            try client.send(RawHTTP2Client.dataFrame(streamID: 1, [8], endStream: true))
            let rest = try await offCooperativePool { try client.readUntilClosed(timeout: 5) }
            var sawOK = false
            for frame in rest where frame.type == RawFrame.headers {
                let fields = try client.decodeHeaders(frame)
                #expect(frame.streamID == 1)
                sawOK = sawOK || fields.value("grpc-status") == "0"
            }
            #expect(sawOK)
            #expect(rest.contains { $0.streamID == 1 && $0.type == RawFrame.data && $0.payload == grpcFrame([7, 8]) })
            #expect(client.isClosedByPeer)
            await shutdown.value
            #expect(server.connectionCount == 0)
        }
    }

    @Test("shutdown grace: a connection whose call never finishes is closed when the grace period ends")
    func shutdownGraceExpires() async throws {
        try await withTestServer { server, port, _ in
            let client = try Self.connect(port: port)
            try client.send(
                client.headersFrame(streamID: 1, fields: RawHTTP2Client.grpcRequestFields(path: "/test.Echo/Echo"))
            )
            try Self.pingRoundTrip(client)
            let started = Date()
            await server.shutdown(grace: .milliseconds(300))
            // Only the lower bound always holds: the grace timer cannot fire early, but a loaded machine can
            // run it late.
            let elapsed = Date().timeIntervalSince(started)
            #expect(elapsed >= 0.29, "shutdown took \(elapsed) s")
            _ = try client.readUntilClosed(timeout: 2)
            #expect(client.isClosedByPeer)
        }
    }
}
