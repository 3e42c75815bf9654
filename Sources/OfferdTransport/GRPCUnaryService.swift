import NIOCore

/// One complete unary call, as handed to a `GRPCUnaryService`.
public struct GRPCUnaryCall {
    /// The HTTP/2 `:path`, e.g. `/offerd.v1.Decisioning/Decide`. The transport does no routing: an unknown path
    /// is the service's to answer (usually `UNIMPLEMENTED`).
    public var path: String
    /// The request message payload, without the 5-byte gRPC length prefix.
    public var message: ByteBuffer
    /// When the call must be answered by, from the request's `grpc-timeout` (or Connect's
    /// `connect-timeout-ms`); `nil` when the client set none.
    public var deadline: NIODeadline?
    /// How the request message is encoded, and how the reply must be: protobuf, or proto3 JSON (Connect with
    /// `application/json`). The transport frames both alike; the service decodes and encodes.
    public var codec: GRPCMessageCodec = .proto

    /// Creates a call; the transport builds these, tests and in-process callers may too.
    public init(path: String, message: ByteBuffer, deadline: NIODeadline? = nil) {
        self.path = path
        self.message = message
        self.deadline = deadline
    }
}

/// The encoding of a call's messages.
public enum GRPCMessageCodec: Sendable, Equatable {
    /// Protobuf binary: gRPC, gRPC-Web, Connect with `application/proto`.
    case proto
    /// proto3 JSON mapping: Connect with `application/json`. A service that cannot speak it answers
    /// `UNIMPLEMENTED`.
    case json
}

/// What a service answers to a unary call.
public enum GRPCUnaryReply {
    /// The serialized response payload. The transport adds the length prefix, the response headers and the
    /// trailers with `grpc-status: 0`.
    case message(ByteBuffer)
    /// A failed call, sent in the Trailers-Only form (a single HEADERS frame ending the stream).
    case failure(GRPCStatus)
}

/// The application behind a `GRPCServer`.
///
/// `handle` is called on the connection's event loop, once per call, after the whole request message has
/// arrived. It must not block: offerd's decisions take microseconds. If the call's deadline passes while
/// `handle` runs, the transport answers `DEADLINE_EXCEEDED` instead of the reply.
public protocol GRPCUnaryService: Sendable {
    /// Answers one call. `allocator` is the connection's allocator, for building the response buffer.
    func handle(_ call: GRPCUnaryCall, allocator: ByteBufferAllocator) -> GRPCUnaryReply

    /// Whether calls on `path` are message streams: bidirectional streams answered one reply per request
    /// message, each message handed to ``handle(_:allocator:)`` as a call of its own, the stream ending once the
    /// client has half-closed and every message is answered (server reflection works this way). Asked once
    /// per call, after the request head; the default is `false` (unary).
    func isMessageStream(path: String) -> Bool
}

extension GRPCUnaryService {
    /// Every path is unary.
    public func isMessageStream(path: String) -> Bool {
        false
    }
}
