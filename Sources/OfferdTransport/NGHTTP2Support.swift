internal import CNGHTTP2

/// A failed nghttp2 call: the one place where nghttp2's negative return codes become Swift errors.
struct NGHTTP2Error: Error, CustomStringConvertible {
    /// nghttp2's error code (a negative `nghttp2_error`).
    var code: Int32
    /// The nghttp2 function that failed.
    var operation: StaticString

    var description: String {
        let reason = nghttp2_strerror(code).map { String(cString: $0) } ?? "unknown error"
        return "\(operation) failed: \(reason) (\(code))"
    }

    /// The GOAWAY error code that fits this failure when the connection has to end because of it.
    var goAwayErrorCode: UInt32 {
        switch code {
        // Floods: the peer is generating excessive load (RFC 9113 section 7), whether nghttp2 or offerd saw it.
        case NGHTTP2_ERR_FLOODED.rawValue, NGHTTP2_ERR_TOO_MANY_CONTINUATIONS.rawValue:
            return NGHTTP2_ENHANCE_YOUR_CALM.rawValue
        case NGHTTP2_ERR_NOMEM.rawValue, NGHTTP2_ERR_CALLBACK_FAILURE.rawValue: return NGHTTP2_INTERNAL_ERROR.rawValue
        default: return NGHTTP2_PROTOCOL_ERROR.rawValue
        }
    }

    /// Returns `result` when it is not an error, throws otherwise.
    @inline(__always)
    static func check<Result: BinaryInteger>(_ result: Result, _ operation: StaticString) throws(NGHTTP2Error) -> Result
    {
        if result < 0 {
            throw NGHTTP2Error(code: Int32(truncatingIfNeeded: result), operation: operation)
        }
        return result
    }
}

/// HTTP/2 error codes (RFC 9113 section 7) the transport sends in RST_STREAM and GOAWAY frames.
enum HTTP2ErrorCode {
    /// NO_ERROR: a graceful GOAWAY, or a reset that only asks the client to stop uploading.
    static let noError: UInt32 = NGHTTP2_NO_ERROR.rawValue
    /// PROTOCOL_ERROR: the peer broke the protocol (a bad connection preface among others).
    static let protocolError: UInt32 = NGHTTP2_PROTOCOL_ERROR.rawValue
    /// INTERNAL_ERROR: offerd could not do what the protocol asked (an answer could not be submitted).
    static let internalError: UInt32 = NGHTTP2_INTERNAL_ERROR.rawValue
    /// ENHANCE_YOUR_CALM: the peer generates excessive load (floods).
    static let enhanceYourCalm: UInt32 = NGHTTP2_ENHANCE_YOUR_CALM.rawValue
}

/// Header fields whose bytes live as long as the process, so nghttp2 may reference them without copying
/// (`NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE`) on the hot path.
///
/// The memory is allocated once and deliberately never freed: the blocks are `static let`s.
final class StaticHeaderBlock: @unchecked Sendable {
    // @unchecked Sendable: the fields and the bytes they point to are written in `init` only, then read-only.
    let fields: UnsafeMutablePointer<nghttp2_nv>
    let count: Int

    init(_ pairs: [(name: String, value: String)]) {
        count = pairs.count
        fields = .allocate(capacity: pairs.count)
        for (index, pair) in pairs.enumerated() {
            let name = Self.permanentCopy(pair.name)
            let value = Self.permanentCopy(pair.value)
            let flags = UInt8(NGHTTP2_NV_FLAG_NO_COPY_NAME.rawValue | NGHTTP2_NV_FLAG_NO_COPY_VALUE.rawValue)
            (fields + index).initialize(
                to: nghttp2_nv(
                    name: name.base,
                    value: value.base,
                    namelen: name.count,
                    valuelen: value.count,
                    flags: flags
                )
            )
        }
    }

    private static func permanentCopy(_ text: String) -> (base: UnsafeMutablePointer<UInt8>, count: Int) {
        let bytes = Array(text.utf8)
        // Allocate at least one byte so the pointer is valid even for an empty value.
        let base = UnsafeMutablePointer<UInt8>.allocate(capacity: max(bytes.count, 1))
        base.initialize(from: bytes, count: bytes.count)
        return (base, bytes.count)
    }

    /// The headers of every successful response (``GRPCResponseRendering/responseHeaders``).
    static let successHeaders = StaticHeaderBlock(GRPCResponseRendering.responseHeaders)
    /// The trailers of every successful response (``GRPCResponseRendering/successTrailers``).
    static let successTrailers = StaticHeaderBlock(GRPCResponseRendering.successTrailers)
}

extension GRPCHeaderBlock {
    /// Calls `body` with an `nghttp2_nv` array valid only for the duration of the call; nghttp2 copies the
    /// fields it is given this way.
    func withNGHTTP2Fields<Result>(_ body: (UnsafePointer<nghttp2_nv>, Int) -> Result) -> Result {
        // nghttp2_nv wants mutable pointers although nghttp2 only reads them; a local copy provides them.
        var storage = storage
        storage.append(0) // never empty, so baseAddress is never nil
        return storage.withUnsafeMutableBufferPointer { bytes in
            guard let base = bytes.baseAddress else {
                preconditionFailure("a non-empty array has a base address")
            }
            let fields = ranges.map { range in
                nghttp2_nv(
                    name: base + range.nameStart,
                    value: base + range.valueStart,
                    namelen: range.nameCount,
                    valuelen: range.valueCount,
                    flags: UInt8(NGHTTP2_NV_FLAG_NONE.rawValue)
                )
            }
            return fields.withUnsafeBufferPointer { fieldBuffer in
                guard let fieldBase = fieldBuffer.baseAddress else {
                    preconditionFailure("a header list is never empty")
                }
                return body(fieldBase, fieldBuffer.count)
            }
        }
    }
}
