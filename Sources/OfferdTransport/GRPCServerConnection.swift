internal import CNGHTTP2
import Logging
import NIOCore

/// The server side of one HTTP/2 connection carrying unary gRPC calls: the single Swift owner of an
/// `nghttp2_session`.
///
/// ## Who does what
/// nghttp2 does all of HTTP/2: frame parsing, HPACK, flow control (automatic WINDOW_UPDATE), stream states,
/// SETTINGS/PING acknowledgement, connection errors (GOAWAY) and the flood protections configured in
/// `makeOptions`. This type adds gRPC on top: it collects each request's head (`GRPCRequestHead`) and its one
/// message (`GRPCMessageReader`), calls the service, and submits the response. It does no I/O:
/// `GRPCServerConnectionHandler` feeds it bytes (`receive`) and writes what it produces (`drainOutput`).
///
/// ## Callbacks
/// nghttp2 calls back into C function pointers that cannot capture context, so `self` travels as the session's
/// `user_data` (unretained: `self` owns the session, the session never outlives `self`). Callbacks only run
/// inside `nghttp2_session_mem_recv` and `nghttp2_session_mem_send`; `isInsideNGHTTP2` asserts that neither is
/// re-entered. The service is never called from a callback: completed requests are queued in `readyStreams` and
/// answered after `mem_recv` returns, so application code never runs with nghttp2 mid-frame.
///
/// ## Stream life
/// A stream object is created when a request HEADERS frame begins and removed in `on_stream_close`. Each
/// stream is answered exactly once: by the service, or by the transport (`GRPCStreamRejection`) as soon as the
/// request is known to be unacceptable, or by its deadline timer. An early answer is followed by
/// `RST_STREAM(NO_ERROR)` when the client is still sending, so it stops.
///
/// ## Memory bound
/// At most `maxConcurrentStreams` streams, each buffering at most `maxMessageBytes` (reserved only after the
/// length prefix passed the limit): 100 x 64 KiB = 6.4 MiB per connection with the defaults.
final class GRPCServerConnection {
    /// Per-stream state. A class so callbacks can update it in place through one dictionary lookup.
    private final class Stream {
        enum Phase {
            case receivingHeaders
            case receivingMessage
            case readyToDispatch
            case answered
        }

        var phase: Phase = .receivingHeaders
        var head: GRPCRequestHead
        var reader: GRPCMessageReader
        var path = ""
        var deadline: NIODeadline?
        var deadlineTimer: Scheduled<Void>?
        var requestEnded = false
        var responsePayload: ByteBuffer?
        var responsePrefixBytesSent = 0

        init(head: GRPCRequestHead, reader: GRPCMessageReader) {
            self.head = head
            self.reader = reader
        }
    }

    private let session: OpaquePointer
    private let service: any GRPCUnaryService
    private let configuration: GRPCServerConfiguration
    private let eventLoop: any EventLoop
    private let allocator: ByteBufferAllocator
    private let callCounter: GRPCActiveCallCounter
    private var logger: Logger
    /// Open streams by id. Read through ``stream(_:)``: nghttp2 reports a request as a run of callbacks for one
    /// stream (headers began, each header, headers ended, data, end), so the last stream looked up answers most
    /// lookups without hashing.
    private var streams: [Int32: Stream] = [:]
    private var recentStreamID: Int32 = 0
    private var recentStream: Stream?
    private var readyStreams: [Int32] = []
    private var isInsideNGHTTP2 = false
    private var goAwaySubmitted = false
    /// Empty DATA frames (no payload, no END_STREAM) received since the last frame that carried something.
    /// nghttp2 does not limit them, and each costs a callback round for nothing (CVE-2019-9518, "empty frames
    /// flood"); over `maxConsecutiveEmptyDataFrames` the connection ends with ENHANCE_YOUR_CALM.
    private var consecutiveEmptyDataFrames = 0
    private var floodDetected = false

    /// A client has no reason to send empty DATA frames back to back; a few are tolerated (some clients flush
    /// an empty frame before ending a stream; frames ending a stream are never counted), thousands are a flood.
    static let maxConsecutiveEmptyDataFrames = 100

    /// Called when something other than incoming bytes (a deadline timer) produced output to write.
    var onAsynchronousOutput: (() -> Void)?

    /// Creates the session, configures it and queues the server's SETTINGS.
    init(
        configuration: GRPCServerConfiguration,
        service: any GRPCUnaryService,
        eventLoop: any EventLoop,
        allocator: ByteBufferAllocator,
        callCounter: GRPCActiveCallCounter,
        logger: Logger
    ) throws(NGHTTP2Error) {
        self.session = try Self.makeSession()
        self.configuration = configuration
        self.service = service
        self.eventLoop = eventLoop
        self.allocator = allocator
        self.callCounter = callCounter
        self.logger = logger
        self.readyStreams.reserveCapacity(Int(min(configuration.maxConcurrentStreams, 128)))
        nghttp2_session_set_user_data(self.session, Unmanaged.passUnretained(self).toOpaque())
        try self.submitInitialSettings()
    }

    deinit {
        // Detach first so nothing nghttp2 does while freeing can reach a half-deinitialised `self`.
        nghttp2_session_set_user_data(self.session, nil)
        nghttp2_session_del(self.session)
    }

    // MARK: - Driving the session

    /// Feeds received bytes to nghttp2, then answers every request that completed in them.
    /// Throws when the connection is beyond repair (bad preface, flood, ...); call `terminate` then.
    func receive(_ bytes: ByteBuffer) throws(NGHTTP2Error) {
        precondition(!self.isInsideNGHTTP2, "nghttp2 session re-entered")
        let length = bytes.readableBytes
        guard length > 0 else {
            return
        }
        self.isInsideNGHTTP2 = true
        let result = bytes.withUnsafeReadableBytes { raw in
            nghttp2_session_mem_recv(self.session, raw.baseAddress?.assumingMemoryBound(to: UInt8.self), raw.count)
        }
        self.isInsideNGHTTP2 = false
        // Checked first: the flood check stops nghttp2 through a failing callback, which it reports as a
        // callback failure (INTERNAL_ERROR) rather than the flood it is.
        if self.floodDetected {
            throw NGHTTP2Error(code: NGHTTP2_ERR_FLOODED.rawValue, operation: "nghttp2_session_mem_recv")
        }
        _ = try NGHTTP2Error.check(result, "nghttp2_session_mem_recv")
        self.dispatchReadyStreams()
    }

    /// Collects everything nghttp2 wants to send into one buffer; `nil` when there is nothing.
    func drainOutput() throws(NGHTTP2Error) -> ByteBuffer? {
        precondition(!self.isInsideNGHTTP2, "nghttp2 session re-entered")
        var output: ByteBuffer?
        while true {
            var chunk: UnsafePointer<UInt8>?
            self.isInsideNGHTTP2 = true
            let count = nghttp2_session_mem_send(self.session, &chunk)
            self.isInsideNGHTTP2 = false
            guard try NGHTTP2Error.check(count, "nghttp2_session_mem_send") > 0, let chunk else {
                return output
            }
            // `chunk` is valid only until the next session call: copy it now.
            let bytes = UnsafeRawBufferPointer(start: chunk, count: count)
            if output == nil {
                // Sized for a read burst's answers (about 300 bytes per unary call, 32 in flight), so the
                // buffer is rarely reallocated while it fills.
                output = self.allocator.buffer(capacity: max(count, 16384))
            }
            output?.writeBytes(bytes)
        }
    }

    /// True when nghttp2 neither expects nor has anything more: the connection can be closed.
    var isFinished: Bool {
        nghttp2_session_want_read(self.session) == 0 && nghttp2_session_want_write(self.session) == 0
    }

    /// Number of streams not yet closed.
    var openStreamCount: Int { self.streams.count }

    /// Sends GOAWAY(NO_ERROR) naming the highest stream processed so far: streams up to it are finished, later
    /// ones are refused, and the connection ends once the last stream closes. Idempotent.
    func beginGracefulShutdown() {
        guard !self.goAwaySubmitted else {
            return
        }
        self.goAwaySubmitted = true
        let lastStreamID = nghttp2_session_get_last_proc_stream_id(self.session)
        let result = nghttp2_submit_goaway(
            self.session,
            UInt8(NGHTTP2_FLAG_NONE.rawValue),
            lastStreamID,
            NGHTTP2_NO_ERROR.rawValue,
            nil,
            0
        )
        if result < 0 {
            self.logger.debug("could not submit GOAWAY", metadata: ["error": "\(result)"])
        }
    }

    /// Ends the connection after an unrecoverable error: queues GOAWAY with `errorCode`, after which nghttp2
    /// reads nothing more.
    func terminate(errorCode: UInt32) {
        self.goAwaySubmitted = true
        _ = nghttp2_session_terminate_session(self.session, errorCode)
    }

    /// Releases per-stream resources when the channel goes away (timers, call counts).
    func tearDown() {
        for stream in self.streams.values {
            stream.deadlineTimer?.cancel()
        }
        self.callCounter.subtract(self.streams.count)
        self.streams.removeAll()
        self.recentStream = nil
        self.readyStreams.removeAll()
        self.onAsynchronousOutput = nil
    }

    // MARK: - Events from nghttp2 callbacks

    /// Counts a received frame for the empty-frame flood check. Returns false once the connection is flooding:
    /// the callback then fails, nghttp2 stops parsing, and `receive` ends the connection.
    fileprivate func frameReceived(type: UInt8, length: Int, endStream: Bool) -> Bool {
        if type == UInt8(NGHTTP2_DATA.rawValue) && length == 0 && !endStream {
            self.consecutiveEmptyDataFrames += 1
            if self.consecutiveEmptyDataFrames > Self.maxConsecutiveEmptyDataFrames {
                self.floodDetected = true
                return false
            }
        } else if type == UInt8(NGHTTP2_DATA.rawValue) || type == UInt8(NGHTTP2_HEADERS.rawValue) {
            self.consecutiveEmptyDataFrames = 0
        }
        return true
    }

    private func stream(_ streamID: Int32) -> Stream? {
        if streamID == self.recentStreamID, let stream = self.recentStream {
            return stream
        }
        let stream = self.streams[streamID]
        self.recentStreamID = streamID
        self.recentStream = stream
        return stream
    }

    fileprivate func requestHeadersBegan(streamID: Int32) {
        let stream = Stream(
            head: GRPCRequestHead(
                maxHeaderCount: self.configuration.maxHeaderCount,
                maxHeaderListBytes: self.configuration.maxHeaderListBytes
            ),
            reader: GRPCMessageReader(maxMessageBytes: self.configuration.maxMessageBytes)
        )
        self.streams[streamID] = stream
        self.recentStreamID = streamID
        self.recentStream = stream
        self.callCounter.add(1)
    }

    fileprivate func requestHeaderField(streamID: Int32, name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) {
        guard let stream = self.stream(streamID), stream.phase == .receivingHeaders else {
            return
        }
        stream.head.add(name: name, value: value)
    }

    fileprivate func requestHeadersEnded(streamID: Int32, endStream: Bool) {
        guard let stream = self.stream(streamID), stream.phase == .receivingHeaders else {
            return
        }
        stream.requestEnded = endStream
        switch stream.head.validate() {
        case .failure(let rejection):
            self.reject(stream, streamID: streamID, rejection)
        case .success(let accepted):
            stream.path = accepted.path
            stream.phase = .receivingMessage
            if let timeout = accepted.timeout {
                self.armDeadline(stream, streamID: streamID, timeout: timeout)
            }
            if endStream {
                self.requestEnded(streamID: streamID)
            }
        }
    }

    fileprivate func requestData(streamID: Int32, bytes: UnsafeRawBufferPointer) {
        guard let stream = self.stream(streamID), stream.phase == .receivingMessage else {
            return
        }
        if let rejection = stream.reader.consume(bytes, allocator: self.allocator) {
            self.reject(stream, streamID: streamID, rejection)
        }
    }

    fileprivate func requestEnded(streamID: Int32) {
        guard let stream = self.stream(streamID) else {
            return
        }
        stream.requestEnded = true
        if stream.phase == .receivingMessage {
            stream.phase = .readyToDispatch
            self.readyStreams.append(streamID)
        }
    }

    fileprivate func streamClosed(streamID: Int32) {
        if streamID == self.recentStreamID {
            self.recentStream = nil
        }
        guard let stream = self.streams.removeValue(forKey: streamID) else {
            return
        }
        stream.deadlineTimer?.cancel()
        self.callCounter.subtract(1)
    }

    /// Fills nghttp2's DATA buffer with the response: the 5-byte prefix, then the payload. At the end it
    /// ends the data without ending the stream and submits the `grpc-status: 0` trailers.
    fileprivate func readResponse(
        streamID: Int32,
        into destination: UnsafeMutableRawBufferPointer,
        flags: UnsafeMutablePointer<UInt32>
    ) -> Int {
        guard let stream = self.stream(streamID), var payload = stream.responsePayload else {
            return Int(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue)
        }
        var written = 0
        if stream.responsePrefixBytesSent < 5 {
            let length = UInt32(truncatingIfNeeded: payload.readableBytes)
            let prefix: (UInt8, UInt8, UInt8, UInt8, UInt8) = (
                0, UInt8(truncatingIfNeeded: length >> 24), UInt8(truncatingIfNeeded: length >> 16),
                UInt8(truncatingIfNeeded: length >> 8), UInt8(truncatingIfNeeded: length)
            )
            withUnsafeBytes(of: prefix) { prefixBytes in
                let take = min(5 - stream.responsePrefixBytesSent, destination.count)
                let source = prefixBytes[stream.responsePrefixBytesSent..<(stream.responsePrefixBytesSent + take)]
                UnsafeMutableRawBufferPointer(rebasing: destination[0..<take]).copyMemory(
                    from: UnsafeRawBufferPointer(rebasing: source)
                )
                written = take
            }
            stream.responsePrefixBytesSent += written
        }
        let room = destination.count - written
        if room > 0 && payload.readableBytes > 0 {
            let copied = payload.readWithUnsafeReadableBytes { source in
                let take = min(room, source.count)
                UnsafeMutableRawBufferPointer(rebasing: destination[written..<(written + take)]).copyMemory(
                    from: UnsafeRawBufferPointer(rebasing: source[0..<take])
                )
                return take
            }
            written += copied
        }
        if stream.responsePrefixBytesSent == 5 && payload.readableBytes == 0 {
            stream.responsePayload = nil
            flags.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue | NGHTTP2_DATA_FLAG_NO_END_STREAM.rawValue
            let result = nghttp2_submit_trailer(
                self.session,
                streamID,
                StaticHeaderBlock.successTrailers.fields,
                StaticHeaderBlock.successTrailers.count
            )
            if result < 0 {
                return Int(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue)
            }
        } else {
            stream.responsePayload = payload
        }
        return written
    }

    // MARK: - Answering

    private func dispatchReadyStreams() {
        guard !self.readyStreams.isEmpty else {
            return
        }
        for streamID in self.readyStreams {
            guard let stream = self.stream(streamID), stream.phase == .readyToDispatch else {
                continue
            }
            switch stream.reader.finish() {
            case .failure(let rejection):
                self.reject(stream, streamID: streamID, rejection)
            case .success(let message):
                self.dispatch(stream, streamID: streamID, message: message)
            }
        }
        self.readyStreams.removeAll(keepingCapacity: true)
    }

    private func dispatch(_ stream: Stream, streamID: Int32, message: ByteBuffer) {
        if let deadline = stream.deadline, NIODeadline.now() >= deadline {
            self.reject(stream, streamID: streamID, .status(Self.deadlineExceeded))
            return
        }
        let call = GRPCUnaryCall(path: stream.path, message: message, deadline: stream.deadline)
        let reply = self.service.handle(call, allocator: self.allocator)
        if let deadline = stream.deadline, NIODeadline.now() >= deadline {
            self.reject(stream, streamID: streamID, .status(Self.deadlineExceeded))
            return
        }
        switch reply {
        case .message(let payload):
            self.respond(stream, streamID: streamID, payload: payload)
        case .failure(let status):
            self.reject(stream, streamID: streamID, .status(status))
        }
    }

    private static let deadlineExceeded = GRPCStatus(.deadlineExceeded, "deadline exceeded")

    private func respond(_ stream: Stream, streamID: Int32, payload: ByteBuffer) {
        guard payload.readableBytes <= Int(UInt32.max) else {
            self.reject(stream, streamID: streamID, .status(GRPCStatus(.internalError, "response message too large")))
            return
        }
        stream.phase = .answered
        stream.deadlineTimer?.cancel()
        stream.deadlineTimer = nil
        stream.responsePayload = payload
        var provider = nghttp2_data_provider(
            source: nghttp2_data_source(ptr: nil),
            read_callback: { session, streamID, buffer, length, flags, _, userData in
                guard let buffer, let flags else { return Int(NGHTTP2_ERR_CALLBACK_FAILURE.rawValue) }
                return GRPCServerConnection.withOwner(userData, orElse: Int(NGHTTP2_ERR_CALLBACK_FAILURE.rawValue)) {
                    $0.readResponse(
                        streamID: streamID,
                        into: UnsafeMutableRawBufferPointer(start: buffer, count: length),
                        flags: flags
                    )
                }
            }
        )
        let result = nghttp2_submit_response(
            self.session,
            streamID,
            StaticHeaderBlock.successHeaders.fields,
            StaticHeaderBlock.successHeaders.count,
            &provider
        )
        if result < 0 {
            self.logger.debug("could not submit response", metadata: ["stream": "\(streamID)", "error": "\(result)"])
            _ = nghttp2_submit_rst_stream(
                self.session,
                UInt8(NGHTTP2_FLAG_NONE.rawValue),
                streamID,
                NGHTTP2_INTERNAL_ERROR.rawValue
            )
        }
    }

    /// Answers a stream with a single HEADERS frame ending it, and stops the client's upload if unfinished.
    private func reject(_ stream: Stream, streamID: Int32, _ rejection: GRPCStreamRejection) {
        stream.phase = .answered
        stream.deadlineTimer?.cancel()
        stream.deadlineTimer = nil
        stream.responsePayload = nil
        var headers = DynamicHeaderList()
        switch rejection {
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
        let result = headers.withFields { fields, count in
            nghttp2_submit_response(self.session, streamID, fields, count, nil)
        }
        if result < 0 {
            self.logger.debug("could not submit answer", metadata: ["stream": "\(streamID)", "error": "\(result)"])
            _ = nghttp2_submit_rst_stream(
                self.session,
                UInt8(NGHTTP2_FLAG_NONE.rawValue),
                streamID,
                NGHTTP2_INTERNAL_ERROR.rawValue
            )
        }
        // If the client is still sending, RST_STREAM(NO_ERROR) follows once the answer is on the wire
        // (`answerSent`): submitted now, it would mark the stream closing and nghttp2 would drop the answer.
    }

    /// A HEADERS frame ending one of our streams went out. If that answered a request still being uploaded,
    /// ask the client to stop sending with RST_STREAM(NO_ERROR) (RFC 9113 section 8.1).
    fileprivate func answerSent(streamID: Int32) {
        guard let stream = self.stream(streamID), !stream.requestEnded else {
            return
        }
        stream.requestEnded = true
        _ = nghttp2_submit_rst_stream(
            self.session,
            UInt8(NGHTTP2_FLAG_NONE.rawValue),
            streamID,
            NGHTTP2_NO_ERROR.rawValue
        )
    }

    private static func appendTrailersOnly(_ status: GRPCStatus, to headers: inout DynamicHeaderList) {
        headers.append(":status", "200")
        headers.append("content-type", "application/grpc")
        headers.append("grpc-status", String(status.code.rawValue))
        if !status.message.isEmpty {
            headers.append("grpc-message", GRPCStatus.percentEncoded(status.message))
        }
    }

    private func armDeadline(_ stream: Stream, streamID: Int32, timeout: TimeAmount) {
        let deadline = NIODeadline.now() + timeout
        stream.deadline = deadline
        stream.deadlineTimer = self.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [weak self] in
            self?.deadlineExpired(streamID: streamID)
        }
    }

    /// The deadline passed before the stream was answered: the request has not fully arrived (otherwise it would
    /// have been answered already), so answer DEADLINE_EXCEEDED now; other streams are untouched.
    private func deadlineExpired(streamID: Int32) {
        guard let stream = self.stream(streamID) else {
            return
        }
        stream.deadlineTimer = nil
        guard stream.phase != .answered else {
            return
        }
        self.reject(stream, streamID: streamID, .status(Self.deadlineExceeded))
        self.onAsynchronousOutput?()
    }

    // MARK: - Session set-up

    /// SETTINGS sent in the server preface, and the connection-level receive window.
    private func submitInitialSettings() throws(NGHTTP2Error) {
        let streamWindow = UInt32(min(max(65_535, self.configuration.maxMessageBytes + 5), Int(Int32.max)))
        let settings = [
            nghttp2_settings_entry(
                settings_id: Int32(NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS.rawValue),
                value: self.configuration.maxConcurrentStreams
            ),
            nghttp2_settings_entry(
                settings_id: Int32(NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE.rawValue),
                value: UInt32(self.configuration.maxHeaderListBytes)
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
                    self.session,
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
            nghttp2_session_set_local_window_size(self.session, UInt8(NGHTTP2_FLAG_NONE.rawValue), 0, connectionWindow),
            "nghttp2_session_set_local_window_size"
        )
    }

    private static func makeSession() throws(NGHTTP2Error) -> OpaquePointer {
        var callbacks: OpaquePointer?
        _ = try NGHTTP2Error.check(nghttp2_session_callbacks_new(&callbacks), "nghttp2_session_callbacks_new")
        defer { nghttp2_session_callbacks_del(callbacks) }
        Self.installCallbacks(callbacks)

        var options: OpaquePointer?
        _ = try NGHTTP2Error.check(nghttp2_option_new(&options), "nghttp2_option_new")
        defer { nghttp2_option_del(options) }
        Self.configureHardening(options)

        var session: OpaquePointer?
        _ = try NGHTTP2Error.check(
            nghttp2_session_server_new2(&session, callbacks, nil, options),
            "nghttp2_session_server_new2"
        )
        guard let session else {
            throw NGHTTP2Error(code: NGHTTP2_ERR_NOMEM.rawValue, operation: "nghttp2_session_server_new2")
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

    private static func installCallbacks(_ callbacks: OpaquePointer?) {
        nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks) { _, frame, userData in
            guard let frame else { return NGHTTP2_ERR_CALLBACK_FAILURE.rawValue }
            return GRPCServerConnection.withOwner(userData, orElse: NGHTTP2_ERR_CALLBACK_FAILURE.rawValue) {
                if frame.pointee.hd.type == UInt8(NGHTTP2_HEADERS.rawValue),
                    frame.pointee.headers.cat == NGHTTP2_HCAT_REQUEST
                {
                    $0.requestHeadersBegan(streamID: frame.pointee.hd.stream_id)
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
            return GRPCServerConnection.withOwner(userData, orElse: NGHTTP2_ERR_CALLBACK_FAILURE.rawValue) {
                if frame.pointee.hd.type == UInt8(NGHTTP2_HEADERS.rawValue),
                    frame.pointee.headers.cat == NGHTTP2_HCAT_REQUEST
                {
                    $0.requestHeaderField(
                        streamID: frame.pointee.hd.stream_id,
                        name: UnsafeRawBufferPointer(start: name, count: nameLength),
                        value: UnsafeRawBufferPointer(start: value, count: valueLength)
                    )
                }
                return 0
            }
        }
        nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks) { _, frame, userData in
            guard let frame else { return NGHTTP2_ERR_CALLBACK_FAILURE.rawValue }
            return GRPCServerConnection.withOwner(userData, orElse: NGHTTP2_ERR_CALLBACK_FAILURE.rawValue) {
                connection in
                let header = frame.pointee.hd
                let endStream = header.flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0
                guard connection.frameReceived(type: header.type, length: header.length, endStream: endStream)
                else {
                    return NGHTTP2_ERR_CALLBACK_FAILURE.rawValue
                }
                switch header.type {
                case UInt8(NGHTTP2_HEADERS.rawValue):
                    if frame.pointee.headers.cat == NGHTTP2_HCAT_REQUEST {
                        connection.requestHeadersEnded(streamID: header.stream_id, endStream: endStream)
                    } else if endStream {
                        connection.requestEnded(streamID: header.stream_id)
                    }
                case UInt8(NGHTTP2_DATA.rawValue):
                    if endStream {
                        connection.requestEnded(streamID: header.stream_id)
                    }
                default:
                    break
                }
                return 0
            }
        }
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks) {
            _,
            _,
            streamID,
            data,
            length,
            userData in
            GRPCServerConnection.withOwner(userData, orElse: NGHTTP2_ERR_CALLBACK_FAILURE.rawValue) {
                $0.requestData(streamID: streamID, bytes: UnsafeRawBufferPointer(start: data, count: length))
                return 0
            }
        }
        nghttp2_session_callbacks_set_on_frame_send_callback(callbacks) { _, frame, userData in
            guard let frame else { return NGHTTP2_ERR_CALLBACK_FAILURE.rawValue }
            return GRPCServerConnection.withOwner(userData, orElse: NGHTTP2_ERR_CALLBACK_FAILURE.rawValue) {
                let header = frame.pointee.hd
                if header.type == UInt8(NGHTTP2_HEADERS.rawValue),
                    header.flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0
                {
                    $0.answerSent(streamID: header.stream_id)
                }
                return 0
            }
        }
        nghttp2_session_callbacks_set_on_stream_close_callback(callbacks) { _, streamID, _, userData in
            // Without an owner the session is being freed after its owner detached: nothing to do.
            GRPCServerConnection.withOwner(userData, orElse: 0) {
                $0.streamClosed(streamID: streamID)
                return 0
            }
        }
    }

    /// Calls `body` with the connection recovered from nghttp2's `user_data`, or returns `orElse` once `deinit`
    /// has detached it.
    ///
    /// The connection is borrowed, not retained: nghttp2 calls back only from inside a method of the connection
    /// (receive, send, submit), which keeps it alive, and a retain/release
    /// pair on every callback was a measurable share of a call.
    fileprivate static func withOwner<Result>(
        _ userData: UnsafeMutableRawPointer?, orElse failure: Result, _ body: (GRPCServerConnection) -> Result
    ) -> Result {
        guard let userData else {
            return failure
        }
        return Unmanaged<GRPCServerConnection>.fromOpaque(userData)._withUnsafeGuaranteedRef(body)
    }
}

@available(*, unavailable)
extension GRPCServerConnection: Sendable {}
