import NIOCore

#if canImport(Glibc)
    import Glibc
#endif

/// The request header fields the transport cares about, collected one field at a time as nghttp2 decodes
/// them, with the header count and header list size limits applied as they arrive.
///
/// Only a handful of fields are kept (method, path, content-type, grpc-encoding, grpc-timeout); everything
/// else is counted and dropped without copying. Once a limit is exceeded nothing more is stored.
struct GRPCRequestHead {
    /// The checked head of a call that may go on to the service.
    struct Accepted: Equatable {
        var path: String
        var timeout: TimeAmount?
        var wireProtocol: RPCWireProtocol = .grpc
    }

    private enum TimeoutField {
        case absent
        case valid(TimeAmount)
        case malformed(String)
    }

    private let maxHeaderCount: Int
    private let maxHeaderListBytes: Int

    private(set) var fieldCount = 0
    private(set) var headerListBytes = 0
    private var isOverLimit = false
    private var isPost = false
    private var isOptions = false
    private var path: String?
    /// The protocol `content-type` names; `nil` before it arrives or for a type the port does not speak.
    private(set) var wireProtocol: RPCWireProtocol?
    /// `origin`, kept for CORS (gRPC-Web and Connect from browsers).
    private(set) var origin: String?
    private var connectTimeout: TimeoutField = .absent
    private var connectVersion: String?
    private var unsupportedContentEncoding: String?
    private var unsupportedEncoding: String?
    private var timeout: TimeoutField = .absent
    /// `content-length`, when the client declared one; nghttp2 checks the DATA received against it.
    private(set) var declaredBodyLength: Int?

    /// A path this connection has seen before: a `:path` with the same bytes is kept as this string, so a
    /// client calling one method over and over does not cost a string allocation a call.
    private let knownPath: String?

    /// Creates an empty head enforcing the given limits.
    init(maxHeaderCount: Int, maxHeaderListBytes: Int, knownPath: String? = nil) {
        self.maxHeaderCount = maxHeaderCount
        self.maxHeaderListBytes = maxHeaderListBytes
        self.knownPath = knownPath
    }

    /// `:path` as received, once accepted or not; `nil` before it arrives.
    var receivedPath: String? {
        path
    }

    /// Adds one decoded header field. nghttp2 has already checked the field is valid HTTP/2 (lower-case name,
    /// legal characters, pseudo-headers first and not repeated).
    mutating func add(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) {
        fieldCount += 1
        // RFC 9113 section 6.5.2 counts 32 bytes of overhead per field.
        headerListBytes += name.count + value.count + 32
        if fieldCount > maxHeaderCount || headerListBytes > maxHeaderListBytes {
            isOverLimit = true
        }
        if isOverLimit {
            return
        }
        switch name.count {
        case 5 where Self.equals(name, ":path"):
            if let knownPath, Self.utf8(of: knownPath, equals: value) {
                path = knownPath
            } else {
                path = String(decoding: value, as: UTF8.self)
            }
        case 7 where Self.equals(name, ":method"):
            isPost = Self.equals(value, "POST")
            isOptions = Self.equals(value, "OPTIONS")
        case 12 where Self.equals(name, "content-type"):
            wireProtocol = RPCWireProtocol(contentType: value)
        case 6 where Self.equals(name, "origin"):
            origin = String(decoding: value.prefix(256), as: UTF8.self)
        case 18 where Self.equals(name, "connect-timeout-ms"):
            // Connect: 1 to 10 ASCII digits of milliseconds.
            if value.count >= 1, value.count <= 10, value.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) {
                let milliseconds = value.reduce(Int64(0)) { $0 * 10 + Int64($1 - 0x30) }
                connectTimeout = .valid(.milliseconds(milliseconds))
            } else {
                connectTimeout = .malformed(String(decoding: value.prefix(32), as: UTF8.self))
            }
        case 24 where Self.equals(name, "connect-protocol-version"):
            connectVersion = String(decoding: value.prefix(32), as: UTF8.self)
        case 12 where Self.equals(name, "grpc-timeout"):
            if let amount = GRPCTimeout.parse(value) {
                timeout = .valid(amount)
            } else {
                timeout = .malformed(String(decoding: value.prefix(32), as: UTF8.self))
            }
        case 14 where Self.equals(name, "content-length"):
            // At most 18 digits, so the value fits an Int; anything else is left undeclared.
            if value.count >= 1, value.count <= 18, value.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) {
                declaredBodyLength = value.reduce(0) { $0 * 10 + Int($1 - 0x30) }
            }
        case 16 where Self.equals(name, "content-encoding"):
            // Connect's body compression; gRPC's is grpc-encoding.
            if !Self.equals(value, "identity") {
                unsupportedContentEncoding = String(decoding: value.prefix(32), as: UTF8.self)
            }
        case 13 where Self.equals(name, "grpc-encoding"):
            if !Self.equals(value, "identity") {
                unsupportedEncoding = String(decoding: value.prefix(32), as: UTF8.self)
            }
        default:
            break
        }
    }

    /// Convenience for tests.
    mutating func add(_ name: String, _ value: String) {
        var name = name
        var value = value
        name.withUTF8 { nameBytes in
            value.withUTF8 { valueBytes in
                add(name: UnsafeRawBufferPointer(nameBytes), value: UnsafeRawBufferPointer(valueBytes))
            }
        }
    }

    /// Decides, once the header block is complete, whether the call goes on. HTTP-level problems come first
    /// (size, method, content-type), then gRPC-level ones (encoding, timeout).
    func validate() -> Result<Accepted, GRPCStreamRejection> {
        if isOverLimit {
            return .failure(
                .headersTooLarge(
                    "request headers exceed the limit of \(maxHeaderCount) fields "
                        + "or \(maxHeaderListBytes) bytes"
                )
            )
        }
        if isOptions {
            return .failure(.preflight)
        }
        guard isPost else {
            return .failure(.methodNotAllowed)
        }
        guard let wireProtocol = wireProtocol else {
            return .failure(.unsupportedMediaType)
        }
        if case .connect = wireProtocol {
            return validateConnect(wireProtocol)
        }
        if let encoding = unsupportedEncoding {
            return .failure(.compressionUnsupported("grpc-encoding '\(encoding)' is not supported; use identity"))
        }
        switch timeout {
        case .absent:
            return .success(Accepted(path: path ?? "", timeout: nil, wireProtocol: wireProtocol))
        case .valid(let amount):
            return .success(Accepted(path: path ?? "", timeout: amount, wireProtocol: wireProtocol))
        case .malformed(let raw):
            return .failure(.status(GRPCStatus(.invalidArgument, "malformed grpc-timeout '\(raw)'")))
        }
    }

    /// Connect unary: `connect-protocol-version`, when sent, must be `1`; a compressed body (`content-encoding`
    /// other than `identity`) is refused; `connect-timeout-ms` replaces `grpc-timeout`.
    private func validateConnect(_ wireProtocol: RPCWireProtocol) -> Result<Accepted, GRPCStreamRejection> {
        if let version = connectVersion, version != "1" {
            return .failure(
                .status(GRPCStatus(.invalidArgument, "connect-protocol-version must be 1, not '\(version)'"))
            )
        }
        if let encoding = unsupportedContentEncoding {
            return .failure(.compressionUnsupported("content-encoding '\(encoding)' is not supported; use identity"))
        }
        switch connectTimeout {
        case .absent:
            return .success(Accepted(path: path ?? "", timeout: nil, wireProtocol: wireProtocol))
        case .valid(let amount):
            return .success(Accepted(path: path ?? "", timeout: amount, wireProtocol: wireProtocol))
        case .malformed(let raw):
            return .failure(.status(GRPCStatus(.invalidArgument, "malformed connect-timeout-ms '\(raw)'")))
        }
    }

    /// `application/grpc`, optionally followed by `+subtype` or `;parameters`; ASCII case-insensitive.
    static func isGRPCContentType(_ value: UnsafeRawBufferPointer) -> Bool {
        let expected: StaticString = "application/grpc"
        let expectedCount = expected.utf8CodeUnitCount
        guard value.count >= expectedCount else {
            return false
        }
        let expectedBytes = UnsafeBufferPointer(start: expected.utf8Start, count: expectedCount)
        // What every gRPC client sends, as is: one comparison instead of a loop lower-casing each byte.
        if value.count == expectedCount, memcmp(value.baseAddress!, expected.utf8Start, expectedCount) == 0 {
            return true
        }
        for index in 0..<expectedCount where Self.asciiLowercased(value[index]) != expectedBytes[index] {
            return false
        }
        if value.count == expectedCount {
            return true
        }
        let next = value[expectedCount]
        return next == UInt8(ascii: "+") || next == UInt8(ascii: ";")
    }

    private static func asciiLowercased(_ byte: UInt8) -> UInt8 {
        byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte | 0x20 : byte
    }

    /// Whether `string`'s UTF-8 is exactly `bytes` (a string that repaired invalid bytes never is).
    static func utf8(of string: String, equals bytes: UnsafeRawBufferPointer) -> Bool {
        let same = string.utf8.withContiguousStorageIfAvailable { stored in
            stored.count == bytes.count
                && (stored.isEmpty || memcmp(stored.baseAddress!, bytes.baseAddress!, stored.count) == 0)
        }
        return same ?? string.utf8.elementsEqual(bytes)
    }

    private static func equals(_ bytes: UnsafeRawBufferPointer, _ expected: StaticString) -> Bool {
        let count = expected.utf8CodeUnitCount
        guard bytes.count == count else {
            return false
        }
        // memcmp rather than a loop: called for most fields of every request head, on names and values of 2 to
        // 24 bytes.
        return count == 0 || memcmp(bytes.baseAddress!, expected.utf8Start, count) == 0
    }
}

/// The RPC protocols the port speaks, told apart by the request's `content-type` (SPEC sections 2 and 10).
enum RPCWireProtocol: Equatable {
    /// gRPC: `application/grpc`, `application/grpc+proto`, `application/grpc;...`.
    case grpc
    /// gRPC-Web: `application/grpc-web`, `application/grpc-web+proto`; `text` for `application/grpc-web-text`
    /// (the body base64-encoded both ways).
    case grpcWeb(text: Bool)
    /// Connect unary: `application/proto` or `application/json` (`json`); the body is the bare message.
    case connect(json: Bool)

    /// The protocol of a `content-type` value (ASCII case-insensitive, parameters after `;` ignored); `nil` for
    /// anything else. `application/grpc+json` and other non-proto gRPC codecs are refused: offerd speaks proto.
    init?(contentType value: UnsafeRawBufferPointer) {
        // gRPC first, with no allocation and no search for parameters: the request path of plain gRPC.
        if GRPCRequestHead.isGRPCContentType(value) {
            self = .grpc
            return
        }
        var end = value.firstIndex(of: UInt8(ascii: ";")) ?? value.count
        while end > 0, value[end - 1] == UInt8(ascii: " ") {
            end -= 1
        }
        let type = UnsafeRawBufferPointer(rebasing: value[0..<end])
        switch String(decoding: type, as: UTF8.self).lowercased() {
        case "application/grpc-web", "application/grpc-web+proto": self = .grpcWeb(text: false)
        case "application/grpc-web-text", "application/grpc-web-text+proto": self = .grpcWeb(text: true)
        case "application/proto": self = .connect(json: false)
        case "application/json": self = .connect(json: true)
        default: return nil
        }
    }

    /// Whether the request body is the bare message (Connect) rather than length-prefixed messages.
    var isConnect: Bool {
        if case .connect = self { return true }
        return false
    }
}
