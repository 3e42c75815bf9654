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
/// | ``answerSent()`` | answered, upload unfinished | ``Action/stopUpload`` (RST_STREAM NO_ERROR) |
/// | ``closed()`` | any | none; every later event is ignored |
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

    /// A stream whose request header block has begun, checked against these limits (see
    /// ``GRPCServerConfiguration``). Takes the three numbers rather than the configuration, which is not
    /// copied for every stream.
    init(maxHeaderCount: Int, maxHeaderListBytes: Int, maxMessageBytes: Int) {
        self.head = GRPCRequestHead(maxHeaderCount: maxHeaderCount, maxHeaderListBytes: maxHeaderListBytes)
        self.reader = GRPCMessageReader(maxMessageBytes: maxMessageBytes)
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
        guard self.phase == .receivingHeaders else {
            return
        }
        self.head.add(name: name, value: value)
    }

    /// A header block ended. The first is the request head: it is validated, and the deadline starts. A later
    /// one is the client's trailers, which matter only when they end the stream.
    mutating func receivedHeaders(endStream: Bool, clock: some GRPCClock) -> Action {
        guard self.phase == .receivingHeaders else {
            return endStream ? self.receivedEndOfStream() : .none
        }
        self.requestEnded = endStream
        switch self.head.validate() {
        case .failure(let rejection):
            return self.answer(rejection)
        case .success(let accepted):
            self.path = accepted.path
            self.phase = .receivingMessage
            if let timeout = accepted.timeout {
                self.deadline = clock.now() + timeout
            }
            if endStream {
                // Dispatched before the owner could run a timer; dispatch checks the deadline itself.
                self.phase = .awaitingDispatch
                return .queueForDispatch
            }
            return self.deadline.map { .armDeadline($0) } ?? .none
        }
    }

    /// Bytes of the request body. A body refused from its prefix (too large, compressed, a bad flag) or a
    /// second message is answered at once; bytes after the answer are dropped.
    mutating func receivedData(_ bytes: UnsafeRawBufferPointer, allocator: ByteBufferAllocator) -> Action {
        guard self.phase == .receivingMessage else {
            return .none
        }
        if let rejection = self.reader.consume(bytes, allocator: allocator) {
            return self.answer(rejection)
        }
        return .none
    }

    /// The client ended the stream.
    mutating func receivedEndOfStream() -> Action {
        guard !self.requestEnded else {
            return .none
        }
        self.requestEnded = true
        guard self.phase == .receivingMessage else {
            return .none
        }
        self.phase = .awaitingDispatch
        return .queueForDispatch
    }

    /// Takes the complete request for the service, unless its body is incomplete or wrong, or its deadline
    /// has passed (then the service is not called).
    mutating func dispatch(clock: some GRPCClock) -> Action {
        guard self.phase == .awaitingDispatch else {
            return .none
        }
        switch self.reader.finish() {
        case .failure(let rejection):
            return self.answer(rejection)
        case .success(let message):
            if let deadline = self.deadline, clock.now() >= deadline {
                return self.answer(.status(Self.deadlineExceeded))
            }
            self.phase = .dispatched
            return .dispatch(GRPCUnaryCall(path: self.path, message: message, deadline: self.deadline))
        }
    }

    /// The service answered. A reply that comes after the deadline is replaced by DEADLINE_EXCEEDED; a reply
    /// for a stream already answered or closed is dropped.
    mutating func replyReady(_ reply: GRPCUnaryReply, clock: some GRPCClock) -> Action {
        guard self.phase == .dispatched else {
            return .none
        }
        if let deadline = self.deadline, clock.now() >= deadline {
            return self.answer(.status(Self.deadlineExceeded))
        }
        switch reply {
        case .message(let payload):
            guard payload.readableBytes <= Int(UInt32.max) else {
                return self.answer(.status(Self.responseTooLarge))
            }
            self.phase = .responding
            return .respond(payload)
        case .failure(let status):
            return self.answer(.status(status))
        }
    }

    /// The deadline armed by ``Action/armDeadline(_:)`` passed: answer DEADLINE_EXCEEDED unless already
    /// answered.
    mutating func deadlineReached() -> Action {
        switch self.phase {
        case .receivingMessage, .awaitingDispatch, .dispatched:
            return self.answer(.status(Self.deadlineExceeded))
        case .receivingHeaders, .responding, .answered, .closed:
            return .none
        }
    }

    /// The header block that ends our side of the stream is on the wire. If the client is still uploading,
    /// it is told to stop; submitted earlier, the reset would make the framing layer drop the answer.
    mutating func answerSent() -> Action {
        guard self.phase == .answered || self.phase == .responding, !self.requestEnded else {
            return .none
        }
        self.requestEnded = true
        return .stopUpload
    }

    /// The stream is gone (closed after the answer, or reset by the client mid-call).
    mutating func closed() {
        self.phase = .closed
    }

    private mutating func answer(_ rejection: GRPCStreamRejection) -> Action {
        self.phase = .answered
        return .answer(rejection)
    }
}
