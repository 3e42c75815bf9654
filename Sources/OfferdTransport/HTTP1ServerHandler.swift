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
        self.cors = CORSPolicy(allowedOrigins: Set(configuration.corsAllowedOrigins))
        self.logger = logger
        self.clock = clock
        self.timer = HTTP1ConnectionTimer(
            idleTimeout: configuration.idleTimeout, requestTimeout: configuration.http1RequestTimeout
        )
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.timer.onExpiry = { [weak self] requestStarted in
            self?.timerExpired(requestStarted: requestStarted)
        }
        self.timer.start(eventLoop: context.eventLoop)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.tearDown()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.tearDown()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A malformed request or a socket error: nothing more to read. A malformed request is told so first
        // (what NIOHTTP1's HTTPServerProtocolErrorHandler does, without a handler on every request's way; no
        // answer of ours is ever half-written here, each is written whole at once).
        self.logger.debug("HTTP/1.1 connection error", metadata: ["error": "\(error)"])
        if error is HTTPParserError {
            let head = HTTPResponseHead(
                version: .http1_1, status: .badRequest,
                headers: HTTPHeaders([("connection", "close"), ("content-length", "0")]))
            context.write(self.wrapOutboundOut(.head(head)), promise: nil)
            context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
        }
        context.close(promise: nil)
    }

    func read(context: ChannelHandlerContext) {
        // After an upgrade request nothing more is read (see `receivedHead`).
        guard !self.stoppedReading else { return }
        // A client that does not read its answers stops being read from.
        if context.channel.isWritable {
            context.read()
        } else {
            self.readPending = true
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable && self.readPending && !self.stoppedReading {
            self.readPending = false
            context.read()
        }
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            // Finish the request in progress (its answer says `connection: close`); close an idle connection.
            self.quiescing = true
            if self.machine == nil {
                context.close(promise: nil)
            }
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            self.receivedHead(head, context: context)
        case .body(let bytes):
            guard !self.answered, self.machine != nil else {
                return
            }
            let allocator = context.channel.allocator
            let action = bytes.withUnsafeReadableBytes { raw in
                self.machine?.receivedData(raw, allocator: allocator) ?? .none
            }
            self.perform(action, context: context)
        case .end:
            self.requestEnded = true
            self.timer.requestEnded()
            if self.isUpgrade {
                // NIOHTTP1 parses nothing after an upgrade request and would buffer whatever follows: read no
                // more. Its answer (sent or to come) closes the connection.
                self.stoppedReading = true
            }
            self.timer.requestArrived()
            guard let action = self.machine?.receivedEndOfStream() else {
                // Answered before the body ended: the rest of the body was read and dropped; idle again.
                if self.answered {
                    self.timer.responseSent()
                }
                return
            }
            self.perform(action, context: context)
        }
    }

    private func receivedHead(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        var machine = GRPCServerStreamStateMachine(configuration: self.configuration)
        self.requestNumber &+= 1
        // A head that arrived behind pipelined requests (its first bytes came with theirs) starts its own clock.
        self.timer.requestBegan()
        self.answered = false
        self.requestEnded = false
        self.isHead = head.method == .HEAD
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
        self.isUpgrade = head.method == .CONNECT || (hasUpgrade && connectionUpgrade)
        self.keepAlive = head.isKeepAlive && !self.quiescing && !self.isUpgrade
        let isPlainGRPC = machine.requestedProtocol == .grpc
        self.machine = machine
        if isPlainGRPC, head.method == .POST {
            // gRPC needs HTTP/2 (trailers, multiplexing): an HTTP/1.1 gRPC request is not one of ours.
            self.keepAlive = false
            self.writeResponse(RenderedHTTPResponse(status: 415, fields: [], body: ByteBuffer()), context: context)
            return
        }
        let action = self.machine?.receivedHeaders(endStream: false, clock: self.clock) ?? .none
        if case .answer = action {
            // Refused from its head: no 100 Continue, the answer goes out at once.
        } else if expectsContinue {
            // curl asks before sending a body over 1 KiB and would otherwise wait a second.
            context.writeAndFlush(
                self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .continue))), promise: nil
            )
        }
        self.perform(action, context: context)
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
            self.deadlineTimer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) {
                [weak self] in
                guard let self, let context = self.context else { return }
                self.deadlineTimer = nil
                if let action = self.machine?.deadlineReached() {
                    self.perform(action, context: context)
                }
            }
        case .queueForDispatch:
            // Not inside a parser callback: NIOHTTP1 delivered a whole part. Dispatch now.
            if let next = self.machine?.dispatch(clock: self.clock) {
                self.perform(next, context: context)
            }
        case .dispatch(let call):
            let reply = self.service.handle(call, allocator: context.channel.allocator)
            if case .deferred(let pending) = reply {
                // The deadline timer stays armed while the reply is pending; NIOHTTP1's pipelining handler holds
                // later requests back until this one's answer ends.
                let request = self.requestNumber
                pending.futureResult(on: context.eventLoop).assumeIsolated().whenSuccess { [weak self] reply in
                    // Dropped when the connection went away or the request was answered meanwhile (deadline, 408).
                    guard let self, let context = self.context, self.requestNumber == request, self.machine != nil
                    else { return }
                    self.cancelDeadline()
                    if let next = self.machine?.replyReady(reply, clock: self.clock) {
                        self.perform(next, context: context)
                    }
                }
                return
            }
            self.cancelDeadline()
            if let next = self.machine?.replyReady(reply, clock: self.clock) {
                self.perform(next, context: context)
            }
        case .respond(let payload):
            guard let machine = self.machine else { return }
            self.writeResponse(
                RPCResponseRendering.message(
                    payload, wireProtocol: machine.wireProtocol, origin: machine.origin, cors: self.cors,
                    allocator: context.channel.allocator
                ),
                context: context
            )
        case .answer(let rejection):
            guard let machine = self.machine else { return }
            if rejection == .methodNotAllowed || rejection == .unsupportedMediaType {
                // Not one of the port's protocols: answered, then the connection closes.
                self.keepAlive = false
            }
            self.writeResponse(
                RPCResponseRendering.answer(
                    rejection,
                    wireProtocol: machine.wireProtocol == .grpc ? .connect(json: true) : machine.wireProtocol,
                    origin: machine.origin, cors: self.cors, allocator: context.channel.allocator
                ),
                context: context
            )
        }
    }

    private func writeResponse(_ response: RenderedHTTPResponse, context: ChannelHandlerContext) {
        self.cancelDeadline()
        self.answered = true
        // An answer before the whole body arrived: the rest of the body is read and dropped (bounded in time
        // by the request timer, never buffered), then the connection serves the next request.
        let closeAfter = !self.keepAlive || self.quiescing
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
            self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))),
            promise: nil)
        if response.body.readableBytes > 0 && !self.isHead {
            context.write(self.wrapOutboundOut(.body(.byteBuffer(response.body))), promise: nil)
        }
        // Everything about this request is settled before its end is written: writing it makes NIOHTTP1's
        // pipelining handler deliver the requests it held back, from inside the write, and they start afresh.
        self.machine = nil
        guard closeAfter else {
            if self.requestEnded {
                self.timer.responseSent()
            }
            context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
            return
        }
        let channel = context.channel
        let written = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: written)
        written.futureResult.whenComplete { _ in channel.close(promise: nil) }
    }

    private func timerExpired(requestStarted: Bool) {
        guard let context = self.context else { return }
        if requestStarted && !self.answered && self.machine != nil {
            // Too slow to send its request body (slowloris): say so, then close. A head that never completed
            // gets no answer (NIOHTTP1 has no request to answer): the connection is just closed.
            self.keepAlive = false
            self.writeResponse(RenderedHTTPResponse(status: 408, fields: [], body: ByteBuffer()), context: context)
        } else {
            context.close(promise: nil)
        }
    }

    private func cancelDeadline() {
        self.deadlineTimer?.cancel()
        self.deadlineTimer = nil
    }

    private func tearDown() {
        self.cancelDeadline()
        self.timer.stop()
        self.machine = nil
        self.context = nil
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
                self.receivedHeaderField(
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
        self.arm(self.idleTimeout)
    }

    /// Raw bytes arrived: the first ones of a request start its clock.
    func bytesArrived() {
        self.requestBegan()
    }

    /// A request head was parsed: if its first bytes did not start the clock (they came with an earlier
    /// request's), it starts now.
    func requestBegan() {
        guard !self.requestStarted, !self.answering else { return }
        self.requestStarted = true
        self.arm(self.requestTimeout)
    }

    /// A request's end was parsed (counted whether or not it is answered next).
    func requestEnded() {
        self.requestsEnded &+= 1
    }

    /// A request arrived whole: no timer while it is answered.
    func requestArrived() {
        self.answering = true
        self.requestStarted = false
        self.deadline = nil
    }

    /// The answer is written: the connection is idle again, or on the request clock when an unfinished
    /// request's bytes are waiting.
    func responseSent() {
        self.answering = false
        self.requestStarted = false
        if self.unfinishedRequest {
            self.requestBegan()
        } else {
            self.arm(self.idleTimeout)
        }
    }

    /// A read was parsed to its end; `requestUnfinished` says whether it ended inside a request (`nil`: unknown,
    /// because requests in it may be held back by the pipelining handler; taken as unfinished, so the
    /// connection is on the request clock after the answers, which is never longer than the idle one).
    func readParsed(requestUnfinished: Bool?) {
        self.unfinishedRequest = requestUnfinished ?? true
        guard !self.answering else { return }
        if self.unfinishedRequest {
            self.requestBegan()
        } else {
            // The read ended with a request's end, answered meanwhile: idle.
            self.requestStarted = false
            self.arm(self.idleTimeout)
        }
    }

    /// A complete request is being answered; NIOHTTP1's pipelining handler holds later requests back meanwhile.
    var isAnswering: Bool {
        self.answering
    }

    func stop() {
        self.scheduled?.cancel()
        self.scheduled = nil
        self.scheduledFor = nil
        self.onExpiry = nil
        self.eventLoop = nil
    }

    private func arm(_ amount: TimeAmount) {
        guard let eventLoop = self.eventLoop else { return }
        let now = eventLoop.now
        self.deadline = now + amount
        // A check at or before the earliest deadline that may follow (a request's, from the next byte) stays.
        let checkBy = now + min(amount, self.requestTimeout)
        if let scheduledFor = self.scheduledFor, scheduledFor <= checkBy {
            return
        }
        self.schedule(at: checkBy, on: eventLoop)
    }

    private func schedule(at time: NIODeadline, on eventLoop: any EventLoop) {
        self.scheduled?.cancel()
        self.scheduledFor = time
        self.scheduled = eventLoop.assumeIsolated().scheduleTask(deadline: time) { [weak self] in
            self?.check()
        }
    }

    private func check() {
        self.scheduled = nil
        self.scheduledFor = nil
        guard let eventLoop = self.eventLoop, let deadline = self.deadline else {
            // Answering: the answer re-arms.
            return
        }
        let now = eventLoop.now
        if now >= deadline {
            self.onExpiry?(self.requestStarted)
        } else {
            self.schedule(at: min(deadline, now + self.requestTimeout), on: eventLoop)
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
        self.decoder = HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes, limitConfiguration: limits)
        self.timer = timer
    }

    mutating func decoderAdded(context: ChannelHandlerContext) {
        self.decoder.decoderAdded(context: context)
    }

    mutating func decoderRemoved(context: ChannelHandlerContext) {
        self.decoder.decoderRemoved(context: context)
    }

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard buffer.readableBytes > 0 else {
            return .needMoreData
        }
        self.timer.bytesArrived()
        // While a request is answered, the pipelining handler holds the parsed ones back: their ends are not
        // seen here.
        let delivered = !self.timer.isAnswering
        let lastByteIndex = buffer.withUnsafeReadableBytes { bytes in
            bytes.lastIndex { $0 != UInt8(ascii: "\r") && $0 != UInt8(ascii: "\n") }
        }
        guard let lastByteIndex else {
            // Only line ends (allowed between requests): no request begins here.
            return try self.decoder.decode(context: context, buffer: &buffer)
        }
        if lastByteIndex > 0 {
            var front = buffer.getSlice(at: buffer.readerIndex, length: lastByteIndex)!
            _ = try self.decoder.decode(context: context, buffer: &front)
            // What the decoder keeps of a field cut short stays in front of the rest, as it expects.
            buffer.moveReaderIndex(forwardBy: lastByteIndex - front.readableBytes)
        }
        let endedBefore = self.timer.requestsEnded
        let state = try self.decoder.decode(context: context, buffer: &buffer)
        let endedInLastPart = self.timer.requestsEnded != endedBefore
        self.timer.readParsed(requestUnfinished: delivered && !self.timer.isAnswering ? !endedInLastPart : nil)
        return state
    }

    mutating func decodeLast(
        context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool
    ) throws -> DecodingState {
        try self.decoder.decodeLast(context: context, buffer: &buffer, seenEOF: seenEOF)
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
        guard let timeout = self.timeout else { return }
        let channel = context.channel
        self.timer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) {
            channel.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.timer?.cancel()
        self.timer = nil
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
        var bytes = self.unwrapInboundIn(data)
        if var held = self.held {
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
            self.held = bytes
            return
        }
        self.held = nil
        do {
            let pipeline = context.pipeline.syncOperations
            if isHTTP2 {
                try pipeline.addHandler(self.makeHTTP2(), position: .after(self))
            } else {
                try self.makeHTTP1(pipeline)
            }
        } catch {
            context.close(promise: nil)
            return
        }
        context.fireChannelRead(self.wrapInboundOut(bytes))
        context.pipeline.syncOperations.removeHandler(self, promise: nil)
    }
}
