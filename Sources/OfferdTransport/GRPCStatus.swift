/// A gRPC status: the outcome of a call as carried by the `grpc-status` and `grpc-message` trailers.
///
/// A service answers a failed call with `GRPCUnaryReply.failure(status)`; the transport sends it in the
/// Trailers-Only form. `message` is plain text: the transport percent-encodes it on the wire.
public struct GRPCStatus: Error, Sendable, Equatable, CustomStringConvertible {
    /// The canonical gRPC status codes; raw values are the numbers sent in `grpc-status`.
    public enum Code: Int, Sendable {
        case ok = 0
        case cancelled = 1
        case unknown = 2
        case invalidArgument = 3
        case deadlineExceeded = 4
        case notFound = 5
        case alreadyExists = 6
        case permissionDenied = 7
        case resourceExhausted = 8
        case failedPrecondition = 9
        case aborted = 10
        case outOfRange = 11
        case unimplemented = 12
        case internalError = 13
        case unavailable = 14
        case dataLoss = 15
        case unauthenticated = 16
    }

    /// The status code.
    public var code: Code
    /// A human-readable explanation, e.g. `scopes[2].item_count 31 exceeds 30`; empty when there is nothing to add.
    public var message: String

    /// Creates a status from a code and a plain-text message.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String {
        message.isEmpty
            ? "\(code) (\(code.rawValue))" : "\(code) (\(code.rawValue)): \(message)"
    }
}

extension GRPCStatus {
    /// Percent-encodes a status message for the `grpc-message` header, as the gRPC over HTTP/2 protocol asks:
    /// every UTF-8 byte outside `%x20-%x7E`, and `%` itself, becomes `%XX` with upper-case hex digits.
    public static func percentEncoded(_ message: String) -> String {
        let utf8 = message.utf8
        if utf8.allSatisfy({ Self.isUnreservedMessageByte($0) }) {
            return message
        }
        var encoded: [UInt8] = []
        encoded.reserveCapacity(utf8.count * 3)
        for byte in utf8 {
            if Self.isUnreservedMessageByte(byte) {
                encoded.append(byte)
            } else {
                encoded.append(UInt8(ascii: "%"))
                encoded.append(Self.upperHexDigits[Int(byte >> 4)])
                encoded.append(Self.upperHexDigits[Int(byte & 0x0F)])
            }
        }
        return String(decoding: encoded, as: UTF8.self)
    }

    /// Decodes a percent-encoded `grpc-message` value. Like the reference implementations it is lenient:
    /// a `%` not followed by two hex digits is kept as is, and invalid UTF-8 is replaced by U+FFFD.
    public static func percentDecoded(_ encoded: String) -> String {
        let bytes = Array(encoded.utf8)
        guard bytes.contains(UInt8(ascii: "%")) else {
            return encoded
        }
        var decoded: [UInt8] = []
        decoded.reserveCapacity(bytes.count)
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "%"), index + 2 < bytes.count,
                let high = Self.hexValue(bytes[index + 1]), let low = Self.hexValue(bytes[index + 2])
            {
                decoded.append(high << 4 | low)
                index += 3
            } else {
                decoded.append(byte)
                index += 1
            }
        }
        return String(decoding: decoded, as: UTF8.self)
    }

    private static let upperHexDigits: [UInt8] = Array("0123456789ABCDEF".utf8)

    private static func isUnreservedMessageByte(_ byte: UInt8) -> Bool {
        byte >= 0x20 && byte <= 0x7E && byte != UInt8(ascii: "%")
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        default: return nil
        }
    }
}
