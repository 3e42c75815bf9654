import NIOCore
import Testing

@testable import OfferdTransport

/// What answers look like, apart from HTTP/2: every row of the table in `GRPCServer`'s documentation that the
/// transport renders itself, and the response body split at every size.
@Suite("response rendering")
struct GRPCResponseRenderingTests {
    private static func fields(_ rejection: GRPCStreamRejection) -> [String] {
        GRPCResponseRendering.answer(rejection).fields.map { "\($0.name): \($0.value)" }
    }

    @Test("successful responses: headers, then trailers with grpc-status 0")
    func success() {
        #expect(
            GRPCResponseRendering.responseHeaders.map { "\($0.name): \($0.value)" } == [
                ":status: 200", "content-type: application/grpc",
            ])
        #expect(GRPCResponseRendering.successTrailers.map { "\($0.name): \($0.value)" } == ["grpc-status: 0"])
    }

    @Test("not a POST: 405 with allow: POST")
    func methodNotAllowed() {
        #expect(Self.fields(.methodNotAllowed) == [":status: 405", "allow: POST", "content-length: 0"])
    }

    @Test("not gRPC: 415")
    func unsupportedMediaType() {
        #expect(Self.fields(.unsupportedMediaType) == [":status: 415", "content-length: 0"])
    }

    @Test("headers too large: 431 carrying RESOURCE_EXHAUSTED")
    func headersTooLarge() {
        #expect(
            Self.fields(.headersTooLarge("too many")) == [
                ":status: 431", "content-type: application/grpc", "grpc-status: 8", "grpc-message: too many",
            ])
    }

    @Test("a status in the Trailers-Only form, message percent-encoded, none when empty")
    func trailersOnly() {
        #expect(
            Self.fields(.status(GRPCStatus(.invalidArgument, "100% wrong: café"))) == [
                ":status: 200", "content-type: application/grpc", "grpc-status: 3",
                "grpc-message: 100%25 wrong: caf%C3%A9",
            ])
        #expect(
            Self.fields(.status(GRPCStatus(.deadlineExceeded, ""))) == [
                ":status: 200", "content-type: application/grpc", "grpc-status: 4",
            ])
    }

    @Test("compression: UNIMPLEMENTED with grpc-accept-encoding: identity")
    func compressionUnsupported() {
        #expect(
            Self.fields(.compressionUnsupported("no gzip")) == [
                ":status: 200", "content-type: application/grpc", "grpc-status: 12", "grpc-message: no gzip",
                "grpc-accept-encoding: identity",
            ])
    }

    @Test(
        "the response body is the 5-byte prefix then the payload, whatever the room offered",
        arguments: [1, 2, 4, 5, 6, 7, 300])
    func body(room: Int) {
        let payload = (0..<257).map { UInt8(truncatingIfNeeded: $0) }
        var body = GRPCResponseBody(payload: ByteBuffer(bytes: payload))
        #expect(body.remainingBytes == 262)
        var written: [UInt8] = []
        var scratch = [UInt8](repeating: 0xEE, count: room)
        var rounds = 0
        while !body.isComplete {
            let count = scratch.withUnsafeMutableBytes { body.write(into: $0) }
            #expect(count > 0 && count <= room)
            written += scratch[..<count]
            rounds += 1
        }
        #expect(written == [0, 0, 0, 1, 1] + payload)
        #expect(rounds == (262 + room - 1) / room)
        #expect(body.remainingBytes == 0)
    }

    @Test("an empty payload is just the prefix")
    func emptyBody() {
        var body = GRPCResponseBody(payload: ByteBuffer())
        var scratch = [UInt8](repeating: 0xEE, count: 16)
        let count = scratch.withUnsafeMutableBytes { body.write(into: $0) }
        #expect(Array(scratch[..<count]) == [0, 0, 0, 0, 0])
        #expect(body.isComplete)
    }
}
