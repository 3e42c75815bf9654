/// A request the wire layer cannot turn into core values: undecodable protobuf, or a string that is not valid
/// UTF-8 or holds a NUL character. The gRPC layer answers it with INVALID_ARGUMENT and ``message`` as
/// `grpc-message`.
public struct WireDecodeError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What was wrong, naming the field when one is to blame (`scopes[2].decision_id is not valid UTF-8`).
    public var message: String

    public init(message: String) {
        self.message = message
    }

    public var description: String { message }
}
