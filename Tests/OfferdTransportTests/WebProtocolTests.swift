import Logging
import NIOCore
import NIOEmbedded
import Testing

@testable import OfferdTransport

/// The parts Connect and gRPC-Web add, without sockets: content-type classification, base64, the Connect
/// renderings, the CORS answers and the protocol detector.
@Suite("web protocols")
struct WebProtocolTests {
    private static func classify(_ value: String) -> RPCWireProtocol? {
        var value = value
        return value.withUTF8 { RPCWireProtocol(contentType: UnsafeRawBufferPointer($0)) }
    }

    @Test(
        "content-type picks the protocol",
        arguments: [
            ("application/grpc", RPCWireProtocol.grpc), ("application/grpc+proto", .grpc),
            ("application/grpc-web", .grpcWeb(text: false)), ("application/grpc-web+proto", .grpcWeb(text: false)),
            ("Application/GRPC-Web-Text", .grpcWeb(text: true)),
            ("application/grpc-web-text+proto", .grpcWeb(text: true)),
            ("application/proto", .connect(json: false)), ("application/json", .connect(json: true)),
            ("application/json; charset=utf-8", .connect(json: true)),
        ]
    )
    func classification(value: String, expected: RPCWireProtocol) {
        #expect(Self.classify(value) == expected)
    }

    @Test(
        "other content types are none of ours",
        arguments: ["text/plain", "application/jsonx", "application/grpc-webx", ""])
    func unknownTypes(value: String) {
        #expect(Self.classify(value) == nil)
    }

    @Test("base64 decodes the same split at every byte, padded groups mid-body included")
    func base64SplitAtEveryByte() {
        let first: [UInt8] = [0, 0, 0, 0, 1, 0x42]
        let second: [UInt8] = Array("grpc-status:0\r\n".utf8)
        let encoded = Base64.encode(first) + Base64.encode(second)
        for split in 0...encoded.count {
            var decoder = Base64Decoder()
            var output: [UInt8] = []
            for part in [Array(encoded[..<split]), Array(encoded[split...])] {
                guard let decoded = part.withUnsafeBytes({ decoder.decode($0) }) else {
                    Issue.record("refused at split \(split)")
                    return
                }
                output += decoded
            }
            #expect(output == first + second)
            #expect(decoder.isAtBoundary)
        }
    }

    @Test("base64 refuses bytes outside the alphabet")
    func base64Refuses() {
        var decoder = Base64Decoder()
        #expect(Array("AB C".utf8).withUnsafeBytes { decoder.decode($0) } == nil)
    }

    @Test("Connect error JSON and HTTP status per code")
    func connectErrors() {
        let cases: [(GRPCStatus.Code, Int, String)] = [
            (.invalidArgument, 400, "invalid_argument"), (.permissionDenied, 403, "permission_denied"),
            (.resourceExhausted, 429, "resource_exhausted"), (.unimplemented, 501, "unimplemented"),
            (.deadlineExceeded, 504, "deadline_exceeded"), (.unavailable, 503, "unavailable"),
            (.internalError, 500, "internal"), (.cancelled, 499, "canceled"), (.notFound, 404, "not_found"),
        ]
        for (code, status, name) in cases {
            let response = RPCResponseRendering.answer(
                .status(GRPCStatus(code, "say \"why\"\n")), wireProtocol: .connect(json: false), origin: nil,
                cors: CORSPolicy(allowedOrigins: []), allocator: ByteBufferAllocator()
            )
            #expect(response.status == status)
            #expect(String(buffer: response.body) == "{\"code\":\"\(name)\",\"message\":\"say \\\"why\\\"\\n\"}")
        }
    }

    @Test("gRPC-Web: message frame then trailer frame, byte by byte")
    func grpcWebFrames() {
        let response = RPCResponseRendering.message(
            ByteBuffer(bytes: [7, 8]), wireProtocol: .grpcWeb(text: false), origin: "https://a.test",
            cors: CORSPolicy(allowedOrigins: ["https://a.test"]), allocator: ByteBufferAllocator()
        )
        #expect(response.status == 200)
        #expect(
            Array(response.body.readableBytesView)
                == [0, 0, 0, 0, 2, 7, 8, 0x80, 0, 0, 0, 15] + Array("grpc-status:0\r\n".utf8)
        )
        #expect(response.fields.contains { $0 == ("access-control-allow-origin", "https://a.test") })
        #expect(response.fields.contains { $0 == ("access-control-expose-headers", "grpc-status, grpc-message") })
    }

    @Test("a preflight is 204 for an allowed origin, 403 otherwise")
    func preflight() {
        let cors = CORSPolicy(allowedOrigins: ["https://a.test"])
        #expect(RPCResponseRendering.preflight(origin: "https://a.test", cors: cors).status == 204)
        #expect(RPCResponseRendering.preflight(origin: "https://b.test", cors: cors).status == 403)
        #expect(RPCResponseRendering.preflight(origin: nil, cors: cors).status == 403)
        #expect(
            RPCResponseRendering.preflight(origin: "https://a.test", cors: CORSPolicy(allowedOrigins: [])).status == 403
        )
    }

    /// Which handler the detector installed, for the bytes split at `split`.
    private static func detect(_ bytes: [UInt8], split: Int) throws -> String? {
        let channel = EmbeddedChannel()
        let chosen = ChosenBox()
        let detector = ProtocolDetector(
            makeHTTP2: {
                chosen.value = "h2"
                return Sink()
            },
            makeHTTP1: { pipeline in
                chosen.value = "h1"
                try pipeline.addHandler(Sink())
            }
        )
        try channel.pipeline.syncOperations.addHandler(detector)
        try channel.writeInbound(ByteBuffer(bytes: bytes[..<split]))
        if split < bytes.count {
            try channel.writeInbound(ByteBuffer(bytes: bytes[split...]))
        }
        var forwarded: [UInt8] = []
        while let part = try channel.readInbound(as: ByteBuffer.self) {
            forwarded += Array(part.readableBytesView)
        }
        if chosen.value != nil {
            #expect(forwarded == bytes, "every byte is passed on, once, in order")
        }
        _ = try? channel.finish()
        return chosen.value
    }

    @Test("the preface means HTTP/2, anything else HTTP/1.1, however the bytes are split")
    func detector() throws {
        let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8) + [0, 0, 0, 4, 0, 0, 0, 0, 0]
        let http1 = Array("POST /a HTTP/1.1\r\n\r\n".utf8)
        for split in 1...preface.count {
            #expect(try Self.detect(preface, split: split) == "h2")
        }
        for split in 1...http1.count {
            #expect(try Self.detect(http1, split: split) == "h1")
        }
        // A prefix of the preface: undecided, nothing passed on yet.
        #expect(try Self.detect(Array(preface.prefix(10)), split: 10) == nil)
    }
}

private final class ChosenBox {
    var value: String?
}

/// Passes inbound bytes on, so the test can read what reached the chosen protocol.
private final class Sink: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
}
