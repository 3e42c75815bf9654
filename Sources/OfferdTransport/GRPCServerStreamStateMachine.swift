import NIOCore

/// The life of one unary gRPC call on the server, as a value: events in, actions out.
///
/// It knows the gRPC rules (one request head, one length-prefixed message, a deadline, one answer) and
/// nothing of the framing below: HTTP/2 through nghttp2 today (`GRPCServerConnection`), another framing
/// (gRPC-Web or Connect over HTTP/1.1) later. The owner feeds it what arrived and performs what it returns:
///
/// | event | in phase | action |
/// |---|---|---|
/// | ``receivedHeaderField(name:value:)`` | receiving headers | none (collected) |
/// | ``receivedHeaders(endStream:clock:)`` | receiving headers | ``Action/answer(_:)`` refused head; ``Action/armDeadline(_:)``; ``Action/queueForDispatch`` with END_STREAM |
/// | ``receivedHeaders(endStream:clock:)`` again (trailers) | any | as ``receivedEndOfStream()`` when it ends the stream, else none |
/// | ``receivedData(_:allocator:)`` | receiving message | ``Action/answer(_:)`` for a refused body (prefix decides), else none |
/// | ``receivedEndOfStream()`` | receiving message | ``Action/queueForDispatch`` |
/// | ``dispatch(clock:)`` | awaiting dispatch | ``Action/dispatch(_:)``, or ``Action/answer(_:)`` (bad body, deadline passed) |
/// | ``replyReady(_:clock:)`` | dispatched | ``Action/respond(_:)`` or ``Action/answer(_:)`` (failure, deadline passed) |
/// | ``deadlineReached()`` | before the reply | ``Action/answer(_:)`` DEADLINE_EXCEEDED |
/// | ``answerSent()`` | answered, upload unfinished | ``Action/stopUpload`` (RST_STREAM NO_ERROR), none when the rest of a declared body is small |
/// | ``closed()`` | any | none; every later event is ignored |
///
/// ## Message streams
/// A path the service names in `isMessageStream(path:)` (server reflection) is a bidirectional stream with
/// one response message per request message: after the head the machine is ``Phase/streaming``; each
/// complete request message is queued (``Action/queueForDispatch``), dispatched as one call
/// (``Action/dispatch(_:)``) and its reply sent as one message (``Action/sendMessage(_:)``, after which the
/// owner calls ``dispatch(clock:)`` again for the next one). When the client has half-closed and every message
/// is answered, ``Action/finish(_:)`` sends the trailers (or, if no message was sent, a Trailers-Only
/// answer). A failure reply, a bad message or the deadline (which covers the whole stream) end the stream
/// the same way with their status. Limits: replies are never interleaved or reordered, a service cannot send
/// a message of its own accord or more than one per request, and the stream cannot stay open past the
/// client's half-close.
///
/// Any other event in any other phase is ignored and returns ``Action/none``: data after the end of the stream
/// or after the answer, a second request head, a deadline after the answer, a reply after a reset. nghttp2
/// already ends the connection for most of them (they are HTTP/2 protocol errors); the machine stays correct
/// for a framing that does not. Each stream is answered exactly once.
///
/// The request head and the message reader are stored properties, not payloads of the phase enum: a payload
/// would be moved out and back on every header field and DATA chunk, and the message buffer, referenced twice
/// meanwhile, would be copied on write.
struct GRPCServerStreamStateMachine {
    /// Where the call is.
    enum Phase: Equatable {
        /// Collecting the request header block.
        case receivingHeaders
        /// Head accepted; collecting the one message.
        case receivingMessage
        /// Request complete; the owner dispatches it once the framing layer has returned (the service never
        /// runs inside a parser callback).
        case awaitingDispatch
        /// Handed to the service; waiting for its reply.
        case dispatched
        /// Answered with a response message; the trailers follow it.
        case responding
        /// Answered with a single header block (a refusal, a failure, a passed deadline).
        case answered
        /// Closed or reset by either side; nothing more happens.
        case closed
        /// A message stream between its head and its end: messages in, one reply out for each.
        case streaming
    }

    /// What the owner must do after an event.
    enum Action {
        /// Nothing.
        case none
        /// Answer ``GRPCServerStreamStateMachine/deadlineReached()`` at this time unless the stream is answered
        /// first (the owner cancels the timer once the stream is answered or dispatched).
        case armDeadline(NIODeadline)
        /// The request is complete: call ``GRPCServerStreamStateMachine/dispatch(clock:)`` once the framing
        /// layer is out of its callbacks.
        case queueForDispatch
        /// Call the service with this call, then pass its reply to
        /// ``GRPCServerStreamStateMachine/replyReady(_:clock:)``.
        case dispatch(GRPCUnaryCall)
        /// Send the response headers, this message (``GRPCResponseBody``) and the `grpc-status: 0` trailers.
        case respond(ByteBuffer)
        /// Send this answer as one header block ending the stream (``GRPCResponseRendering/answer(_:)``).
        case answer(GRPCStreamRejection)
        /// The answer went out while the client was still uploading: reset the stream with NO_ERROR so it
        /// stops (RFC 9113 section 8.1).
        case stopUpload
        /// Message streams: send this message (after the response headers, if it is the first), then call
        /// ``GRPCServerStreamStateMachine/dispatch(clock:)`` for what comes next.
        case sendMessage(ByteBuffer)
        /// Message streams: after the messages sent, end the stream with trailers carrying this status.
        case finish(GRPCStatus)
    }

    /// The answer when the deadline passes first, whoever notices (timer, dispatch, reply).
    static let deadlineExceeded = GRPCStatus(.deadlineExceeded, "deadline exceeded")
    /// The answer to a reply whose message does not fit the 32-bit length prefix.
    static let responseTooLarge = GRPCStatus(.internalError, "response message too large")

    private(set) var phase: Phase = .receivingHeaders
    /// The client has finished sending (END_STREAM seen, or the stream was reset to stop it).
    private(set) var requestEnded = false
    /// When the call must be answered by; `nil` without `grpc-timeout`.
    private(set) var deadline: NIODeadline?
    private var head: GRPCRequestHead
    private var reader: GRPCMessageReader
    private var path = ""
    /// This stream is a message stream (see the type's documentation).
    private(set) var isMessageStream = false
    /// The protocol the request's `content-type` names (gRPC when it names none we speak); the owner renders
    /// every answer in it, refusals of the head included.
    var wireProtocol: RPCWireProtocol {
        head.wireProtocol ?? .grpc
    }

    /// The protocol `content-type` names, `nil` when it names none the port speaks.
    var requestedProtocol: RPCWireProtocol? {
        head.wireProtocol
    }
    /// gRPC-Web text: the body is base64, decoded here before the message reader sees it.
    private var base64: Base64Decoder?
    /// Message streams: a dispatch is queued and not yet run.
    private var dispatchQueued = false
    /// Message streams: a response message was sent, so the end is trailers, not Trailers-Only.
    private var responseStarted = false
    /// Request body bytes received in any phase: after an early answer they say how much of a declared body is
    /// still to come.
    private var bodyBytesReceived = 0

    /// A stream whose request header block has begun, checked against these limits (see
    /// ``GRPCServerConfiguration``). Takes the three numbers rather than the configuration, which is not
    /// copied for every stream.
    /// `knownPath`: a path the owner saw before on this connection (``requestPath``), reused when this stream's
    /// `:path` has the same bytes.
    init(maxHeaderCount: Int, maxHeaderListBytes: Int, maxMessageBytes: Int, knownPath: String? = nil) {
        head = GRPCRequestHead(
            maxHeaderCount: maxHeaderCount, maxHeaderListBytes: maxHeaderListBytes, knownPath: knownPath)
        reader = GRPCMessageReader(maxMessageBytes: maxMessageBytes)
    }

    /// A stream checked against `configuration`'s limits.
    init(configuration: GRPCServerConfiguration) {
        self.init(
            maxHeaderCount: configuration.maxHeaderCount,
            maxHeaderListBytes: configuration.maxHeaderListBytes,
            maxMessageBytes: configuration.maxMessageBytes
        )
    }

    /// One request header field. Fields of any later header block (trailers) are not request fields: the
    /// framing layer does not pass them, and they are ignored here.
    @inline(__always)
    mutating func receivedHeaderField(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) {
        guard phase == .receivingHeaders else {
            return
        }
        head.add(name: name, value: value)
    }

    /// A header block ended. The first is the request head: it is validated, and the deadline starts. A later
    /// one is the client's trailers, which matter only when they end the stream.
    /// `isMessageStream` says whether the accepted path is a message stream; it is asked once per stream.
    mutating func receivedHeaders(
        endStream: Bool,
        clock: some GRPCClock,
        isMessageStream: (String) -> Bool = { _ in false }
    ) -> Action {
        guard phase == .receivingHeaders else {
            return endStream ? receivedEndOfStream() : .none
        }
        requestEnded = endStream
        switch head.validate() {
        case .failure(let rejection):
            return answer(rejection)
        case .success(let accepted):
            path = accepted.path
            phase = .receivingMessage
            if let timeout = accepted.timeout {
                deadline = clock.now() + timeout
            }
            if accepted.wireProtocol != .grpc {
                acceptWebProtocol(accepted.wireProtocol)
            } else if isMessageStream(accepted.path) {
                self.isMessageStream = true
                phase = .streaming
                reader.allowSeveralMessages()
                if endStream {
                    dispatchQueued = true
                    return .queueForDispatch
                }
                return deadline.map { .armDeadline($0) } ?? .none
            }
            if endStream {
                // Dispatched before the owner could run a timer; dispatch checks the deadline itself.
                phase = .awaitingDispatch
                return .queueForDispatch
            }
            return deadline.map { .armDeadline($0) } ?? .none
        }
    }

    /// Bytes of the request body. A body refused from its prefix (too large, compressed, a bad flag) or a
    /// second message is answered at once; bytes after the answer are dropped.
    ///
    /// `inPlace(n)`, when the framing layer can give it, is `bytes` without their first `n` as a slice of the
    /// buffer they were received in: a whole gRPC message in one chunk is then kept as that slice instead of
    /// copied (``GRPCMessageReader/takeWholeMessage(_:payload:)``).
    mutating func receivedData(
        _ bytes: UnsafeRawBufferPointer,
        allocator: ByteBufferAllocator,
        inPlace: (_ droppingFirst: Int) -> ByteBuffer? = { _ in nil }
    ) -> Action {
        bodyBytesReceived &+= bytes.count
        guard phase == .receivingMessage else {
            return phase == .streaming ? receivedStreamData(bytes, allocator: allocator) : .none
        }
        if base64 != nil {
            return receivedBase64(bytes, allocator: allocator)
        }
        if reader.takeWholeMessage(bytes, payload: inPlace) {
            return .none
        }
        if let rejection = reader.consume(bytes, allocator: allocator) {
            return answer(rejection)
        }
        return .none
    }

    /// The client ended the stream.
    mutating func receivedEndOfStream() -> Action {
        guard !requestEnded else {
            return .none
        }
        requestEnded = true
        if phase == .streaming {
            return queueStreamDispatch()
        }
        guard phase == .receivingMessage else {
            return .none
        }
        phase = .awaitingDispatch
        return .queueForDispatch
    }

    /// Takes the complete request for the service, unless its body is incomplete or wrong, or its deadline
    /// has passed (then the service is not called).
    mutating func dispatch(clock: some GRPCClock) -> Action {
        guard phase == .awaitingDispatch else {
            return phase == .streaming ? dispatchStream(clock: clock) : .none
        }
        if let base64 = base64, !base64.isAtBoundary {
            return answer(.status(GRPCStatus(.invalidArgument, "grpc-web-text body ends inside a base64 group")))
        }
        switch reader.finish() {
        case .failure(let rejection):
            return answer(rejection)
        case .success(let message):
            if let deadline = deadline, clock.now() >= deadline {
                return answer(.status(Self.deadlineExceeded))
            }
            phase = .dispatched
            var call = GRPCUnaryCall(path: path, message: message, deadline: deadline)
            if wireProtocol == .connect(json: true) {
                call.codec = .json
            }
            return .dispatch(call)
        }
    }

    /// The service answered. A reply that comes after the deadline is replaced by DEADLINE_EXCEEDED; a reply
    /// for a stream already answered or closed is dropped.
    mutating func replyReady(_ reply: GRPCUnaryReply, clock: some GRPCClock) -> Action {
        guard phase == .dispatched else {
            return phase == .streaming ? streamReplyReady(reply, clock: clock) : .none
        }
        if let deadline = deadline, clock.now() >= deadline {
            return answer(.status(Self.deadlineExceeded))
        }
        switch reply {
        case .message(let payload):
            guard payload.readableBytes <= Int(UInt32.max) else {
                return answer(.status(Self.responseTooLarge))
            }
            phase = .responding
            return .respond(payload)
        case .failure(let status):
            return answer(.status(status))
        case .deferred:
            // The owner waits for a deferred reply and passes the completed one.
            preconditionFailure("replyReady takes a completed reply")
        }
    }

    /// The deadline armed by ``Action/armDeadline(_:)`` passed: answer DEADLINE_EXCEEDED unless already
    /// answered.
    mutating func deadlineReached() -> Action {
        switch phase {
        case .receivingMessage, .awaitingDispatch, .dispatched:
            return answer(.status(Self.deadlineExceeded))
        case .streaming:
            return finishStream(Self.deadlineExceeded)
        case .receivingHeaders, .responding, .answered, .closed:
            return .none
        }
    }

    /// The most of a declared body (`content-length`) the client may still have to send after an early answer
    /// and be left to send it. Up to the smallest window HTTP/2 starts a stream with, the rest needs no
    /// WINDOW_UPDATE, so the upload simply completes and the stream closes at its END_STREAM. A reset instead
    /// meets some clients mid-upload, and they report it rather than the answer (curl 7.88 as its error 92).
    static let maxBodyBytesLeftToFinish = 65_535

    /// The header block that ends our side of the stream is on the wire. If the client is still uploading,
    /// it is told to stop, unless the rest of a declared body is small enough to let it finish (its bytes are
    /// dropped as they arrive). Submitted earlier, the reset would make the framing layer drop the answer.
    mutating func answerSent() -> Action {
        guard phase == .answered || phase == .responding, !requestEnded else {
            return .none
        }
        if let declared = head.declaredBodyLength, declared - bodyBytesReceived <= Self.maxBodyBytesLeftToFinish {
            return .none
        }
        requestEnded = true
        return .stopUpload
    }

    /// The stream is gone (closed after the answer, or reset by the client mid-call).
    mutating func closed() {
        phase = .closed
    }

    private mutating func answer(_ rejection: GRPCStreamRejection) -> Action {
        phase = .answered
        return .answer(rejection)
    }

    /// The request's `:path` as received (accepted or not), once its header block has begun arriving.
    var requestPath: String? {
        head.receivedPath
    }

    /// The request's `origin` header, for CORS.
    var origin: String? {
        head.origin
    }

    // MARK: - gRPC-Web and Connect

    private mutating func acceptWebProtocol(_ wireProtocol: RPCWireProtocol) {
        switch wireProtocol {
        case .connect:
            reader.expectBareBody()
        case .grpcWeb(let text):
            if text {
                base64 = Base64Decoder()
            }
        case .grpc:
            break
        }
    }

    private mutating func receivedBase64(_ bytes: UnsafeRawBufferPointer, allocator: ByteBufferAllocator) -> Action {
        guard let decoded = base64?.decode(bytes) else {
            return answer(.status(GRPCStatus(.invalidArgument, "grpc-web-text body is not valid base64")))
        }
        let rejection = decoded.withUnsafeBytes { reader.consume($0, allocator: allocator) }
        return rejection.map { answer($0) } ?? .none
    }

    // MARK: - Message streams

    private mutating func receivedStreamData(_ bytes: UnsafeRawBufferPointer, allocator: ByteBufferAllocator) -> Action
    {
        if let rejection = reader.consume(bytes, allocator: allocator) {
            guard responseStarted else {
                return answer(rejection)
            }
            return finishStream(rejection.grpcStatus ?? GRPCStatus(.invalidArgument, "malformed request"))
        }
        return reader.hasMessage ? queueStreamDispatch() : .none
    }

    private mutating func queueStreamDispatch() -> Action {
        guard !dispatchQueued else {
            return .none
        }
        dispatchQueued = true
        return .queueForDispatch
    }

    /// The next queued message as a call, or the end of the stream once the client has half-closed and every
    /// message is answered.
    private mutating func dispatchStream(clock: some GRPCClock) -> Action {
        dispatchQueued = false
        if let deadline = deadline, clock.now() >= deadline {
            return finishStream(Self.deadlineExceeded)
        }
        if let message = reader.nextMessage() {
            return .dispatch(GRPCUnaryCall(path: path, message: message, deadline: deadline))
        }
        guard requestEnded else {
            return .none
        }
        if let rejection = reader.streamEndRejection() {
            return finishStream(rejection.grpcStatus ?? GRPCStatus(.invalidArgument, "malformed request"))
        }
        return finishStream(GRPCStatus(.ok, ""))
    }

    private mutating func streamReplyReady(_ reply: GRPCUnaryReply, clock: some GRPCClock) -> Action {
        if let deadline = deadline, clock.now() >= deadline {
            return finishStream(Self.deadlineExceeded)
        }
        switch reply {
        case .message(let payload):
            guard payload.readableBytes <= Int(UInt32.max) else {
                return finishStream(Self.responseTooLarge)
            }
            responseStarted = true
            return .sendMessage(payload)
        case .failure(let status):
            return finishStream(status)
        case .deferred:
            preconditionFailure("replyReady takes a completed reply")
        }
    }

    /// Ends a message stream with `status`: trailers after the messages sent, or Trailers-Only before any.
    private mutating func finishStream(_ status: GRPCStatus) -> Action {
        guard responseStarted else {
            return answer(.status(status))
        }
        phase = .responding
        return .finish(status)
    }
}
