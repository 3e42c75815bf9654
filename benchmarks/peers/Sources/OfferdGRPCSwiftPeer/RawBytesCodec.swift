import GRPCCore
import NIOCore

/// Hands the request payload to the handler as the bytes received, undecoded.
///
/// offerd's `DecisioningService` decodes the protobuf itself (protobuf-c), so the peer must not decode it first:
/// both servers then do the same decode/decide/encode work and a load run compares only the transports.
struct RawBytesDeserializer: MessageDeserializer {
    func deserialize<Bytes: GRPCContiguousBytes>(_ serializedMessageBytes: Bytes) throws -> ByteBuffer {
        // One copy into a ByteBuffer: the transport's buffer is internal to grpc-swift-nio-transport. offerd's own
        // transport also copies the DATA frames into one buffer, so the work stays comparable.
        serializedMessageBytes.withUnsafeBytes { ByteBuffer(bytes: $0) }
    }
}

/// Sends the response payload the service encoded, as is.
struct RawBytesSerializer: MessageSerializer {
    func serialize<Bytes: GRPCContiguousBytes>(_ message: ByteBuffer) throws -> Bytes {
        Bytes(message.readableBytesView)
    }
}
