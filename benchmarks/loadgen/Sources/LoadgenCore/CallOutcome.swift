/// How one call ended, as the generator saw it.
public enum CallOutcome: Sendable, Equatable {
    /// HTTP status 200 and `grpc-status: 0`.
    case succeeded
    /// An HTTP status other than 200 (`nil`: the answer had none).
    case httpStatus(Int?)
    /// HTTP 200 and a `grpc-status` other than 0.
    case grpcStatus(Int)
    /// HTTP 200 but no `grpc-status` at all, in the headers or the trailers.
    case missingGRPCStatus
    /// The stream was reset (RST_STREAM, or refused after GOAWAY) with this HTTP/2 error code.
    case reset(UInt32)
    /// The connection closed, or could take no new stream, before the answer came.
    case connectionLost
    /// Still unanswered when the round's drain time ran out.
    case unanswered

    /// The column of the failure breakdown this outcome counts in; `nil` for a success.
    public var failureKind: FailureKind? {
        switch self {
        case .succeeded: nil
        case .httpStatus: .httpStatus
        case .grpcStatus, .missingGRPCStatus: .grpcStatus
        case .reset: .reset
        case .connectionLost: .connectionLost
        case .unanswered: .unanswered
        }
    }

    /// Decides a finished stream's outcome from what its answer carried.
    ///
    /// - Parameters:
    ///   - resetCode: the HTTP/2 error code the stream closed with (0: closed normally).
    ///   - httpStatus: `:status` of the answer, if any.
    ///   - grpcStatus: `grpc-status` from the answer's headers or trailers, if any (as text; any non-number is an
    ///     error, reported as status -1).
    public static func of(resetCode: UInt32, httpStatus: Int?, grpcStatus: Int?) -> CallOutcome {
        if resetCode != 0 {
            return .reset(resetCode)
        }
        guard httpStatus == 200 else {
            return .httpStatus(httpStatus)
        }
        guard let grpcStatus else {
            return .missingGRPCStatus
        }
        return grpcStatus == 0 ? .succeeded : .grpcStatus(grpcStatus)
    }

    /// Human-readable, for error messages: "grpc-status 12", "HTTP status 404", ...
    public var description: String {
        switch self {
        case .succeeded: "succeeded"
        case .httpStatus(let status): status.map { "HTTP status \($0)" } ?? "no HTTP status"
        case .grpcStatus(let status): "grpc-status \(status)"
        case .missingGRPCStatus: "no grpc-status"
        case .reset(let code): "stream reset with HTTP/2 error code \(code)"
        case .connectionLost: "connection lost"
        case .unanswered: "unanswered"
        }
    }
}

/// Failure categories, for the report's breakdown.
public enum FailureKind: String, Sendable, CaseIterable {
    case httpStatus = "http_status"
    case grpcStatus = "grpc_status"
    case reset
    case connectionLost = "connection_lost"
    case unanswered
}

/// Parses a decimal header value (`:status`, `grpc-status`) from its bytes; -1 for anything else, so a garbled
/// status is an error, never a success.
public func parseStatusCode(_ bytes: some Collection<UInt8>) -> Int {
    guard !bytes.isEmpty, bytes.count <= 9 else {
        return -1
    }
    var value = 0
    for byte in bytes {
        guard byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") else {
            return -1
        }
        value = value * 10 + Int(byte - UInt8(ascii: "0"))
    }
    return value
}
