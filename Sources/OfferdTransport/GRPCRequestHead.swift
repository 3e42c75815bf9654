import NIOCore

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
    private var path: String?
    private var isGRPCContentType = false
    private var unsupportedEncoding: String?
    private var timeout: TimeoutField = .absent

    /// Creates an empty head enforcing the given limits.
    init(maxHeaderCount: Int, maxHeaderListBytes: Int) {
        self.maxHeaderCount = maxHeaderCount
        self.maxHeaderListBytes = maxHeaderListBytes
    }

    /// Adds one decoded header field. nghttp2 has already checked the field is valid HTTP/2 (lower-case name,
    /// legal characters, pseudo-headers first and not repeated).
    mutating func add(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) {
        self.fieldCount += 1
        // RFC 9113 section 6.5.2 counts 32 bytes of overhead per field.
        self.headerListBytes += name.count + value.count + 32
        if self.fieldCount > self.maxHeaderCount || self.headerListBytes > self.maxHeaderListBytes {
            self.isOverLimit = true
        }
        if self.isOverLimit {
            return
        }
        switch name.count {
        case 5 where Self.equals(name, ":path"):
            self.path = String(decoding: value, as: UTF8.self)
        case 7 where Self.equals(name, ":method"):
            self.isPost = Self.equals(value, "POST")
        case 12 where Self.equals(name, "content-type"):
            self.isGRPCContentType = Self.isGRPCContentType(value)
        case 12 where Self.equals(name, "grpc-timeout"):
            if let amount = GRPCTimeout.parse(value) {
                self.timeout = .valid(amount)
            } else {
                self.timeout = .malformed(String(decoding: value.prefix(32), as: UTF8.self))
            }
        case 13 where Self.equals(name, "grpc-encoding"):
            if !Self.equals(value, "identity") {
                self.unsupportedEncoding = String(decoding: value.prefix(32), as: UTF8.self)
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
                self.add(name: UnsafeRawBufferPointer(nameBytes), value: UnsafeRawBufferPointer(valueBytes))
            }
        }
    }

    /// Decides, once the header block is complete, whether the call goes on. HTTP-level problems come first
    /// (size, method, content-type), then gRPC-level ones (encoding, timeout).
    func validate() -> Result<Accepted, GRPCStreamRejection> {
        if self.isOverLimit {
            return .failure(
                .headersTooLarge(
                    "request headers exceed the limit of \(self.maxHeaderCount) fields "
                        + "or \(self.maxHeaderListBytes) bytes"
                )
            )
        }
        guard self.isPost else {
            return .failure(.methodNotAllowed)
        }
        guard self.isGRPCContentType else {
            return .failure(.unsupportedMediaType)
        }
        if let encoding = self.unsupportedEncoding {
            return .failure(.compressionUnsupported("grpc-encoding '\(encoding)' is not supported; use identity"))
        }
        switch self.timeout {
        case .absent:
            return .success(Accepted(path: self.path ?? "", timeout: nil))
        case .valid(let amount):
            return .success(Accepted(path: self.path ?? "", timeout: amount))
        case .malformed(let raw):
            return .failure(.status(GRPCStatus(.invalidArgument, "malformed grpc-timeout '\(raw)'")))
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

    private static func equals(_ bytes: UnsafeRawBufferPointer, _ expected: StaticString) -> Bool {
        let count = expected.utf8CodeUnitCount
        guard bytes.count == count else {
            return false
        }
        let expectedBytes = UnsafeBufferPointer(start: expected.utf8Start, count: count)
        for index in 0..<count where bytes[index] != expectedBytes[index] {
            return false
        }
        return true
    }
}
