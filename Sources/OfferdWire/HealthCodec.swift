internal import COfferdProto

/// The `grpc.health.v1.Health/Check` messages (the server implements Check only).
public enum HealthCodec {
    /// `grpc.health.v1.HealthCheckResponse.ServingStatus`; raw values are the proto's.
    public enum ServingStatus: Int, Sendable, CaseIterable {
        case unknown = 0
        case serving = 1
        case notServing = 2
        case serviceUnknown = 3
    }

    /// Decodes a HealthCheckRequest and returns its `service` ("" asks about the server as a whole).
    /// The service name must be valid UTF-8 without NUL, as every string offerd reads.
    public static func decodeCheckRequest(_ bytes: UnsafeRawBufferPointer) throws(WireDecodeError) -> String {
        try WireStringCheck.check(bytes, schema: .healthCheckRequest)
        let arena = ProtoArena(initialCapacity: 256 + bytes.count)
        return try withExtendedLifetime(arena) { () throws(WireDecodeError) -> String in
            var allocator = arena.allocator
            let unpacked = withNonNullBase(bytes) { base, count in
                grpc__health__v1__health_check_request__unpack(&allocator, count, base)
            }
            guard let message = unpacked?.pointee else {
                throw WireDecodeError(message: "undecodable protobuf: not a valid grpc.health.v1.HealthCheckRequest")
            }
            return swiftString(message.service)
        }
    }

    /// Decodes a HealthCheckRequest from an array; see ``decodeCheckRequest(_:)-(UnsafeRawBufferPointer)``.
    public static func decodeCheckRequest(_ bytes: [UInt8]) throws(WireDecodeError) -> String {
        // Array.withUnsafeBytes only rethrows untyped errors; a Result carries the typed one through.
        try bytes.withUnsafeBytes { buffer in Result { () throws(WireDecodeError) in try decodeCheckRequest(buffer) } }
            .get()
    }

    /// Encodes a HealthCheckResponse with `status`.
    public static func encodeCheckResponse(_ status: ServingStatus) -> [UInt8] {
        var message = Grpc__Health__V1__HealthCheckResponse()
        grpc__health__v1__health_check_response__init(&message)
        message.status = Grpc__Health__V1__HealthCheckResponse__ServingStatus(rawValue: numericCast(status.rawValue))
        return withUnsafePointer(to: &message) { pointer in
            let size = grpc__health__v1__health_check_response__get_packed_size(pointer)
            return packed(size: size) { grpc__health__v1__health_check_response__pack(pointer, $0) }
        }
    }
}
