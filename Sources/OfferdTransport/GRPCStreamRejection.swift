/// Why the transport answers a stream itself instead of calling the service, and how it answers.
///
/// For gRPC every case ends the stream with a single HEADERS frame (END_STREAM); Connect and gRPC-Web render the
/// same cases in their own form (`RPCResponseRendering`), an error body included. If the request had not finished,
/// the transport then sends `RST_STREAM(NO_ERROR)` so the client stops sending a body nobody will read
/// (RFC 9113 section 8.1); the connection and its other streams are untouched.
enum GRPCStreamRejection: Error, Equatable {
    /// Not a POST: `:status 405` with `allow: POST` (a non-gRPC client).
    case methodNotAllowed
    /// An `OPTIONS` request: a browser's CORS preflight, answered 204 with the CORS headers when its `origin`
    /// is allowed (`GRPCServerConfiguration.corsAllowedOrigins`), else 403.
    case preflight
    /// `content-type` is not `application/grpc[+...|;...]`: `:status 415` (a non-gRPC client).
    case unsupportedMediaType
    /// Too many header fields or too large a header list: `:status 431` carrying `grpc-status: 8`, so both
    /// HTTP and gRPC clients read a meaningful answer.
    case headersTooLarge(String)
    /// A gRPC-level refusal in the Trailers-Only form (`:status 200`, `grpc-status`, `grpc-message`).
    case status(GRPCStatus)
    /// A compressed message or a `grpc-encoding` other than `identity`: Trailers-Only `UNIMPLEMENTED` with
    /// `grpc-accept-encoding: identity`, as the gRPC compression spec asks.
    case compressionUnsupported(String)

    /// The gRPC status this rejection carries, if any; used by tests and logs.
    var grpcStatus: GRPCStatus? {
        switch self {
        case .methodNotAllowed, .unsupportedMediaType, .preflight: return nil
        case .headersTooLarge(let message): return GRPCStatus(.resourceExhausted, message)
        case .status(let status): return status
        case .compressionUnsupported(let message): return GRPCStatus(.unimplemented, message)
        }
    }
}
