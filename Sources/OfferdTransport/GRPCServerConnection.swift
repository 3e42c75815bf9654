import Logging
import NIOCore

/// Unary gRPC over one HTTP/2 connection: joins the three parts that each do one thing.
///
/// - ``NGHTTP2ServerSession`` does all of HTTP/2 (framing, HPACK, flow control, stream states, SETTINGS and
///   PING acknowledgements, connection errors, flood limits) and reports what arrives as events;
/// - one ``GRPCServerStreamStateMachine`` per stream turns those events into actions (answer, dispatch,
///   respond, arm a deadline, stop an upload);
/// - ``GRPCResponseRendering`` and ``GRPCResponseBody`` say what answers look like.
///
/// This type performs the actions: it submits answers to the session, calls the service, keeps the deadline
/// timers and counts calls. It does no I/O: `GRPCServerConnectionHandler` feeds it bytes (`receive`) and
/// writes what it produces (`drainOutput`).
///
/// ## When the service runs
/// Never inside an nghttp2 callback: a request that completes during `receive` is queued and dispatched after
/// nghttp2 returns, so application code never runs with nghttp2 mid-frame.
///
/// ## Stream life
/// A stream entry is created when a request HEADERS frame begins and removed when nghttp2 closes the stream.
/// nghttp2 keeps a pointer to it as the stream's user data, so callbacks find it through nghttp2's own stream
/// map (no hashing of our own per callback); ``openStreams`` owns it meanwhile.
/// Each stream is answered exactly once (the state machine's guarantee): by the service, by the transport
/// (``GRPCStreamRejection``) as soon as the request is known to be unacceptable, or by its deadline timer.
///
/// ## Memory bound
/// At most `maxConcurrentStreams` streams, each buffering at most `maxMessageBytes` (reserved only after the
/// length prefix passed the limit): 100 x 64 KiB = 6.4 MiB per connection with the defaults.
final class GRPCServerConnection: NGHTTP2ServerSessionDelegate {
    /// One open stream. A class so session callbacks update it in place, found through nghttp2's stream user
    /// data.
    private final class Stream {
        let id: Int32
        /// Where it is in ``GRPCServerConnection/openStreams``.
        var openIndex: Int
        var machine: GRPCServerStreamStateMachine
        var deadlineTimer: Scheduled<Void>?
        /// The response message being written, from ``GRPCServerStreamStateMachine/Action/respond(_:)`` until
        /// its last byte is handed to nghttp2.
        var body: GRPCResponseBody?
        /// Message streams: replies not yet fully handed to nghttp2, oldest first.
        var messages: [GRPCResponseBody] = []
        /// Message streams: the trailers once the stream is finished.
        var trailers: GRPCHeaderBlock?
        /// Message streams: the response headers and the body reader are submitted.
        var responseSubmitted = false

        init(id: Int32, openIndex: Int, machine: GRPCServerStreamStateMachine) {
            self.id = id
            self.openIndex = openIndex
            self.machine = machine
        }
    }

    private let session: NGHTTP2ServerSession
    private let service: any GRPCUnaryService
    private let configuration: GRPCServerConfiguration
    private let eventLoop: any EventLoop
    private let clock: any GRPCClock
    private let allocator: ByteBufferAllocator
    private let callCounter: GRPCActiveCallCounter
    private let cors: CORSPolicy
    private var logger: Logger
    /// The streams nghttp2 has not closed yet, in no order (a closed one's place goes to the last): they own the
    /// `Stream` objects nghttp2 points to. Found by id through ``stream(_:)``.
    private var openStreams: [Stream] = []
    /// The stream found last, unretained: nghttp2 reports a request as a run of callbacks for one stream (headers
    /// began, each header, headers ended, data, end), so this answers most lookups without asking nghttp2.
    /// Cleared when that stream closes.
    private var recentStreamID: Int32 = 0
    private var recentStream: Unmanaged<Stream>?
    /// Streams whose request completed during the current `receive`, dispatched once nghttp2 returned.
    private var readyStreams: [Stream] = []
    /// The bytes being fed to nghttp2 during `receive`: a request message that arrives whole in the DATA frame
    /// ending its stream is kept as a slice of them (``receivedSlice(_:droppingFirst:)``), not copied.
    private var receiving: ByteBuffer?
    /// The last request's `:path`: the next stream reuses the string when its path is the same (clients call
    /// one method over and over).
    private var lastPath: String?

    /// Called when something other than incoming bytes (a deadline timer) produced output to write.
    var onAsynchronousOutput: (() -> Void)?

    /// Creates the session, configures it and queues the server's SETTINGS.
    init(
        configuration: GRPCServerConfiguration,
        service: any GRPCUnaryService,
        eventLoop: any EventLoop,
        clock: any GRPCClock,
        allocator: ByteBufferAllocator,
        callCounter: GRPCActiveCallCounter,
        logger: Logger
    ) throws(NGHTTP2Error) {
        session = try NGHTTP2ServerSession(configuration: configuration)
        self.configuration = configuration
        self.service = service
        self.eventLoop = eventLoop
        self.clock = clock
        self.allocator = allocator
        self.callCounter = callCounter
        cors = CORSPolicy(allowedOrigins: Set(configuration.corsAllowedOrigins))
        self.logger = logger
        super.init()
        readyStreams.reserveCapacity(Int(min(configuration.maxConcurrentStreams, 128)))
        openStreams.reserveCapacity(Int(min(configuration.maxConcurrentStreams, 128)))
        session.setDelegate(self)
    }

    // MARK: - Driving the connection

    /// Feeds received bytes to nghttp2, then answers every request that completed in them.
    /// Throws when the connection is beyond repair (bad preface, flood, ...); call `terminate` then.
    func receive(_ bytes: ByteBuffer) throws(NGHTTP2Error) {
        receiving = bytes
        defer { receiving = nil }
        try session.receive(bytes)
        dispatchReadyStreams()
    }

    /// `chunk` without its first `count` bytes as a slice of ``receiving``, when `chunk` lies inside it (nghttp2
    /// hands DATA payloads out of the buffer it was given; a frame split across reads, or anything else, is
    /// not, and is copied instead). The slice shares the received buffer's storage: only messages whose stream
    /// ends in the same frame are taken this way, so that it is dispatched, and let go, within this `receive`
    /// rather than pinning a read buffer while a stream stays open.
    private func receivedSlice(_ chunk: UnsafeRawBufferPointer, droppingFirst count: Int) -> ByteBuffer? {
        guard let receiving, let start = chunk.baseAddress, count <= chunk.count else {
            return nil
        }
        let offset: Int? = receiving.withUnsafeReadableBytes { all in
            guard let base = all.baseAddress else {
                return nil
            }
            let offset = base.distance(to: start)
            return offset >= 0 && offset <= all.count - chunk.count ? offset : nil
        }
        guard let offset else {
            return nil
        }
        return receiving.getSlice(at: receiving.readerIndex + offset + count, length: chunk.count - count)
    }

    /// Collects everything nghttp2 wants to send into one buffer; `nil` when there is nothing.
    func drainOutput() throws(NGHTTP2Error) -> ByteBuffer? {
        try session.drainOutput(allocator: allocator)
    }

    /// True when nghttp2 neither expects nor has anything more: the connection can be closed.
    var isFinished: Bool { session.isFinished }

    /// Number of streams not yet closed.
    var openStreamCount: Int { openStreams.count }

    /// Sends GOAWAY(NO_ERROR) naming the highest stream processed so far: streams up to it are finished, later
    /// ones are refused, and the connection ends once the last stream closes. Idempotent.
    func beginGracefulShutdown() {
        do {
            try session.submitGracefulGoAway()
        } catch {
            logger.debug("could not submit GOAWAY", metadata: ["error": "\(error)"])
        }
    }

    /// Ends the connection after an unrecoverable error: queues GOAWAY with `errorCode`, after which nghttp2
    /// reads nothing more.
    func terminate(errorCode: UInt32) {
        session.terminate(errorCode: errorCode)
    }

    /// Releases per-stream resources when the channel goes away (timers, call counts).
    func tearDown() {
        for stream in openStreams {
            stream.deadlineTimer?.cancel()
            // nghttp2 must not hand out a pointer to a stream released here.
            session.setStreamUserData(stream.id, nil)
        }
        callCounter.subtract(openStreams.count)
        recentStream = nil
        openStreams.removeAll()
        readyStreams.removeAll()
        onAsynchronousOutput = nil
    }

    // MARK: - Performing actions

    /// The open stream `streamID`, from nghttp2's stream user data; `nil` once it is closed.
    @inline(__always)
    private func stream(_ streamID: Int32) -> Stream? {
        guard let pointer = session.streamUserData(streamID) else {
            return nil
        }
        // Unretained: `openStreams` owns every stream nghttp2 points to, until it closes.
        return Unmanaged<Stream>.fromOpaque(pointer).takeUnretainedValue()
    }

    /// Calls `body` with the open stream `streamID`, borrowed: no reference counting on the hot path. Safe because
    /// `openStreams` holds the stream until ``sessionStreamClosed(_:)``, which nghttp2 never calls from inside
    /// another callback, and nothing `body` does (performing actions, calling the service, submitting frames)
    /// closes a stream: nghttp2 closes streams only while it reads or writes frames.
    @inline(__always)
    private func withStream<Result>(_ streamID: Int32, orElse absent: Result, _ body: (Stream) -> Result) -> Result {
        if streamID == recentStreamID, let stream = recentStream {
            return stream._withUnsafeGuaranteedRef(body)
        }
        guard let pointer = session.streamUserData(streamID) else {
            return absent
        }
        let stream = Unmanaged<Stream>.fromOpaque(pointer)
        recentStreamID = streamID
        recentStream = stream
        return stream._withUnsafeGuaranteedRef(body)
    }

    /// Does what a stream's state machine asked for.
    private func perform(_ action: GRPCServerStreamStateMachine.Action, on stream: Stream, streamID: Int32) {
        switch action {
        case .none:
            break
        case .armDeadline(let deadline):
            stream.deadlineTimer = eventLoop.assumeIsolated().scheduleTask(deadline: deadline) {
                [weak self] in
                self?.deadlineReached(streamID: streamID)
            }
        case .queueForDispatch:
            readyStreams.append(stream)
        case .dispatch(let call):
            var reply = service.handle(call, allocator: allocator)
            if case .deferred(let pending) = reply {
                guard stream.machine.isMessageStream else {
                    // The deadline timer stays armed while the reply is pending.
                    awaitReply(pending, on: stream, streamID: streamID)
                    return
                }
                reply = .failure(GRPCStatus(.internalError, "a message stream's reply cannot be deferred"))
            }
            // The reply is checked against the deadline, so the timer has nothing left to do (a message stream
            // keeps it: it covers the whole stream).
            if !stream.machine.isMessageStream {
                cancelDeadline(stream)
            }
            perform(stream.machine.replyReady(reply, clock: clock), on: stream, streamID: streamID)
        case .respond(let payload) where stream.machine.wireProtocol != .grpc:
            cancelDeadline(stream)
            let response = RPCResponseRendering.message(
                payload, wireProtocol: stream.machine.wireProtocol, origin: stream.machine.origin, cors: cors,
                allocator: allocator
            )
            submitWhole(response, on: stream, streamID: streamID)
        case .answer(let rejection) where stream.machine.wireProtocol != .grpc || rejection == .preflight:
            cancelDeadline(stream)
            let response = RPCResponseRendering.answer(
                rejection, wireProtocol: stream.machine.wireProtocol, origin: stream.machine.origin, cors: cors,
                allocator: allocator
            )
            submitWhole(response, on: stream, streamID: streamID)
        case .respond(let payload):
            cancelDeadline(stream)
            stream.body = GRPCResponseBody(payload: payload)
            do {
                try session.submitResponse(streamID, headers: StaticHeaderBlock.successHeaders)
            } catch {
                stream.body = nil
                submitFailed(streamID: streamID, error)
            }
        case .answer(let rejection):
            cancelDeadline(stream)
            stream.body = nil
            do {
                try session.submitHeadersOnly(streamID, headers: GRPCResponseRendering.answer(rejection))
            } catch {
                submitFailed(streamID: streamID, error)
            }
        case .stopUpload:
            session.submitReset(streamID, errorCode: HTTP2ErrorCode.noError)
        case .sendMessage(let payload):
            stream.messages.append(GRPCResponseBody(payload: payload))
            submitOrResumeStreamBody(stream, streamID: streamID)
            // The next queued message, or the end once the client has half-closed. Recursion depth is bounded
            // by the messages one read can queue (GRPCMessageReader.maxQueuedMessages).
            perform(stream.machine.dispatch(clock: clock), on: stream, streamID: streamID)
        case .finish(let status):
            cancelDeadline(stream)
            stream.trailers = GRPCResponseRendering.trailers(status)
            submitOrResumeStreamBody(stream, streamID: streamID)
        }
    }

    /// A deferred reply: answered on this event loop once complete, if the stream is still open then (a reset
    /// or a closed connection removed it from `openStreams`, and nothing of it is touched any more; the deadline
    /// may have answered it, and the state machine drops the late reply). Looked up by identity in `openStreams`,
    /// not through nghttp2's stream user data, which may point to a stream a closed connection already released.
    private func awaitReply(_ pending: GRPCPendingReply, on stream: Stream, streamID: Int32) {
        pending.futureResult(on: eventLoop).assumeIsolated().whenSuccess { [weak self] reply in
            guard let self, openStreams.contains(where: { $0 === stream }) else {
                return
            }
            cancelDeadline(stream)
            perform(stream.machine.replyReady(reply, clock: clock), on: stream, streamID: streamID)
            onAsynchronousOutput?()
        }
    }

    /// Connect, gRPC-Web and CORS answers: headers built for this response, then the body as is (or none).
    private func submitWhole(_ response: RenderedHTTPResponse, on stream: Stream, streamID: Int32) {
        do {
            if response.body.readableBytes == 0 {
                stream.body = nil
                try session.submitHeadersOnly(streamID, headers: response.headerBlock)
            } else {
                stream.body = GRPCResponseBody(bare: response.body)
                try session.submitResponse(streamID, dynamicHeaders: response.headerBlock)
            }
        } catch {
            stream.body = nil
            submitFailed(streamID: streamID, error)
        }
    }

    /// Message streams: the first reply submits the response headers and the body reader; later replies and
    /// the trailers wake the reader, which nghttp2 parked when it ran out of messages.
    private func submitOrResumeStreamBody(_ stream: Stream, streamID: Int32) {
        guard !stream.responseSubmitted else {
            session.resumeData(streamID)
            return
        }
        stream.responseSubmitted = true
        do {
            try session.submitResponse(streamID, headers: StaticHeaderBlock.successHeaders)
        } catch {
            stream.messages.removeAll()
            submitFailed(streamID: streamID, error)
        }
    }

    private func cancelDeadline(_ stream: Stream) {
        stream.deadlineTimer?.cancel()
        stream.deadlineTimer = nil
    }

    private func submitFailed(streamID: Int32, _ error: NGHTTP2Error) {
        logger.debug("could not submit answer", metadata: ["stream": "\(streamID)", "error": "\(error)"])
        session.submitReset(streamID, errorCode: HTTP2ErrorCode.internalError)
    }

    private func dispatchReadyStreams() {
        guard !readyStreams.isEmpty else {
            return
        }
        // A stream closed meanwhile (reset in the same read) is in phase closed: dispatch does nothing.
        for stream in readyStreams {
            perform(stream.machine.dispatch(clock: clock), on: stream, streamID: stream.id)
        }
        readyStreams.removeAll(keepingCapacity: true)
    }

    /// A deadline timer fired before the stream was answered.
    private func deadlineReached(streamID: Int32) {
        guard let stream = stream(streamID) else {
            return
        }
        stream.deadlineTimer = nil
        let action = stream.machine.deadlineReached()
        perform(action, on: stream, streamID: streamID)
        switch action {
        case .answer, .finish:
            onAsynchronousOutput?()
        default:
            break
        }
    }

    // MARK: - Session events (overrides: extensions cannot override)

    override func sessionStreamOpened(_ streamID: Int32) {
        let stream = Stream(
            id: streamID,
            openIndex: openStreams.count,
            machine: GRPCServerStreamStateMachine(
                maxHeaderCount: configuration.maxHeaderCount,
                maxHeaderListBytes: configuration.maxHeaderListBytes,
                maxMessageBytes: configuration.maxMessageBytes,
                knownPath: lastPath
            )
        )
        // nghttp2 opened the stream before this callback, so it knows it; if it did not, the stream would never
        // be closed either, and is not tracked.
        guard session.setStreamUserData(streamID, Unmanaged.passUnretained(stream).toOpaque()) else {
            return
        }
        openStreams.append(stream)
        callCounter.add(1)
    }

    override func sessionReceivedHeaderField(
        _ streamID: Int32, name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer
    ) {
        withStream(streamID, orElse: ()) { $0.machine.receivedHeaderField(name: name, value: value) }
    }

    override func sessionReceivedHeaders(_ streamID: Int32, endStream: Bool) {
        withStream(streamID, orElse: ()) { stream in
            let service = service
            let action = stream.machine.receivedHeaders(endStream: endStream, clock: clock) {
                service.isMessageStream(path: $0)
            }
            if let path = stream.machine.requestPath {
                lastPath = path
            }
            perform(action, on: stream, streamID: streamID)
        }
    }

    override func sessionReceivedData(_ streamID: Int32, _ bytes: UnsafeRawBufferPointer, inFinalFrame: Bool) {
        withStream(streamID, orElse: ()) { stream in
            let action =
                inFinalFrame
                ? stream.machine.receivedData(bytes, allocator: allocator) {
                    receivedSlice(bytes, droppingFirst: $0)
                }
                : stream.machine.receivedData(bytes, allocator: allocator)
            perform(action, on: stream, streamID: streamID)
        }
    }

    override func sessionReceivedEndOfStream(_ streamID: Int32) {
        withStream(streamID, orElse: ()) { stream in
            perform(stream.machine.receivedEndOfStream(), on: stream, streamID: streamID)
        }
    }

    override func sessionSentEndOfStream(_ streamID: Int32) {
        withStream(streamID, orElse: ()) { stream in
            perform(stream.machine.answerSent(), on: stream, streamID: streamID)
        }
    }

    override func sessionStreamClosed(_ streamID: Int32) {
        guard let stream = stream(streamID) else {
            return
        }
        stream.machine.closed()
        cancelDeadline(stream)
        callCounter.subtract(1)
        if streamID == recentStreamID {
            recentStream = nil
        }
        // nghttp2 forgets the stream, and its pointer, once this callback returns.
        let last = openStreams.removeLast()
        if last !== stream {
            last.openIndex = stream.openIndex
            openStreams[stream.openIndex] = last
        }
    }

    override func sessionReadResponseBody(_ streamID: Int32, into destination: UnsafeMutableRawBufferPointer)
        -> NGHTTP2BodyChunk
    {
        let chunk: NGHTTP2BodyChunk? = withStream(streamID, orElse: nil) { stream in
            // Written in place through the optional: the payload is never referenced twice, so never copied.
            guard let written = stream.body?.write(into: destination) else {
                return nil
            }
            if stream.body?.isComplete == true {
                let endsWithTrailers = stream.body?.endsWithTrailers ?? true
                stream.body = nil
                return endsWithTrailers ? .last(written, trailers: StaticHeaderBlock.successTrailers) : .end(written)
            }
            return .bytes(written)
        }
        return chunk ?? readStreamBody(streamID, into: destination)
    }
}

extension GRPCServerConnection {
    /// Message streams: as many queued replies as fit, then the trailers once the stream is finished; deferred
    /// while it waits for the next reply.
    private func readStreamBody(_ streamID: Int32, into destination: UnsafeMutableRawBufferPointer) -> NGHTTP2BodyChunk
    {
        guard let stream = stream(streamID), stream.machine.isMessageStream else {
            return .unavailable
        }
        var written = 0
        while written < destination.count, !stream.messages.isEmpty {
            written += stream.messages[0].write(into: UnsafeMutableRawBufferPointer(rebasing: destination[written...]))
            if stream.messages[0].isComplete {
                stream.messages.removeFirst()
            }
        }
        if stream.messages.isEmpty, let trailers = stream.trailers {
            stream.trailers = nil
            return .lastWithTrailers(written, trailers: trailers)
        }
        return written > 0 ? .bytes(written) : .deferred
    }
}

@available(*, unavailable)
extension GRPCServerConnection: Sendable {}
