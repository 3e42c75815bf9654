import NIOCore

/// A whole HTTP response, for the protocols answered in one piece: Connect unary, gRPC-Web, CORS preflights.
/// HTTP/2 sends it through nghttp2 (`:status` + fields, one body), HTTP/1.1 through NIOHTTP1.
struct RenderedHTTPResponse {
    var status: Int
    /// Response fields without `:status`, names lower-case.
    var fields: [(name: String, value: String)]
    var body: ByteBuffer

    /// The fields as an HTTP/2 header block, `:status` first.
    var headerBlock: GRPCHeaderBlock {
        var block = GRPCHeaderBlock()
        block.append(":status", String(status))
        for field in fields {
            block.append(field.name, field.value)
        }
        return block
    }
}

/// Which browser origins may call the port (CORS), from `--cors-origin`; none by default.
struct CORSPolicy: Sendable {
    var allowedOrigins: Set<String>

    /// The request headers a gRPC-Web or Connect browser client sends beside the simple ones.
    static let allowedHeaders =
        "content-type, x-grpc-web, x-user-agent, grpc-timeout, connect-protocol-version, connect-timeout-ms, "
        + "authorization"

    /// Whether `origin` may call (an exact match; `*` in the list allows every origin).
    func allows(_ origin: String?) -> Bool {
        guard let origin else {
            return false
        }
        return allowedOrigins.contains(origin) || allowedOrigins.contains("*")
    }
}

/// How Connect unary, gRPC-Web and CORS answers look, for both HTTP versions. The stream state machine decides
/// what to answer; this says how, in the request's protocol (``RPCWireProtocol``).
///
/// - gRPC-Web: `200`, `content-type` of the request's kind, the body a message frame (flag 0) when there is a
///   message and always a trailer frame (flag `0x80`: `grpc-status:N\r\n` and, when there is one,
///   `grpc-message:...\r\n`, the message percent-encoded); failures also carry `grpc-status` and `grpc-message`
///   in the headers (Trailers-Only, which gRPC-Web clients read too). `grpc-web-text`: the body base64.
/// - Connect unary: `200` and the bare message with the request's `content-type`; a failure is Connect's error
///   JSON `{"code":"invalid_argument","message":"..."}` with the HTTP status Connect assigns to the code.
/// - HTTP-level refusals (405, 415, 431) are the same as for gRPC, without gRPC fields; a preflight is 204
///   with the CORS headers for an allowed origin, else 403.
///
/// With an allowed `origin`, every answer also carries `access-control-allow-origin` and
/// `access-control-expose-headers: grpc-status, grpc-message`.
enum RPCResponseRendering {
    /// The answer to a reply message.
    static func message(
        _ payload: ByteBuffer, wireProtocol: RPCWireProtocol, origin: String?, cors: CORSPolicy,
        allocator: ByteBufferAllocator
    ) -> RenderedHTTPResponse {
        var response: RenderedHTTPResponse
        switch wireProtocol {
        case .connect(let json):
            response = RenderedHTTPResponse(
                status: 200, fields: [("content-type", json ? "application/json" : "application/proto")],
                body: payload
            )
        case .grpcWeb(let text):
            var body = allocator.buffer(capacity: payload.readableBytes + 5 + 32)
            Self.writeFrame(flag: 0, payload.readableBytesView, to: &body)
            Self.writeTrailerFrame(GRPCStatus(.ok, ""), to: &body)
            response = Self.grpcWeb(body: body, text: text, allocator: allocator)
        case .grpc:
            preconditionFailure("plain gRPC is rendered by GRPCResponseRendering")
        }
        Self.addCORS(to: &response, origin: origin, cors: cors)
        return response
    }

    /// The answer to a request refused by the transport or failed by the service.
    static func answer(
        _ rejection: GRPCStreamRejection, wireProtocol: RPCWireProtocol, origin: String?, cors: CORSPolicy,
        allocator: ByteBufferAllocator
    ) -> RenderedHTTPResponse {
        var response: RenderedHTTPResponse
        switch rejection {
        case .preflight:
            return Self.preflight(origin: origin, cors: cors)
        case .methodNotAllowed:
            response = RenderedHTTPResponse(status: 405, fields: [("allow", "POST")], body: ByteBuffer())
        case .unsupportedMediaType:
            response = RenderedHTTPResponse(status: 415, fields: [], body: ByteBuffer())
        case .headersTooLarge, .status, .compressionUnsupported:
            // Safe: these three cases always carry a status.
            let status = rejection.grpcStatus ?? GRPCStatus(.internalError, "")
            switch wireProtocol {
            case .connect:
                response = Self.connectError(status, allocator: allocator)
                if case .compressionUnsupported = rejection {
                    response.fields.append(("accept-encoding", "identity"))
                }
            case .grpcWeb(let text):
                var body = allocator.buffer(capacity: 64 + status.message.utf8.count * 3)
                Self.writeTrailerFrame(status, to: &body)
                response = Self.grpcWeb(body: body, text: text, allocator: allocator)
                response.fields.append(("grpc-status", String(status.code.rawValue)))
                if !status.message.isEmpty {
                    response.fields.append(("grpc-message", GRPCStatus.percentEncoded(status.message)))
                }
            case .grpc:
                preconditionFailure("plain gRPC is rendered by GRPCResponseRendering")
            }
        }
        Self.addCORS(to: &response, origin: origin, cors: cors)
        return response
    }

    /// A CORS preflight's answer.
    static func preflight(origin: String?, cors: CORSPolicy) -> RenderedHTTPResponse {
        guard let origin, cors.allows(origin) else {
            return RenderedHTTPResponse(status: 403, fields: [("vary", "origin")], body: ByteBuffer())
        }
        return RenderedHTTPResponse(
            status: 204,
            fields: [
                ("access-control-allow-origin", origin),
                ("access-control-allow-methods", "POST, OPTIONS"),
                ("access-control-allow-headers", CORSPolicy.allowedHeaders),
                ("access-control-expose-headers", "grpc-status, grpc-message"),
                ("access-control-max-age", "7200"),
                ("vary", "origin"),
            ],
            body: ByteBuffer()
        )
    }

    /// Connect's HTTP status for a code (connectrpc.com protocol, "Error Codes").
    static func connectHTTPStatus(_ code: GRPCStatus.Code) -> Int {
        switch code {
        case .ok: 200
        case .cancelled: 499
        case .unknown, .internalError, .dataLoss: 500
        case .invalidArgument, .failedPrecondition, .outOfRange: 400
        case .deadlineExceeded: 504
        case .notFound: 404
        case .alreadyExists, .aborted: 409
        case .permissionDenied: 403
        case .resourceExhausted: 429
        case .unimplemented: 501
        case .unavailable: 503
        case .unauthenticated: 401
        }
    }

    /// Connect's name for a code: the gRPC name in snake case, `canceled` spelled the American way.
    static func connectCodeName(_ code: GRPCStatus.Code) -> String {
        switch code {
        case .ok: "ok"
        case .cancelled: "canceled"
        case .unknown: "unknown"
        case .invalidArgument: "invalid_argument"
        case .deadlineExceeded: "deadline_exceeded"
        case .notFound: "not_found"
        case .alreadyExists: "already_exists"
        case .permissionDenied: "permission_denied"
        case .resourceExhausted: "resource_exhausted"
        case .failedPrecondition: "failed_precondition"
        case .aborted: "aborted"
        case .outOfRange: "out_of_range"
        case .unimplemented: "unimplemented"
        case .internalError: "internal"
        case .unavailable: "unavailable"
        case .dataLoss: "data_loss"
        case .unauthenticated: "unauthenticated"
        }
    }

    private static func connectError(_ status: GRPCStatus, allocator: ByteBufferAllocator) -> RenderedHTTPResponse {
        var json = "{\"code\":\"" + Self.connectCodeName(status.code) + "\""
        if !status.message.isEmpty {
            json += ",\"message\":" + Self.jsonString(status.message)
        }
        json += "}"
        var body = allocator.buffer(capacity: json.utf8.count)
        body.writeString(json)
        return RenderedHTTPResponse(
            status: Self.connectHTTPStatus(status.code), fields: [("content-type", "application/json")], body: body
        )
    }

    private static func grpcWeb(body: ByteBuffer, text: Bool, allocator: ByteBufferAllocator) -> RenderedHTTPResponse {
        guard text else {
            return RenderedHTTPResponse(
                status: 200, fields: [("content-type", "application/grpc-web+proto")], body: body
            )
        }
        let encoded = Base64.encode(body.readableBytesView)
        var textBody = allocator.buffer(capacity: encoded.count)
        textBody.writeBytes(encoded)
        return RenderedHTTPResponse(
            status: 200, fields: [("content-type", "application/grpc-web-text+proto")], body: textBody
        )
    }

    private static func addCORS(to response: inout RenderedHTTPResponse, origin: String?, cors: CORSPolicy) {
        guard let origin, cors.allows(origin) else {
            return
        }
        response.fields.append(("access-control-allow-origin", origin))
        response.fields.append(("access-control-expose-headers", "grpc-status, grpc-message"))
        response.fields.append(("vary", "origin"))
    }

    private static func writeFrame(flag: UInt8, _ payload: some Collection<UInt8>, to buffer: inout ByteBuffer) {
        buffer.writeInteger(flag)
        buffer.writeInteger(UInt32(truncatingIfNeeded: payload.count))
        buffer.writeBytes(payload)
    }

    /// gRPC-Web's trailer frame: flag 0x80, then the trailers as HTTP/1 header lines.
    private static func writeTrailerFrame(_ status: GRPCStatus, to buffer: inout ByteBuffer) {
        var text = "grpc-status:\(status.code.rawValue)\r\n"
        if !status.message.isEmpty {
            text += "grpc-message:\(GRPCStatus.percentEncoded(status.message))\r\n"
        }
        Self.writeFrame(flag: 0x80, Array(text.utf8), to: &buffer)
    }

    /// A JSON string literal: quotes, backslashes and control characters escaped.
    static func jsonString(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

/// Standard base64 (RFC 4648 section 4), for `application/grpc-web-text`.
enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// Encodes with `=` padding.
    static func encode(_ bytes: some Collection<UInt8>) -> [UInt8] {
        let input = Array(bytes)
        var output: [UInt8] = []
        output.reserveCapacity((input.count + 2) / 3 * 4)
        var index = 0
        while index < input.count {
            let b0 = input[index]
            let b1 = index + 1 < input.count ? input[index + 1] : 0
            let b2 = index + 2 < input.count ? input[index + 2] : 0
            output.append(Self.alphabet[Int(b0 >> 2)])
            output.append(Self.alphabet[Int((b0 & 0x03) << 4 | b1 >> 4)])
            output.append(index + 1 < input.count ? Self.alphabet[Int((b1 & 0x0F) << 2 | b2 >> 6)] : UInt8(ascii: "="))
            output.append(index + 2 < input.count ? Self.alphabet[Int(b2 & 0x3F)] : UInt8(ascii: "="))
            index += 3
        }
        return output
    }
}

/// Decodes base64 arriving in pieces of any size: whole 4-character groups are decoded as they complete, a
/// partial group waits for the next piece. Padded groups may occur mid-body (a gRPC-Web-text client may
/// encode each message on its own). Whitespace is refused, like any byte outside the alphabet.
struct Base64Decoder {
    private var group: [UInt8] = []

    /// True when no partial group is waiting.
    var isAtBoundary: Bool {
        group.isEmpty
    }

    /// The bytes of every group completed by `bytes`; `nil` when the input is not base64.
    mutating func decode(_ bytes: UnsafeRawBufferPointer) -> [UInt8]? {
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count / 4 * 3 + 3)
        for byte in bytes {
            group.append(byte)
            guard group.count == 4 else {
                continue
            }
            guard let decoded = Self.decodeGroup(group) else {
                return nil
            }
            output.append(contentsOf: decoded)
            group.removeAll(keepingCapacity: true)
        }
        return output
    }

    private static func value(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): byte - UInt8(ascii: "A")
        case UInt8(ascii: "a")...UInt8(ascii: "z"): byte - UInt8(ascii: "a") + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0") + 52
        case UInt8(ascii: "+"): 62
        case UInt8(ascii: "/"): 63
        default: nil
        }
    }

    private static func decodeGroup(_ group: [UInt8]) -> [UInt8]? {
        let padding = group[3] == UInt8(ascii: "=") ? (group[2] == UInt8(ascii: "=") ? 2 : 1) : 0
        guard let v0 = Self.value(group[0]), let v1 = Self.value(group[1]) else {
            return nil
        }
        let v2 = padding == 2 ? 0 : Self.value(group[2])
        let v3 = padding >= 1 ? 0 : Self.value(group[3])
        guard let v2, let v3 else {
            return nil
        }
        let bytes = [v0 << 2 | v1 >> 4, (v1 & 0x0F) << 4 | v2 >> 2, (v2 & 0x03) << 6 | v3]
        return Array(bytes.prefix(3 - padding))
    }
}
