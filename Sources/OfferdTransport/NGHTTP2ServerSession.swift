internal import CNGHTTP2
import NIOCore

/// What an ``NGHTTP2ServerSession`` reports, in the order nghttp2 parses it. Every call happens inside
/// ``NGHTTP2ServerSession/receive(_:)`` or ``NGHTTP2ServerSession/drainOutput(allocator:)``; the delegate may
/// submit frames (responses, resets) from them but must not call either of those two again.
///
/// A class for its owner to subclass, overriding every method, rather than a protocol: the session calls it
/// borrowed through `Unmanaged`, while a protocol existential loaded from an unowned reference is retained and
/// released around every call (a dozen callbacks a call, seven of them header fields).
class NGHTTP2ServerSessionDelegate {
    /// A request HEADERS frame began a new stream.
    func sessionStreamOpened(_ streamID: Int32) {}
    /// One field of a stream's request header block (trailer fields are not reported).
    func sessionReceivedHeaderField(_ streamID: Int32, name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) {}
    /// A header block ended: the request head, or the client's trailers.
    func sessionReceivedHeaders(_ streamID: Int32, endStream: Bool) {}
    /// A chunk of a stream's request body (any size, padding removed), from a DATA frame that carries
    /// END_STREAM when `inFinalFrame` (the end itself is ``sessionReceivedEndOfStream(_:)``, once the frame is
    /// whole). `bytes` point into the buffer given to ``NGHTTP2ServerSession/receive(_:)`` when the frame
    /// arrived in it, else into nghttp2's own memory.
    func sessionReceivedData(_ streamID: Int32, _ bytes: UnsafeRawBufferPointer, inFinalFrame: Bool) {}
    /// A DATA frame ended the client's side of the stream.
    func sessionReceivedEndOfStream(_ streamID: Int32) {}
    /// A HEADERS frame ending our side of the stream was written.
    func sessionSentEndOfStream(_ streamID: Int32) {}
    /// The stream closed (answered, reset by either side, or refused); nghttp2 forgets it after this.
    func sessionStreamClosed(_ streamID: Int32) {}
    /// Fills `destination` with the next bytes of the response body submitted by
    /// ``NGHTTP2ServerSession/submitResponse(_:headers:)``.
    func sessionReadResponseBody(_ streamID: Int32, into destination: UnsafeMutableRawBufferPointer)
        -> NGHTTP2BodyChunk
    {
        .unavailable
    }
}

/// The answer of ``NGHTTP2ServerSessionDelegate/sessionReadResponseBody(_:into:)``.
enum NGHTTP2BodyChunk {
    /// This many bytes were written; more follow.
    case bytes(Int)
    /// This many bytes were written and the body is complete: send these trailers (ending the stream).
    case last(Int, trailers: StaticHeaderBlock)
    /// The stream has no body to read: nghttp2 resets it with INTERNAL_ERROR.
    case unavailable
    /// This many bytes were written and the body, which has no trailers, ends the stream.
    case end(Int)
    /// Nothing to send yet (a message stream waiting for its next reply): nghttp2 asks again after
    /// ``NGHTTP2ServerSession/resumeData(_:)``.
    case deferred
    /// This many bytes were written and the body is complete: send these per-call trailers (ending the
    /// stream); nghttp2 copies them.
    case lastWithTrailers(Int, trailers: GRPCHeaderBlock)
}

/// The single Swift owner of a server-side `nghttp2_session`: creates and configures it (settings, flood
/// limits), feeds it bytes, drains what it wants to send, submits frames, and turns its C callbacks into
/// ``NGHTTP2ServerSessionDelegate`` events. It knows HTTP/2 and nothing of gRPC.
///
/// ## Callbacks
/// nghttp2 calls C function pointers that cannot capture context, so `self` travels as the session's
/// `user_data`, unretained: `self` owns the session and the session never outlives `self`. Callbacks run only
/// inside `nghttp2_session_mem_recv` and `nghttp2_session_mem_send`; a precondition forbids re-entering
/// either. A callback that finds the connection beyond repair stashes the error and fails; the error is
/// thrown after the C call returns, so nghttp2's own report (a generic callback failure) never hides it.
///
/// ## Floods nghttp2 does not catch
/// Empty DATA frames (no payload, no END_STREAM) cost a callback round each for nothing (CVE-2019-9518, "empty
/// frames flood"); more than ``maxConsecutiveEmptyDataFrames`` in a row end the connection with
/// ENHANCE_YOUR_CALM.
final class NGHTTP2ServerSession {
    private let session: OpaquePointer
    /// nghttp2's memory; released after the session (stored properties go after `deinit`'s body).
    private let allocator: NGHTTP2Allocator
    /// Receives the events. Unretained: the delegate owns this session, and every call borrows it.
    private var delegate: Unmanaged<NGHTTP2ServerSessionDelegate>?
    private var isInsideNGHTTP2 = false
    /// An error found in a callback, thrown once the C call returned.
    private var pendingError: NGHTTP2Error?
    private var consecutiveEmptyDataFrames = 0
    private(set) var goAwaySubmitted = false

    /// A client has no reason to send empty DATA frames back to back; a few are tolerated (some clients flush
    /// an empty frame before ending a stream; frames ending a stream are never counted), thousands are a flood.
    static let maxConsecutiveEmptyDataFrames = 100

    /// Creates the session, configures it and queues the server's SETTINGS (sent by the first
    /// ``drainOutput(allocator:)``). Events go nowhere until ``setDelegate(_:)``.
    init(configuration: GRPCServerConfiguration) throws(NGHTTP2Error) {
        allocator = NGHTTP2Allocator()
        session = try Self.makeSession(allocator: allocator)
        nghttp2_session_set_user_data(session, Unmanaged.passUnretained(self).toOpaque())
        try submitInitialSettings(configuration)
    }

    deinit {
        // Detach first so nothing nghttp2 does while freeing can reach a half-deinitialised `self`.
        nghttp2_session_set_user_data(session, nil)
        nghttp2_session_del(session)
    }

    /// Sets the receiver of the events; it must own this session (it is not retained).
    func setDelegate(_ delegate: NGHTTP2ServerSessionDelegate) {
        self.delegate = .passUnretained(delegate)
    }

    // MARK: - Driving

    /// Feeds received bytes to nghttp2; the delegate hears about everything they carry before this returns.
    /// Throws when the connection is beyond repair (bad preface, protocol error, flood): call
    /// ``terminate(errorCode:)`` with the error's `goAwayErrorCode` then.
    func receive(_ bytes: ByteBuffer) throws(NGHTTP2Error) {
        precondition(!isInsideNGHTTP2, "nghttp2 session re-entered")
        guard bytes.readableBytes > 0 else {
            return
        }
        isInsideNGHTTP2 = true
        let result = bytes.withUnsafeReadableBytes { raw in
            nghttp2_session_mem_recv(session, raw.baseAddress?.assumingMemoryBound(to: UInt8.self), raw.count)
        }
        isInsideNGHTTP2 = false
        if let error = pendingError {
            pendingError = nil
            throw error
        }
        _ = try NGHTTP2Error.check(result, "nghttp2_session_mem_recv")
    }

    /// Collects everything nghttp2 wants to send into one buffer; `nil` when there is nothing.
    func drainOutput(allocator: ByteBufferAllocator) throws(NGHTTP2Error) -> ByteBuffer? {
        precondition(!isInsideNGHTTP2, "nghttp2 session re-entered")
        var output: ByteBuffer?
        while true {
            var chunk: UnsafePointer<UInt8>?
            isInsideNGHTTP2 = true
            let count = nghttp2_session_mem_send(session, &chunk)
            isInsideNGHTTP2 = false
            guard try NGHTTP2Error.check(count, "nghttp2_session_mem_send") > 0, let chunk else {
                return output
            }
            // `chunk` is valid only until the next session call: copy it now.
            let bytes = UnsafeRawBufferPointer(start: chunk, count: count)
            if output == nil {
                // Sized for a read burst's answers (about 300 bytes per unary call, 32 in flight), so the
                // buffer is rarely reallocated while it fills.
                output = allocator.buffer(capacity: max(count, 16384))
            }
            output?.writeBytes(bytes)
        }
    }

    /// Attaches `pointer` to an open stream, where ``streamUserData(_:)`` finds it (nghttp2's own stream map,
    /// so the owner needs no map of its own); false for a stream nghttp2 does not know. The pointer is not
    /// retained, and nghttp2 forgets it with the stream, after
    /// ``NGHTTP2ServerSessionDelegate/sessionStreamClosed(_:)``.
    @discardableResult
    func setStreamUserData(_ streamID: Int32, _ pointer: UnsafeMutableRawPointer?) -> Bool {
        nghttp2_session_set_stream_user_data(session, streamID, pointer) == 0
    }

    /// The pointer attached by ``setStreamUserData(_:_:)``; `nil` for a stream that is closed or has none.
    @inline(__always)
    func streamUserData(_ streamID: Int32) -> UnsafeMutableRawPointer? {
        nghttp2_session_get_stream_user_data(session, streamID)
    }

    /// True when nghttp2 neither expects nor has anything more: the connection can be closed.
    var isFinished: Bool {
        nghttp2_session_want_read(session) == 0 && nghttp2_session_want_write(session) == 0
    }

    // MARK: - Submitting

    /// Submits response headers and a body read through
    /// ``NGHTTP2ServerSessionDelegate/sessionReadResponseBody(_:into:)``, which also provides the trailers.
    func submitResponse(_ streamID: Int32, headers: StaticHeaderBlock) throws(NGHTTP2Error) {
        var provider = nghttp2_data_provider(
            source: nghttp2_data_source(ptr: nil),
            read_callback: { _, streamID, buffer, length, flags, _, userData in
                guard let buffer, let flags else { return Int(NGHTTP2_ERR_CALLBACK_FAILURE.rawValue) }
                return NGHTTP2ServerSession.withOwner(userData, orElse: Int(NGHTTP2_ERR_CALLBACK_FAILURE.rawValue)) {
                    $0.readResponseBody(
                        streamID,
                        into: UnsafeMutableRawBufferPointer(start: buffer, count: length),
                        flags: flags
                    )
                }
            }
        )
        _ = try NGHTTP2Error.check(
            nghttp2_submit_response(session, streamID, headers.fields, headers.count, &provider),
            "nghttp2_submit_response"
        )
    }

    /// Submits response headers built per response (nghttp2 copies them) and a body read through
    /// ``NGHTTP2ServerSessionDelegate/sessionReadResponseBody(_:into:)``.
    func submitResponse(_ streamID: Int32, dynamicHeaders headers: GRPCHeaderBlock) throws(NGHTTP2Error) {
        var provider = nghttp2_data_provider(
            source: nghttp2_data_source(ptr: nil),
            read_callback: { _, streamID, buffer, length, flags, _, userData in
                guard let buffer, let flags else { return Int(NGHTTP2_ERR_CALLBACK_FAILURE.rawValue) }
                return NGHTTP2ServerSession.withOwner(userData, orElse: Int(NGHTTP2_ERR_CALLBACK_FAILURE.rawValue)) {
                    $0.readResponseBody(
                        streamID,
                        into: UnsafeMutableRawBufferPointer(start: buffer, count: length),
                        flags: flags
                    )
                }
            }
        )
        let result = headers.withNGHTTP2Fields { fields, count in
            nghttp2_submit_response(session, streamID, fields, count, &provider)
        }
        _ = try NGHTTP2Error.check(result, "nghttp2_submit_response")
    }

    /// Submits one header block that ends the stream (no body); nghttp2 copies the fields.
    func submitHeadersOnly(_ streamID: Int32, headers: GRPCHeaderBlock) throws(NGHTTP2Error) {
        let result = headers.withNGHTTP2Fields { fields, count in
            nghttp2_submit_response(session, streamID, fields, count, nil)
        }
        _ = try NGHTTP2Error.check(result, "nghttp2_submit_response")
    }

    /// Asks nghttp2 to read a deferred body again (``NGHTTP2BodyChunk/deferred``); a failure means the stream
    /// is not deferred or is gone, and nothing needs doing.
    func resumeData(_ streamID: Int32) {
        _ = nghttp2_session_resume_data(session, streamID)
    }

    /// Submits RST_STREAM; a failure means the stream is already gone, which is what was wanted.
    func submitReset(_ streamID: Int32, errorCode: UInt32) {
        _ = nghttp2_submit_rst_stream(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), streamID, errorCode)
    }

    /// Sends GOAWAY(NO_ERROR) naming the highest stream processed so far: streams up to it are finished, later
    /// ones are refused, and ``isFinished`` turns true once the last stream closes. Idempotent.
    func submitGracefulGoAway() throws(NGHTTP2Error) {
        guard !goAwaySubmitted else {
            return
        }
        goAwaySubmitted = true
        let lastStreamID = nghttp2_session_get_last_proc_stream_id(session)
        _ = try NGHTTP2Error.check(
            nghttp2_submit_goaway(
                session,
                UInt8(NGHTTP2_FLAG_NONE.rawValue),
                lastStreamID,
                NGHTTP2_NO_ERROR.rawValue,
                nil,
                0
            ),
            "nghttp2_submit_goaway"
        )
    }

    /// Ends the connection after an unrecoverable error: queues GOAWAY with `errorCode`, after which nghttp2
    /// reads nothing more.
    func terminate(errorCode: UInt32) {
        goAwaySubmitted = true
        _ = nghttp2_session_terminate_session(session, errorCode)
    }

    // MARK: - Callbacks

    private func readResponseBody(
        _ streamID: Int32,
        into destination: UnsafeMutableRawBufferPointer,
        flags: UnsafeMutablePointer<UInt32>
    ) -> Int {
        guard let delegate = delegate else {
            return Int(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue)
        }
        switch delegate._withUnsafeGuaranteedRef({ $0.sessionReadResponseBody(streamID, into: destination) }) {
        case .bytes(let count):
            return count
        case .last(let count, let trailers):
            // End the DATA without ending the stream: the trailers end it.
            flags.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue | NGHTTP2_DATA_FLAG_NO_END_STREAM.rawValue
            let result = nghttp2_submit_trailer(session, streamID, trailers.fields, trailers.count)
            return result < 0 ? Int(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue) : count
        case .unavailable:
            return Int(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue)
        case .deferred:
            return Int(NGHTTP2_ERR_DEFERRED.rawValue)
        case .end(let count):
            flags.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue
            return count
        case .lastWithTrailers(let count, let trailers):
            flags.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue | NGHTTP2_DATA_FLAG_NO_END_STREAM.rawValue
            let result = trailers.withNGHTTP2Fields { fields, fieldCount in
                nghttp2_submit_trailer(session, streamID, fields, fieldCount)
            }
            return result < 0 ? Int(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue) : count
        }
    }

    /// Counts a received frame for the empty-frame flood check. Returns false once the connection is flooding:
    /// the error is stashed, the callback fails, nghttp2 stops parsing and ``receive(_:)`` throws the flood.
    private func frameReceived(type: UInt8, length: Int, endStream: Bool) -> Bool {
        if type == UInt8(NGHTTP2_DATA.rawValue) && length == 0 && !endStream {
            consecutiveEmptyDataFrames += 1
            if consecutiveEmptyDataFrames > Self.maxConsecutiveEmptyDataFrames {
                pendingError = NGHTTP2Error(
                    code: NGHTTP2_ERR_FLOODED.rawValue, operation: "nghttp2_session_mem_recv")
                return false
            }
        } else if type == UInt8(NGHTTP2_DATA.rawValue) || type == UInt8(NGHTTP2_HEADERS.rawValue) {
            consecutiveEmptyDataFrames = 0
        }
        return true
    }

    private static func installCallbacks(_ callbacks: OpaquePointer?) {
        nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks) { _, frame, userData in
            guard let frame else { return NGHTTP2_ERR_CALLBACK_FAILURE.rawValue }
            return NGHTTP2ServerSession.withOwner(userData, orElse: NGHTTP2_ERR_CALLBACK_FAILURE.rawValue) {
                if frame.pointee.hd.type == UInt8(NGHTTP2_HEADERS.rawValue),
                    frame.pointee.headers.cat == NGHTTP2_HCAT_REQUEST
                {
                    $0.delegate?._withUnsafeGuaranteedRef { $0.sessionStreamOpened(frame.pointee.hd.stream_id) }
                }
                return 0
            }
        }
        nghttp2_session_callbacks_set_on_header_callback(callbacks) {
            _,
            frame,
            name,
            nameLength,
            value,
            valueLength,
            _,
            userData in
            guard let frame else { return NGHTTP2_ERR_CALLBACK_FAILURE.rawValue }
            return NGHTTP2ServerSession.withOwner(userData, orElse: NGHTTP2_ERR_CALLBACK_FAILURE.rawValue) {
                if frame.pointee.hd.type == UInt8(NGHTTP2_HEADERS.rawValue),
                    frame.pointee.headers.cat == NGHTTP2_HCAT_REQUEST
                {
                    $0.delegate?._withUnsafeGuaranteedRef {
                        $0.sessionReceivedHeaderField(
                            frame.pointee.hd.stream_id,
                            name: UnsafeRawBufferPointer(start: name, count: nameLength),
                            value: UnsafeRawBufferPointer(start: value, count: valueLength)
                        )
                    }
                }
                return 0
            }
        }
        nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks) { _, frame, userData in
            guard let frame else { return NGHTTP2_ERR_CALLBACK_FAILURE.rawValue }
            return NGHTTP2ServerSession.withOwner(userData, orElse: NGHTTP2_ERR_CALLBACK_FAILURE.rawValue) {
                session in
                let header = frame.pointee.hd
                let endStream = header.flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0
                guard session.frameReceived(type: header.type, length: header.length, endStream: endStream) else {
                    return NGHTTP2_ERR_CALLBACK_FAILURE.rawValue
                }
                switch header.type {
                case UInt8(NGHTTP2_HEADERS.rawValue):
                    session.delegate?._withUnsafeGuaranteedRef {
                        $0.sessionReceivedHeaders(header.stream_id, endStream: endStream)
                    }
                case UInt8(NGHTTP2_DATA.rawValue) where endStream:
                    session.delegate?._withUnsafeGuaranteedRef { $0.sessionReceivedEndOfStream(header.stream_id) }
                default:
                    break
                }
                return 0
            }
        }
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks) {
            _,
            flags,
            streamID,
            data,
            length,
            userData in
            NGHTTP2ServerSession.withOwner(userData, orElse: NGHTTP2_ERR_CALLBACK_FAILURE.rawValue) {
                $0.delegate?._withUnsafeGuaranteedRef {
                    $0.sessionReceivedData(
                        streamID,
                        UnsafeRawBufferPointer(start: data, count: length),
                        inFinalFrame: flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0
                    )
                }
                return 0
            }
        }
        nghttp2_session_callbacks_set_on_frame_send_callback(callbacks) { _, frame, userData in
            guard let frame else { return NGHTTP2_ERR_CALLBACK_FAILURE.rawValue }
            return NGHTTP2ServerSession.withOwner(userData, orElse: NGHTTP2_ERR_CALLBACK_FAILURE.rawValue) {
                let header = frame.pointee.hd
                // HEADERS only: an answer that ends with its body (Connect, gRPC-Web) is not followed by
                // RST_STREAM(NO_ERROR) while the client still uploads, because curl (7.88) then fails the call
                // although the answer was whole; the rest of that upload is dropped by nghttp2.
                if header.type == UInt8(NGHTTP2_HEADERS.rawValue),
                    header.flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0
                {
                    $0.delegate?._withUnsafeGuaranteedRef { $0.sessionSentEndOfStream(header.stream_id) }
                }
                return 0
            }
        }
        nghttp2_session_callbacks_set_on_stream_close_callback(callbacks) { _, streamID, _, userData in
            // Without an owner the session is being freed after its owner detached: nothing to do.
            NGHTTP2ServerSession.withOwner(userData, orElse: 0) {
                $0.delegate?._withUnsafeGuaranteedRef { $0.sessionStreamClosed(streamID) }
                return 0
            }
        }
    }

    /// Calls `body` with the session recovered from nghttp2's `user_data`, or returns `orElse` once `deinit`
    /// has detached it.
    ///
    /// The session is borrowed, not retained: nghttp2 calls back only from inside a method of this class
    /// (receive, drain, submit), which keeps it alive, and a retain/release pair on every callback was a
    /// measurable share of a call.
    private static func withOwner<Result>(
        _ userData: UnsafeMutableRawPointer?,
        orElse failure: Result,
        _ body: (NGHTTP2ServerSession) -> Result
    ) -> Result {
        guard let userData else {
            return failure
        }
        return Unmanaged<NGHTTP2ServerSession>.fromOpaque(userData)._withUnsafeGuaranteedRef(body)
    }

    // MARK: - Set-up

    /// SETTINGS sent in the server preface, and the connection-level receive window.
    private func submitInitialSettings(_ configuration: GRPCServerConfiguration) throws(NGHTTP2Error) {
        let streamWindow = UInt32(min(max(65_535, configuration.maxMessageBytes + 5), Int(Int32.max)))
        let settings = [
            nghttp2_settings_entry(
                settings_id: Int32(NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS.rawValue),
                value: configuration.maxConcurrentStreams
            ),
            nghttp2_settings_entry(
                settings_id: Int32(NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE.rawValue),
                value: UInt32(configuration.maxHeaderListBytes)
            ),
            // One whole maximal message fits the stream window, so a request never waits for a WINDOW_UPDATE.
            nghttp2_settings_entry(
                settings_id: Int32(NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE.rawValue),
                value: streamWindow
            ),
            // No priority tree: unary calls gain nothing from RFC 7540 priorities and nghttp2 then keeps no
            // closed streams around for it.
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES.rawValue), value: 1),
        ]
        _ = try NGHTTP2Error.check(
            settings.withUnsafeBufferPointer { entries in
                nghttp2_submit_settings(
                    session,
                    UInt8(NGHTTP2_FLAG_NONE.rawValue),
                    entries.baseAddress,
                    entries.count
                )
            },
            "nghttp2_submit_settings"
        )
        // The connection window starts at 65535 and cannot be set by SETTINGS; 1 MiB lets many concurrent
        // requests upload without waiting on connection-level WINDOW_UPDATEs.
        let connectionWindow = max(Int32(1 << 20), Int32(streamWindow))
        _ = try NGHTTP2Error.check(
            nghttp2_session_set_local_window_size(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), 0, connectionWindow),
            "nghttp2_session_set_local_window_size"
        )
    }

    private static func makeSession(allocator: NGHTTP2Allocator) throws(NGHTTP2Error) -> OpaquePointer {
        var callbacks: OpaquePointer?
        _ = try NGHTTP2Error.check(nghttp2_session_callbacks_new(&callbacks), "nghttp2_session_callbacks_new")
        defer { nghttp2_session_callbacks_del(callbacks) }
        Self.installCallbacks(callbacks)

        var options: OpaquePointer?
        _ = try NGHTTP2Error.check(nghttp2_option_new(&options), "nghttp2_option_new")
        defer { nghttp2_option_del(options) }
        Self.configureHardening(options)

        var session: OpaquePointer?
        // nghttp2 copies the functions; the allocator itself must outlive the session.
        var memory = allocator.functions
        _ = try NGHTTP2Error.check(
            nghttp2_session_server_new3(&session, callbacks, nil, options, &memory),
            "nghttp2_session_server_new3"
        )
        guard let session else {
            throw NGHTTP2Error(code: NGHTTP2_ERR_NOMEM.rawValue, operation: "nghttp2_session_server_new3")
        }
        return session
    }

    /// Flood and resource limits, beyond nghttp2's defaults where offerd's unary traffic allows it.
    private static func configureHardening(_ options: OpaquePointer?) {
        // Closed streams are only kept for the RFC 7540 priority tree, which offerd turns off.
        nghttp2_option_set_no_closed_streams(options, 1)
        // HPACK encoder table for our responses: our few response fields fit in 4 KiB.
        nghttp2_option_set_max_deflate_dynamic_table_size(options, 4096)
        // Rapid reset (CVE-2023-44487): a token bucket on incoming RST_STREAM; exhausted -> GOAWAY.
        nghttp2_option_set_stream_reset_rate_limit(options, 1000, 33)
        // CONTINUATION flood (CVE-2024-27316 family): a request header block is at most 16 KiB by default.
        nghttp2_option_set_max_continuations(options, 8)
        // SETTINGS with many entries; HTTP/2 defines fewer than ten.
        nghttp2_option_set_max_settings(options, 32)
        // PING / SETTINGS flood: ACKs queued while the client does not read; over it the session ends.
        nghttp2_option_set_max_outbound_ack(options, 256)
    }
}

@available(*, unavailable)
extension NGHTTP2ServerSession: Sendable {}
