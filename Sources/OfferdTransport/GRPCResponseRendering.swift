import NIOCore

/// How the transport's answers look on the wire, apart from any framing layer: the header lists of a
/// successful response, its trailers, the Trailers-Only and HTTP-level answers of ``GRPCStreamRejection``, and
/// the length-prefixed response message (``GRPCResponseBody``).
///
/// Nothing here knows nghttp2: the HTTP/2 session turns these lists into `nghttp2_nv` arrays
/// (`StaticHeaderBlock`, `GRPCHeaderBlock.withNGHTTP2Fields`), and another protocol (gRPC-Web, Connect over
/// HTTP/1.1) can write the same lists in its own framing.
enum GRPCResponseRendering {
    /// `:status 200` and `content-type: application/grpc`: the headers of every successful response.
    static let responseHeaders: [(name: String, value: String)] = [
        (":status", "200"), ("content-type", "application/grpc"),
    ]

    /// `grpc-status: 0`: the trailers of every successful response.
    static let successTrailers: [(name: String, value: String)] = [("grpc-status", "0")]

    /// The single header block (ending the stream) that answers a request the transport refuses itself, or a
    /// call the service failed (`.status`). The table in `GRPCServer`'s documentation lists every case.
    static func answer(_ rejection: GRPCStreamRejection) -> GRPCHeaderBlock {
        var headers = GRPCHeaderBlock()
        switch rejection {
        case .preflight:
            // gRPC clients never send OPTIONS; CORS is answered by RPCResponseRendering for the web protocols.
            headers.append(":status", "405")
            headers.append("allow", "POST")
            headers.append("content-length", "0")
        case .methodNotAllowed:
            headers.append(":status", "405")
            headers.append("allow", "POST")
            headers.append("content-length", "0")
        case .unsupportedMediaType:
            headers.append(":status", "415")
            headers.append("content-length", "0")
        case .headersTooLarge(let message):
            headers.append(":status", "431")
            headers.append("content-type", "application/grpc")
            headers.append("grpc-status", String(GRPCStatus.Code.resourceExhausted.rawValue))
            headers.append("grpc-message", GRPCStatus.percentEncoded(message))
        case .status(let status):
            Self.appendTrailersOnly(status, to: &headers)
        case .compressionUnsupported(let message):
            Self.appendTrailersOnly(GRPCStatus(.unimplemented, message), to: &headers)
            headers.append("grpc-accept-encoding", "identity")
        }
        return headers
    }

    /// The trailers that end a message stream after its messages: `grpc-status` and, when there is one, the
    /// percent-encoded `grpc-message`.
    static func trailers(_ status: GRPCStatus) -> GRPCHeaderBlock {
        var headers = GRPCHeaderBlock()
        headers.append("grpc-status", String(status.code.rawValue))
        if !status.message.isEmpty {
            headers.append("grpc-message", GRPCStatus.percentEncoded(status.message))
        }
        return headers
    }

    /// The Trailers-Only form of a status: `:status 200`, `content-type`, `grpc-status` and, when there is one,
    /// the percent-encoded `grpc-message`.
    private static func appendTrailersOnly(_ status: GRPCStatus, to headers: inout GRPCHeaderBlock) {
        headers.append(":status", "200")
        headers.append("content-type", "application/grpc")
        headers.append("grpc-status", String(status.code.rawValue))
        if !status.message.isEmpty {
            headers.append("grpc-message", GRPCStatus.percentEncoded(status.message))
        }
    }
}

/// Header fields built per answer (the error answers of ``GRPCResponseRendering/answer(_:)``): all names and
/// values in one byte array, so an answer costs two small allocations whatever its field count.
struct GRPCHeaderBlock {
    private(set) var storage: [UInt8] = []
    private(set) var ranges: [(nameStart: Int, nameCount: Int, valueStart: Int, valueCount: Int)] = []

    init() {
        storage.reserveCapacity(160)
        ranges.reserveCapacity(6)
    }

    /// Adds one field; names are written as given (HTTP/2 wants them lower-case).
    mutating func append(_ name: String, _ value: String) {
        let nameStart = storage.count
        storage.append(contentsOf: name.utf8)
        let valueStart = storage.count
        storage.append(contentsOf: value.utf8)
        ranges.append((nameStart, valueStart - nameStart, valueStart, storage.count - valueStart))
    }

    /// The fields as strings, in order: for tests and for framings that write text.
    var fields: [(name: String, value: String)] {
        ranges.map { range in
            (
                String(decoding: storage[range.nameStart..<(range.nameStart + range.nameCount)], as: UTF8.self),
                String(
                    decoding: storage[range.valueStart..<(range.valueStart + range.valueCount)],
                    as: UTF8.self
                )
            )
        }
    }

    /// The value of the last field called `name`, if any.
    func value(_ name: String) -> String? {
        fields.last { $0.name == name }?.value
    }
}

/// The DATA of a successful unary response: the 5-byte gRPC prefix (flag 0, big-endian length), then the
/// payload, written into whatever room the framing layer offers, in as many pieces as it takes.
///
/// The payload is read in place (only its reader index moves), so rendering copies each byte once, into the
/// framing layer's buffer.
struct GRPCResponseBody {
    private var payload: ByteBuffer
    private let prefix: (UInt8, UInt8, UInt8, UInt8, UInt8)
    private var prefixBytesWritten = 0
    /// False for a body written as is (``init(bare:)``): it ends the stream itself, with no trailers.
    let endsWithTrailers: Bool

    /// A body written as is, without a prefix: a whole Connect or gRPC-Web response body.
    init(bare body: ByteBuffer) {
        payload = body
        prefix = (0, 0, 0, 0, 0)
        prefixBytesWritten = 5
        endsWithTrailers = false
    }

    /// Creates the body of `payload`, which must fit the prefix's 32-bit length (the stream state machine
    /// answers `INTERNAL` for a larger one before it gets here).
    init(payload: ByteBuffer) {
        precondition(payload.readableBytes <= Int(UInt32.max), "response message too large for its prefix")
        let length = UInt32(truncatingIfNeeded: payload.readableBytes)
        self.payload = payload
        prefix = (
            0, UInt8(truncatingIfNeeded: length >> 24), UInt8(truncatingIfNeeded: length >> 16),
            UInt8(truncatingIfNeeded: length >> 8), UInt8(truncatingIfNeeded: length)
        )
        endsWithTrailers = true
    }

    /// True once the prefix and every payload byte have been written.
    var isComplete: Bool {
        prefixBytesWritten == 5 && payload.readableBytes == 0
    }

    /// Bytes still to write.
    var remainingBytes: Int {
        5 - prefixBytesWritten + payload.readableBytes
    }

    /// Writes as much of the rest of the body as fits in `destination`; returns the number of bytes written.
    mutating func write(into destination: UnsafeMutableRawBufferPointer) -> Int {
        var written = 0
        if prefixBytesWritten < 5 {
            let start = prefixBytesWritten
            let take = min(5 - start, destination.count)
            withUnsafeBytes(of: prefix) { prefixBytes in
                UnsafeMutableRawBufferPointer(rebasing: destination[0..<take]).copyMemory(
                    from: UnsafeRawBufferPointer(rebasing: prefixBytes[start..<(start + take)])
                )
            }
            prefixBytesWritten += take
            written = take
        }
        let room = destination.count - written
        if room > 0 && payload.readableBytes > 0 {
            written += payload.readWithUnsafeReadableBytes { source in
                let take = min(room, source.count)
                UnsafeMutableRawBufferPointer(rebasing: destination[written..<(written + take)]).copyMemory(
                    from: UnsafeRawBufferPointer(rebasing: source[0..<take])
                )
                return take
            }
        }
        return written
    }
}
