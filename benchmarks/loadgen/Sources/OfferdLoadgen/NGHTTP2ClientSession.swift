private import CLoadgenNGHTTP2
import LoadgenCore
import NIOCore

/// Hears how calls end. Called from inside ``NGHTTP2ClientSession/receive(_:at:)`` and
/// ``NGHTTP2ClientSession/failOpenCalls(_:at:)``; it may submit new calls but must not feed or drain the session.
protocol NGHTTP2ClientSessionDelegate: AnyObject {
    func callFinished(_ call: UInt64, _ outcome: CallOutcome, at nanoseconds: UInt64)
}

/// The single Swift owner of a client-side `nghttp2_session`: submits unary gRPC calls (one request HEADERS and
/// one DATA frame each), feeds it the server's bytes, drains what it wants to send, and reports each call's end.
/// It keeps no per-call allocation of its own beyond its stream table.
///
/// nghttp2 calls C function pointers that cannot capture context, so `self` travels as the session's `user_data`,
/// unretained: `self` owns the session and the session never outlives it. Callbacks run only inside
/// `nghttp2_session_mem_recv` and `nghttp2_session_mem_send`.
final class NGHTTP2ClientSession {
    private let session: OpaquePointer
    private let headers: RequestHeaderBlock
    private let bodies: [GRPCRequestBody]
    /// Open streams: the call each carries and what its answer said so far.
    private var streams: [Int32: StreamState] = [:]
    /// The arrival time of the bytes being parsed, for the calls they finish.
    private var arrivalNanoseconds: UInt64 = 0
    private unowned(unsafe) let delegate: any NGHTTP2ClientSessionDelegate
    private var isInsideNGHTTP2 = false

    private struct StreamState {
        var call: UInt64
        var body: Int
        var bodyOffset = 0
        var httpStatus: Int?
        var grpcStatus: Int?
    }

    /// Creates the session and queues the client preface: the connection magic is sent by nghttp2 itself, the
    /// SETTINGS here (sent by the first ``drainOutput(into:)``).
    init(target: CallTarget, bodies: [GRPCRequestBody], delegate: any NGHTTP2ClientSessionDelegate) throws {
        precondition(!bodies.isEmpty, "no request body")
        headers = RequestHeaderBlock(target: target)
        self.bodies = bodies
        self.delegate = delegate
        session = try Self.makeSession()
        nghttp2_session_set_user_data(session, Unmanaged.passUnretained(self).toOpaque())
        try submitSettings()
    }

    deinit {
        nghttp2_session_set_user_data(session, nil)
        nghttp2_session_del(session)
    }

    /// Calls submitted and not finished yet.
    var openCalls: Int { streams.count }

    /// Queues call `call` with body number `body`; it is written by the next ``drainOutput(into:)``.
    /// Returns false when the session takes no new stream (GOAWAY received, stream ids exhausted): the call is
    /// not sent and the caller reports it.
    func submitCall(_ call: UInt64, body: Int) -> Bool {
        precondition(!isInsideNGHTTP2, "nghttp2 session re-entered")
        var provider = nghttp2_data_provider(
            source: nghttp2_data_source(ptr: nil),
            read_callback: { _, streamID, buffer, length, flags, _, userData in
                guard let buffer, let flags, let userData else { return Int(NGHTTP2_ERR_CALLBACK_FAILURE.rawValue) }
                return Unmanaged<NGHTTP2ClientSession>.fromOpaque(userData)._withUnsafeGuaranteedRef {
                    $0.readBody(streamID, into: UnsafeMutableRawBufferPointer(start: buffer, count: length), flags)
                }
            }
        )
        let streamID = headers.withFields { fields, count in
            nghttp2_submit_request(session, nil, fields, count, &provider, nil)
        }
        guard streamID > 0 else {
            return false
        }
        streams[streamID] = StreamState(call: call, body: body)
        return true
    }

    /// Feeds the server's bytes, which arrived at `nanoseconds`; finished calls are reported before this returns.
    func receive(_ bytes: ByteBuffer, at nanoseconds: UInt64) throws(NGHTTP2ClientError) {
        precondition(!isInsideNGHTTP2, "nghttp2 session re-entered")
        arrivalNanoseconds = nanoseconds
        isInsideNGHTTP2 = true
        let result = bytes.withUnsafeReadableBytes { raw in
            nghttp2_session_mem_recv(session, raw.baseAddress?.assumingMemoryBound(to: UInt8.self), raw.count)
        }
        isInsideNGHTTP2 = false
        if result < 0 {
            throw NGHTTP2ClientError(code: Int32(result), operation: "nghttp2_session_mem_recv")
        }
    }

    /// Appends everything nghttp2 wants to send to `output`.
    func drainOutput(into output: inout ByteBuffer) throws(NGHTTP2ClientError) {
        precondition(!isInsideNGHTTP2, "nghttp2 session re-entered")
        while true {
            var chunk: UnsafePointer<UInt8>?
            isInsideNGHTTP2 = true
            let count = nghttp2_session_mem_send(session, &chunk)
            isInsideNGHTTP2 = false
            if count < 0 {
                throw NGHTTP2ClientError(code: Int32(count), operation: "nghttp2_session_mem_send")
            }
            guard count > 0, let chunk else {
                return
            }
            // `chunk` is valid only until the next session call: copy it now.
            output.writeBytes(UnsafeRawBufferPointer(start: chunk, count: count))
        }
    }

    /// Ends every open call with `outcome` (the connection is gone, or the round gave up waiting).
    func failOpenCalls(_ outcome: CallOutcome, at nanoseconds: UInt64) {
        let open = streams
        streams.removeAll()
        for state in open.values.sorted(by: { $0.call < $1.call }) {
            delegate.callFinished(state.call, outcome, at: nanoseconds)
        }
    }

    // MARK: - Callbacks

    private func readBody(
        _ streamID: Int32,
        into destination: UnsafeMutableRawBufferPointer,
        _ flags: UnsafeMutablePointer<UInt32>
    ) -> Int {
        guard var state = streams[streamID] else {
            return Int(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue)
        }
        let body = bodies[state.body].bytes
        let count = min(destination.count, body.count - state.bodyOffset)
        body.withUnsafeBytes { source in
            destination.baseAddress!.copyMemory(from: source.baseAddress! + state.bodyOffset, byteCount: count)
        }
        state.bodyOffset += count
        if state.bodyOffset == body.count {
            flags.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue
        }
        streams[streamID] = state
        return count
    }

    private func headerReceived(_ streamID: Int32, name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) {
        if name.elementsEqual(":status".utf8) {
            streams[streamID]?.httpStatus = parseStatusCode(value)
        } else if name.elementsEqual("grpc-status".utf8) {
            streams[streamID]?.grpcStatus = parseStatusCode(value)
        }
    }

    private func streamClosed(_ streamID: Int32, errorCode: UInt32) {
        guard let state = streams.removeValue(forKey: streamID) else {
            return
        }
        let outcome = CallOutcome.of(resetCode: errorCode, httpStatus: state.httpStatus, grpcStatus: state.grpcStatus)
        delegate.callFinished(state.call, outcome, at: arrivalNanoseconds)
    }

    // MARK: - Set-up

    /// No server push, windows wide enough that answers never wait for a WINDOW_UPDATE.
    private func submitSettings() throws {
        let settings = [
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_ENABLE_PUSH.rawValue), value: 0),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE.rawValue), value: 1 << 20),
        ]
        let result = settings.withUnsafeBufferPointer {
            nghttp2_submit_settings(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), $0.baseAddress, $0.count)
        }
        try NGHTTP2ClientError.check(result, "nghttp2_submit_settings")
        try NGHTTP2ClientError.check(
            nghttp2_session_set_local_window_size(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), 0, 1 << 24),
            "nghttp2_session_set_local_window_size"
        )
    }

    private static func makeSession() throws -> OpaquePointer {
        var callbacks: OpaquePointer?
        try NGHTTP2ClientError.check(nghttp2_session_callbacks_new(&callbacks), "nghttp2_session_callbacks_new")
        defer { nghttp2_session_callbacks_del(callbacks) }
        nghttp2_session_callbacks_set_on_header_callback(callbacks) {
            _,
            frame,
            name,
            nameLength,
            value,
            valueLength,
            _,
            userData in
            guard let frame, let userData, frame.pointee.hd.type == UInt8(NGHTTP2_HEADERS.rawValue) else {
                return 0
            }
            Unmanaged<NGHTTP2ClientSession>.fromOpaque(userData)._withUnsafeGuaranteedRef {
                $0.headerReceived(
                    frame.pointee.hd.stream_id,
                    name: UnsafeRawBufferPointer(start: name, count: nameLength),
                    value: UnsafeRawBufferPointer(start: value, count: valueLength)
                )
            }
            return 0
        }
        nghttp2_session_callbacks_set_on_stream_close_callback(callbacks) { _, streamID, errorCode, userData in
            // Without an owner the session is being freed after its owner detached: nothing to report.
            guard let userData else { return 0 }
            Unmanaged<NGHTTP2ClientSession>.fromOpaque(userData)._withUnsafeGuaranteedRef {
                $0.streamClosed(streamID, errorCode: errorCode)
            }
            return 0
        }

        var options: OpaquePointer?
        try NGHTTP2ClientError.check(nghttp2_option_new(&options), "nghttp2_option_new")
        defer { nghttp2_option_del(options) }
        // No RFC 7540 priority tree: nghttp2 then keeps no closed streams around.
        nghttp2_option_set_no_closed_streams(options, 1)

        var session: OpaquePointer?
        try NGHTTP2ClientError.check(
            nghttp2_session_client_new2(&session, callbacks, nil, options),
            "nghttp2_session_client_new2"
        )
        guard let session else {
            throw NGHTTP2ClientError(code: NGHTTP2_ERR_NOMEM.rawValue, operation: "nghttp2_session_client_new2")
        }
        return session
    }
}

/// The request header block every call sends, built once per connection: nghttp2 reads the names and values in
/// place (NO_COPY), so they live as long as the block.
private final class RequestHeaderBlock {
    private let storage: UnsafeMutableRawBufferPointer
    private let fields: UnsafeMutableBufferPointer<nghttp2_nv>

    init(target: CallTarget) {
        let pairs = [
            (":method", "POST"), (":scheme", "http"), (":authority", target.authority), (":path", target.path),
            ("content-type", "application/grpc"), ("te", "trailers"), ("user-agent", "offerd-loadgen"),
        ]
        let total = pairs.reduce(0) { $0 + $1.0.utf8.count + $1.1.utf8.count }
        storage = .allocate(byteCount: total, alignment: 1)
        fields = .allocate(capacity: pairs.count)
        var offset = 0
        func place(_ text: String) -> (UnsafeMutablePointer<UInt8>, Int) {
            let bytes = Array(text.utf8)
            let start = storage.baseAddress!.advanced(by: offset).assumingMemoryBound(to: UInt8.self)
            start.update(from: bytes, count: bytes.count)
            offset += bytes.count
            return (start, bytes.count)
        }
        for (index, (name, value)) in pairs.enumerated() {
            let (namePointer, nameLength) = place(name)
            let (valuePointer, valueLength) = place(value)
            fields[index] = nghttp2_nv(
                name: namePointer,
                value: valuePointer,
                namelen: nameLength,
                valuelen: valueLength,
                flags: UInt8(NGHTTP2_NV_FLAG_NO_COPY_NAME.rawValue | NGHTTP2_NV_FLAG_NO_COPY_VALUE.rawValue)
            )
        }
    }

    deinit {
        storage.deallocate()
        fields.deallocate()
    }

    func withFields<Result>(_ body: (UnsafePointer<nghttp2_nv>, Int) -> Result) -> Result {
        body(UnsafePointer(fields.baseAddress!), fields.count)
    }
}

/// An nghttp2 library error, with the call that returned it.
struct NGHTTP2ClientError: Error, CustomStringConvertible {
    let code: Int32
    let operation: String

    var description: String {
        "\(operation) failed: \(String(cString: nghttp2_strerror(Int32(code)))) (\(code))"
    }

    /// Throws for a negative result: every nghttp2 call's errors go through here.
    static func check(_ result: Int32, _ operation: String) throws(NGHTTP2ClientError) {
        if result < 0 {
            throw NGHTTP2ClientError(code: result, operation: operation)
        }
    }
}
