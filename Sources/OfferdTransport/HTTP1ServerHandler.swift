import Logging
import NIOCore
import NIOHTTP1

/// Connect unary and gRPC-Web over HTTP/1.1: one request at a time (NIOHTTP1's pipelining handler holds later
/// ones back), each run through the same ``GRPCServerStreamStateMachine`` as an HTTP/2 stream, so the checks,
/// the limits, the deadline and the service call are gRPC's; only the framing differs. Answers are rendered by
/// ``RPCResponseRendering``.
///
/// Differences from HTTP/2, all forced by HTTP/1.1:
/// - plain gRPC (`application/grpc`) is refused with 415: it needs HTTP/2; this and the other refusals of a
///   request that is none of the port's protocols (405, 415) close the connection after the answer;
/// - an answer sent before the request body has fully arrived (a refused head, an oversized body) is followed
///   by reading and dropping the rest of the body (never buffered; bounded by the request timer);
/// - timing (``HTTP1ConnectionTimer``): an idle connection is closed after the idle timeout; once a request's
///   first byte arrives the whole request must arrive within `http1RequestTimeout`, or 408 and close.
///
/// Limits before allocation: the request head is bounded by NIOHTTP1's decoder limits (16 KiB of header
/// list, 64 fields, 400 and close beyond, as for a malformed request or bad chunked encoding: the 400 is
/// written by ``errorCaught(context:error:)``), the body by
/// the message reader (`maxMessageBytes`, counted as it arrives, so chunked bodies are bounded too).
final class HTTP1ServerHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private let configuration: GRPCServerConfiguration
    private let service: any GRPCUnaryService
    private let cors: CORSPolicy
    private let logger: Logger
    private let clock: any GRPCClock
    let timer: HTTP1ConnectionTimer

    private var machine: GRPCServerStreamStateMachine?
    private var keepAlive = true
    private var answered = false
    private var requestEnded = false
    private var isHead = false
    private var deadlineTimer: Scheduled<Void>?
    private var context: ChannelHandlerContext?
    private var quiescing = false
    private var readPending = false
    private var isUpgrade = false
    private var stoppedReading = false
    /// Counts request heads, so that a deferred reply answers only the request it belongs to.
    private var requestNumber = 0

    init(configuration: GRPCServerConfiguration, service: any GRPCUnaryService, logger: Logger, clock: any GRPCClock) {
        self.configuration = configuration
        self.service = service
        cors = CORSPolicy(allowedOrigins: Set(configuration.corsAllowedOrigins))
        self.logger = logger
        self.clock = clock
        timer = HTTP1ConnectionTimer(
            idleTimeout: configuration.idleTimeout, requestTimeout: configuration.http1RequestTimeout
        )
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        timer.onExpiry = { [weak self] requestStarted in
            self?.timerExpired(requestStarted: requestStarted)
        }
        timer.start(eventLoop: context.eventLoop)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        tearDown()
    }

    func channelInactive(context: ChannelHandlerContext) {
        tearDown()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A malformed request or a socket error: nothing more to read. A malformed request is told so first
        // (what NIOHTTP1's HTTPServerProtocolErrorHandler does, without a handler on every request's way; no
        // answer of ours is ever half-written here, each is written whole at once).
        logger.debug("HTTP/1.1 connection error", metadata: ["error": "\(error)"])
        if error is HTTPParserError {
            let head = HTTPResponseHead(
                version: .http1_1, status: .badRequest,
                headers: HTTPHeaders([("connection", "close"), ("content-length", "0")]))
            context.write(wrapOutboundOut(.head(head)), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
        context.close(promise: nil)
    }

    func read(context: ChannelHandlerContext) {
        // After an upgrade request nothing more is read (see `receivedHead`).
        guard !stoppedReading else { return }
        // A client that does not read its answers stops being read from.
        if context.channel.isWritable {
            context.read()
        } else {
            readPending = true
            timer.readingHeldBack()
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable && readPending && !stoppedReading {
            readPending = false
            timer.readingResumed()
            context.read()
        }
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            // Finish the request in progress (its answer says `connection: close`); close an idle connection.
            quiescing = true
            if machine == nil {
                context.close(promise: nil)
            }
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            receivedHead(head, context: context)
        case .body(let bytes):
            guard !answered, machine != nil else {
                return
            }
            let allocator = context.channel.allocator
            let action = bytes.withUnsafeReadableBytes { raw in
                machine?.receivedData(raw, allocator: allocator) ?? .none
            }
            perform(action, context: context)
        case .end:
            requestEnded = true
            timer.requestEnded()
            if isUpgrade {
                // NIOHTTP1 parses nothing after an upgrade request and would buffer whatever follows: read no
                // more. Its answer (sent or to come) closes the connection.
                stoppedReading = true
            }
            timer.requestArrived()
            guard let action = machine?.receivedEndOfStream() else {
                // Answered before the body ended: the rest of the body was read and dropped; idle again.
                if answered {
                    timer.responseSent()
                }
                return
            }
            perform(action, context: context)
        }
    }

    private func receivedHead(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        var machine = GRPCServerStreamStateMachine(configuration: configuration)
        requestNumber &+= 1
        // A head that arrived behind pipelined requests (its first bytes came with theirs) starts its own clock.
        timer.requestBegan()
        answered = false
        requestEnded = false
        isHead = head.method == .HEAD
        machine.add(":method", head.method.rawValue)
        machine.add(":path", head.uri)
        // One pass over the fields: the state machine's, and the HTTP/1.1 ones read here (NIOHTTP1's lookups
        // would each walk the list again, and `headers[canonicalForm:]` allocates).
        var hasUpgrade = false
        var connectionUpgrade = false
        var expectsContinue = false
        for (name, value) in head.headers {
            // Field names are compared as HTTP/2 sends them, lower-case; most clients already send them so.
            let lowerName = name.utf8.contains(where: { $0 >= 0x41 && $0 <= 0x5A }) ? name.lowercased() : name
            machine.add(lowerName, value)
            switch lowerName.utf8.count {
            case 6 where lowerName == "expect":
                expectsContinue = expectsContinue || Self.equalsIgnoringCase(value.utf8, "100-continue")
            case 7 where lowerName == "upgrade":
                hasUpgrade = true
            case 10 where lowerName == "connection":
                for token in value.utf8.split(separator: UInt8(ascii: ",")) {
                    let isBlank = { (byte: UInt8) in byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") }
                    var trimmed = token.drop(while: isBlank)
                    while let last = trimmed.last, isBlank(last) { trimmed = trimmed.dropLast() }
                    connectionUpgrade = connectionUpgrade || Self.equalsIgnoringCase(trimmed, "upgrade")
                }
            default:
                break
            }
        }
        // llhttp takes CONNECT, or `upgrade` with a `connection: upgrade` token, for a switch of protocol and
        // parses nothing after that request's end; offerd upgrades to nothing (h2c included: HTTP/2 needs the
        // preface), so such a request is answered over HTTP/1.1 and the connection closes after it.
        isUpgrade = head.method == .CONNECT || (hasUpgrade && connectionUpgrade)
        keepAlive = head.isKeepAlive && !quiescing && !isUpgrade
        let isPlainGRPC = machine.requestedProtocol == .grpc
        self.machine = machine
        if isPlainGRPC, head.method == .POST {
            // gRPC needs HTTP/2 (trailers, multiplexing): an HTTP/1.1 gRPC request is not one of ours.
            keepAlive = false
            writeResponse(RenderedHTTPResponse(status: 415, fields: [], body: ByteBuffer()), context: context)
            return
        }
        let action = self.machine?.receivedHeaders(endStream: false, clock: self.clock) ?? .none
        if case .answer = action {
            // Refused from its head: no 100 Continue, the answer goes out at once.
        } else if expectsContinue {
            // curl asks before sending a body over 1 KiB and would otherwise wait a second.
            context.writeAndFlush(
                wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .continue))), promise: nil
            )
        }
        perform(action, context: context)
    }

    /// ASCII case-insensitive equality with a lower-case literal.
    private static func equalsIgnoringCase(_ bytes: some Collection<UInt8>, _ lowercase: StaticString) -> Bool {
        let expected = UnsafeBufferPointer(start: lowercase.utf8Start, count: lowercase.utf8CodeUnitCount)
        guard bytes.count == expected.count else { return false }
        return zip(bytes, expected).allSatisfy { ($0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0) == $1 }
    }

    /// Does what the state machine asked for; the same actions an HTTP/2 stream performs.
    private func perform(_ action: GRPCServerStreamStateMachine.Action, context: ChannelHandlerContext) {
        switch action {
        case .none, .stopUpload, .sendMessage, .finish:
            // Message streams are HTTP/2 gRPC only; stopping an upload is done by closing after the answer.
            break
        case .armDeadline(let deadline):
            deadlineTimer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) {
                [weak self] in
                guard let self, let context = self.context else { return }
                deadlineTimer = nil
                if let action = machine?.deadlineReached() {
                    perform(action, context: context)
                }
            }
        case .queueForDispatch:
            // Not inside a parser callback: NIOHTTP1 delivered a whole part. Dispatch now.
            if let next = machine?.dispatch(clock: clock) {
                perform(next, context: context)
            }
        case .dispatch(let call):
            let reply = service.handle(call, allocator: context.channel.allocator)
            if case .deferred(let pending) = reply {
                // The deadline timer stays armed while the reply is pending; NIOHTTP1's pipelining handler holds
                // later requests back until this one's answer ends.
                let request = requestNumber
                pending.futureResult(on: context.eventLoop).assumeIsolated().whenSuccess { [weak self] reply in
                    // Dropped when the connection went away or the request was answered meanwhile (deadline, 408).
                    guard let self, let context = self.context, self.requestNumber == request, self.machine != nil
                    else { return }
                    cancelDeadline()
                    if let next = machine?.replyReady(reply, clock: clock) {
                        perform(next, context: context)
                    }
                }
                return
            }
            cancelDeadline()
            if let next = machine?.replyReady(reply, clock: clock) {
                perform(next, context: context)
            }
        case .respond(let payload):
            guard let machine = machine else { return }
            writeResponse(
                RPCResponseRendering.message(
                    payload, wireProtocol: machine.wireProtocol, origin: machine.origin, cors: cors,
                    allocator: context.channel.allocator
                ),
                context: context
            )
        case .answer(let rejection):
            guard let machine = machine else { return }
            if rejection == .methodNotAllowed || rejection == .unsupportedMediaType {
                // Not one of the port's protocols: answered, then the connection closes.
                keepAlive = false
            }
            writeResponse(
                RPCResponseRendering.answer(
                    rejection,
                    wireProtocol: machine.wireProtocol == .grpc ? .connect(json: true) : machine.wireProtocol,
                    origin: machine.origin, cors: cors, allocator: context.channel.allocator
                ),
                context: context
            )
        }
    }

    private func writeResponse(_ response: RenderedHTTPResponse, context: ChannelHandlerContext) {
        cancelDeadline()
        answered = true
        // An answer before the whole body arrived: the rest of the body is read and dropped (bounded in time
        // by the request timer, never buffered), then the connection serves the next request.
        let closeAfter = !keepAlive || quiescing
        // The rendered fields never include these two.
        var headers = HTTPHeaders()
        headers.reserveCapacity(response.fields.count + 2)
        for field in response.fields {
            headers.add(name: field.name, value: field.value)
        }
        headers.add(name: "content-length", value: String(response.body.readableBytes))
        if closeAfter {
            headers.add(name: "connection", value: "close")
        }
        let status = HTTPResponseStatus(statusCode: response.status)
        context.write(
            wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))),
            promise: nil)
        if response.body.readableBytes > 0 && !isHead {
            context.write(wrapOutboundOut(.body(.byteBuffer(response.body))), promise: nil)
        }
        // Everything about this request is settled before its end is written: writing it makes NIOHTTP1's
        // pipelining handler deliver the requests it held back, from inside the write, and they start afresh.
        machine = nil
        guard closeAfter else {
            if requestEnded {
                timer.responseSent()
            }
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            return
        }
        let channel = context.channel
        let written = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: written)
        written.futureResult.whenComplete { _ in channel.close(promise: nil) }
    }

    private func timerExpired(requestStarted: Bool) {
        guard let context = context else { return }
        if requestStarted && !answered && machine != nil {
            // Too slow to send its request body (slowloris): say so, then close. A head that never completed
            // gets no answer (NIOHTTP1 has no request to answer): the connection is just closed.
            keepAlive = false
            writeResponse(RenderedHTTPResponse(status: 408, fields: [], body: ByteBuffer()), context: context)
        } else {
            context.close(promise: nil)
        }
    }

    private func cancelDeadline() {
        deadlineTimer?.cancel()
        deadlineTimer = nil
    }

    private func tearDown() {
        cancelDeadline()
        timer.stop()
        machine = nil
        context = nil
    }
}

@available(*, unavailable)
extension HTTP1ServerHandler: Sendable {}

extension GRPCServerStreamStateMachine {
    /// Adds one request field given as strings (HTTP/1.1 heads arrive decoded).
    fileprivate mutating func add(_ name: String, _ value: String) {
        var name = name
        var value = value
        name.withUTF8 { nameBytes in
            value.withUTF8 { valueBytes in
                receivedHeaderField(
                    name: UnsafeRawBufferPointer(nameBytes), value: UnsafeRawBufferPointer(valueBytes))
            }
        }
    }
}

/// An HTTP/1.1 connection's one timer: while idle it closes the connection after the idle timeout; once the
/// first byte of a request arrives (``bytesArrived()``, from the raw byte stream before the decoder, or
/// ``requestBegan()`` for a request whose first bytes came with earlier ones), the whole request must arrive
/// within the request timeout. Stopped while a complete request is being answered.
///
/// A request's bytes can arrive behind complete requests in the same read and stop there (a head cut short):
/// ``HTTP1RequestDecoder`` tells the timer, once a read is parsed, whether a request is left unfinished
/// (``readParsed(requestUnfinished:)``), and such a connection stays on the request clock after its answers.
///
/// While the handler holds back reading because the client does not read its answers (``readingHeldBack()``),
/// the rest of a request may be waiting unread in the socket: the request clock would time the server's hold,
/// not the client's sending, and closed a client that pipelined many requests and read their answers slowly.
/// The idle clock runs instead, so a client that never reads is closed after the idle timeout; the request
/// clock starts afresh when reading resumes.
///
/// No task is scheduled per request: the deadline is a stored time, and one scheduled check, never more than
/// the request timeout ahead, closes the connection once the deadline has passed or schedules itself again
/// for it (exactly at it, so the limits hold to the nanosecond on the loop's clock).
final class HTTP1ConnectionTimer {
    private let idleTimeout: TimeAmount
    private let requestTimeout: TimeAmount
    private var eventLoop: (any EventLoop)?
    private var scheduled: Scheduled<Void>?
    private var scheduledFor: NIODeadline?
    /// When the connection is closed unless something happens first; `nil` while a request is answered.
    private var deadline: NIODeadline?
    private var requestStarted = false
    private var answering = false
    /// Bytes of a request that has not ended have arrived (see ``readParsed(requestUnfinished:)``).
    private var unfinishedRequest = false
    /// The handler reads nothing until the client reads its answers.
    private var holdingReads = false
    /// Requests whose end has been parsed, for ``HTTP1RequestDecoder``.
    private(set) var requestsEnded = 0
    /// Called with whether a request had started when the time ran out.
    var onExpiry: ((Bool) -> Void)?

    init(idleTimeout: TimeAmount, requestTimeout: TimeAmount) {
        self.idleTimeout = idleTimeout
        self.requestTimeout = requestTimeout
    }

    func start(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
        arm(idleTimeout)
    }

    /// Raw bytes arrived: the first ones of a request start its clock.
    func bytesArrived() {
        requestBegan()
    }

    /// A request head was parsed: if its first bytes did not start the clock (they came with an earlier
    /// request's), it starts now.
    func requestBegan() {
        guard !requestStarted, !answering else { return }
        requestStarted = true
        arm(holdingReads ? idleTimeout : requestTimeout)
    }

    /// The handler stopped reading until the client reads its answers: the idle clock runs meanwhile.
    func readingHeldBack() {
        guard !holdingReads else { return }
        holdingReads = true
        if !answering {
            arm(idleTimeout)
        }
    }

    /// The handler reads again: a request left unfinished gets the whole request timeout from now.
    func readingResumed() {
        guard holdingReads else { return }
        holdingReads = false
        if !answering && (requestStarted || unfinishedRequest) {
            requestStarted = true
            arm(requestTimeout)
        }
    }

    /// A request's end was parsed (counted whether or not it is answered next).
    func requestEnded() {
        requestsEnded &+= 1
    }

    /// A request arrived whole: no timer while it is answered.
    func requestArrived() {
        answering = true
        requestStarted = false
        deadline = nil
    }

    /// The answer is written: the connection is idle again, or on the request clock when an unfinished
    /// request's bytes are waiting.
    func responseSent() {
        answering = false
        requestStarted = false
        if unfinishedRequest {
            requestBegan()
        } else {
            arm(idleTimeout)
        }
    }

    /// A read was parsed to its end; `requestUnfinished` says whether it ended inside a request (`nil`: unknown,
    /// because requests in it may be held back by the pipelining handler; taken as unfinished, so the
    /// connection is on the request clock after the answers, which is never longer than the idle one).
    func readParsed(requestUnfinished: Bool?) {
        unfinishedRequest = requestUnfinished ?? true
        guard !answering else { return }
        if unfinishedRequest {
            requestBegan()
        } else {
            // The read ended with a request's end, answered meanwhile: idle.
            requestStarted = false
            arm(idleTimeout)
        }
    }

    /// A complete request is being answered; NIOHTTP1's pipelining handler holds later requests back meanwhile.
    var isAnswering: Bool {
        answering
    }

    func stop() {
        scheduled?.cancel()
        scheduled = nil
        scheduledFor = nil
        onExpiry = nil
        eventLoop = nil
    }

    private func arm(_ amount: TimeAmount) {
        guard let eventLoop = eventLoop else { return }
        let now = eventLoop.now
        deadline = now + amount
        // A check at or before the earliest deadline that may follow (a request's, from the next byte) stays.
        let checkBy = now + min(amount, requestTimeout)
        if let scheduledFor = scheduledFor, scheduledFor <= checkBy {
            return
        }
        schedule(at: checkBy, on: eventLoop)
    }

    private func schedule(at time: NIODeadline, on eventLoop: any EventLoop) {
        scheduled?.cancel()
        scheduledFor = time
        scheduled = eventLoop.assumeIsolated().scheduleTask(deadline: time) { [weak self] in
            self?.check()
        }
    }

    private func check() {
        scheduled = nil
        scheduledFor = nil
        guard let eventLoop = eventLoop, let deadline = deadline else {
            // Answering: the answer re-arms.
            return
        }
        let now = eventLoop.now
        if now >= deadline {
            onExpiry?(requestStarted)
        } else {
            schedule(at: min(deadline, now + requestTimeout), on: eventLoop)
        }
    }
}

/// NIOHTTP1's request decoder, fed so that the connection timer learns where requests begin and end in the
/// raw bytes: each read is fed in two parts, everything before its last byte that is not CR or LF, then that
/// byte and the line ends after it. If no request ended in the second part, the read ended inside a request
/// (a head or body cut short, possibly behind complete pipelined requests), and the timer keeps the
/// request clock for it. The first bytes of a read start a request's clock as before.
struct HTTP1RequestDecoder: ByteToMessageDecoder {
    typealias InboundOut = HTTPServerRequestPart

    private let decoder: HTTPRequestDecoder
    private let timer: HTTP1ConnectionTimer

    init(limits: NIOHTTPDecoderLimitConfiguration, timer: HTTP1ConnectionTimer) {
        decoder = HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes, limitConfiguration: limits)
        self.timer = timer
    }

    mutating func decoderAdded(context: ChannelHandlerContext) {
        decoder.decoderAdded(context: context)
    }

    mutating func decoderRemoved(context: ChannelHandlerContext) {
        decoder.decoderRemoved(context: context)
    }

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard buffer.readableBytes > 0 else {
            return .needMoreData
        }
        timer.bytesArrived()
        // While a request is answered, the pipelining handler holds the parsed ones back: their ends are not
        // seen here.
        let delivered = !timer.isAnswering
        let lastByteIndex = buffer.withUnsafeReadableBytes { bytes in
            bytes.lastIndex { $0 != UInt8(ascii: "\r") && $0 != UInt8(ascii: "\n") }
        }
        guard let lastByteIndex else {
            // Only line ends (allowed between requests): no request begins here.
            return try decoder.decode(context: context, buffer: &buffer)
        }
        if lastByteIndex > 0 {
            var front = buffer.getSlice(at: buffer.readerIndex, length: lastByteIndex)!
            _ = try decoder.decode(context: context, buffer: &front)
            // What the decoder keeps of a field cut short stays in front of the rest, as it expects.
            buffer.moveReaderIndex(forwardBy: lastByteIndex - front.readableBytes)
        }
        let endedBefore = timer.requestsEnded
        let state = try decoder.decode(context: context, buffer: &buffer)
        let endedInLastPart = timer.requestsEnded != endedBefore
        timer.readParsed(requestUnfinished: delivered && !timer.isAnswering ? !endedInLastPart : nil)
        return state
    }

    mutating func decodeLast(
        context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool
    ) throws -> DecodingState {
        try decoder.decodeLast(context: context, buffer: &buffer, seenEOF: seenEOF)
    }
}

/// Tells the protocols apart on a cleartext connection by its first bytes: the HTTP/2 connection preface
/// (`PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`) means HTTP/2 (nghttp2: gRPC, and Connect and gRPC-Web over HTTP/2);
/// anything else is HTTP/1.1 (NIOHTTP1: Connect and gRPC-Web). It decides at the first byte that differs
/// from the preface, or once the 24 preface bytes have arrived, then replaces itself with the chosen
/// handlers and passes them the bytes it held (at most 24). It costs nothing per call: it is gone before the
/// first request is parsed.
final class ProtocolDetector: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    static let preface: [UInt8] = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    private let makeHTTP2: () -> any ChannelHandler
    private let makeHTTP1: (ChannelPipeline.SynchronousOperations) throws -> Void
    private let timeout: TimeAmount?
    private var timer: Scheduled<Void>?
    private var held: ByteBuffer?

    /// `timeout`: a client that has not said enough to choose within it (silent, or a partial preface) is
    /// closed.
    init(
        timeout: TimeAmount? = nil,
        makeHTTP2: @escaping () -> any ChannelHandler,
        makeHTTP1: @escaping (ChannelPipeline.SynchronousOperations) throws -> Void
    ) {
        self.timeout = timeout
        self.makeHTTP2 = makeHTTP2
        self.makeHTTP1 = makeHTTP1
    }

    func handlerAdded(context: ChannelHandlerContext) {
        guard let timeout = timeout else { return }
        let channel = context.channel
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) {
            channel.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            // Shutting down before the client said anything: nothing to finish.
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        if var held = held {
            held.writeBuffer(&bytes)
            bytes = held
        }
        let view = bytes.readableBytesView
        var isHTTP2: Bool?
        for (offset, byte) in view.prefix(Self.preface.count).enumerated() where byte != Self.preface[offset] {
            isHTTP2 = false
            break
        }
        if isHTTP2 == nil && view.count >= Self.preface.count {
            isHTTP2 = true
        }
        guard let isHTTP2 else {
            held = bytes
            return
        }
        held = nil
        do {
            let pipeline = context.pipeline.syncOperations
            if isHTTP2 {
                try pipeline.addHandler(makeHTTP2(), position: .after(self))
            } else {
                try makeHTTP1(pipeline)
            }
        } catch {
            context.close(promise: nil)
            return
        }
        context.fireChannelRead(wrapInboundOut(bytes))
        context.pipeline.syncOperations.removeHandler(self, promise: nil)
    }
}
