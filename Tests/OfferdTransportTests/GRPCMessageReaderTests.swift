import NIOCore
import Testing

@testable import OfferdTransport

@Suite("gRPC message reader")
struct GRPCMessageReaderTests {
    private let allocator = ByteBufferAllocator()

    private static func framed(_ payload: [UInt8], flag: UInt8 = 0) -> [UInt8] {
        let length = UInt32(payload.count)
        return [
            flag, UInt8(length >> 24), UInt8(truncatingIfNeeded: length >> 16),
            UInt8(truncatingIfNeeded: length >> 8), UInt8(truncatingIfNeeded: length),
        ] + payload
    }

    private static func bytes(_ buffer: ByteBuffer) -> [UInt8] {
        Array(buffer.readableBytesView)
    }

    @Test("a message split at every possible point reassembles exactly", arguments: [0, 1, 7, 300])
    func splitAtEveryByte(payloadLength: Int) throws {
        let payload = (0..<payloadLength).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        let wire = Self.framed(payload)
        for split in 0...wire.count {
            var reader = GRPCMessageReader(maxMessageBytes: 1024)
            #expect(reader.consume(Array(wire[..<split]), allocator: allocator) == nil)
            #expect(reader.consume(Array(wire[split...]), allocator: allocator) == nil)
            let message = try reader.finish().get()
            #expect(Self.bytes(message) == payload, "split at \(split)")
        }
    }

    @Test("a message fed one byte at a time reassembles exactly")
    func oneByteAtATime() throws {
        let payload = Array("hello, gRPC".utf8)
        var reader = GRPCMessageReader(maxMessageBytes: 64)
        for byte in Self.framed(payload) {
            #expect(reader.consume([byte], allocator: allocator) == nil)
        }
        #expect(Self.bytes(try reader.finish().get()) == payload)
    }

    @Test("an oversized length prefix is refused as soon as the prefix is complete, before any body byte")
    func oversizedPrefixRefusedBeforeBuffering() {
        var reader = GRPCMessageReader(maxMessageBytes: 100)
        // Only the prefix: 0x7FFFFFFF bytes announced, nothing else sent.
        let rejection = reader.consume([0, 0x7F, 0xFF, 0xFF, 0xFF], allocator: allocator)
        #expect(rejection?.grpcStatus?.code == .resourceExhausted)
        #expect(rejection?.grpcStatus?.message.contains("2147483647") == true)
    }

    @Test("a message of exactly the limit is accepted, one byte more is refused")
    func limitBoundary() throws {
        var atLimit = GRPCMessageReader(maxMessageBytes: 10)
        #expect(atLimit.consume(Self.framed(Array(repeating: 1, count: 10)), allocator: allocator) == nil)
        #expect(try atLimit.finish().get().readableBytes == 10)

        var overLimit = GRPCMessageReader(maxMessageBytes: 10)
        let rejection = overLimit.consume(Self.framed(Array(repeating: 1, count: 11)), allocator: allocator)
        #expect(rejection?.grpcStatus?.code == .resourceExhausted)
    }

    @Test("the compressed flag is refused with UNIMPLEMENTED and an identity hint")
    func compressedFlag() {
        var reader = GRPCMessageReader(maxMessageBytes: 100)
        let rejection = reader.consume(Self.framed([1, 2, 3], flag: 1), allocator: allocator)
        guard case .compressionUnsupported = rejection else {
            Issue.record("expected compressionUnsupported, got \(String(describing: rejection))")
            return
        }
        #expect(rejection?.grpcStatus?.code == .unimplemented)
    }

    @Test("an unknown flag byte is INVALID_ARGUMENT")
    func unknownFlag() {
        var reader = GRPCMessageReader(maxMessageBytes: 100)
        let rejection = reader.consume(Self.framed([1], flag: 2), allocator: allocator)
        #expect(rejection?.grpcStatus?.code == .invalidArgument)
    }

    @Test("a second message is INVALID_ARGUMENT, even when it arrives in the same chunk")
    func secondMessage() {
        var reader = GRPCMessageReader(maxMessageBytes: 100)
        let rejection = reader.consume(Self.framed([1, 2]) + Self.framed([3]), allocator: allocator)
        #expect(rejection?.grpcStatus?.code == .invalidArgument)
        #expect(rejection?.grpcStatus?.message.contains("more than one message") == true)
        // Further input after a refusal is ignored rather than refused again.
        #expect(reader.consume([9, 9, 9], allocator: allocator) == nil)
    }

    @Test(
        "a body that ends early names what was missing",
        arguments: [
            ([UInt8](), "no message"),
            ([0, 0, 0], "message prefix (3 of 5 bytes)"),
            ([0, 0, 0, 0, 10, 1, 2, 3], "after 3 of the 10 message bytes"),
        ]
    )
    func truncated(body: [UInt8], expectedText: String) {
        var reader = GRPCMessageReader(maxMessageBytes: 100)
        #expect(reader.consume(body, allocator: allocator) == nil)
        switch reader.finish() {
        case .success:
            Issue.record("a truncated body must not produce a message")
        case .failure(let rejection):
            #expect(rejection.grpcStatus?.code == .invalidArgument)
            #expect(rejection.grpcStatus?.message.contains(expectedText) == true, "\(String(describing: rejection))")
        }
    }

    @Test("an empty message is a valid message")
    func emptyMessage() throws {
        var reader = GRPCMessageReader(maxMessageBytes: 0)
        #expect(reader.consume(Self.framed([]), allocator: allocator) == nil)
        #expect(try reader.finish().get().readableBytes == 0)
    }
}
